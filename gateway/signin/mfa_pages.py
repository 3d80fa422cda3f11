"""The pages the policy step sends a user to: MFA here with TOTP, and terms of use.

``/signin/{id}/mfa`` registers an authenticator app (QR code and the secret as text, the secret
kept sealed for the sign-in) when the user has no TOTP method yet, and otherwise asks for a code.
``/signin/{id}/terms`` asks the user to accept each agreement the policies require, recording
``termsOfUseAcceptances: {<id>: {"version", "acceptedDateTime"}}`` on the user. After either,
``gateway.signin.policy_step.resume`` decides again and continues.

Each page answers only a live sign-in of this browser whose policy step asked for it (``mfa`` /
``terms:<id>`` in ``required``); every POST carries the sign-in's CSRF token. A refused code —
wrong (400), reused (400) or one attempt too many (429 with ``Retry-After``) — is audited with its
reason code (``gateway.mfa.methods.REASONS``) and changes nothing but the attempt count.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from gateway import audit
from gateway.directory.users import iso
from gateway.http import origin
from gateway.i18n import Joined, Message
from gateway.mfa import methods, qr
from gateway.pages import error_page, render
from gateway.runtime import Runtime
from gateway.settings.conditional_access import Agreement
from gateway.signin import transaction
from gateway.signin.forms import checked_form
from gateway.signin.policy_step import resume
from gateway.signin.routes import EXPIRED, EXPIRED_TITLE, WRONG_BROWSER, WRONG_BROWSER_TITLE
from gateway.signin.transaction import SignIn

TERMS_PREFIX = "terms:"
ACCEPTANCES_KEY = "termsOfUseAcceptances"
NOT_PENDING = Message("error.not_pending.detail")
INVALID_CODE = Message("mfa.error.invalid")
REUSED_CODE = Message("mfa.error.reused")
NO_STORE = {"Cache-Control": "no-store"}

Loaded = tuple[Runtime, SignIn, dict[str, Any]]


def _seconds_left(rt: Runtime, signin: SignIn) -> int:
    return signin.created_at + rt.settings.tokens.signin_seconds - rt.now()


def _needs_mfa(signin: SignIn) -> bool:
    return "mfa" in signin.required


def _needs_terms(signin: SignIn) -> bool:
    return any(item.startswith(TERMS_PREFIX) for item in signin.required)


async def _load(request: Request, pending: Callable[[SignIn], bool]) -> Loaded | Response:
    """The live sign-in of this browser, waiting for this page, and its user (a user deleted or
    disabled meanwhile: the policy step refuses the sign-in)."""
    rt: Runtime = request.app.state.runtime
    signin = await transaction.load(rt.store, request.path_params["signin_id"])
    if signin is None or _seconds_left(rt, signin) <= 0:
        return error_page(request, EXPIRED_TITLE, EXPIRED, status=400)
    locales = signin.ui_locales
    if not rt.browser.matches(signin.browser, request):
        return error_page(request, WRONG_BROWSER_TITLE, WRONG_BROWSER, status=403, ui_locales=locales)
    if signin.policy_user_id is None or not pending(signin):
        title = Message("error.not_pending.title")
        return error_page(request, title, NOT_PENDING, status=400, ui_locales=locales)
    user = await rt.store.get_user(signin.policy_user_id)
    if user is None or not user.get("accountEnabled", True):
        return await resume(rt, request, signin)
    return rt, signin, user


async def _load_post(
    request: Request, pending: Callable[[SignIn], bool]
) -> tuple[Loaded, dict[str, str]] | Response:
    loaded = await _load(request, pending)
    if isinstance(loaded, Response):
        return loaded
    form = await checked_form(loaded[0], request, loaded[1].id, loaded[1].ui_locales)
    if isinstance(form, Response):
        return form
    return loaded, form


def _page(
    rt: Runtime,
    request: Request,
    signin: SignIn,
    template: str,
    context: dict[str, Any],
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    browser_id = rt.browser.browser_id(request)
    assert browser_id is not None  # _load checked the browser binding
    app = rt.settings.application(signin.app_id)
    context.update(
        signin=signin,
        csrf=rt.browser.csrf_token(signin.id, browser_id),
        app_name=app.name if app is not None else rt.settings.tenant.name,
    )
    return render(
        request,
        template,
        context,
        status=status,
        headers=headers,
        form_action=origin(signin.redirect_uri),
        ui_locales=signin.ui_locales,
    )


# -- MFA -----------------------------------------------------------------------------------------


def _account(user: dict[str, Any], signin: SignIn) -> str:
    """The account name the authenticator app shows: the user's mail."""
    for candidate in (user.get("mail"), user.get("userPrincipalName"), signin.email):
        if isinstance(candidate, str) and candidate:
            return candidate
    return str(user["id"])


