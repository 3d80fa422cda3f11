"""Cross-tenant access (b2b-concepts §5): a guest's home organisation, its effective inbound
settings, whether it may reach an app, and whether an invitation to a domain is blocked.

Pure functions over the settings and plain data; reason codes are stable strings.

- ``inbound_settings`` merges a partner entry over the default: a ``null`` part inherits the
  default's, and so does each trust flag on its own.
- ``resolve_home`` decides which organisation a guest comes from and whether the connector they
  came through *speaks for* it (``authoritative``: only then may its MFA and device claims be
  trusted, see ``gateway.policy.trust``). In order:

  1. a partner entry bound to the connector (``connector``) owns it: home is that partner, and a
     different ``home_tenant_id`` from the upstream is refused (``home_tenant_mismatch``); when
     several partners share the connector, the upstream's tenant picks one, and without it the
     sign-in is refused (``home_tenant_ambiguous``). A passcode or social connector bound to a
     partner still applies that partner's access settings but never speaks for it;
  2. a connector of a type in ``ORGANISATION_CONNECTOR_TYPES`` reporting a tenant id (a UUID, not
     the personal-account tenant): home is that tenant (its partner entry, else the default), and
     authoritative unless that partner entry is bound to a different connector (its users must
     come through their own connector for trust; its access settings still apply);
  3. any other connector reporting a tenant id: home is that tenant, never authoritative;
  4. otherwise no organisation (passcode, social, personal Microsoft accounts): ``home`` is None.

- ``inbound_access`` (Entra semantics): ``allowed`` with targets lets only those targets in,
  ``blocked`` with targets keeps those out and lets everyone else in. The users rule comes first
  (a user matches through ``AllUsers``, its user id as a ``user`` target or any group id as a
  ``group`` target), then the applications rule (``app_id`` None — the invitation redemption,
  My Apps — checks users only). A rule naming specific users or groups fails closed for an
  upstream that gave no user id: who it is cannot be told, so it is not let in. Ids shaped
  like UUIDs compare case-insensitively, other ids exactly.
  Reasons: ``cross_tenant_access_allowed``, ``cross_tenant_user_blocked``,
  ``cross_tenant_application_blocked``.
- ``invitation_blocked`` (§5.5): the partner entry claiming the domain (else the default) blocks
  invitations only by blocking ``AllUsers`` explicitly; specific targets are checked at sign-in.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.settings.federation import (
    ALL_APPLICATIONS,
    ALL_USERS,
    B2BCollaborationInbound,
    ClaimsMapping,
    CrossTenantAccess,
    Partner,
    TargetConfiguration,
)
from gateway.settings.federation import MSA_TENANT_ID as MSA_TENANT_ID
from gateway.settings.models import Settings

ORGANISATION_CONNECTOR_TYPES = frozenset({"microsoft"})
"""Connectors whose tenant claim is authoritative: the upstream itself vouches for the tenant."""
PERSONAL_CONNECTOR_TYPES = frozenset({"email_otp", "google", "facebook"})
"""Connectors that never speak for an organisation, even when a partner entry names them."""
ALLOWED, USER_BLOCKED, APPLICATION_BLOCKED = (
    "cross_tenant_access_allowed",
    "cross_tenant_user_blocked",
    "cross_tenant_application_blocked",
)
HOME_TENANT_MISMATCH, HOME_TENANT_AMBIGUOUS = "home_tenant_mismatch", "home_tenant_ambiguous"
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_MAX_ID = 1024


@dataclass(frozen=True)
class ResolvedTrust:
    mfa_accepted: bool
    compliant_device_accepted: bool
    hybrid_joined_device_accepted: bool


@dataclass(frozen=True)
class Inbound:
    """The effective inbound settings for one home tenant."""

    tenant_id: str
    partner: Partner | None
    """None: the default entry applies."""
    collaboration: B2BCollaborationInbound
    trust: ResolvedTrust
    automatic_consent_inbound: bool
    claims_mapping: ClaimsMapping
    is_service_provider: bool


@dataclass(frozen=True)
class HomeOrganisation:
    tenant_id: str
    inbound: Inbound
    authoritative: bool
    """The connector speaks for this tenant, so its MFA/device claims may be trusted."""


@dataclass(frozen=True)
class HomeResolution:
    home: HomeOrganisation | None
    """None: no organisation (social, passcode, personal Microsoft account, unbound IdPs)."""
    refusal: str | None
    """A stable reason code when the sign-in must be refused."""


@dataclass(frozen=True)
class AccessDecision:
    allowed: bool
    reason: str


def inbound_settings(cta: CrossTenantAccess, tenant_id: str) -> Inbound:
    """The partner entry of ``tenant_id`` over the default; ``null`` parts and flags inherit."""
    default = cta.default
    partner = cta.partner(tenant_id)
    if partner is None:
        trust = default.inbound_trust
        return Inbound(
            tenant_id=tenant_id.lower(),
            partner=None,
            collaboration=default.b2b_collaboration_inbound,
            trust=ResolvedTrust(
                trust.mfa_accepted, trust.compliant_device_accepted, trust.hybrid_joined_device_accepted
            ),
            automatic_consent_inbound=default.automatic_user_consent.inbound_allowed,
            claims_mapping=default.claims_mapping,
            is_service_provider=False,
        )
    base, own = default.inbound_trust, partner.inbound_trust
    mfa = own.mfa_accepted if own is not None else None
    compliant = own.compliant_device_accepted if own is not None else None
    hybrid = own.hybrid_joined_device_accepted if own is not None else None
    consent = partner.automatic_user_consent or default.automatic_user_consent
    return Inbound(
        tenant_id=partner.tenant_id,
        partner=partner,
        collaboration=partner.b2b_collaboration_inbound or default.b2b_collaboration_inbound,
        trust=ResolvedTrust(
            base.mfa_accepted if mfa is None else mfa,
            base.compliant_device_accepted if compliant is None else compliant,
            base.hybrid_joined_device_accepted if hybrid is None else hybrid,
        ),
        automatic_consent_inbound=consent.inbound_allowed,
        claims_mapping=partner.claims_mapping or default.claims_mapping,
        is_service_provider=partner.is_service_provider,
    )


def _home(cta: CrossTenantAccess, tenant_id: str, authoritative: bool) -> HomeResolution:
    return HomeResolution(HomeOrganisation(tenant_id, inbound_settings(cta, tenant_id), authoritative), None)


def resolve_home(
    settings: Settings, *, connector_id: str, connector_type: str, home_tenant_id: str | None
) -> HomeResolution:
    """Which organisation the guest comes from, and whether the connector speaks for it (rules above)."""
    cta = settings.cross_tenant_access
    claimed = home_tenant_id.lower() if home_tenant_id else None
    owners = [p for p in cta.partners if p.connector == connector_id]
    if owners:
        if claimed is not None:
            owner = next((p for p in owners if p.tenant_id == claimed), None)
            if owner is None:
                return HomeResolution(None, HOME_TENANT_MISMATCH)
        elif len(owners) == 1:
            owner = owners[0]
        else:
            return HomeResolution(None, HOME_TENANT_AMBIGUOUS)
        return _home(cta, owner.tenant_id, connector_type not in PERSONAL_CONNECTOR_TYPES)
    if claimed is None or claimed == MSA_TENANT_ID:
        return HomeResolution(None, None)
    if connector_type in ORGANISATION_CONNECTOR_TYPES and _UUID.fullmatch(claimed):
        partner = cta.partner(claimed)
        return _home(cta, claimed, partner is None or partner.connector is None)
    return _home(cta, claimed, False)


def _id(value: str) -> str:
    return value.lower() if _UUID.fullmatch(value) else value


def _claimed_id(value: Any) -> str | None:
    if isinstance(value, str) and 0 < len(value) <= _MAX_ID:
        return value
    return None


def upstream_principal(
    raw_claims: Mapping[str, Any], mapping: ClaimsMapping
) -> tuple[str | None, frozenset[str]]:
    """The partner's user object id and group ids from the upstream's claims (strings only).

    The groups claim may be a list of ids or a single id; anything else counts as no groups.
    """
    user_id = _claimed_id(raw_claims.get(mapping.user_id_claim))
    groups = raw_claims.get(mapping.groups_claim)
    items = [groups] if isinstance(groups, str) else groups if isinstance(groups, list | tuple) else []
    return user_id, frozenset(g for g in map(_claimed_id, items) if g is not None)


def _ids(rule: TargetConfiguration, kind: str) -> frozenset[str]:
    return frozenset(_id(t.target) for t in rule.targets if t.target_type == kind)


def _users_let_in(
    rule: TargetConfiguration, user_id: str | None, group_ids: Collection[str], groups_complete: bool
) -> bool:
    allowed = rule.access_type == "allowed"
    if any(t.target == ALL_USERS for t in rule.targets):
        return allowed
    if user_id is None:
        return False  # specific users or groups named, and who this is cannot be told: fail closed
    if _ids(rule, "group") and not groups_complete:
        return False  # groups named, and the upstream did not list all of the user's: fail closed
    matched = _id(user_id) in _ids(rule, "user") or not _ids(rule, "group").isdisjoint(map(_id, group_ids))
    return matched == allowed


def groups_overage(raw_claims: Mapping[str, Any], mapping: ClaimsMapping) -> bool:
    """Whether the upstream left the groups out for there being too many (Entra's ``_claim_names``
    pointing the groups claim elsewhere): then the listed groups are not all of them."""
    names = raw_claims.get("_claim_names")
    return isinstance(names, dict) and mapping.groups_claim in names


def _app_let_in(rule: TargetConfiguration, app_id: str) -> bool:
    allowed = rule.access_type == "allowed"
    matched = any(t.target == ALL_APPLICATIONS for t in rule.targets) or _id(app_id) in _ids(
        rule, "application"
    )
    return matched == allowed


def inbound_access(
    inbound: Inbound,
    *,
    user_id: str | None,
    group_ids: Collection[str],
    app_id: str | None,
    groups_complete: bool = True,
) -> AccessDecision:
    """May this partner user reach this app? Users rule first, then the applications rule. A rule
    naming users or groups refuses a user it cannot check (no user id; groups left out)."""
    if not _users_let_in(inbound.collaboration.users_and_groups, user_id, group_ids, groups_complete):
        return AccessDecision(False, USER_BLOCKED)
    if app_id is not None and not _app_let_in(inbound.collaboration.applications, app_id):
        return AccessDecision(False, APPLICATION_BLOCKED)
    return AccessDecision(True, ALLOWED)


def invitation_blocked(settings: Settings, domain: str) -> bool:
    """§5.5: whether cross-tenant access explicitly blocks every user of ``domain``'s organisation.

    The domain's organisation is the partner listing it, else, when an organisation's connector
    (not a passcode or social one) claims the domain, an organisation without an entry (the
    default applies). Other domains (gmail.com, a passcode guest's) have no organisation: cross-
    tenant settings do not apply to them, the external collaboration lists do.
    """
    domain = domain.lower()
    cta = settings.cross_tenant_access
    partner = next((p for p in cta.partners if domain in p.domains), None)
    if partner is None and not any(
        domain in c.domains and str(c.type) not in PERSONAL_CONNECTOR_TYPES for c in settings.connectors
    ):
        return False
    inbound = (
        partner.b2b_collaboration_inbound if partner else None
    ) or cta.default.b2b_collaboration_inbound
    rule = inbound.users_and_groups
    return rule.access_type == "blocked" and any(t.target == ALL_USERS for t in rule.targets)
