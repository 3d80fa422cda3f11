"""What-If (b2b-concepts §8): what a sign-in of this user to this app would meet, without signing in.

``what_if`` takes a ``WhatIfQuery`` (a directory user, an application, the connector and home
organisation the sign-in would come through, the upstream's claims as the IdP would send them, the
client address, whether TOTP was already done here) and runs the very code a real sign-in runs:
``gateway.signin.standing.from_identity`` (home organisation and trusted facts), then, in the
sign-in's order, inbound cross-tenant access, the account state and
``gateway.signin.policy_eval.assess`` (conditional access). Nothing is written. The answer is
JSON with Graph-style camelCase keys, shared by ``gateway whatif`` and
``POST /v1.0/identity/conditionalAccess/evaluate``:

- ``user``, ``application``, ``connector`` (and ``connectorChosenBy``: ``request``, ``partner``,
  ``identity``), ``homeTenantId``, ``externalUserType``, ``crossTenantAccessType``;
- ``crossTenantAccess`` ``{allowed, reason}`` (null without a home organisation);
- ``trust``: what the upstream said (``upstream*``) and what of it is trusted, with the reasons;
- ``mfaSource``, ``amr``, ``acr``: what the tokens would say (before any action still required);
- ``outcome`` (``grant``, ``block``, ``userActionRequired``), ``blockReason``, ``required``,
  ``mfaChallenge`` (``home`` or ``resource``: where required MFA would be done),
  ``conditionalAccessStatus``, ``authenticationRequirement``, ``appliedPolicies`` and
  ``notAppliedPolicies`` (``gateway.policy.whatif.explain``).

A sign-in refused before conditional access (``home_tenant_mismatch``, a cross-tenant block,
``account_disabled``) is answered with ``outcome`` ``block`` and that reason; every policy is then
listed as not applied with that reason (``policy_disabled`` for disabled ones).

Bad input raises ``WhatIfError`` naming the query field (``user_id``, ``claims`` ...), a stable
reason code and a message that never echoes unprintable input.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.directory.identities import LABELS
from gateway.policy.trust import TrustedFacts, trusted_facts
from gateway.policy.whatif import explain
from gateway.settings.conditional_access import ConditionalAccessPolicy
from gateway.settings.models import Settings
from gateway.signin.policy_eval import Assessment, access_type, assess, inbound_gate
from gateway.signin.standing import PASSCODE_TYPES, Standing, from_identity
from gateway.store.base import DirectoryStore
from idp_connectors.base import UpstreamIdentity
from idp_connectors.google.config import GoogleConfig
from idp_connectors.microsoft.config import MicrosoftConfig
from idp_connectors.oidc.config import OidcConfig
from idp_connectors.registry import AnyConnectorConfig
from idp_connectors.saml.config import SamlConfig
from idp_connectors.wsfed.config import WsFedConfig

MAX_ID = 64
MAX_TENANT_ID = 256
MAX_CLAIM_CHARS = 1024
MAX_AMR_VALUES = 32
MAX_ADDRESS_CHARS = 64
MICROSOFT_TENANT_CLAIM = "tid"


@dataclass(frozen=True)
class WhatIfQuery:
    user_id: str
    """A directory user's object id."""
    app_id: str
    """A configured application's id."""
    connector_id: str | None = None
    """Default: the partner's connector when ``home_tenant_id`` names a partner bound to one, else the
    connector of the user's first identity."""
    home_tenant_id: str | None = None
    """The tenant id the upstream reports; default: the connector's tenant claim in ``claims``."""
    claims: Mapping[str, Any] = field(default_factory=dict)
    """Upstream claims as the IdP would send them (``sub``, ``amr``, ``acr``, ``auth_time``, ``oid``,
    ``groups``, device claims ...)."""
    ip_address: str | None = None
    mfa_done_here: bool = False
    """TOTP was already done here in this sign-in."""


class WhatIfError(ValueError):
    """A query the tool cannot answer: ``field`` is the query's attribute (``claims.amr`` for a claim)."""

    def __init__(self, field: str, reason: str, message: str) -> None:
        super().__init__(message)
        self.field, self.reason, self.message = field, reason, message


