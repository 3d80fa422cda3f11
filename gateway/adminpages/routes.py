"""``/admin``: list, invite, reset and remove guests, for a signed-in administrator (HTML forms).

``GET /admin`` lists guests (``userType`` Guest) fifty a page, optionally filtered by
``externalUserState`` (``?state=PendingAcceptance|Accepted``; ``?after=`` is the next page's
cursor), and shows the invite form. ``POST /admin/invite`` invites through the same domain function
as ``POST /v1.0/invitations`` (``gateway.invitations.invite``), the signed-in user being the
inviter. ``POST /admin/guests/{id}/reset`` and ``…/remove`` are two-step forms: the first post
shows a confirmation page, the second (``confirm=yes``) acts; both are for Global and User
Administrators only. Removing revokes every sign-in of the guest and soft-deletes them
(restorable through the admin API for 30 days).

Without a live session the pages point to sign-in (never a redirect); a signed-in user without a
role gets 403. Every post checks the CSRF token first (403, nothing changed), and every action
that passes it leaves one admin audit record (``invite`` or ``deleteUser``, actor the user), a
refusal too.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway import audit
from gateway.admin.invitations import STATUS
from gateway.adminpages import forms
from gateway.adminpages.access import SignedIn, csrf_ok, csrf_token, signed_in
from gateway.directory.revocation import revoke_sign_in_sessions
from gateway.http import BadForm, read_form
from gateway.invitations.invite import Context, InvitationRefused, Outcome, invite
from gateway.pages import error_page, render
from gateway.runtime import Runtime

PAGE_SIZE = 50
RETENTION_DAYS = 30
STATES = ("PendingAcceptance", "Accepted")
_CURSOR = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_USER_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")


class _Refused(Exception):
    """An action refused with a page: ``status``, a stable ``reason`` and a message to show."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message


def _signed_out(request: Request, rt: Runtime, *, status: int = 200) -> Response:
    return render(request, "admin_signed_out.html", {"demo": rt.settings.demo.enabled}, status=status)


def _forbidden(request: Request) -> Response:
    return error_page(
        request, "Administrators only",
        "This page is for the organisation's administrators and guest inviters.", status=403,
    )  # fmt: skip


def _default_form(rt: Runtime) -> dict[str, str]:
    return {"redirect_url": f"{rt.settings.issuer}/myapps", "send_mail": "yes"}


def _guest_row(user: dict[str, Any]) -> dict[str, str]:
    created = user.get("createdDateTime")
    return {
        "id": str(user["id"]),
        "mail": str(user.get("mail") or ""),
        "name": str(user.get("displayName") or ""),
        "state": str(user.get("externalUserState") or ""),
        "created": created[:10] if isinstance(created, str) else "",
    }


async def _dashboard(
    rt: Runtime, request: Request, who: SignedIn, *, form: dict[str, str] | None = None,
    error: str | None = None, status: int = 200,
) -> Response:  # fmt: skip
    state = request.query_params.get("state") or None
    after = request.query_params.get("after") or None
    if state is not None and state not in STATES:
        return error_page(request, "Request not valid", "state must be PendingAcceptance or Accepted.")
    if after is not None and _CURSOR.match(after) is None:
        return error_page(request, "Request not valid", "This page link is not one this site made.")
    guests, cursor = await rt.store.list_users(
        user_type="Guest", external_user_state=state, limit=PAGE_SIZE, after=after
    )
    next_url = None
    if cursor is not None:
        next_url = "/admin?" + urlencode({**({"state": state} if state else {}), "after": cursor})
    csrf, new_browser = csrf_token(rt, request, who.session)
    response = render(
        request,
        "admin.html",
        {
            "user": who.user, "roles": sorted(who.roles), "is_admin": who.is_admin,
            "guests": [_guest_row(g) for g in guests], "state": state or "", "states": STATES,
            "next_url": next_url, "csrf": csrf, "form": form or _default_form(rt), "error": error,
        },
        status=status,
    )  # fmt: skip
    if new_browser is not None:
        rt.browser.set_cookie(response, new_browser)
    return response


