"""The sign-in pages: email first (home-realm discovery), then the passcode.

Every page works without JavaScript. Each request is checked against the stored
transaction and the browser that started it; every POST carries a CSRF token.

Abuse limits (``limits:``, counted in the shared store, so across replicas; 429 with
``Retry-After``): passcodes sent per client IP here, per address in the connector
(``passcode.max_sends_per_address_per_hour``); failed passcode checks per client IP and per
address. A failure counts in both hourly windows; the one that reaches a limit leaves a marker
that lives as long as that window, and a passcode is checked only when neither marker is there
(read at once, one round trip). Requests in flight together may pass the check together; each
sign-in's own ``passcode.max_attempts`` is exact.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from gateway import audit
from gateway.http import client_ip, origin, write_behind
from gateway.i18n import Message, page_language, translations_for
from gateway.pages import error_page, render
from gateway.policy.home_realm import Route as RealmRoute
from gateway.policy.signup import self_service_sign_up
from gateway.runtime import Runtime
from gateway.signin import discovery, transaction
from gateway.signin.complete import complete_signin
from gateway.signin.forms import checked_form
from gateway.signin.transaction import SignIn
from idp_connectors.base import ConnectorError
from idp_connectors.email_otp.connector import (
    ISSUER,
    InvalidPasscode,
    PasscodeExpired,
    RateLimited,
    TooManyAttempts,
    normalise_email,
)
from idp_connectors.email_otp.messages import duration_key

EXPIRED_TITLE = Message("error.expired.title")
EXPIRED = Message("error.expired.detail")
WRONG_BROWSER_TITLE = Message("error.wrong_browser.title")
WRONG_BROWSER = Message("error.wrong_browser.detail")
STOPPED = Message("error.stopped.detail")
IP_LIMITED = Message("signin.email.ip_limited")
INVALID_EMAIL = Message("signin.email.invalid")
NOT_INVITED = Message("signin.email.not_invited")
NO_ROUTE = Message("signin.email.no_route")
FAILURE_WINDOW_SECONDS = 3600
FAILURES_BY_IP = "signin-failures-ip"
FAILURES_BY_ADDRESS = "signin-failures-address"
BLOCKED_IP = "signin-blocked-ip"
BLOCKED_ADDRESS = "signin-blocked-address"


async def _load(request: Request) -> tuple[Runtime, SignIn] | Response:
    rt: Runtime = request.app.state.runtime
    signin = await transaction.load(rt.store, request.path_params["signin_id"])
    if signin is None or _seconds_left(rt, signin) <= 0:
        ui_locales = signin.ui_locales if signin is not None else ()
        return error_page(request, EXPIRED_TITLE, EXPIRED, status=400, ui_locales=ui_locales)
    if not rt.browser.matches(signin.browser, request):
        return error_page(
            request, WRONG_BROWSER_TITLE, WRONG_BROWSER, status=403, ui_locales=signin.ui_locales
        )
    return rt, signin


async def _load_post(request: Request) -> tuple[Runtime, SignIn, dict[str, str]] | Response:
    loaded = await _load(request)
    if isinstance(loaded, Response):
        return loaded
    rt, signin = loaded
    form = await checked_form(rt, request, signin.id, signin.ui_locales)
    if isinstance(form, Response):
        return form
    return rt, signin, form


def _seconds_left(rt: Runtime, signin: SignIn) -> int:
    """The sign-in's own deadline, checked on the runtime clock as well as by the store's TTL."""
    return signin.created_at + rt.settings.tokens.signin_seconds - rt.now()


def _stopped(request: Request, signin: SignIn) -> Response:
    return error_page(
        request, Message("error.stopped.title"), STOPPED, status=400, ui_locales=signin.ui_locales
    )


def _attempts_left(count: int) -> Message:
    if count == 1:
        return Message("signin.passcode.attempts_one")
    return Message("signin.passcode.attempts_other", count=count)


def _csrf(rt: Runtime, request: Request, signin: SignIn, browser_id: str | None = None) -> str:
    """The form token for this sign-in and browser; ``browser_id`` when the cookie is set only now."""
    if browser_id is None:
        browser_id = rt.browser.browser_id(request)
    assert browser_id is not None
    return rt.browser.csrf_token(signin.id, browser_id)


def _app_name(rt: Runtime, signin: SignIn) -> str | Message:
    app = rt.settings.application(signin.app_id)
    if app is None and signin.redeem_user_id is not None:
        return Message("signin.email.invitation_app", org=translations_for(rt.settings).branding.name)
    return app.name if app else signin.app_id


def _email_page(
    rt: Runtime,
    request: Request,
    signin: SignIn,
    *,
    error: Message | None = None,
    email: str | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
    browser_id: str | None = None,
) -> Response:
    return render(
        request,
        "signin_email.html",
        {
            "signin": signin,
            "csrf": _csrf(rt, request, signin, browser_id),
            "app_name": _app_name(rt, signin),
            "email": email if email is not None else (signin.email or signin.login_hint or ""),
            "error": error,
            "buttons": discovery.buttons(rt, signin),
        },
        status=status,
        headers=headers,
        form_action=origin(signin.redirect_uri),
        ui_locales=signin.ui_locales,
    )


def _passcode_page(
    rt: Runtime,
    request: Request,
    signin: SignIn,
    *,
    error: Message | None = None,
    notice: Message | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    policy = rt.settings.passcode
    duration, count = duration_key(policy.validity_seconds)
    return render(
        request,
        "signin_passcode.html",
        {
            "signin": signin,
            "csrf": _csrf(rt, request, signin),
            "app_name": _app_name(rt, signin),
            "length": policy.length,
            "validity": Message(duration, count=count),
            "error": error,
            "notice": notice,
        },
        status=status,
        headers=headers,
        form_action=origin(signin.redirect_uri),
        ui_locales=signin.ui_locales,
    )


async def email_page(request: Request) -> Response:
    loaded = await _load(request)
    if isinstance(loaded, Response):
        return loaded
    rt, signin = loaded
    return await first_page(rt, request, signin)


async def first_page(
    rt: Runtime, request: Request, signin: SignIn, *, browser_id: str | None = None, saved: bool = True
) -> Response:
    """A sign-in's first step: straight to the IdP its hints name, else the email page.

    ``GET /signin/{id}`` answers with it, and so does the authorization endpoint that starts the
    sign-in (one request fewer), passing the ``browser_id`` whose cookie it sets on this very
    response, and ``saved=False`` for a transaction not stored yet: it is stored here then, once
    (going upstream stores it anyway).
    """
    hinted = discovery.route_for_hints(rt, signin)
    if hinted is not None and hinted.connector_id and discovery.is_upstream(rt, hinted.connector_id):
        return await discovery.go_upstream(rt, request, signin, hinted)
    if not saved:
        await transaction.save(rt.store, signin, rt.settings.tokens.signin_seconds)
    return _email_page(rt, request, signin, browser_id=browser_id)


@write_behind  # the passcode and the transaction are written together
async def submit_email(request: Request) -> Response:
    loaded = await _load_post(request)
    if isinstance(loaded, Response):
        return loaded
    rt, signin, form = loaded
    raw = form.get("email", "")
    try:
        email = normalise_email(raw)
    except ConnectorError:
        return _email_page(rt, request, signin, error=INVALID_EMAIL, email=raw[:320], status=400)
    if signin.invited_email is not None and email != signin.invited_email:
        return _email_page(rt, request, signin, error=NOT_INVITED, email=email, status=400)
    route = discovery.route_for_email(rt, signin, email)
    if route.connector_id is None:
        discovery.refuse_route(rt, request, signin, route)
        return _email_page(rt, request, signin, error=NO_ROUTE, email=email, status=403)
    if signin.email == email and signin.connector_id == route.connector_id == rt.email_otp.config.id:
        # This address was sent a passcode in this sign-in already (the form posted again, by the
        # back button or a reload of the page this POST answered): the page, not a second mail.
        return _passcode_page(rt, request, signin)
    signin.email = email
    if discovery.is_upstream(rt, route.connector_id):
        return await discovery.choose_upstream(rt, signin, route)
    signin.connector_id = route.connector_id
    return await _send(rt, request, signin, page=_email_page)


async def choose_idp(request: Request) -> Response:
    """A button on the email page: sign in at that identity provider."""
    loaded = await _load_post(request)
    if isinstance(loaded, Response):
        return loaded
    rt, signin, form = loaded
    chosen = form.get("connector", "")
    if chosen not in {b.connector_id for b in discovery.buttons(rt, signin)}:
        return error_page(
            request,
            Message("error.unknown_idp.title"),
            Message("error.unknown_idp.choose"),
            status=400,
            ui_locales=signin.ui_locales,
        )
    return await discovery.choose_upstream(rt, signin, RealmRoute(chosen, "button"))


async def resend(request: Request) -> Response:
    loaded = await _load_post(request)
    if isinstance(loaded, Response):
        return loaded
    rt, signin, _ = loaded
    if signin.email is None:
        return RedirectResponse(f"/signin/{signin.id}", status_code=303)
    return await _send(rt, request, signin, page=_passcode_page, resent=True, changed=False)


async def _send(
    rt: Runtime,
    request: Request,
    signin: SignIn,
    *,
    page: Callable[..., Response],
    resent: bool = False,
    changed: bool = True,
) -> Response:
    """Send a passcode (or, for an address that may not sign in, do the same work without mail).

    ``changed``: ``signin`` was altered since it was loaded (a resend leaves it as stored, so it
    is not written again; its deadline is its own either way).
    """
    assert signin.email is not None
    ttl = _seconds_left(rt, signin)
    if ttl <= 0:
        return error_page(request, EXPIRED_TITLE, EXPIRED, status=400, ui_locales=signin.ui_locales)
    limit = rt.settings.limits.passcode_sends_per_ip_per_hour
    counter = await rt.store.incr("ip-passcode-sends", rt.box.keyed_hash("ip", client_ip(request)), 3600)
    if counter.value > limit:
        return page(
            rt,
            request,
            signin,
            error=IP_LIMITED,
            status=429,
            headers={"Retry-After": str(max(counter.expires_in, 1))},
        )
    # Looked up only when the app's rules leave it open (they do not depend on the address, so
    # every address of one sign-in costs the same work).
    deliver = (
        signin.redeem_user_id is not None
        or _may_sign_up(rt, signin)
        or await rt.store.find_user_by_identity(ISSUER, signin.email) is not None
    )
    try:
        language = page_language(rt, request, signin.ui_locales)
        await rt.email_otp.send_passcode(signin.id, signin.email, deliver=deliver, language=language)
    except RateLimited as exc:
        wait = Message("signin.email.sent_recently", seconds=exc.retry_after)
        retry = {"Retry-After": str(exc.retry_after)}
        return page(rt, request, signin, error=wait, status=429, headers=retry)
    except TooManyAttempts:
        # The sign-in used up its attempts: it can neither check nor be sent another passcode.
        await transaction.finish(rt.store, signin.id)
        return _stopped(request, signin)
    if changed:
        await transaction.save(rt.store, signin, ttl)
    # The passcode page answers the POST itself rather than a redirect to ``GET .../passcode``: one
    # request fewer per sign-in (ADR 0014). A reload of the email POST shows the page again without
    # another mail (``submit_email``); a reload of a resend is another resend, within its limits.
    return _passcode_page(rt, request, signin, notice=Message("signin.passcode.resent") if resent else None)


def _may_sign_up(rt: Runtime, signin: SignIn) -> bool:
    app = rt.settings.application(signin.app_id)
    return app is not None and self_service_sign_up(rt.settings, app, rt.email_otp.config.id).allowed


async def passcode_page(request: Request) -> Response:
    loaded = await _load(request)
    if isinstance(loaded, Response):
        return loaded
    rt, signin = loaded
    if signin.email is None:
        return RedirectResponse(f"/signin/{signin.id}", status_code=303)
    return _passcode_page(rt, request, signin)


def _failure_keys(rt: Runtime, request: Request, email: str) -> tuple[str, str]:
    return rt.box.keyed_hash("ip", client_ip(request)), rt.box.keyed_hash("signin-address", email)


async def _blocked_for(rt: Runtime, keys: tuple[str, str]) -> int:
    """Seconds until this IP address and this email address may have a passcode checked (0: now)."""
    # One store call, not a gather of two ``ttl`` calls: the two tasks cost more than the lookups.
    by_ip, by_address = await rt.store.ttl_many([(BLOCKED_IP, keys[0]), (BLOCKED_ADDRESS, keys[1])])
    return max(by_ip or 0, by_address or 0)


async def _count_failure(rt: Runtime, keys: tuple[str, str]) -> None:
    """One more failed check for the IP and the address; a marker for each that reached its limit."""
    limits = rt.settings.limits
    by_ip, by_address = await asyncio.gather(
        rt.store.incr(FAILURES_BY_IP, keys[0], FAILURE_WINDOW_SECONDS),
        rt.store.incr(FAILURES_BY_ADDRESS, keys[1], FAILURE_WINDOW_SECONDS),
    )
    if by_ip.value >= limits.signin_failures_per_ip_per_hour:
        await rt.store.put(BLOCKED_IP, keys[0], {}, max(by_ip.expires_in, 1))
    if by_address.value >= limits.signin_failures_per_address_per_hour:
        await rt.store.put(BLOCKED_ADDRESS, keys[1], {}, max(by_address.expires_in, 1))


def _wait(seconds: int) -> Message:
    """How long to wait, rounded up (never an attempt promised before one is free)."""
    unit, count = ("second", seconds) if seconds < 60 else ("minute", math.ceil(seconds / 60))
    return Message(f"duration.{unit}_{'one' if count == 1 else 'other'}", count=count)


@write_behind  # the SSO session, the end of the transaction and the code are written together
async def submit_passcode(request: Request) -> Response:
    loaded = await _load_post(request)
    if isinstance(loaded, Response):
        return loaded
    rt, signin, form = loaded
    if signin.email is None:
        return RedirectResponse(f"/signin/{signin.id}", status_code=303)
    keys = _failure_keys(rt, request, signin.email)
    wait = await _blocked_for(rt, keys)
    if wait > 0:
        audit.signin_failed(
            rt,
            signin.app_id,
            reason="too_many_failures",
            request=request,
            connector_id=signin.connector_id,
            decisions=[audit.decision("limits", "refused", "signin_failures")],
        )
        error = Message("mfa.error.locked", wait=_wait(wait))
        return _passcode_page(
            rt, request, signin, status=429, error=error, headers={"Retry-After": str(wait)}
        )
    try:
        typed = form.get("passcode", "")
        identity = await rt.email_otp.verify_passcode(signin.id, signin.email, typed, rt.now())
    except ConnectorError as exc:
        await _count_failure(rt, keys)
        used_up = isinstance(exc, InvalidPasscode) and exc.attempts_left == 0
        stopped = used_up or isinstance(exc, TooManyAttempts)
        decisions = [audit.decision("authentication", "failed", exc.code)]
        if stopped:
            decisions.append(audit.decision("signin", "stopped", "too_many_attempts"))
        known = await rt.store.find_user_by_identity(ISSUER, signin.email)
        audit.signin_failed(
            rt,
            signin.app_id,
            reason=exc.code,
            request=request,
            connector_id=signin.connector_id,
            user_id=known["id"] if known else None,
            decisions=decisions,
        )
        if stopped:
            await transaction.finish(rt.store, signin.id)
            return _stopped(request, signin)
        if isinstance(exc, InvalidPasscode):
            error = Message("signin.passcode.wrong", attempts_left=_attempts_left(exc.attempts_left))
        elif isinstance(exc, PasscodeExpired):
            error = Message("signin.passcode.expired")
        else:
            error = Message("signin.passcode.failed")
        return _passcode_page(rt, request, signin, status=400, error=error)
    return await complete_signin(rt, request, signin, identity)


ROUTES = [
    Route("/signin/{signin_id}", email_page, methods=["GET"]),
    Route("/signin/{signin_id}/email", submit_email, methods=["POST"]),
    Route("/signin/{signin_id}/passcode", passcode_page, methods=["GET"]),
    Route("/signin/{signin_id}/passcode", submit_passcode, methods=["POST"]),
    Route("/signin/{signin_id}/resend", resend, methods=["POST"]),
    Route("/signin/{signin_id}/idp", choose_idp, methods=["POST"]),
]
