"""The UserInfo endpoint (OIDC Core 5.3) as an RFC 6750 protected resource.

The access token must come in the Authorization header (GET or POST); a token in a form
body is refused with ``invalid_request``, our documented choice (conformance checklist
``oidcc-userinfo-post-body``). Claims were fixed when the token was minted. CORS for
single-page apps: the token's client's ``allowed_origins`` (``gateway.oidc.cors``).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.http import NO_STORE, json_response
from gateway.oidc import bearer, cors
from gateway.oidc.errors import InsufficientScope, InvalidRequest, InvalidToken, OAuthError
from gateway.runtime import Runtime

EXPOSE = "WWW-Authenticate"


def _challenge(realm: str, exc: OAuthError | None) -> dict[str, str]:
    value = f'Bearer realm="{realm}"'
    if exc is not None:
        value += f', error="{exc.error}", error_description="{exc.description}"'
    return {"WWW-Authenticate": value}


async def userinfo(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    found: list[dict[str, Any]] = []  # the live token's record, once known (for CORS)
    response = await _answer(rt, request, found)
    if not found:
        return cors.allow_any(response, request, rt.settings, expose=EXPOSE)
    return cors.allow(response, request, rt.settings.client(found[0]["client_id"]), expose=EXPOSE)


async def _answer(rt: Runtime, request: Request, found: list[dict[str, Any]]) -> Response:
    realm = rt.settings.issuer
    header = request.headers.get("authorization")
    try:
        scheme, _, token = (header or "").partition(" ")
        if scheme.lower() != "bearer":
            if request.method == "POST" and "form" in request.headers.get("content-type", ""):
                raise InvalidRequest("send the access token in the Authorization header")
            # RFC 6750 3.1: no credentials, or another scheme (Basic) -> a bare challenge, no error code.
            return Response(status_code=401, headers={**_challenge(realm, None), **NO_STORE})
        if not token.strip():
            raise InvalidRequest("the Bearer authorization header has no token")
        record = await bearer.find_access(rt.store, token.strip())
        if record is None or record["exp"] <= rt.now():
            raise InvalidToken("the access token is invalid, expired or revoked")
        found.append(record)
        if "openid" not in record["scopes"]:
            raise InsufficientScope("the access token lacks the openid scope")
        return json_response(record["userinfo"])
    except OAuthError as exc:
        return json_response(exc.body(), exc.status, _challenge(realm, exc))