async def admin_page(request: Request) -> Response:
    """``GET /admin``."""
    rt: Runtime = request.app.state.runtime
    who = await signed_in(rt, request)
    if who is None:
        return _signed_out(request, rt)
    if not who.may_use_pages:
        return _forbidden(request)
    return await _dashboard(rt, request, who)


async def _posted(request: Request) -> tuple[Runtime, SignedIn, FormData] | Response:
    """The form of a signed-in page user with a valid CSRF token, or the page refusing it."""
    rt: Runtime = request.app.state.runtime
    try:
        form = await read_form(request)
    except BadForm as exc:
        return error_page(request, "Request not valid", str(exc), status=400)
    who = await signed_in(rt, request)
    if who is None:
        return _signed_out(request, rt, status=401)
    if not csrf_ok(rt, request, who.session, form.get("csrf")):
        return error_page(
            request, "Request not valid", "This form has expired. Open the admin page and try again.",
            status=403,
        )  # fmt: skip
    return rt, who, form


def _audit(
    rt: Runtime, request: Request, who: SignedIn, action: str, target: str | None, result: str,
    reasons: list[str], detail: str | None = None,
) -> None:  # fmt: skip
    audit.admin_action(
        rt, request, action=action, result=result, actor=who.actor, target=target, reasons=reasons,
        detail=detail,
    )  # fmt: skip


def _done(request: Request, title: str, message: str, outcome: Outcome | None = None) -> Response:
    return render(
        request,
        "admin_done.html",
        {"title": title, "message": message, "redeem_url": outcome.redeem_url if outcome else None},
    )


def _invite_message(outcome: Outcome) -> str:
    email = str(outcome.user.get("mail") or "")
    if not outcome.created and not outcome.reset:
        return f"{email} is already a user here: nothing was created and no mail was sent."
    mailed = " The invitation mail is on its way." if outcome.mailed else " No mail was sent."
    verb = "Redemption reset for" if outcome.reset else "Invited"
    return f"{verb} {email}.{mailed}"


async def invite_guest(request: Request) -> Response:
    """``POST /admin/invite``."""
    posted = await _posted(request)
    if isinstance(posted, Response):
        return posted
    rt, who, form = posted
    if not who.may_use_pages:
        _audit(rt, request, who, "invite", None, "failure", ["insufficient_privileges"])
        return _forbidden(request)
    shown = forms.values(form)
    try:
        req = forms.invitation(form)
        outcome = await invite(Context(rt.settings, rt.store, rt.outbox, rt.now()), who.inviter(), req)
    except forms.FormInvalid as exc:
        _audit(rt, request, who, "invite", None, "failure", ["invalid_field"], exc.message)
        return await _dashboard(rt, request, who, form=shown, error=exc.message, status=400)
    except InvitationRefused as exc:
        _audit(rt, request, who, "invite", None, "failure", [exc.reason], exc.message)
        return await _dashboard(rt, request, who, form=shown, error=exc.message, status=STATUS[exc.kind])
    _audit(rt, request, who, "invite", str(outcome.user["id"]), "success", outcome.reasons)
    return _done(request, "Invitation", _invite_message(outcome), outcome)


async def _guest_for_admin(rt: Runtime, request: Request, who: SignedIn, action: str) -> dict[str, Any]:
    """The guest named in the path, for a Global or User Administrator; refusals are audited."""
    user_id = str(request.path_params["user_id"])
    target = user_id[:64]
    try:
        if not who.is_admin:
            raise _Refused(
                403, "insufficient_privileges",
                "Only a Global Administrator or User Administrator may do this.",
            )  # fmt: skip
        user = await rt.store.get_user(user_id) if _USER_ID.match(user_id) else None
        if user is None:
            raise _Refused(404, "user_not_found", "There is no such user (it may have been removed).")
        if user.get("userType") != "Guest":
            raise _Refused(400, "not_a_guest", "Only guests are managed on this page.")
    except _Refused as exc:
        _audit(rt, request, who, action, target, "failure", [exc.reason])
        raise
    return user


