"""``/invitations/block``: where a recipient blocks this organisation's invitations (b2b-concepts §2.2).

The invitation mail's footer links here. Three steps, each form carrying a CSRF token bound to
the browser cookie:

1. ``GET /invitations/block``: a form for the address.
2. ``POST /invitations/block``: sends an email passcode to that address only and shows the
   passcode form. The answer is the same whatever the address's state (blocked or not, known or
   not), so the page tells nothing about an address to someone who cannot read its mail. A
   short-lived flow (artefact ``invitation-block-flow``, random id, bound to the browser by a
   keyed hash of its cookie) holds the address until the passcode is checked.
3. ``POST /invitations/block/{flow}/passcode``: with the right passcode the address is blocked
   (or, when it already was, the page says so); either way the page offers to unblock.
   ``POST /invitations/block/{flow}/manage`` (``action=block|unblock``) then changes the state
   while the verified flow lives (``VERIFIED_SECONDS``).

Wrong passcodes, expiry and the attempt limit are the email OTP connector's (``verify_passcode``).
"""

from __future__ import annotations

import secrets
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.http import BadForm, read_form
from gateway.i18n import Message, page_language
from gateway.invitations import blocklist
from gateway.pages import error_page, render
from gateway.runtime import Runtime
from idp_connectors.email_otp.connector import (
    InvalidEmail,
    InvalidPasscode,
    PasscodeExpired,
    RateLimited,
    TooManyAttempts,
    normalise_email,
)

CSRF_PURPOSE = "invitation-block"
FLOW_KIND = "invitation-block-flow"
VERIFIED_SECONDS = 900
EXPIRED = Message("block.error.expired")
NOT_VALID = Message("error.request_not_valid")


def _flow_purpose(flow_id: str) -> str:
    return f"{CSRF_PURPOSE}:{flow_id}"


def _browser(rt: Runtime, request: Request) -> tuple[str, str | None]:
    """The browser id, and a new one to set when the browser has none yet."""
    browser_id = rt.browser.browser_id(request)
    if browser_id is not None:
        return browser_id, None
    new = rt.browser.new_browser_id()
    return new, new


def _page(
    rt: Runtime, request: Request, template: str, context: dict[str, Any], purpose: str, *, status: int = 200
) -> Response:
    browser_id, new = _browser(rt, request)
    context["csrf"] = rt.browser.csrf_token(purpose, browser_id)
    response = render(request, template, context, status=status)
    if new is not None:
        rt.browser.set_cookie(response, new)
    return response


def _token(form: Any) -> str | None:
    value = form.get("csrf")
    return value if isinstance(value, str) else None


def _expired(request: Request) -> Response:
    return error_page(request, NOT_VALID, EXPIRED, status=403)


async def start(request: Request) -> Response:
    """``GET /invitations/block``."""
    rt: Runtime = request.app.state.runtime
    return _page(rt, request, "invitations_block.html", {"email": "", "error": ""}, CSRF_PURPOSE)


async def send(request: Request) -> Response:
    """``POST /invitations/block``: a passcode to the address, then the passcode form."""
    rt: Runtime = request.app.state.runtime
    try:
        form = await read_form(request)
    except BadForm as exc:
        return error_page(request, NOT_VALID, str(exc), status=400)
    if not rt.browser.check_csrf(CSRF_PURPOSE, request, _token(form)):
        return _expired(request)
    raw = form.get("email")
    try:
        address = normalise_email(raw if isinstance(raw, str) else "")
    except InvalidEmail:
        context = {"email": raw if isinstance(raw, str) else "", "error": Message("signin.email.invalid")}
        return _page(rt, request, "invitations_block.html", context, CSRF_PURPOSE, status=400)
    flow_id = secrets.token_urlsafe(24)
    try:
        await rt.email_otp.send_passcode(flow_id, address, deliver=True, language=page_language(rt, request))
    except RateLimited as exc:
        title = Message("block.error.try_later.title")
        detail = Message("block.error.try_later.detail", seconds=exc.retry_after)
        return error_page(request, title, detail, status=429, headers={"Retry-After": str(exc.retry_after)})
    browser_id, _ = _browser(rt, request)
    flow = {"email": address, "binding": rt.browser.binding(browser_id), "verified": False}
    await rt.store.put(FLOW_KIND, flow_id, flow, rt.email_otp.policy.validity_seconds)
    return _passcode_page(rt, request, flow_id, address, None)


