"""``/myapps``: what a signed-in user can use, who they are here, and leaving (b2b-concepts §10).

``GET /myapps`` reads the SSO session cookie; without a live session (or for a user who is gone)
it shows a sign-in pointer, never a redirect. ``POST /myapps/leave`` is a two-step form: the
first post shows what leaving means, the second (``confirm=yes``) acts. Both carry a CSRF token
bound to the browser cookie and to the SSO session (``sid``), and name the tenant, as the
reference's ``?tenantId=`` does. Leaving revokes every sign-in of the guest (SSO sessions,
refresh tokens, back-channel logout), soft-deletes the account (restorable by an admin for
``DELETED_RETENTION_DAYS``) and ends this browser's session; it leaves one audit record, as does
a refusal.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway import audit
from gateway.directory.revocation import revoke_sign_in_sessions
from gateway.http import BadForm, read_form
from gateway.i18n import Message, translations_for
from gateway.pages import error_page, render
from gateway.policy.collaboration import Decision, may_leave
from gateway.runtime import Runtime
from gateway.signin.sessions import SsoSession

DELETED_RETENTION_DAYS = 30
CSRF_PURPOSE = "my-apps"

REFUSALS = {
    reason: Message(f"myapps.leave.reason.{reason}")
    for reason in ("only_guests_leave", "leaving_disabled", "account_disabled")
}
NOT_VALID = Message("error.request_not_valid")


def csrf_purpose(session: SsoSession) -> str:
    """The CSRF MAC's first half: the page, bound to this SSO session."""
    return f"{CSRF_PURPOSE}:{session.sid}"


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _applications(rt: Runtime) -> list[dict[str, str]]:
    """Every application with an OIDC registration, linked to its first redirect URI's origin."""
    return [
        {"id": app.id, "name": app.name, "url": _origin(str(app.oidc.redirect_uris[0]))}
        for app in rt.settings.applications
        if app.oidc is not None
    ]


async def _signed_in(rt: Runtime, request: Request) -> tuple[SsoSession, dict[str, Any]] | None:
    session = await rt.sessions.current(request, rt.now())
    if session is None:
        return None
    user = await rt.store.get_user(session.user_id)
    return None if user is None else (session, user)


def _leave_decision(rt: Runtime, user: dict[str, Any]) -> Decision:
    return may_leave(
        user.get("userType"), bool(user.get("accountEnabled", True)), rt.settings.external_collaboration
    )


def _signed_out(request: Request, rt: Runtime, *, status: int = 200) -> Response:
    return render(request, "myapps_signed_out.html", {"demo": rt.settings.demo.enabled}, status=status)


def _csrf(rt: Runtime, request: Request, session: SsoSession) -> tuple[str, str | None]:
    """The page's CSRF token, and a new browser id to set when the browser has none yet."""
    browser_id = rt.browser.browser_id(request)
    new = None
    if browser_id is None:
        browser_id = new = rt.browser.new_browser_id()
    return rt.browser.csrf_token(csrf_purpose(session), browser_id), new


async def my_apps(request: Request) -> Response:
    """``GET /myapps``."""
    rt: Runtime = request.app.state.runtime
    found = await _signed_in(rt, request)
    if found is None:
        return _signed_out(request, rt)
    session, user = found
    csrf, new_browser = _csrf(rt, request, session)
    is_guest = user.get("userType") == "Guest"
    decision = _leave_decision(rt, user)
    response = render(
        request,
        "myapps.html",
        {
            "apps": _applications(rt),
            "user": user,
            "is_guest": is_guest,
            "may_leave": decision.allowed,
            "refusal": REFUSALS.get(decision.reason, ""),
            "csrf": csrf,
            "tenant_id": rt.settings.tenant.id,
        },
    )
    if new_browser is not None:
        rt.browser.set_cookie(response, new_browser)
    return response


async def leave(request: Request) -> Response:
    """``POST /myapps/leave``: without ``confirm=yes`` the confirmation page, with it the act."""
    rt: Runtime = request.app.state.runtime
    try:
        form = await read_form(request)
    except BadForm as exc:
        return error_page(request, NOT_VALID, str(exc), status=400)
    found = await _signed_in(rt, request)
    if found is None:
        return _signed_out(request, rt, status=401)
    session, user = found
    token = form.get("csrf")
    if not rt.browser.check_csrf(csrf_purpose(session), request, token if isinstance(token, str) else None):
        return error_page(request, NOT_VALID, Message("myapps.error.form_expired"), status=403)
    if form.get("tenant") != rt.settings.tenant.id:
        return error_page(request, NOT_VALID, Message("myapps.error.other_organisation"), status=400)
    actor = {"kind": "user", "id": user["id"]}
    decision = _leave_decision(rt, user)
    if not decision.allowed:
        audit.admin_action(
            rt, request, action="leave", result="failure", actor=actor, target=user["id"],
            reasons=[decision.reason],
        )  # fmt: skip
        return render(
            request,
            "myapps_leave_refused.html",
            {
                "detail": REFUSALS.get(decision.reason, ""),
                "privacy_url": translations_for(rt.settings).branding.privacy_url,
            },
            status=403,
        )
    if form.get("confirm") != "yes":
        return render(
            request,
            "myapps_leave_confirm.html",
            {
                "csrf": token,
                "tenant_id": rt.settings.tenant.id,
                "retention_days": DELETED_RETENTION_DAYS,
                "email": user.get("mail"),
            },
        )
    # Revoke first: revocation updates the live user, which a soft-deleted one no longer is.
    await revoke_sign_in_sessions(rt, user)
    deleted = await rt.store.soft_delete_user(user["id"], rt.now())
    audit.admin_action(
        rt, request, action="leave", result="success", actor=actor, target=user["id"],
        reasons=["guest_left" if deleted is not None else "already_deleted"],
    )  # fmt: skip
    response = render(request, "myapps_left.html", {"retention_days": DELETED_RETENTION_DAYS})
    await rt.sessions.end(request, response)
    return response


ROUTES = [
    Route("/myapps", my_apps, methods=["GET"]),
    Route("/myapps/leave", leave, methods=["POST"]),
]
