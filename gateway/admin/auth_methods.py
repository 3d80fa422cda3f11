"""A user's TOTP methods in the admin API (Graph names): list them, and delete one — the reset path
for a guest who lost their authenticator app.

- ``GET /v1.0/users/{id}/authentication/softwareOathMethods``: ``{"value": [{"id",
  "createdDateTime"}]}``, never the secret. Needs ``UserAuthenticationMethod.Read.All`` or
  ``UserAuthenticationMethod.ReadWrite.All`` (apps), an administrator role that may write users
  (Global / User Administrator), or is the caller's own object.
- ``DELETE /v1.0/users/{id}/authentication/softwareOathMethods/{methodId}``: 204; the user's next
  sign-in that needs MFA registers an app again. Needs ``UserAuthenticationMethod.ReadWrite.All``
  or one of those roles, for one's own object too (whoever holds a user's token must not be able to
  swap the second factor). Every attempt is audited (``deleteSoftwareOathMethod``).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway import audit
from gateway.admin.caller import AdminCaller, authenticate
from gateway.admin.errors import ApiError, api_endpoint
from gateway.admin.routes import ALL_METHODS, methods
from gateway.http import json_response
from gateway.mfa.methods import public_view, remove_method, stored_methods
from gateway.policy.collaboration import INVITING_ADMIN_ROLES
from gateway.runtime import Runtime

READ_PERMISSIONS = frozenset({"UserAuthenticationMethod.Read.All", "UserAuthenticationMethod.ReadWrite.All"})
WRITE_PERMISSIONS = frozenset({"UserAuthenticationMethod.ReadWrite.All"})
ADMIN_ROLES = INVITING_ADMIN_ROLES
"""The roles that may write users (``gateway.admin.users``) may reset their second factor."""
MAX_ID = 64
DELETE_ACTION = "deleteSoftwareOathMethod"


def _may(caller: AdminCaller, permissions: frozenset[str]) -> bool:
    if caller.policy.kind == "app":
        return bool(caller.policy.app_permissions & permissions)
    return bool(caller.policy.roles & ADMIN_ROLES)


def _is_self(caller: AdminCaller, user_id: str) -> bool:
    return caller.user is not None and caller.user["id"] == user_id


async def _user(rt: Runtime, user_id: str) -> dict[str, object]:
    user = await rt.store.get_user(user_id) if len(user_id) <= MAX_ID else None
    if user is None:
        raise ApiError(404, "user_not_found", f"There is no user {user_id[:MAX_ID]}.")
    return user


@api_endpoint
async def list_methods(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    caller = await authenticate(rt, request)
    user_id = str(request.path_params["user_id"])
    if not _is_self(caller, user_id) and not _may(caller, READ_PERMISSIONS):
        raise ApiError(
            403, "insufficient_privileges", "The caller may not read that user's authentication methods."
        )
    user = await _user(rt, user_id)
    context = f"{rt.settings.issuer}/v1.0/$metadata#users('{user_id}')/authentication/softwareOathMethods"
    value = [public_view(method) for method in stored_methods(dict(user))]
    return json_response({"@odata.context": context, "value": value})


@api_endpoint
async def delete_method(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    caller = await authenticate(rt, request)
    user_id = str(request.path_params["user_id"])
    method_id = str(request.path_params["method_id"])
    try:
        if not _may(caller, WRITE_PERMISSIONS):
            raise ApiError(
                403, "insufficient_privileges", "The caller may not reset users' authentication methods."
            )
        await _user(rt, user_id)
        removed = len(method_id) <= MAX_ID and await remove_method(rt.store, user_id, method_id)
        if not removed:
            raise ApiError(
                404,
                "authentication_method_not_found",
                f"User {user_id} has no software OATH method {method_id[:MAX_ID]}.",
            )
    except (ApiError, KeyError) as exc:
        error = exc if isinstance(exc, ApiError) else ApiError(404, "user_not_found", "The user is gone.")
        _audit(rt, request, caller, user_id, "failure", error.reason)
        raise error from None
    _audit(rt, request, caller, user_id, "success", "authentication_method_deleted")
    return Response(status_code=204, headers={"Cache-Control": "no-store"})


def _audit(rt: Runtime, request: Request, caller: AdminCaller, target: str, result: str, reason: str) -> None:
    audit.admin_action(
        rt,
        request,
        action=DELETE_ACTION,
        result=result,
        actor=caller.actor,
        target=target[:MAX_ID],
        reasons=[reason],
    )


ROUTES = [
    Route(
        "/v1.0/users/{user_id}/authentication/softwareOathMethods",
        methods({"GET": list_methods}),
        methods=ALL_METHODS,
    ),
    Route(
        "/v1.0/users/{user_id}/authentication/softwareOathMethods/{method_id}",
        methods({"DELETE": delete_method}),
        methods=ALL_METHODS,
    ),
]
