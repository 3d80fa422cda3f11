"""Sign-in through an upstream IdP: send the browser there, take its answer at ``/callback/{connector}``.

The upstream ``state`` (SAML ``RelayState``, WS-Fed ``wctx``) is ours: 256 random bits stored
with the sign-in id and the connector, consumed once, and valid only in the browser that started
the sign-in and only at the callback URL of the connector it was issued for (RFC 9700 4.4 mix-up
defence, together with RFC 9207 ``iss`` checked by the connector). Answers POSTed from another
site are first re-POSTed from our own origin, so the browser binding cookie comes along
(``gateway.signin.repost``). Connectors with metadata publish it at ``/callback/{id}/metadata``.
"""

from __future__ import annotations

import secrets

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from gateway import audit
from gateway.http import BadForm, request_parameters
from gateway.i18n import Message
from gateway.pages import error_page, render
from gateway.runtime import Runtime
from gateway.signin import repost, transaction
from gateway.signin.complete import complete_signin
from gateway.signin.transaction import SignIn
from idp_connectors.base import (
    BeginRequest,
    Callback,
    ConnectorError,
    PublishesMetadata,
    RedirectConnector,
    state_parameter,
)

UPSTREAM_STATE = repost.UPSTREAM_STATE
EXPIRED_TITLE = Message("error.expired.title")
INVALID_RESPONSE = Message("error.invalid_response.title")
START_AGAIN = Message("error.expired.start_again")
WRONG_BROWSER_TITLE = Message("error.wrong_browser.title")


def callback_url(rt: Runtime, connector_id: str) -> str:
    return f"{rt.settings.issuer}/callback/{connector_id}"


async def start_upstream(
    rt: Runtime,
    request: Request,
    signin: SignIn,
    connector_id: str,
    *,
    via_page: bool = False,
    changed: bool = False,
    step_up: bool = False,
    step_up_acr_values: tuple[str, ...] = (),
) -> Response:
    """Begin the upstream sign-in and send the browser to the home IdP.

    ``via_page``: answer with a page that moves on by itself (meta refresh, and a link) instead
    of a redirect. A redirect that ends a form submission must stay within the page's CSP
    ``form-action`` sources, and an upstream's authorization endpoint is known only once
    discovered; a page ends the form navigation, so the next one is free of that rule.

    ``changed``: the caller altered ``signin`` since it was loaded. The transaction is saved only
    then or when the connector differs from the one it already names (one write fewer per
    request that merely continues a choice made earlier).

    ``step_up``: the policy step sends the user home again (MFA, a fresh sign-in): always with
    ``prompt=login``, and ``step_up_acr_values`` (when any) replace the app's ``acr_values``.
    """
    connector = rt.connectors[connector_id]
    assert isinstance(connector, RedirectConnector)
    remaining = signin.created_at + rt.settings.tokens.signin_seconds - rt.now()
    if remaining <= 0:
        return error_page(request, EXPIRED_TITLE, START_AGAIN, status=400, ui_locales=signin.ui_locales)
    state = secrets.token_urlsafe(32)
    try:
        redirect = await connector.begin(
            BeginRequest(
                state=state,
                callback_url=callback_url(rt, connector_id),
                login_hint=signin.email or signin.login_hint,
                prompt="login" if step_up or "login" in signin.prompt else None,
                max_age=signin.max_age,
                acr_values=step_up_acr_values or tuple(signin.acr_values),
            )
        )
    except ConnectorError as exc:
        audit.signin_failed(
            rt,
            signin.app_id,
            reason=exc.code,
            request=request,
            connector_id=connector_id,
            decisions=[audit.decision("upstream", "failed", exc.code)],
        )
        title = Message("error.upstream_unavailable.title")
        return error_page(request, title, str(exc), status=502, ui_locales=signin.ui_locales)
    await rt.store.put(
        UPSTREAM_STATE,
        state,
        {"signin_id": signin.id, "connector_id": connector_id, "connector_state": redirect.state},
        remaining,
    )
    if changed or signin.connector_id != connector_id:
        signin.connector_id = connector_id
        await transaction.save(rt.store, signin, remaining)
    if via_page:
        label = _label(rt, connector_id)
        context = {"url": redirect.url, "label": label}
        return render(request, "signin_redirect.html", context, ui_locales=signin.ui_locales)
    return RedirectResponse(redirect.url, status_code=303, headers={"Cache-Control": "no-store"})


def _label(rt: Runtime, connector_id: str) -> str | Message:
    config = next(c for c in rt.settings.connectors if c.id == connector_id)
    return config.display_name or Message("signin.redirect.default_label")