@dataclass(frozen=True)
class _Claims:
    subject: str | None
    amr: tuple[str, ...]
    acr: str | None
    auth_time: int | None


async def what_if(settings: Settings, store: DirectoryStore, query: WhatIfQuery, now: int) -> dict[str, Any]:
    """The answer described in the module docstring; ``WhatIfError`` for bad input. Reads only."""
    client_ip = _ip_address(query.ip_address)
    claims = _standard_claims(query.claims, now)
    home_tenant_id = _tenant_id("home_tenant_id", query.home_tenant_id)
    if settings.application(query.app_id) is None:
        raise WhatIfError(
            "app_id", "app_not_found",
            f"no application has the id {_shown(query.app_id)}; configured: "
            + _listing(a.id for a in settings.applications),
        )  # fmt: skip
    user = await store.get_user(query.user_id) if 0 < len(query.user_id) <= MAX_ID else None
    if user is None:
        raise WhatIfError("user_id", "user_not_found", f"no user has the id {_shown(query.user_id)}")
    connector, chosen_by = _connector(settings, query, home_tenant_id, user)
    identity = _identity(query, claims, connector, user, home_tenant_id)
    established = from_identity(settings, identity, connector.type, now)
    facts = established.facts
    if established.standing is not None and established.standing.home_tenant_id is None:
        # no organisation: nothing is trusted; say what the upstream claimed, and why it does not count
        facts = trusted_facts(
            identity, None, now, default_mapping=settings.cross_tenant_access.default.claims_mapping
        )
    answer: dict[str, Any] = {
        "user": str(user["id"]),
        "application": query.app_id,
        "connector": connector.id,
        "connectorChosenBy": chosen_by,
        "trust": _trust(facts),
    }
    if established.standing is None:
        assert established.refusal is not None
        answer.update(homeTenantId=None, externalUserType=None, crossTenantAccessType=None)
        answer.update(crossTenantAccess=None, mfaSource=None, amr=None, acr=None)
        return {**answer, **_refused(settings.conditional_access, established.refusal)}
    standing = established.standing
    if query.mfa_done_here:
        standing = standing.with_local_mfa(now)
    answer.update(homeTenantId=standing.home_tenant_id, mfaSource=standing.mfa_source)
    answer.update(amr=standing.amr, acr=standing.acr)
    if not user.get("accountEnabled", True):  # as the sign-in checks it
        gate = inbound_gate(settings, standing, query.app_id)
        answer.update(
            externalUserType=None,
            crossTenantAccessType=None,
            crossTenantAccess=None if gate is None else {"allowed": gate.allowed, "reason": gate.reason},
        )
        reason = gate.reason if gate is not None and not gate.allowed else "account_disabled"
        return {**answer, **_refused(settings.conditional_access, reason)}
    assessment = assess(
        settings,
        user=user,
        group_ids=frozenset(await store.list_user_groups(str(user["id"]))),
        standing=standing,
        app_id=query.app_id,
        client_ip=client_ip,
        signin_started_at=now,
        now=now,
    )
    access = assessment.access
    answer.update(
        externalUserType=assessment.external_user_type,
        crossTenantAccessType=access_type(assessment.external_user_type),
        crossTenantAccess=None if access is None else {"allowed": access.allowed, "reason": access.reason},
    )
    if assessment.evaluation is None:
        assert assessment.refusal is not None
        return {**answer, **_refused(settings.conditional_access, assessment.refusal)}
    return {**answer, **_evaluated(assessment, standing, connector.type)}


def _identity(
    query: WhatIfQuery,
    claims: _Claims,
    connector: AnyConnectorConfig,
    user: Mapping[str, Any],
    home_tenant_id: str | None,
) -> UpstreamIdentity:
    """The identity the connector would report for these claims."""
    mail = user.get("mail")
    return UpstreamIdentity(
        connector_id=connector.id,
        issuer="what-if",
        subject=claims.subject or str(user["id"]),
        email=mail if isinstance(mail, str) else None,
        email_verified=True,
        home_tenant_id=home_tenant_id
        if home_tenant_id is not None
        else _reported_tenant(connector, query.claims),
        amr=claims.amr,
        acr=claims.acr,
        auth_time=claims.auth_time,
        device=_device(connector, query.claims),
        raw_claims=dict(query.claims),
    )