def _passcode_page(
    rt: Runtime, request: Request, flow_id: str, address: str, error: Message | None
) -> Response:
    context = {"flow_id": flow_id, "email": address, "error": error, "length": rt.email_otp.policy.length}
    return _page(
        rt, request, "invitations_block_passcode.html", context, _flow_purpose(flow_id),
        status=400 if error else 200,
    )  # fmt: skip


async def _flow(rt: Runtime, request: Request, flow_id: str) -> tuple[dict[str, Any], Any] | Response:
    """The flow and the posted form, or the refusal page (bad form, CSRF, unknown flow, other browser)."""
    try:
        form = await read_form(request)
    except BadForm as exc:
        return error_page(request, NOT_VALID, str(exc), status=400)
    if not rt.browser.check_csrf(_flow_purpose(flow_id), request, _token(form)):
        return _expired(request)
    flow = await rt.store.get(FLOW_KIND, flow_id)
    if flow is None or not rt.browser.matches(str(flow.get("binding", "")), request):
        return _expired(request)
    return flow, form


def _status_page(
    rt: Runtime, request: Request, flow_id: str, address: str, blocked: bool, note: str
) -> Response:
    context = {"flow_id": flow_id, "email": address, "blocked": blocked, "note": note}
    return _page(rt, request, "invitations_block_done.html", context, _flow_purpose(flow_id))


async def passcode(request: Request) -> Response:
    """``POST /invitations/block/{flow}/passcode``: the right passcode blocks the address."""
    rt: Runtime = request.app.state.runtime
    flow_id = request.path_params["flow"]
    found = await _flow(rt, request, flow_id)
    if isinstance(found, Response):
        return found
    flow, form = found
    address = str(flow["email"])
    if not flow.get("verified"):
        code = form.get("passcode")
        try:
            await rt.email_otp.verify_passcode(
                flow_id, address, code if isinstance(code, str) else "", rt.now()
            )
        except InvalidPasscode:
            return _passcode_page(rt, request, flow_id, address, Message("block.passcode.wrong"))
        except (PasscodeExpired, TooManyAttempts) as exc:
            await rt.store.delete(FLOW_KIND, flow_id)
            expired = isinstance(exc, PasscodeExpired)
            detail = Message("block.error.passcode_expired" if expired else "block.error.too_many_attempts")
            return error_page(request, Message("block.error.passcode.title"), detail, status=400)
        await rt.store.put(FLOW_KIND, flow_id, {**flow, "verified": True}, VERIFIED_SECONDS)
    if await blocklist.is_blocked(rt.settings, rt.store, address):
        return _status_page(rt, request, flow_id, address, True, "already")
    return await _change(rt, request, flow_id, address, "block")


async def _change(rt: Runtime, request: Request, flow_id: str, address: str, action: str) -> Response:
    try:
        if action == "block":
            await blocklist.block(rt.settings, rt.store, address)
        else:
            await blocklist.unblock(rt.settings, rt.store, address)
    except blocklist.ChangeLimitReached:
        title, detail = Message("block.error.change.title"), Message("block.error.change.detail")
        return error_page(request, title, detail, status=409)
    blocked = await blocklist.is_blocked(rt.settings, rt.store, address)
    return _status_page(rt, request, flow_id, address, blocked, "changed")


async def manage(request: Request) -> Response:
    """``POST /invitations/block/{flow}/manage``: ``action=block|unblock`` for a verified address."""
    rt: Runtime = request.app.state.runtime
    flow_id = request.path_params["flow"]
    found = await _flow(rt, request, flow_id)
    if isinstance(found, Response):
        return found
    flow, form = found
    if not flow.get("verified"):
        return _expired(request)
    action = form.get("action")
    if action not in ("block", "unblock"):
        return error_page(request, NOT_VALID, Message("block.error.choose"), status=400)
    return await _change(rt, request, flow_id, str(flow["email"]), str(action))


ROUTES = [
    Route("/invitations/block", start, methods=["GET"]),
    Route("/invitations/block", send, methods=["POST"]),
    Route("/invitations/block/{flow}/passcode", passcode, methods=["POST"]),
    Route("/invitations/block/{flow}/manage", manage, methods=["POST"]),
]
