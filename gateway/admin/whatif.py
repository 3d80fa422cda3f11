"""``POST /v1.0/identity/conditionalAccess/evaluate``: the What-If tool (``gateway.whatif``) on the admin API.

Who may call it: apps with ``Policy.Read.All``; users with a role that reads the organisation's
policies, which among the roles this gateway knows is Global Administrator only (User Administrators
and Guest Inviters cannot read conditional access). Order: the caller (401/403), the permission (403,
before the body is read), the body (415/413/400 ``malformed_json``, 400 ``invalid_field`` for a
wrong type or an unknown key), then the evaluation: an unknown user, application or connector or a
malformed claim or address is 400 with the tool's reason code (``user_not_found``, ``app_not_found``,
``connector_not_found``, ``connector_required``, ``invalid_claims``, ``invalid_ip_address``,
``invalid_home_tenant_id``) and ``details`` naming the body field. A 200 carries the answer
(``WhatIfOut``). Nothing is written; every call that reaches the endpoint leaves one audit record
(``action: whatif``) whose target is the user evaluated.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from gateway import audit
from gateway.admin.body import read_json_object
from gateway.admin.caller import AdminCaller, authenticate
from gateway.admin.errors import ApiError, api_endpoint
from gateway.admin.models import APP_ID_PATTERN, UUID_PATTERN, field_errors
from gateway.http import json_response
from gateway.policy.collaboration import GLOBAL_ADMINISTRATOR
from gateway.runtime import Runtime
from gateway.whatif import MAX_ADDRESS_CHARS, MAX_TENANT_ID, WhatIfError, WhatIfQuery, what_if

PATH = "/v1.0/identity/conditionalAccess/evaluate"
POLICY_READ_PERMISSIONS = frozenset({"Policy.Read.All"})
POLICY_READER_ROLES = frozenset({GLOBAL_ADMINISTRATOR})
BODY_NAMES = {
    "user_id": "userId",
    "app_id": "appId",
    "connector_id": "connectorId",
    "home_tenant_id": "homeTenantId",
    "ip_address": "ipAddress",
}


class WhatIfRequest(BaseModel):
    """The body: who would sign in to what, through which connector, with which upstream claims."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    userId: Annotated[str, Field(pattern=UUID_PATTERN, description="The directory user's object id.")]
    appId: Annotated[str, Field(pattern=APP_ID_PATTERN, description="The application's id (its YAML id).")]
    connectorId: Annotated[str, Field(pattern=APP_ID_PATTERN)] | None = Field(
        None,
        description="The connector the sign-in comes through; default: the partner's connector when "
        "homeTenantId names a partner bound to one, else the connector of the user's first identity.",
    )
    homeTenantId: Annotated[str, Field(min_length=1, max_length=MAX_TENANT_ID)] | None = Field(
        None, description="The tenant id the upstream reports; default: the connector's tenant claim."
    )
    claims: dict[str, Any] | None = Field(
        None,
        description="Upstream claims as the IdP would send them: sub, amr (a list), acr, auth_time, oid, "
        "groups, device claims.",
    )
    ipAddress: Annotated[str, Field(min_length=1, max_length=MAX_ADDRESS_CHARS)] | None = Field(
        None, description="The client's IP address (for location conditions)."
    )
    mfaDoneHere: bool = Field(False, description="TOTP was already done here in this sign-in.")

    def query(self) -> WhatIfQuery:
        return WhatIfQuery(
            user_id=self.userId,
            app_id=self.appId,
            connector_id=self.connectorId,
            home_tenant_id=self.homeTenantId,
            claims=self.claims or {},
            ip_address=self.ipAddress,
            mfa_done_here=self.mfaDoneHere,
        )


# -- the answer (documentation, OpenAPI schema, and the tests' check of the 200 body) ------------


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CrossTenantAccessOut(_Out):
    allowed: bool
    reason: str


class TrustOut(_Out):
    mfa: bool
    compliantDevice: bool
    hybridJoinedDevice: bool
    upstreamMfa: bool
    upstreamCompliantDevice: bool
    upstreamHybridJoinedDevice: bool
    reasons: list[str]


class AppliedPolicyOut(_Out):
    id: str
    displayName: str
    state: str
    result: str
    reason: str
    enforcedGrantControls: list[str]
    enforcedSessionControls: list[str]
    unmet: list[str]


class NotAppliedPolicyOut(_Out):
    id: str
    displayName: str
    state: str
    reason: str = Field(description="The first condition that failed, or why the policy was not evaluated.")


class WhatIfOut(_Out):
    user: str
    application: str
    connector: str
    connectorChosenBy: Literal["request", "partner", "identity"]
    homeTenantId: str | None
    externalUserType: str | None
    crossTenantAccessType: str | None
    crossTenantAccess: CrossTenantAccessOut | None
    trust: TrustOut
    mfaSource: Literal["home", "resource"] | None
    amr: list[str] | None
    acr: str | None
    outcome: Literal["grant", "block", "userActionRequired"]
    blockReason: str | None
    required: list[str]
    mfaChallenge: Literal["home", "resource"] | None
    conditionalAccessStatus: Literal["success", "failure", "notApplied"]
    authenticationRequirement: Literal["singleFactorAuthentication", "multiFactorAuthentication"]
    appliedPolicies: list[AppliedPolicyOut]
    notAppliedPolicies: list[NotAppliedPolicyOut]


# -- the endpoint --------------------------------------------------------------------------------


def may_read_policies(caller: AdminCaller) -> bool:
    if caller.policy.kind == "app":
        return bool(caller.policy.app_permissions & POLICY_READ_PERMISSIONS)
    return bool(caller.policy.roles & POLICY_READER_ROLES)


def _invalid(details: list[dict[str, str]]) -> ApiError:
    first = details[0]
    return ApiError(400, "invalid_field", f"{first['target']}: {first['message']}", details=details)


def _refusal(exc: WhatIfError) -> ApiError:
    head, _, rest = exc.field.partition(".")
    target = BODY_NAMES.get(head, head) + (f".{rest}" if rest else "")
    return ApiError(
        400, exc.reason, f"{target}: {exc.message}",
        details=[{"code": exc.reason, "message": exc.message, "target": target}],
    )  # fmt: skip


async def _evaluate(rt: Runtime, request: Request, caller: AdminCaller) -> dict[str, Any]:
    if not may_read_policies(caller):
        raise ApiError(
            403, "insufficient_privileges",
            "The caller may not read the organisation's policies (apps need Policy.Read.All; users the "
            "Global Administrator role).",
        )  # fmt: skip
    body = await read_json_object(request)
    try:
        model = WhatIfRequest.model_validate(body)
    except ValidationError as exc:
        raise _invalid(field_errors(exc)) from exc
    request.state.audit_target = model.userId
    try:
        return await what_if(rt.settings, rt.store, model.query(), rt.now())
    except WhatIfError as exc:
        raise _refusal(exc) from None


@api_endpoint
async def evaluate(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    caller: AdminCaller | None = None
    request.state.audit_target = None
    try:
        caller = await authenticate(rt, request)
        answer = await _evaluate(rt, request, caller)
    except ApiError as exc:
        audit.admin_action(
            rt, request, action="whatif", result="failure", actor=caller.actor if caller else None,
            target=request.state.audit_target, reasons=[exc.reason], detail=exc.message,
        )  # fmt: skip
        raise
    audit.admin_action(
        rt, request, action="whatif", result="success", actor=caller.actor,
        target=answer["user"], reasons=["evaluated"], detail=f"outcome {answer['outcome']}",
    )  # fmt: skip
    return json_response(answer)
