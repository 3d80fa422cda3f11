"""``/owner``: delegated management for app and group owners (b2b-concepts §6, "owners of an app or
group may add guests to what they own").

``GET /owner`` reads the SSO session cookie and lists the applications (``list_owned_apps``, those
still configured) and groups (``list_owned_groups``) the user owns, each with a form. Without a
live session it shows a sign-in pointer. ``POST /owner/apps/{app_id}/guests`` and
``POST /owner/groups/{group_id}/guests`` take an email address: a user already holding it (``mail``
or ``otherMails``) is used as is; otherwise a guest is invited through
``gateway.invitations.invite.invite`` with the owner as inviter, so ``allow_invites_from`` and the
domain lists apply exactly as in the admin API, and the invitation mail is sent. The guest is then
assigned to the app (default access or one of its ``app_roles``, through
``gateway.admin.assignments.assign``) or added to the group as a member.

Every post carries a CSRF token bound to the browser cookie and the SSO session (``sid``); a user
who does not own the object gets 403 and nothing is written. Every post that reaches the
ownership check leaves one audit record (``ownerAddGuest``), success or refusal.
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway import audit
from gateway.admin.assignments import assign, role_ids
from gateway.admin.errors import ApiError
from gateway.admin.models import DEFAULT_ACCESS_ROLE_ID
from gateway.http import BadForm, read_form
from gateway.invitations.addresses import check_address
from gateway.invitations.invite import Context, InvitationRefused, InvitationRequest, Inviter, invite
from gateway.pages import error_page, render
from gateway.policy.collaboration import Caller
from gateway.runtime import Runtime
from gateway.settings.models import Application
from gateway.signin.sessions import SsoSession

CSRF_PURPOSE = "owner"
ACTION = "ownerAddGuest"


def csrf_purpose(session: SsoSession) -> str:
    """The CSRF MAC's first half: this page, bound to this SSO session."""
    return f"{CSRF_PURPOSE}:{session.sid}"


async def _signed_in(rt: Runtime, request: Request) -> tuple[SsoSession, dict[str, Any]] | None:
    session = await rt.sessions.current(request, rt.now())
    if session is None:
        return None
    user = await rt.store.get_user(session.user_id)
    if user is None or user.get("accountEnabled") is not True:
        return None
    return session, user


async def _owned(rt: Runtime, user_id: str) -> tuple[list[Application], list[dict[str, Any]]]:
    apps = [rt.settings.application(i) for i in await rt.store.list_owned_apps(user_id)]
    groups = [await rt.store.get_group(i) for i in await rt.store.list_owned_groups(user_id)]
    return [a for a in apps if a is not None], [g for g in groups if g is not None]


def _signed_out(request: Request, *, status: int = 200) -> Response:
    return render(request, "owner_signed_out.html", {}, status=status)


async def owner_page(request: Request) -> Response:
    """``GET /owner``."""
    rt: Runtime = request.app.state.runtime
    found = await _signed_in(rt, request)
    if found is None:
        return _signed_out(request)
    session, user = found
    browser_id = rt.browser.browser_id(request)
    new_browser = None
    if browser_id is None:
        browser_id = new_browser = rt.browser.new_browser_id()
    apps, groups = await _owned(rt, str(user["id"]))
    response = render(
        request,
        "owner.html",
        {
            "user": user,
            "apps": apps,
            "groups": groups,
            "default_role": DEFAULT_ACCESS_ROLE_ID,
            "csrf": rt.browser.csrf_token(csrf_purpose(session), browser_id),
        },
    )
    if new_browser is not None:
        rt.browser.set_cookie(response, new_browser)
    return response


def _inviter(rt: Runtime, user: dict[str, Any]) -> Inviter:
    """The owner as inviter, with the same roles the admin API would give their token."""
    user_type = user.get("userType")
    roles = rt.settings.directory.roles_of(user.get("mail")) if user_type == "Member" else frozenset()
    caller = Caller(kind="user", user_type=str(user_type) if user_type else None, roles=roles)
    return Inviter(caller, user)


async def _guest(rt: Runtime, owner: dict[str, Any], email: str) -> tuple[dict[str, Any], bool]:
    """The user holding ``email``, or a newly invited guest; True when an invitation was sent."""
    holders = [u for u in await rt.store.find_users_by_mail(email) if u.get("deletedDateTime") is None]
    if len(holders) == 1:
        return holders[0], False
    request = InvitationRequest(email=email, redirect_url=f"{rt.settings.issuer}/myapps", send_message=True)
    outcome = await invite(Context(rt.settings, rt.store, rt.outbox, rt.now()), _inviter(rt, owner), request)
    return outcome.user, outcome.created


