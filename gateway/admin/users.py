"""``/v1.0/users/{id}`` and ``revokeSignInSessions`` (Graph names).

Reading a user needs ``User.Read.All`` / ``User.ReadWrite.All`` / ``Directory.*`` (apps) or an
administrator role (users); anyone may read and revoke themselves through ``/me``. Revoking a
user's sessions needs a write permission or the Global / User Administrator role.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from gateway import audit
from gateway.admin.caller import AdminCaller, authenticate
from gateway.admin.errors import ApiError, api_endpoint
from gateway.admin.graph import graph_user
from gateway.directory.revocation import revoke_sign_in_sessions
from gateway.http import json_response
from gateway.policy.collaboration import INVITING_ADMIN_ROLES
from gateway.runtime import Runtime

READ_PERMISSIONS = frozenset(
    {"User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
)
WRITE_PERMISSIONS = frozenset({"User.ReadWrite.All", "Directory.ReadWrite.All"})


def _may(caller: AdminCaller, permissions: frozenset[str]) -> bool:
    if caller.policy.kind == "app":
        return bool(caller.policy.app_permissions & permissions)
    return bool(caller.policy.roles & INVITING_ADMIN_ROLES)


async def _target(
    rt: Runtime, caller: AdminCaller, user_id: str, permissions: frozenset[str]
) -> dict[str, object]:
    own = caller.user is not None and caller.user["id"] == user_id
    if not own and not _may(caller, permissions):
        raise ApiError(403, "insufficient_privileges", "The caller may not do this to that user.")
    user = await rt.store.get_user(user_id) if len(user_id) <= 64 else None
    if user is None:
        raise ApiError(404, "user_not_found", f"There is no user {user_id[:64]}.")
    return user


@api_endpoint
async def get_user(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    caller = await authenticate(rt, request)
    user = await _target(rt, caller, request.path_params["user_id"], READ_PERMISSIONS)
    return json_response(graph_user(dict(user)))


async def _revoke(request: Request, user_id: str) -> Response:
    rt: Runtime = request.app.state.runtime
    caller = await authenticate(rt, request)
    try:
        user = await _target(rt, caller, user_id, WRITE_PERMISSIONS)
    except ApiError as exc:
        audit.admin_action(
            rt,
            request,
            action="revokeSignInSessions",
            result="failure",
            actor=caller.actor,
            target=user_id[:64],
            reasons=[exc.reason],
        )
        raise
    await revoke_sign_in_sessions(rt, dict(user))
    audit.admin_action(
        rt,
        request,
        action="revokeSignInSessions",
        result="success",
        actor=caller.actor,
        target=user_id,
        reasons=["sessions_revoked"],
    )
    return json_response(
        {"@odata.context": f"{rt.settings.issuer}/v1.0/$metadata#Edm.Boolean", "value": True}
    )


@api_endpoint
async def revoke_user(request: Request) -> Response:
    return await _revoke(request, request.path_params["user_id"])


@api_endpoint
async def revoke_me(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    caller = await authenticate(rt, request)
    if caller.user is None:
        raise ApiError(
            403, "app_token_not_allowed", "/me needs a signed-in user's token; an app token has no user."
        )
    return await _revoke(request, str(caller.user["id"]))