def _refused_page(request: Request, exc: _Refused) -> Response:
    return error_page(request, "Not done", exc.message, status=exc.status)


async def reset_guest(request: Request) -> Response:
    """``POST /admin/guests/{user_id}/reset``: a confirmation page with the new address, then the act."""
    posted = await _posted(request)
    if isinstance(posted, Response):
        return posted
    rt, who, form = posted
    try:
        guest = await _guest_for_admin(rt, request, who, "invite")
    except _Refused as exc:
        return _refused_page(request, exc)
    context = {"guest": _guest_row(guest), "csrf": form.get("csrf"), "error": None}
    if form.get("confirm") != "yes":
        return render(request, "admin_reset_confirm.html", {**context, "form": _default_form(rt)})
    try:
        req = forms.invitation(form, reset_user_id=str(guest["id"]))
        outcome = await invite(Context(rt.settings, rt.store, rt.outbox, rt.now()), who.inviter(), req)
    except forms.FormInvalid as exc:
        _audit(rt, request, who, "invite", str(guest["id"]), "failure", ["invalid_field"], exc.message)
        page = {**context, "form": forms.values(form), "error": exc.message}
        return render(request, "admin_reset_confirm.html", page, status=400)
    except InvitationRefused as exc:
        _audit(rt, request, who, "invite", str(guest["id"]), "failure", [exc.reason], exc.message)
        page = {**context, "form": forms.values(form), "error": exc.message}
        return render(request, "admin_reset_confirm.html", page, status=STATUS[exc.kind])
    # b2b-concepts §10: a reset ends every sign-in the guest had with the old redemption.
    await revoke_sign_in_sessions(rt, outcome.user)
    _audit(rt, request, who, "invite", str(guest["id"]), "success", [*outcome.reasons, "sessions_revoked"])
    return _done(request, "Redemption reset", _invite_message(outcome), outcome)


async def remove_guest(request: Request) -> Response:
    """``POST /admin/guests/{user_id}/remove``: a confirmation page, then revoke and soft delete."""
    posted = await _posted(request)
    if isinstance(posted, Response):
        return posted
    rt, who, form = posted
    try:
        guest = await _guest_for_admin(rt, request, who, "deleteUser")
    except _Refused as exc:
        return _refused_page(request, exc)
    if form.get("confirm") != "yes":
        return render(
            request, "admin_remove_confirm.html",
            {"guest": _guest_row(guest), "csrf": form.get("csrf"), "retention_days": RETENTION_DAYS},
        )  # fmt: skip
    # Revoke first: revocation updates the live user, which a soft-deleted one no longer is.
    await revoke_sign_in_sessions(rt, guest)
    if await rt.store.soft_delete_user(str(guest["id"]), rt.now()) is None:
        _audit(rt, request, who, "deleteUser", str(guest["id"]), "failure", ["user_not_found"])
        return error_page(request, "Not done", "The guest was removed meanwhile.", status=404)
    _audit(rt, request, who, "deleteUser", str(guest["id"]), "success", ["user_soft_deleted"])
    message = (
        f"{guest.get('mail') or guest['id']} was removed and signed out everywhere. An administrator can "
        f"restore the account through the admin API for {RETENTION_DAYS} days."
    )
    return _done(request, "Guest removed", message)


ROUTES = [
    Route("/admin", admin_page, methods=["GET"]),
    Route("/admin/invite", invite_guest, methods=["POST"]),
    Route("/admin/guests/{user_id}/reset", reset_guest, methods=["POST"]),
    Route("/admin/guests/{user_id}/remove", remove_guest, methods=["POST"]),
]