def _evaluated(assessment: Assessment, standing: Standing, connector_type: str) -> dict[str, Any]:
    assert assessment.evaluation is not None
    result = explain(assessment.evaluation)
    required = list(assessment.required)
    if assessment.refusal is not None:
        outcome = "block"
    elif required:
        outcome = "userActionRequired"
    else:
        outcome = "grant"
    challenge: str | None = None
    if "mfa" in required and outcome != "block":
        trusted = assessment.home_mfa_trusted and standing.home_authoritative
        challenge = "home" if trusted and connector_type not in PASSCODE_TYPES else "resource"
    return {
        **result,
        "outcome": outcome,
        "blockReason": assessment.refusal,
        "required": required,
        "mfaChallenge": challenge,
        "authenticationRequirement": assessment.log.get(
            "authenticationRequirement", result["authenticationRequirement"]
        ),
    }


def _refused(policies: list[ConditionalAccessPolicy], reason: str) -> dict[str, Any]:
    """Refused before conditional access: no policy was evaluated, each for that reason."""
    return {
        "outcome": "block",
        "blockReason": reason,
        "required": [],
        "mfaChallenge": None,
        "conditionalAccessStatus": "notApplied",
        "authenticationRequirement": "singleFactorAuthentication",
        "appliedPolicies": [],
        "notAppliedPolicies": [
            {
                "id": policy.id,
                "displayName": policy.display_name,
                "state": policy.state,
                "reason": "policy_disabled" if policy.state == "disabled" else reason,
            }
            for policy in policies
        ],
    }


def _trust(facts: TrustedFacts) -> dict[str, Any]:
    return {
        "mfa": facts.mfa,
        "compliantDevice": facts.compliant_device,
        "hybridJoinedDevice": facts.hybrid_joined_device,
        "upstreamMfa": facts.upstream_mfa,
        "upstreamCompliantDevice": facts.upstream_compliant_device,
        "upstreamHybridJoinedDevice": facts.upstream_hybrid_joined_device,
        "reasons": list(facts.reasons),
    }


# -- the connector -------------------------------------------------------------------------------


def _connector(
    settings: Settings, query: WhatIfQuery, home_tenant_id: str | None, user: Mapping[str, Any]
) -> tuple[AnyConnectorConfig, str]:
    """The connector named, else the home partner's, else the one the user's first identity came through."""
    by_id = {c.id: c for c in settings.connectors}
    if query.connector_id is not None:
        connector = by_id.get(query.connector_id)
        if connector is None:
            raise WhatIfError(
                "connector_id", "connector_not_found",
                f"no connector has the id {_shown(query.connector_id)}; configured: {_listing(by_id)}",
            )  # fmt: skip
        return connector, "request"
    partner = settings.cross_tenant_access.partner(home_tenant_id) if home_tenant_id else None
    if partner is not None and partner.connector is not None:
        return by_id[partner.connector], "partner"
    identities = user.get("identities")
    first = identities[0] if isinstance(identities, list) and identities else None
    issuer = first.get("issuer") if isinstance(first, dict) else None
    if isinstance(issuer, str):
        connector = next((c for c in settings.connectors if _signs_in_as(c, issuer)), None)
        if connector is not None:
            return connector, "identity"
    raise WhatIfError(
        "connector_id", "connector_required",
        "name the connector the sign-in comes through: the user's first identity matches no configured "
        f"connector and no partner connector applies; configured: {_listing(by_id)}",
    )  # fmt: skip


def _signs_in_as(connector: AnyConnectorConfig, issuer: str) -> bool:
    """Whether identities recorded with this ``issuer`` label come through ``connector``."""
    label = LABELS.get(connector.type)
    if label is not None:
        return issuer == label
    if isinstance(connector, MicrosoftConfig):
        return connector.issuer_tenant(issuer) is not None
    if isinstance(connector, OidcConfig | GoogleConfig | WsFedConfig):
        return issuer == connector.issuer
    if isinstance(connector, SamlConfig):  # its entityID is known here only when configured
        return connector.idp_entity_id is not None and issuer == connector.idp_entity_id
    return False


