"""Trusted facts (b2b-concepts §5.4, §8): which of an upstream's MFA and device claims count here.

Pure. The upstream's claims are read through the home organisation's ``claims_mapping``: MFA when
one of its ``amr`` values is an MFA value or its ``acr`` is an MFA class (and, with
``mfa_max_age_seconds``, its ``auth_time`` is recent enough); a device fact when the mapped claim
(in the raw claims, else the device claims) is JSON true or, lower-cased, one of the mapped
values. A fact is *trusted* only when the upstream says so, the guest has a home organisation,
the connector speaks for it (``HomeOrganisation.authoritative``) and that organisation's inbound
trust flag accepts it. Everything else must be done here (MFA) or cannot be had (device state).

Reason codes (``TrustedFacts.reasons``, in this order):

- ``no_home_organisation``: no organisation (passcode, social, personal account): nothing trusted;
- ``home_not_authoritative``: the connector does not speak for the home tenant: nothing trusted;
- ``upstream_mfa_too_old``: an MFA claim without ``auth_time``, or older than the mapping allows;
- ``mfa_trusted_from_home`` / ``mfa_claim_not_trusted``: the upstream said MFA, and it is
  (not) trusted;
- ``compliant_device_trusted_from_home`` / ``hybrid_joined_device_trusted_from_home``: a trusted
  device fact; ``device_claim_not_trusted``: a device fact was claimed but is not trusted (once).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.policy.cross_tenant import HomeOrganisation
from gateway.settings.federation import ClaimsMapping, DeviceClaim
from idp_connectors.base import UpstreamIdentity


@dataclass(frozen=True)
class TrustedFacts:
    mfa: bool
    """MFA at home, trusted."""
    compliant_device: bool
    hybrid_joined_device: bool
    upstream_mfa: bool
    """What the upstream's claims say per the mapping (untrusted)."""
    upstream_compliant_device: bool
    upstream_hybrid_joined_device: bool
    reasons: tuple[str, ...]


NO_FACTS = TrustedFacts(False, False, False, False, False, False, ())


def _fresh(auth_time: Any, max_age: int, now: int) -> bool:
    return isinstance(auth_time, int) and not isinstance(auth_time, bool) and now - auth_time <= max_age


def upstream_says_mfa(
    identity: UpstreamIdentity, mapping: ClaimsMapping, now: int
) -> tuple[bool, str | None]:
    """Whether the upstream's claims mean MFA per ``mapping``; the reason when an MFA claim is refused."""
    said = any(value in mapping.mfa_amr_values for value in identity.amr) or (
        isinstance(identity.acr, str) and identity.acr in mapping.mfa_acr_values
    )
    if not said:
        return False, None
    max_age = mapping.mfa_max_age_seconds
    if max_age is not None and not _fresh(identity.auth_time, max_age, now):
        return False, "upstream_mfa_too_old"
    return True, None


def upstream_says_device(identity: UpstreamIdentity, claim: DeviceClaim | None) -> bool:
    """Whether the mapped device claim holds one of its yes-values (or JSON true)."""
    if claim is None:
        return False
    if claim.claim in identity.raw_claims:
        value = identity.raw_claims[claim.claim]
    elif claim.claim in identity.device:
        value = identity.device[claim.claim]
    else:
        return False
    if value is True:
        return True
    if isinstance(value, bool):
        text = "false"
    elif isinstance(value, str | int | float):
        text = str(value)
    else:
        return False
    return text.lower() in {v.lower() for v in claim.values}


def trusted_facts(
    identity: UpstreamIdentity,
    home: HomeOrganisation | None,
    now: int,
    *,
    default_mapping: ClaimsMapping | None = None,
) -> TrustedFacts:
    """What the upstream says and what of it is trusted. Without a home organisation the upstream's
    claims are read through ``default_mapping`` (the configured default's; the service default if
    left out), for the record only."""
    mapping = home.inbound.claims_mapping if home is not None else default_mapping or ClaimsMapping()
    mfa, mfa_refused = upstream_says_mfa(identity, mapping, now)
    compliant = upstream_says_device(identity, mapping.compliant_device)
    hybrid = upstream_says_device(identity, mapping.hybrid_joined_device)
    reasons: list[str] = []
    if home is None:
        reasons.append("no_home_organisation")
    elif not home.authoritative:
        reasons.append("home_not_authoritative")
    speaks = home is not None and home.authoritative
    trust = home.inbound.trust if home is not None else None
    mfa_trusted = mfa and speaks and trust is not None and trust.mfa_accepted
    compliant_trusted = compliant and speaks and trust is not None and trust.compliant_device_accepted
    hybrid_trusted = hybrid and speaks and trust is not None and trust.hybrid_joined_device_accepted
    if mfa_refused is not None:
        reasons.append(mfa_refused)
    if mfa:
        reasons.append("mfa_trusted_from_home" if mfa_trusted else "mfa_claim_not_trusted")
    if compliant_trusted:
        reasons.append("compliant_device_trusted_from_home")
    if hybrid_trusted:
        reasons.append("hybrid_joined_device_trusted_from_home")
    if (compliant and not compliant_trusted) or (hybrid and not hybrid_trusted):
        reasons.append("device_claim_not_trusted")
    return TrustedFacts(
        mfa=mfa_trusted,
        compliant_device=compliant_trusted,
        hybrid_joined_device=hybrid_trusted,
        upstream_mfa=mfa,
        upstream_compliant_device=compliant,
        upstream_hybrid_joined_device=hybrid,
        reasons=tuple(reasons),
    )
