"""Assessing one sign-in against the organisation's policies: pure, shared by sign-ins and What-If.

``assess`` takes plain data (the user record, its group ids, the ``Standing`` authentication
earned, the app and the client address) and runs, in the reference's order (b2b-concepts §5.4):

1. inbound cross-tenant access for the user's home organisation (``gateway.policy.cross_tenant``):
   a block here ends the sign-in before conditional access is even evaluated;
2. conditional access (``gateway.policy.conditional_access``) on the trusted facts;
3. an app's own request for MFA: ``acr_values`` naming only MFA classes make MFA required.

It returns what is required, what blocks, and the sign-in log fields (§11) for the audit record.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.oidc.claims import ACR_MULTI_FACTOR
from gateway.policy.conditional_access import Context, Evaluation, PolicyResult, Subject, evaluate
from gateway.policy.cross_tenant import AccessDecision, Inbound, inbound_access, inbound_settings
from gateway.settings.models import Settings
from gateway.signin.standing import Standing

MFA_ACR_VALUES = frozenset({ACR_MULTI_FACTOR, "http://schemas.microsoft.com/claims/multipleauthn"})
NO_POLICIES = Evaluation(
    results=(),
    blocked=False,
    block_reason=None,
    required=(),
    status="notApplied",
    authentication_requirement="singleFactorAuthentication",
)
"""What ``evaluate`` answers when no conditional access policy is configured (a test holds them
equal): ``assess`` uses it rather than building the subject and context and parsing the client
address for no policy."""


@dataclass(frozen=True)
class Assessment:
    access: AccessDecision | None
    """Inbound cross-tenant access; None for users without a home organisation."""
    evaluation: Evaluation | None
    """Conditional access; None when cross-tenant access already refused the sign-in."""
    required: tuple[str, ...]
    """What the user must still do: ``mfa``, ``reauthentication``, ``terms:<id>``."""
    inbound: Inbound | None
    external_user_type: str | None
    log: dict[str, Any]

    @property
    def refusal(self) -> str | None:
        """The reason code that refuses this sign-in, or None."""
        if self.access is not None and not self.access.allowed:
            return self.access.reason
        if self.evaluation is not None and self.evaluation.blocked:
            return self.evaluation.block_reason or "blocked_by_policy"
        return None

    @property
    def home_mfa_trusted(self) -> bool:
        return self.inbound is not None and self.inbound.trust.mfa_accepted


def external_user_type(user: Mapping[str, Any], standing: Standing, inbound: Inbound | None) -> str | None:
    """The reference's guest type (§8): None for the organisation's own members."""
    if inbound is not None and inbound.is_service_provider:
        return "serviceProvider"
    if user.get("userType") == "Guest":
        return "b2bCollaborationGuest"
    if standing.home_tenant_id is not None:
        return "b2bCollaborationMember"
    return None


def access_type(external: str | None) -> str:
    """``crossTenantAccessType`` of the sign-in log (§11)."""
    if external == "serviceProvider":
        return "serviceProvider"
    return "none" if external is None else "b2bCollaboration"


def accepted_terms(user: Mapping[str, Any]) -> dict[str, str]:
    accepted = user.get("termsOfUseAcceptances") or {}
    return {
        agreement: entry["version"]
        for agreement, entry in accepted.items()
        if isinstance(entry, dict) and isinstance(entry.get("version"), str)
    }


def app_asks_for_mfa(acr_values: Collection[str]) -> bool:
    """OIDC ``acr_values`` naming only MFA classes: the app will not take less (OIDC Core 3.1.2.1)."""
    return bool(acr_values) and all(value in MFA_ACR_VALUES for value in acr_values)


def needs_group_ids(settings: Settings) -> bool:
    """Whether any policy targets groups (the caller may skip reading the user's groups)."""
    return any(
        policy.conditions.users.include_groups or policy.conditions.users.exclude_groups
        for policy in settings.conditional_access
    )


def inbound_gate(settings: Settings, standing: Standing, app_id: str) -> AccessDecision | None:
    """Inbound cross-tenant access alone (None without a home organisation): it needs no user record,
    so a blocked organisation is refused before the directory is read or written."""
    if standing.home_tenant_id is None:
        return None
    inbound = inbound_settings(settings.cross_tenant_access, standing.home_tenant_id)
    return inbound_access(
        inbound,
        user_id=standing.upstream_user_id,
        group_ids=standing.upstream_group_ids,
        app_id=app_id or None,
        groups_complete=standing.upstream_groups_complete,
    )


def assess(
    settings: Settings,
    *,
    user: Mapping[str, Any],
    group_ids: frozenset[str],
    standing: Standing,
    app_id: str,
    client_ip: str | None,
    signin_started_at: int,
    requested_acr_values: Sequence[str] = (),
    now: int,
) -> Assessment:
    inbound = (
        inbound_settings(settings.cross_tenant_access, standing.home_tenant_id)
        if standing.home_tenant_id is not None
        else None
    )
    external = external_user_type(user, standing, inbound)
    log: dict[str, Any] = {
        "homeTenantId": standing.home_tenant_id,
        "crossTenantAccessType": access_type(external),
    }
    access: AccessDecision | None = None
    if inbound is not None:
        access = inbound_access(
            inbound,
            user_id=standing.upstream_user_id,
            group_ids=standing.upstream_group_ids,
            app_id=app_id or None,
            groups_complete=standing.upstream_groups_complete,
        )
        if not access.allowed:
            log["conditionalAccessStatus"] = "notApplied"
            return Assessment(access, None, (), inbound, external, log)
    evaluation = NO_POLICIES
    if settings.conditional_access:
        evaluation = evaluate(
            settings.conditional_access,
            settings.named_locations,
            settings.terms_of_use,
            Subject(
                user_id=str(user["id"]),
                group_ids=group_ids,
                external_user_type=external,
                home_tenant_id=standing.home_tenant_id,
            ),
            Context(
                app_id=app_id,
                client_ip=client_ip,
                mfa=standing.mfa,
                compliant_device=standing.compliant_device,
                hybrid_joined_device=standing.hybrid_joined_device,
                accepted_terms=accepted_terms(user),
                auth_time=standing.auth_time,
                mfa_time=standing.mfa_time,
                signin_started_at=signin_started_at,
                now=now,
            ),
        )
    required = set(evaluation.required)
    if app_asks_for_mfa(requested_acr_values) and not standing.mfa:
        required.add("mfa")
    log.update(
        conditionalAccessStatus=evaluation.status,
        authenticationRequirement=(
            "multiFactorAuthentication" if "mfa" in required else evaluation.authentication_requirement
        ),
        appliedConditionalAccessPolicies=[log_entry(result) for result in evaluation.results],
    )
    return Assessment(access, evaluation, tuple(sorted(required)), inbound, external, log)


def log_entry(result: PolicyResult) -> dict[str, Any]:
    """One ``appliedConditionalAccessPolicy`` of the sign-in log, with the reason behind its result."""
    return {
        "id": result.policy_id,
        "displayName": result.display_name,
        "result": result.result,
        "reason": result.reason,
        "enforcedGrantControls": list(result.enforced_grant_controls),
        "enforcedSessionControls": list(result.enforced_session_controls),
    }