async def upstream_page(request: Request) -> Response:
    """``GET /signin/{id}/upstream``: where the email and button forms lead when a home IdP was chosen."""
    rt: Runtime = request.app.state.runtime
    signin = await transaction.load(rt.store, request.path_params["signin_id"])
    if signin is None:
        return error_page(request, EXPIRED_TITLE, START_AGAIN, status=400)
    if not rt.browser.matches(signin.browser, request):
        return error_page(
            request,
            WRONG_BROWSER_TITLE,
            Message("error.wrong_browser.short"),
            status=403,
            ui_locales=signin.ui_locales,
        )
    if signin.connector_id is None or not isinstance(
        rt.connectors.get(signin.connector_id), RedirectConnector
    ):
        return RedirectResponse(f"/signin/{signin.id}", status_code=303)
    return await start_upstream(rt, request, signin, signin.connector_id, via_page=True)


async def callback(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    connector_id = request.path_params["connector_id"]
    connector = rt.connectors.get(connector_id)
    if not isinstance(connector, RedirectConnector):
        return error_page(
            request,
            Message("error.unknown_idp.title"),
            Message("error.unknown_idp.no_destination"),
            status=404,
        )
    try:
        params, repeated = await request_parameters(request, max_bytes=repost.CALLBACK_FORM_BYTES)
    except BadForm as exc:
        return error_page(request, INVALID_RESPONSE, str(exc), status=400)
    if repeated:
        repeats = Message("error.repeated_parameter", parameter=repeated)
        return error_page(request, INVALID_RESPONSE, repeats, status=400)
    state = params.get(state_parameter(connector))
    if repost.needs_repost(rt, request, params):  # a cross-site POST (SAML ACS, WS-Fed wreply)
        return await repost.repost_page(rt, request, params, state)
    params = repost.without_mark(params)
    found = await rt.store.consume(UPSTREAM_STATE, state) if state and len(state) <= 128 else None
    if found is None or not found.first or found.payload["connector_id"] != connector_id:
        audit.signin_failed(
            rt,
            None,
            reason="invalid_state",
            request=request,
            connector_id=connector_id,
            decisions=[audit.decision("upstream", "refused", "invalid_state")],
        )
        return error_page(
            request, Message("error.not_recognised.title"), Message("error.not_recognised.detail"), status=400
        )
    signin = await transaction.load(rt.store, found.payload["signin_id"])
    if signin is None:
        return error_page(request, EXPIRED_TITLE, START_AGAIN, status=400)
    if not rt.browser.matches(signin.browser, request):
        audit.signin_failed(
            rt,
            signin.app_id,
            reason="browser_mismatch",
            request=request,
            connector_id=connector_id,
            decisions=[audit.decision("upstream", "refused", "browser_mismatch")],
        )
        return error_page(
            request,
            WRONG_BROWSER_TITLE,
            Message("error.wrong_browser.detail"),
            status=403,
            ui_locales=signin.ui_locales,
        )
    try:
        identity = await connector.complete(
            Callback(
                params=params,
                state=found.payload["connector_state"],
                callback_url=callback_url(rt, connector_id),
            )
        )
    except ConnectorError as exc:
        detail = getattr(exc, "detail", None)  # the XML gate's specific rule (users see one generic message)
        audit.signin_failed(
            rt,
            signin.app_id,
            reason=exc.code,
            request=request,
            connector_id=connector_id,
            detail=detail if isinstance(detail, str) else None,
            decisions=[audit.decision("upstream", "failed", exc.code)],
        )
        return error_page(
            request,
            Message("error.upstream_failed.title"),
            Message("error.upstream_failed.detail", reason=str(exc)),
            status=400,
            ui_locales=signin.ui_locales,
        )
    return await complete_signin(rt, request, signin, identity)


async def connector_metadata(request: Request) -> Response:
    """``GET /callback/{connector_id}/metadata``: what the upstream reads about us (SAML SP metadata)."""
    rt: Runtime = request.app.state.runtime
    connector_id = request.path_params["connector_id"]
    connector = rt.connectors.get(connector_id)
    if not isinstance(connector, PublishesMetadata):
        return error_page(
            request, "Not found", "This identity provider publishes no metadata here.", status=404
        )
    body, media_type = connector.metadata(callback_url(rt, connector_id))
    return Response(body, media_type=media_type, headers={"Cache-Control": "public, max-age=3600"})


ROUTES = [
    Route("/callback/{connector_id}", callback, methods=["GET", "POST"]),
    Route("/callback/{connector_id}/metadata", connector_metadata, methods=["GET"]),
    Route("/signin/{signin_id}/upstream", upstream_page, methods=["GET"]),
]