def _reported_tenant(connector: AnyConnectorConfig, claims: Mapping[str, Any]) -> str | None:
    """The tenant id the connector would report from these claims (``tid`` for Microsoft, the mapped
    claim or attribute for ``oidc``, ``saml`` and ``wsfed`` connectors with a ``home_tenant_id`` mapping)."""
    if isinstance(connector, MicrosoftConfig):
        name: str | None = MICROSOFT_TENANT_CLAIM
    elif isinstance(connector, OidcConfig | SamlConfig | WsFedConfig):
        name = connector.claims.home_tenant_id
    else:
        name = None
    if name is None or name not in claims:
        return None
    return _tenant_id(f"claims.{name}", claims[name])


def _device(connector: AnyConnectorConfig, claims: Mapping[str, Any]) -> dict[str, Any]:
    """The device claims an ``oidc``, ``saml`` or ``wsfed`` connector reports under its own names."""
    if not isinstance(connector, OidcConfig | SamlConfig | WsFedConfig):
        return {}
    return {ours: claims[theirs] for ours, theirs in connector.claims.device.items() if theirs in claims}


# -- input checks --------------------------------------------------------------------------------


def _shown(value: str) -> str:
    """``value`` as it may be echoed (quoted; unprintable or long input is not repeated)."""
    return repr(value) if len(value) <= MAX_ID and value.isprintable() else "(the value given)"


def _listing(ids: Any) -> str:
    names = [str(i) for i in ids]
    return ", ".join(names[:20]) + (", ..." if len(names) > 20 else "") if names else "(none)"


def _ip_address(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        if len(value) > MAX_ADDRESS_CHARS:
            raise ValueError(value)
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise WhatIfError(
            "ip_address", "invalid_ip_address",
            f"{_shown(value)} is not an IP address (IPv4 such as 203.0.113.7, or IPv6 such as 2001:db8::1)",
        ) from None  # fmt: skip


def _tenant_id(where: str, value: Any) -> str | None:
    if value is None:
        return None
    if (
        not isinstance(value, str)
        or not 0 < len(value) <= MAX_TENANT_ID
        or any(not "\x21" <= ch <= "\x7e" for ch in value)
    ):
        raise WhatIfError(
            where, "invalid_claims" if where.startswith("claims.") else "invalid_home_tenant_id",
            f"{where} must be a tenant id of 1 to {MAX_TENANT_ID} visible ASCII characters (a UUID for "
            "Microsoft Entra organisations)",
        )  # fmt: skip
    return value


def _claim_error(name: str, message: str) -> WhatIfError:
    return WhatIfError(f"claims.{name}", "invalid_claims", f"claims.{name} {message}")


def _string_claim(claims: Mapping[str, Any], name: str) -> str | None:
    value = claims.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= MAX_CLAIM_CHARS:
        raise _claim_error(name, f"must be a non-empty string of at most {MAX_CLAIM_CHARS} characters")
    return value


def _standard_claims(claims: Mapping[str, Any], now: int) -> _Claims:
    """The claims the identity is built from, checked (a typo must not silently count as no claim)."""
    if not isinstance(claims, Mapping) or not all(isinstance(key, str) for key in claims):
        raise WhatIfError("claims", "invalid_claims", "claims must be a JSON object of claim names")
    amr = claims.get("amr")
    if amr is not None and (
        not isinstance(amr, list)
        or len(amr) > MAX_AMR_VALUES
        or not all(isinstance(v, str) and 0 < len(v) <= MAX_CLAIM_CHARS for v in amr)
    ):
        example = '["pwd", "mfa"]'
        raise _claim_error(
            "amr", f"must be a list of at most {MAX_AMR_VALUES} strings (RFC 8176 values, e.g. {example})"
        )
    auth_time = claims.get("auth_time")
    if auth_time is not None:
        if isinstance(auth_time, bool) or not isinstance(auth_time, int) or auth_time < 0:
            raise _claim_error("auth_time", "must be a whole number of seconds since 1970 (a Unix time)")
        if auth_time > now:
            raise _claim_error("auth_time", f"is in the future (now is {now})")
    return _Claims(
        subject=_string_claim(claims, "sub"),
        amr=tuple(amr or ()),
        acr=_string_claim(claims, "acr"),
        auth_time=auth_time,
    )