class _Refused(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message


def _email(form: FormData) -> str:
    value = form.get("email")
    try:
        return check_address(value.strip() if isinstance(value, str) else "")
    except ValueError as exc:
        raise _Refused(400, "invalid_address", f"The email address is not valid: {exc}.") from exc


async def _add_to_app(rt: Runtime, owner: dict[str, Any], app_id: str, form: FormData) -> tuple[str, str]:
    app = rt.settings.application(app_id)
    if app is None or str(owner["id"]) not in await rt.store.list_app_owners(app.id):
        raise _Refused(403, "not_an_owner", "You do not own this application.")
    role = form.get("role")
    role = role if isinstance(role, str) and role else DEFAULT_ACCESS_ROLE_ID
    if role not in role_ids(app):
        raise _Refused(400, "unknown_app_role", "Choose one of the application's roles.")
    email = _email(form)
    guest, invited = await _guest(rt, owner, email)
    try:
        await assign(rt, app, str(guest["id"]), role)
    except ApiError as exc:
        status = 409 if exc.status == 409 else 400
        raise _Refused(status, exc.reason, f"{email} could not be assigned: {exc.message}") from exc
    names = {r.id: r.display_name for r in app.app_roles}
    what = f"{app.name} ({names.get(role, 'default access')})"
    return f"{email} {'was invited and ' if invited else ''}now has access to {what}.", str(guest["id"])


async def _add_to_group(rt: Runtime, owner: dict[str, Any], group_id: str, form: FormData) -> tuple[str, str]:
    group = await rt.store.get_group(group_id) if len(group_id) <= 64 else None
    if group is None or str(owner["id"]) not in await rt.store.list_group_owners(group_id):
        raise _Refused(403, "not_an_owner", "You do not own this group.")
    email = _email(form)
    guest, invited = await _guest(rt, owner, email)
    try:
        added = await rt.store.add_group_member(group_id, str(guest["id"]))
    except KeyError as exc:
        raise _Refused(400, "user_not_found", f"{email} cannot be added to the group.") from exc
    if not added:
        raise _Refused(409, "member_exists", f"{email} is already a member of {group['displayName']}.")
    prefix = "was invited and " if invited else ""
    return f"{email} {prefix}is now a member of {group['displayName']}.", str(guest["id"])


async def _add_guest(request: Request, kind: str) -> Response:
    rt: Runtime = request.app.state.runtime
    try:
        form = await read_form(request)
    except BadForm as exc:
        return error_page(request, "Request not valid", str(exc), status=400)
    found = await _signed_in(rt, request)
    if found is None:
        return _signed_out(request, status=401)
    session, owner = found
    token = form.get("csrf")
    if not rt.browser.check_csrf(csrf_purpose(session), request, token if isinstance(token, str) else None):
        return error_page(
            request, "Request not valid", "This form has expired. Open the owners' page and try again.",
            status=403,
        )  # fmt: skip
    object_id = str(request.path_params["object_id"])
    target = f"{kind}:{object_id[:64]}"
    actor = {"kind": "user", "id": str(owner["id"])}
    try:
        if kind == "app":
            message, guest_id = await _add_to_app(rt, owner, object_id, form)
        else:
            message, guest_id = await _add_to_group(rt, owner, object_id, form)
    except InvitationRefused as exc:
        status = 403 if exc.kind == "forbidden" else 409 if exc.kind == "conflict" else 400
        failure = _Refused(status, exc.reason, exc.message)
    except _Refused as exc:
        failure = exc
    else:
        audit.admin_action(
            rt, request, action=ACTION, result="success", actor=actor, target=f"{target}/{guest_id}",
            reasons=["guest_added"],
        )  # fmt: skip
        return render(request, "owner_done.html", {"message": message})
    audit.admin_action(
        rt, request, action=ACTION, result="failure", actor=actor, target=target, reasons=[failure.reason]
    )
    return error_page(request, "Guest not added", failure.message, status=failure.status)


async def add_app_guest(request: Request) -> Response:
    """``POST /owner/apps/{object_id}/guests``."""
    return await _add_guest(request, "app")


async def add_group_guest(request: Request) -> Response:
    """``POST /owner/groups/{object_id}/guests``."""
    return await _add_guest(request, "group")


ROUTES = [
    Route("/owner", owner_page, methods=["GET"]),
    Route("/owner/apps/{object_id}/guests", add_app_guest, methods=["POST"]),
    Route("/owner/groups/{object_id}/guests", add_group_guest, methods=["POST"]),
]
