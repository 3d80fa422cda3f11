"""RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0) at ``end_session_endpoint``.

A ``post_logout_redirect_uri`` is followed only when the client is identified (by a valid
``id_token_hint`` from this issuer, or ``client_id``) and the URI matches one it registered,
exactly. An invalid hint is an error page: no logout, no redirect. SAML apps the session signed in
to are sent a LogoutRequest first, one after another (``gateway.saml_idp.logout``); OIDC apps get
back-channel logout tokens.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from gateway.http import BadForm, request_parameters
from gateway.oidc.backchannel import notify_logout
from gateway.oidc.responses import redirect_with
from gateway.pages import error_page, render
from gateway.runtime import Runtime
from gateway.tokens.jwt import InvalidToken


def _refused(request: Request, detail: str) -> Response:
    return error_page(request, "Invalid logout request", detail, status=400)


async def logout(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    try:
        params, repeated = await request_parameters(request)
    except BadForm as exc:
        return error_page(request, "Invalid request", str(exc), status=400)
    if repeated:
        return error_page(request, "Invalid request", f"The {repeated} parameter is repeated.", status=400)

    client_id = params.get("client_id")
    hint = params.get("id_token_hint")
    if hint is not None:
        try:
            claims = rt.keys.verify(hint)
        except InvalidToken:
            return _refused(request, "The id_token_hint is not valid.")
        audience = claims.get("aud")
        if claims.get("iss") != rt.settings.issuer or not isinstance(audience, str):
            return _refused(request, "The id_token_hint is not valid.")
        if client_id is not None and client_id != audience:
            return _refused(request, "client_id does not match the id_token_hint.")
        client_id = audience

    target = params.get("post_logout_redirect_uri")
    if target is not None:
        app = rt.settings.client(client_id) if client_id else None
        if app is None or app.oidc is None or target not in app.oidc.post_logout_redirect_uris:
            return _refused(request, "The post_logout_redirect_uri is not registered for this application.")
        response: Response = redirect_with(target, {"state": params.get("state")})
    else:
        response = render(request, "logged_out.html", {})
    session = await rt.sessions.current(request, rt.now())
    if session is not None:  # SAML apps of this session are signed out first (front channel)
        from gateway.saml_idp.logout import end_session_chain  # late: it loads the XML stack

        final_url = response.headers.get("location") if target is not None else None
        chain = await end_session_chain(rt, request, session.user_id, session.sid, final_url)
        response = chain or response
    await rt.sessions.end(request, response)
    if session is not None:
        await notify_logout(rt, session.user_id, session.sid)
    return response