async def _mfa_page(
    rt: Runtime,
    request: Request,
    signin: SignIn,
    user: dict[str, Any],
    *,
    error: Message | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    """The code form: with the QR code and the secret while the user has no method yet."""
    context: dict[str, Any] = {"error": error}
    if methods.has_method(user):
        return _page(rt, request, signin, "mfa_verify.html", context, status=status, headers=headers)
    ttl = max(_seconds_left(rt, signin), 1)
    secret = await methods.enrolment_secret(rt.store, rt.box, signin.id, str(user["id"]), ttl)
    uri = qr.otpauth_uri(secret, issuer=rt.settings.tenant.name, account=_account(user, signin))
    context.update(
        qr_svg=Markup(qr.qr_svg(uri)),  # noqa: S704 - segno's own markup, no input text in it
        secret=qr.grouped(secret),
        otpauth_uri=uri,
        account=_account(user, signin),
    )
    return _page(rt, request, signin, "mfa_register.html", context, status=status, headers=headers)


def _wait(seconds: int) -> Message:
    """How long to wait, rounded up (the page never promises an attempt before one is free)."""
    unit, count = ("second", seconds) if seconds < 60 else ("minute", math.ceil(seconds / 60))
    return Message(f"duration.{unit}_{'one' if count == 1 else 'other'}", count=count)


async def mfa_page(request: Request) -> Response:
    loaded = await _load(request, _needs_mfa)
    if isinstance(loaded, Response):
        return loaded
    rt, signin, user = loaded
    return await _mfa_page(rt, request, signin, user)


async def submit_mfa(request: Request) -> Response:
    posted = await _load_post(request, _needs_mfa)
    if isinstance(posted, Response):
        return posted
    (rt, signin, user), form = posted
    code = form.get("code", "")[:64]
    registering = not methods.has_method(user)
    if registering:
        result = await methods.register(
            rt.store, rt.box, user_id=str(user["id"]), signin_id=signin.id, code=code, now=rt.now()
        )
    else:
        result = await methods.verify(rt.store, rt.box, user, code, rt.now())
    if result.outcome == "accepted":
        signin.local_mfa_at = rt.now()
        passed = "mfa_registered" if registering else "mfa_verified"
        signin.decisions = [*signin.decisions, audit.decision("mfa", "passed", passed)]
        return await resume(rt, request, signin)
    if result.outcome == "stale":  # the offer expired, or a method was registered meanwhile
        return RedirectResponse(f"/signin/{signin.id}/mfa", status_code=303, headers=NO_STORE)
    reason = result.reason
    assert reason is not None
    locked = result.outcome == "locked"
    audit.signin_failed(
        rt,
        signin.app_id or None,
        reason=reason,
        request=request,
        connector_id=signin.connector_id,
        user_id=str(user["id"]),
        decisions=[*signin.decisions, audit.decision("mfa", "refused" if locked else "failed", reason)],
    )
    if locked:
        wait = result.retry_after
        error = Message("mfa.error.locked", wait=_wait(wait))
        return await _mfa_page(
            rt, request, signin, user, error=error, status=429, headers={"Retry-After": str(wait)}
        )
    error = REUSED_CODE if result.outcome == "reused" else INVALID_CODE
    return await _mfa_page(rt, request, signin, user, error=error, status=400)


# -- terms of use --------------------------------------------------------------------------------


def _agreements(rt: Runtime, signin: SignIn) -> list[Agreement]:
    """The configured agreements the policy step asked for, in configuration order."""
    wanted = {item[len(TERMS_PREFIX) :] for item in signin.required if item.startswith(TERMS_PREFIX)}
    return [agreement for agreement in rt.settings.terms_of_use if agreement.id in wanted]


def _names(agreements: list[Agreement]) -> Joined:
    return Joined([agreement.display_name for agreement in agreements])


def _terms_page(
    rt: Runtime,
    request: Request,
    signin: SignIn,
    agreements: list[Agreement],
    *,
    error: Message | None = None,
) -> Response:
    context: dict[str, Any] = {"agreements": agreements, "error": error}
    return _page(rt, request, signin, "terms_of_use.html", context, status=400 if error else 200)


async def terms_page(request: Request) -> Response:
    loaded = await _load(request, _needs_terms)
    if isinstance(loaded, Response):
        return loaded
    rt, signin, _ = loaded
    if _needs_mfa(signin):  # MFA comes first
        return RedirectResponse(f"/signin/{signin.id}/mfa", status_code=303, headers=NO_STORE)
    agreements = _agreements(rt, signin)
    if not agreements:  # removed from the configuration since: decide again
        return await resume(rt, request, signin)
    return _terms_page(rt, request, signin, agreements)


async def submit_terms(request: Request) -> Response:
    posted = await _load_post(request, _needs_terms)
    if isinstance(posted, Response):
        return posted
    (rt, signin, user), form = posted
    if _needs_mfa(signin):
        return RedirectResponse(f"/signin/{signin.id}/mfa", status_code=303, headers=NO_STORE)
    agreements = _agreements(rt, signin)
    if not agreements:
        return await resume(rt, request, signin)
    if form.get("decision") != "accept":
        await transaction.finish(rt.store, signin.id)
        audit.signin_failed(
            rt,
            signin.app_id or None,
            reason="terms_declined",
            request=request,
            connector_id=signin.connector_id,
            user_id=str(user["id"]),
            decisions=[*signin.decisions, audit.decision("terms_of_use", "declined", "terms_declined")],
        )
        message = Message("terms.error.declined", names=_names(agreements))
        title = Message("terms.declined.title")
        return error_page(request, title, message, status=403, ui_locales=signin.ui_locales)
    missing = [a for a in agreements if not form.get(f"accept_{a.id}")]
    if missing:
        return _terms_page(
            rt, request, signin, agreements, error=Message("terms.error.required", names=_names(missing))
        )
    outdated = [a for a in agreements if form.get(f"accept_{a.id}") != a.version]
    if outdated:
        return _terms_page(
            rt, request, signin, agreements, error=Message("terms.error.changed", names=_names(outdated))
        )
    await _record_acceptance(rt, str(user["id"]), agreements)
    signin.decisions = [*signin.decisions, audit.decision("terms_of_use", "accepted", "terms_accepted")]
    return await resume(rt, request, signin)


async def _record_acceptance(rt: Runtime, user_id: str, agreements: list[Agreement]) -> None:
    """``termsOfUseAcceptances[<id>] = {"version", "acceptedDateTime"}`` on the user as it is now."""
    user = await rt.store.get_user(user_id)
    if user is None:  # deleted meanwhile: the policy step refuses the sign-in
        return
    stored = user.get(ACCEPTANCES_KEY)
    acceptances = dict(stored) if isinstance(stored, dict) else {}
    now = iso(rt.now())
    for agreement in agreements:
        acceptances[agreement.id] = {"version": agreement.version, "acceptedDateTime": now}
    await rt.store.update_user({**user, ACCEPTANCES_KEY: acceptances})


ROUTES = [
    Route("/signin/{signin_id}/mfa", mfa_page, methods=["GET"]),
    Route("/signin/{signin_id}/mfa", submit_mfa, methods=["POST"]),
    Route("/signin/{signin_id}/terms", terms_page, methods=["GET"]),
    Route("/signin/{signin_id}/terms", submit_terms, methods=["POST"]),
]
