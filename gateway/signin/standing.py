"""What an authentication established, after trust: the facts policies are evaluated on.

A ``Standing`` is built once from the upstream identity (``from_identity``): the home
organisation (``gateway.policy.cross_tenant``), the partner's user and group ids for inbound
access targets, and the MFA and device facts the organisation *trusts*
(``gateway.policy.trust``). Raw upstream claims stop here: the standing is small, lives in the
sign-in transaction while MFA or terms are pending, and in the SSO session afterwards, so a
later sign-in to another app is evaluated on the same facts without the upstream's claims.

``amr``, ``acr`` and the authentication claims of the tokens derive from it: ``mfa`` appears
only when MFA was satisfied (trusted from home, or done here), device claims only when trusted.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Literal

from gateway.directory.identities import idp_claim
from gateway.oidc.claims import ACR_MULTI_FACTOR, ACR_SINGLE_FACTOR
from gateway.policy.cross_tenant import (
    HomeOrganisation,
    HomeResolution,
    groups_overage,
    resolve_home,
    upstream_principal,
)
from gateway.policy.trust import NO_FACTS, TrustedFacts, trusted_facts
from gateway.settings.models import Settings
from idp_connectors.base import UpstreamIdentity

PASSCODE_TYPES = frozenset({"email_otp"})

MfaSource = Literal["home", "resource"]


@dataclass(frozen=True)
class Standing:
    connector_id: str
    connector_type: str
    auth_time: int
    idp: str
    """The ``idp`` claim: where the user authenticated (``gateway.directory.identities.idp_claim``)."""
    home_tenant_id: str | None = None
    home_authoritative: bool = False
    upstream_user_id: str | None = None
    upstream_group_ids: tuple[str, ...] = ()
    upstream_groups_complete: bool = True
    """False when the upstream left groups out (too many to list): group rules then fail closed."""
    upstream_mfa: bool = False
    """What the upstream's claims said about MFA (untrusted; for the audit record)."""
    mfa_source: MfaSource | None = None
    mfa_time: int | None = None
    compliant_device: bool = False
    hybrid_joined_device: bool = False
    trust_reasons: tuple[str, ...] = ()

    @property
    def mfa(self) -> bool:
        return self.mfa_source is not None

    @property
    def amr(self) -> list[str]:
        """RFC 8176 values: ``otp`` for a passcode, ``fed`` for any upstream; ``mfa`` when satisfied."""
        base = ["otp"] if self.connector_type in PASSCODE_TYPES else ["fed"]
        if self.mfa_source == "resource" and "otp" not in base:
            base.append("otp")  # the TOTP done here
        if self.mfa:
            base.append("mfa")
        return base

    @property
    def acr(self) -> str:
        return ACR_MULTI_FACTOR if self.mfa else ACR_SINGLE_FACTOR

    def auth_claims(self) -> dict[str, Any]:
        """Claims about this authentication for the ID token: where MFA was done, trusted device state."""
        claims: dict[str, Any] = {}
        if self.mfa_source is not None:
            claims["mfa_source"] = self.mfa_source
        if self.compliant_device:
            claims["device_compliant"] = True
        if self.hybrid_joined_device:
            claims["device_hybrid_joined"] = True
        return claims

    def with_local_mfa(self, at: int) -> Standing:
        return replace(self, mfa_source="resource", mfa_time=at)

    def under_current_trust(self, settings: Settings) -> Standing:
        """This standing with what it took from the home organisation on trust (MFA from home,
        device state) kept only while the settings still grant that trust: a partner no longer
        trusted stops counting for sessions made before the change, too."""
        if self.home_tenant_id is None or not (
            self.mfa_source == "home" or self.compliant_device or self.hybrid_joined_device
        ):
            return self
        home = resolve_home(
            settings,
            connector_id=self.connector_id,
            connector_type=self.connector_type,
            home_tenant_id=self.home_tenant_id,
        ).home
        speaks = home is not None and home.authoritative and home.tenant_id == self.home_tenant_id
        trust = home.inbound.trust if home is not None and speaks else None
        mfa = self.mfa_source != "home" or (trust is not None and trust.mfa_accepted)
        return replace(
            self,
            mfa_source=self.mfa_source if mfa else None,
            mfa_time=self.mfa_time if mfa else None,
            compliant_device=self.compliant_device and trust is not None and trust.compliant_device_accepted,
            hybrid_joined_device=(
                self.hybrid_joined_device and trust is not None and trust.hybrid_joined_device_accepted
            ),
        )

    def to_json(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in _FIELDS}
        data["upstream_group_ids"] = list(self.upstream_group_ids)
        data["trust_reasons"] = list(self.trust_reasons)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Standing:
        return cls(
            **{
                **data,
                "upstream_group_ids": tuple(data.get("upstream_group_ids") or ()),
                "trust_reasons": tuple(data.get("trust_reasons") or ()),
            }
        )


_FIELDS = tuple(f.name for f in fields(Standing))


@dataclass(frozen=True)
class Established:
    standing: Standing | None
    refusal: str | None
    facts: TrustedFacts


def from_identity(
    settings: Settings, identity: UpstreamIdentity, connector_type: str, now: int
) -> Established:
    """The standing this identity earns, or the reason it is refused (``home_tenant_mismatch``)."""
    resolution: HomeResolution = resolve_home(
        settings,
        connector_id=identity.connector_id,
        connector_type=connector_type,
        home_tenant_id=identity.home_tenant_id,
    )
    if resolution.refusal is not None:
        return Established(None, resolution.refusal, NO_FACTS)
    home = resolution.home
    facts = trusted_facts(identity, home, now) if home is not None else NO_FACTS
    user_id: str | None = None
    group_ids: frozenset[str] = frozenset()
    groups_complete = True
    if home is not None:
        user_id, group_ids = upstream_principal(identity.raw_claims, home.inbound.claims_mapping)
        groups_complete = not groups_overage(identity.raw_claims, home.inbound.claims_mapping)
        group_ids = _targeted(group_ids, home)
    auth_time = identity.auth_time or now
    standing = Standing(
        connector_id=identity.connector_id,
        connector_type=connector_type,
        auth_time=auth_time,
        idp=idp_claim(identity, connector_type),
        home_tenant_id=home.tenant_id if home is not None else None,
        home_authoritative=home.authoritative if home is not None else False,
        upstream_user_id=user_id,
        upstream_group_ids=tuple(sorted(group_ids)),
        upstream_groups_complete=groups_complete,
        upstream_mfa=facts.upstream_mfa,
        mfa_source="home" if facts.mfa else None,
        mfa_time=auth_time if facts.mfa else None,
        compliant_device=facts.compliant_device,
        hybrid_joined_device=facts.hybrid_joined_device,
        trust_reasons=facts.reasons,
    )
    return Established(standing, None, facts)


def _targeted(group_ids: frozenset[str], home: HomeOrganisation) -> frozenset[str]:
    """Only the partner groups its inbound access settings name: all that matters later, and it
    keeps the session small however many groups the upstream lists."""
    rule = home.inbound.collaboration.users_and_groups
    named = {t.target.lower() for t in rule.targets if t.target_type == "group"}
    return frozenset(g for g in group_ids if g.lower() in named)
