"""Who calls the admin API: ``Authorization: Bearer <access token>`` issued by this gateway.

- An app token (``client_credentials``) is the app: its permissions are the token's ``roles`` that
  the app's registration still grants (a permission removed from the YAML stops working at once;
  a token of an app no longer configured is invalid).
- A user token must carry the scope ``directory.access``; the user must still exist and be enabled.
  Its roles are the bootstrap roles of ``directory.administrators`` whose ``email`` equals the user's
  ``mail``, and only when the user's ``userType`` is ``Member``: roles come from the YAML only.

No or an unusable token: 401 with ``WWW-Authenticate: Bearer`` (RFC 6750 3.1). A valid user token
without ``directory.access``: 403 with ``error="insufficient_scope"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from gateway.admin.errors import ApiError
from gateway.directory.revocation import sessions_valid_from
from gateway.oidc import bearer
from gateway.policy.collaboration import Caller
from gateway.runtime import Runtime

DIRECTORY_SCOPE = "directory.access"


@dataclass(frozen=True, slots=True)
class AdminCaller:
    policy: Caller
    user: dict[str, Any] | None
    """The calling user's object (user tokens only)."""
    app_id: str
    """The application the token was issued to."""

    @property
    def kind(self) -> str:
        return self.policy.kind

    @property
    def actor(self) -> dict[str, str]:
        if self.user is not None:
            return {"kind": "user", "id": str(self.user["id"])}
        return {"kind": "app", "id": self.app_id}


def _challenge(rt: Runtime, error: str | None = None, description: str | None = None) -> dict[str, str]:
    value = f'Bearer realm="{rt.settings.issuer}"'
    if error is not None:
        value += f', error="{error}", error_description="{description}"'
        if error == "insufficient_scope":
            value += f', scope="{DIRECTORY_SCOPE}"'
    return {"WWW-Authenticate": value}


def _unauthenticated(rt: Runtime, reason: str, message: str, *, presented: bool = True) -> ApiError:
    headers = _challenge(rt, "invalid_token", message) if presented else _challenge(rt)
    return ApiError(401, reason, message, headers=headers)


async def authenticate(rt: Runtime, request: Request) -> AdminCaller:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise _unauthenticated(
            rt, "missing_token", "Send an access token of this gateway: Authorization: Bearer <token>.",
            presented=False,
        )  # fmt: skip
    record = await bearer.find_access(rt.store, token)
    if record is None or int(record["exp"]) <= rt.now():
        raise _unauthenticated(rt, "invalid_token", "The access token is invalid, expired or revoked.")
    app = rt.settings.application(str(record.get("app_id")))
    if app is None or app.oidc is None or app.oidc.client_id != record.get("client_id"):
        raise _unauthenticated(rt, "invalid_token", "The application this token was issued to is gone.")
    if record.get("kind") == "app":
        permissions = frozenset(record.get("roles") or []) & frozenset(app.api_permissions)
        return AdminCaller(Caller(kind="app", app_permissions=permissions), None, app.id)
    if DIRECTORY_SCOPE not in (record.get("scopes") or []):
        message = f"The access token lacks the {DIRECTORY_SCOPE} scope."
        raise ApiError(
            403, "insufficient_scope", message, headers=_challenge(rt, "insufficient_scope", message)
        )
    user = await rt.store.get_user(str(record.get("user_id")))
    if user is None:
        raise _unauthenticated(rt, "user_not_found", "The user this token was issued to no longer exists.")
    if user.get("accountEnabled") is not True:
        raise _unauthenticated(rt, "account_disabled", "The user's account is disabled.")
    if int(record.get("iat", 0)) < sessions_valid_from(user):
        # The user is loaded here anyway: a revocation ends the admin API's use of older tokens at once.
        raise _unauthenticated(rt, "sessions_revoked", "The user's sign-in sessions were revoked.")
    user_type = user.get("userType")
    roles = rt.settings.directory.roles_of(user.get("mail")) if user_type == "Member" else frozenset()
    caller = Caller(kind="user", user_type=str(user_type) if user_type else None, roles=roles)
    return AdminCaller(caller, user, app.id)
