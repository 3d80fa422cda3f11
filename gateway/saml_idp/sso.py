"""``/saml2/sso``: a SAML app's AuthnRequest enters the same sign-in as an OIDC authorization request.

The request is checked first (``gateway.saml_idp.request``: known SP, registered ACS, signature,
replay); a bad one gets an error page and nothing is sent anywhere. A good one becomes a sign-in
transaction with ``protocol: saml``: the SSO session may answer it at once (policies evaluated
as for OIDC), or the guest signs in, and the policy step ends it with a POSTed assertion instead
of a code (``gateway.signin.policy_step``). ``ForceAuthn`` is ``prompt=login``; a
``RequestedAuthnContext`` naming an MFA class asks for MFA as OIDC ``acr_values`` do.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway import audit
from gateway.oidc.claims import ACR_MULTI_FACTOR
from gateway.pages import error_page
from gateway.runtime import Runtime
from gateway.saml_idp.request import SamlRequest, SamlRequestError, idp_initiated, read_authn_request
from gateway.saml_idp.response import error_response
from gateway.signin import policy_step, repost, transaction


async def sso(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    if request.method == "POST":
        # The HTTP-POST binding arrives cross-site, without our SameSite=Lax cookies (the browser
        # binding, the SSO session): re-POST it from our origin first (gateway.signin.repost).
        params = await _posted(request)
        if isinstance(params, Response):
            return params
        if repost.needs_repost(rt, request, params):
            return await repost.repost_page(rt, request, params, None)
    try:
        app_id = request.query_params.get("app") if request.method == "GET" else None
        if app_id is not None and "SAMLRequest" not in request.query_params:
            saml = idp_initiated(rt, app_id)
        else:
            saml = await read_authn_request(rt, request)
    except SamlRequestError as refused:
        audit.signin_failed(
            rt,
            None,
            reason=refused.reason,
            request=request,
            decisions=[audit.decision("saml_request", "refused", refused.reason)],
        )
        return error_page(request, "This sign-in request was refused", refused.message, status=400)
    return await _resume_or_start(rt, request, saml)


async def _resume_or_start(rt: Runtime, request: Request, saml: SamlRequest) -> Response:
    now = rt.now()
    browser_id = rt.browser.browser_id(request)
    new_browser = browser_id is None
    if browser_id is None:
        browser_id = rt.browser.new_browser_id()
    signin = transaction.SignIn(
        id=transaction.new_id(),
        app_id=saml.app_id,
        client_id="",
        redirect_uri=saml.acs_url,
        scopes=[],
        browser=rt.browser.binding(browser_id),
        created_at=now,
        prompt=["login"] if saml.force_authn else [],
        acr_values=[ACR_MULTI_FACTOR] if saml.requested_mfa else [],
        protocol="saml",
        saml=saml.to_json(),
    )
    response: Response | None = None
    session = None if saml.force_authn else await rt.sessions.current(request, now)
    if session is not None:
        user = await rt.store.get_user(session.user_id)
        if user is not None and user.get("accountEnabled", True):
            response = await policy_step.for_session(
                rt, request, signin, session, user, passive=saml.is_passive
            )
            if response is None:
                signin.prompt = sorted({*signin.prompt, "login"})
    if response is None and saml.is_passive:  # the SP asked for no interaction (SAML Core 3.4.1)
        return await error_response(rt, request, saml, "NoPassive", "The user must sign in.")
    if response is None:
        from gateway.signin.routes import first_page  # late: the sign-in pages import the policy step

        response = await first_page(rt, request, signin, browser_id=browser_id, saved=False)
    if new_browser:
        rt.browser.set_cookie(response, browser_id)
    return response


async def _posted(request: Request) -> dict[str, str] | Response:
    """The POSTed fields, read once and kept for the request parser (Starlette replays a read body)."""
    length = request.headers.get("content-length")
    if length is None or not length.isdigit() or int(length) > repost.CALLBACK_FORM_BYTES:
        return error_page(request, "Invalid request", "The request body is missing or too large.", status=413)
    if request.headers.get("content-type", "").split(";", 1)[0].strip().lower() != FORM:
        return error_page(request, "Invalid request", "The body must be a form.", status=400)
    try:
        pairs = parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True, max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        return error_page(request, "Invalid request", "The body is not a valid form.", status=400)
    return dict(pairs)


FORM = "application/x-www-form-urlencoded"

ROUTES = [Route("/saml2/sso", sso, methods=["GET", "POST"])]
