"""The authorization endpoint (GET and POST): validate, then reuse the SSO session or start a sign-in."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from gateway import audit
from gateway.directory.app_access import app_access
from gateway.http import BadForm, request_parameters
from gateway.oidc import codes, responses
from gateway.oidc.authorize_checks import AUTHORIZE_CHECKS, AuthorizationRequest
from gateway.oidc.claims import pairwise_sub
from gateway.oidc.errors import AccessDenied, InvalidRequest, LoginRequired, OAuthError, UntrustedRedirect
from gateway.pages import error_page
from gateway.runtime import Runtime
from gateway.signin import policy_step, transaction
from gateway.signin.sessions import SsoSession
from gateway.signin.standing import Standing
from gateway.tokens.jwt import InvalidToken


async def authorize(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    try:
        params, repeated = await request_parameters(request)
    except BadForm as exc:
        return error_page(request, "Invalid request", str(exc), status=400)
    if repeated in ("client_id", "redirect_uri"):
        return error_page(request, "Invalid request", f"The {repeated} parameter is repeated.", status=400)
    req = AuthorizationRequest(params=params)
    try:
        for check in AUTHORIZE_CHECKS:
            check(req, rt.settings)
            if repeated and req.trusted:
                raise InvalidRequest(f"the {repeated} parameter is repeated")
        return await _resume_or_start(request, rt, req)
    except UntrustedRedirect as exc:
        return error_page(request, exc.title, exc.detail, status=400)
    except OAuthError as exc:
        audit.signin_failed(
            rt, req.app.id if req.app else None, reason=exc.error, detail=exc.description, request=request
        )
        return responses.error(req.redirect_uri, exc, state=req.state, issuer=rt.settings.issuer)


async def _resume_or_start(request: Request, rt: Runtime, req: AuthorizationRequest) -> Response:
    assert req.app is not None and req.client is not None
    now = rt.now()
    hint_sub = _hint_subject(rt, req)
    session = await rt.sessions.current(request, now)
    browser_id = rt.browser.browser_id(request)
    new_browser = browser_id is None
    if browser_id is None:
        browser_id = rt.browser.new_browser_id()
    signin = _new_signin(rt, req, browser_id, now)
    response: Response | None = None
    if session is not None and _session_satisfies(rt, req, session, hint_sub, now):
        user = await rt.store.get_user(session.user_id)
        if user is not None and user.get("accountEnabled", True):
            # Policies are evaluated at every sign-in, the SSO session's too: it may answer at once,
            # ask for MFA or terms first, or need a fresh sign-in (None).
            response = await policy_step.for_session(
                rt, request, signin, session, user, passive="none" in req.prompt
            )
            if response is None:
                signin.prompt = sorted({*signin.prompt, "login"})
    if response is None:
        if "none" in req.prompt:
            raise LoginRequired("the user must sign in")
        # Answered here rather than by a redirect to ``GET /signin/{id}``: one request fewer per sign-in.
        from gateway.signin.routes import first_page  # imported late: the sign-in pages import this module

        response = await first_page(rt, request, signin, browser_id=browser_id, saved=False)
    if new_browser:
        rt.browser.set_cookie(response, browser_id)
    return response


def _new_signin(rt: Runtime, req: AuthorizationRequest, browser_id: str, now: int) -> transaction.SignIn:
    assert req.app is not None and req.client is not None
    return transaction.SignIn(
        id=transaction.new_id(),
        app_id=req.app.id,
        client_id=req.client.client_id,
        redirect_uri=req.redirect_uri,
        scopes=req.scopes,
        browser=rt.browser.binding(browser_id),
        created_at=now,
        state=req.state,
        nonce=req.nonce,
        code_challenge=req.code_challenge,
        prompt=sorted(req.prompt),
        max_age=req.max_age,
        login_hint=req.login_hint,
        acr_values=list(req.acr_values),
        idp_hint=req.idp_hint,
        domain_hint=req.domain_hint,
        ui_locales=list(req.ui_locales),
    )


def _hint_subject(rt: Runtime, req: AuthorizationRequest) -> str | None:
    if req.id_token_hint is None:
        return None
    try:
        claims = rt.keys.verify(req.id_token_hint)
    except InvalidToken as exc:
        raise InvalidRequest("id_token_hint is not a valid ID token from this issuer") from exc
    if claims.get("iss") != rt.settings.issuer:
        raise InvalidRequest("id_token_hint is not a valid ID token from this issuer")
    sub = claims.get("sub")
    return sub if isinstance(sub, str) else None


def _session_satisfies(
    rt: Runtime, req: AuthorizationRequest, session: SsoSession, hint_sub: str | None, now: int
) -> bool:
    if "login" in req.prompt:
        return False
    # OIDC Core 3.1.2.1: re-authenticate once max_age has elapsed. Times are whole seconds, so
    # ">=" errs towards a fresh sign-in, and max_age=0 always forces one (as prompt=login does).
    if req.max_age is not None and now - session.auth_time >= req.max_age:
        return False
    if hint_sub is not None:
        assert req.app is not None
        return pairwise_sub(rt.pairwise_salt, req.app.id, session.user_id) == hint_sub
    return True


async def respond_with_code(
    rt: Runtime, request: Request, signin: transaction.SignIn, session: SsoSession, *, fresh: bool = False
) -> Response:
    """Mint a code for this session and send the browser back to the client."""
    app = rt.settings.application(signin.app_id)
    if app is not None and app.assignment_required:
        access = await app_access(rt.store, app, session.user_id)
        if not access.assigned:
            audit.signin_failed(
                rt,
                signin.app_id,
                reason="app_assignment_required",
                request=request,
                user_id=session.user_id,
                connector_id=session.connector_id,
                decisions=[audit.decision("application", "refused", "app_assignment_required")],
            )
            denied = AccessDenied("the user is not assigned to this application")
            return responses.error(signin.redirect_uri, denied, state=signin.state, issuer=rt.settings.issuer)
    grant = codes.CodeGrant(
        client_id=signin.client_id,
        app_id=signin.app_id,
        redirect_uri=signin.redirect_uri,
        scopes=signin.scopes,
        user_id=session.user_id,
        sid=session.sid,
        auth_time=session.auth_time,
        amr=session.amr,
        acr=session.acr,
        idp=session.idp,
        grant_id=codes.new_grant_id(),
        nonce=signin.nonce,
        code_challenge=signin.code_challenge,
        auth_claims=Standing.from_json(session.standing).auth_claims() if session.standing else {},
    )
    code = await codes.issue(rt.store, grant, rt.settings.tokens.authorization_code_seconds)
    if not fresh:
        audit.signin_succeeded(
            rt,
            signin.app_id,
            user_id=session.user_id,
            connector_id=session.connector_id,
            request=request,
            decisions=[audit.decision("sso_session", "reused", "session_valid")],
        )
    return responses.success(signin.redirect_uri, code=code, state=signin.state, issuer=rt.settings.issuer)
