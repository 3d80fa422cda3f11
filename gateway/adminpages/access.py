"""Who may use ``/admin``: a signed-in, enabled ``Member`` holding a directory role from the YAML.

The SSO session cookie names the user; roles come only from ``directory.administrators`` (as for
the admin API, ``gateway.admin.caller``). Global and User Administrators may do everything here;
a Guest Inviter may list and invite, never reset or remove. Forms carry a CSRF token bound to the
browser cookie and to the SSO session (``sid``), so a token outlives neither.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from gateway.invitations.invite import Inviter
from gateway.policy.collaboration import GUEST_INVITER, INVITING_ADMIN_ROLES, Caller
from gateway.runtime import Runtime
from gateway.signin.sessions import SsoSession

CSRF_PURPOSE = "admin-pages"
PAGE_ROLES = INVITING_ADMIN_ROLES | {GUEST_INVITER}


@dataclass(frozen=True, slots=True)
class SignedIn:
    """The signed-in user behind this request and the roles the YAML gives them."""

    session: SsoSession
    user: dict[str, Any]
    roles: frozenset[str]

    @property
    def may_use_pages(self) -> bool:
        return bool(self.roles & PAGE_ROLES)

    @property
    def is_admin(self) -> bool:
        """Global or User Administrator: may reset and remove guests."""
        return bool(self.roles & INVITING_ADMIN_ROLES)

    @property
    def actor(self) -> dict[str, str]:
        return {"kind": "user", "id": str(self.user["id"])}

    def inviter(self) -> Inviter:
        caller = Caller(kind="user", user_type="Member", roles=self.roles)
        return Inviter(caller, self.user)


def csrf_purpose(session: SsoSession) -> str:
    """The CSRF MAC's first half: these pages, bound to this SSO session."""
    return f"{CSRF_PURPOSE}:{session.sid}"


async def signed_in(rt: Runtime, request: Request) -> SignedIn | None:
    """The live session's user (None without one, or when the user is gone). Roles only for an
    enabled ``Member`` whose ``mail`` is listed in ``directory.administrators``."""
    session = await rt.sessions.current(request, rt.now())
    if session is None:
        return None
    user = await rt.store.get_user(session.user_id)
    if user is None:
        return None
    roles: frozenset[str] = frozenset()
    if user.get("userType") == "Member" and user.get("accountEnabled") is True:
        roles = rt.settings.directory.roles_of(user.get("mail")) & PAGE_ROLES
    return SignedIn(session, user, roles)


def csrf_token(rt: Runtime, request: Request, session: SsoSession) -> tuple[str, str | None]:
    """The pages' CSRF token, and a new browser id to set when the browser has none yet."""
    browser_id = rt.browser.browser_id(request)
    new = None
    if browser_id is None:
        browser_id = new = rt.browser.new_browser_id()
    return rt.browser.csrf_token(csrf_purpose(session), browser_id), new


def csrf_ok(rt: Runtime, request: Request, session: SsoSession, token: object) -> bool:
    return rt.browser.check_csrf(csrf_purpose(session), request, token if isinstance(token, str) else None)
