"""``/demo``: a real relying party for newcomers, signing in through this gateway as application ``demo``.

It behaves like any external app: its own state, nonce and PKCE (S256, authlib's helpers),
the code exchanged at the token endpoint over HTTP, and the ID token validated with joserfc
against the JWKS (signature, ``iss``, ``aud``, ``exp``, ``iat``, ``nonce``). Its state lives
in the store behind its own cookie, separate from the gateway's session.
"""

from __future__ import annotations

import secrets
import time
from typing import Any
from urllib.parse import urlencode

import httpx
from authlib.common.security import generate_token
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from gateway.http import BadForm, read_form
from gateway.pages import error_page, render
from gateway.runtime import Runtime

COOKIE = "gw_demo"
PENDING, SIGNED_IN = "demo-pending", "demo-session"
SCOPES = "openid profile email offline_access"
LEEWAY = 60


class DemoError(Exception):
    pass


def _transport(request: Request) -> httpx.AsyncBaseTransport | None:
    """Tests route the demo's calls into the app in-process; a server uses real HTTP."""
    transport: httpx.AsyncBaseTransport | None = getattr(request.app.state, "demo_transport", None)
    return transport


def _demo(rt: Runtime) -> tuple[str, str]:
    app = rt.settings.application("demo")
    assert app is not None and app.oidc is not None
    return app.oidc.client_id, app.oidc.redirect_uris[0]


def _cookie_id(request: Request) -> str | None:
    value = request.cookies.get(COOKIE)
    return value if value and len(value) <= 64 else None


def _set_cookie(rt: Runtime, response: Response, value: str) -> None:
    response.set_cookie(COOKIE, value, path="/demo", httponly=True, samesite="lax", secure=rt.secure_cookies)


async def home(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    cookie = _cookie_id(request)
    signed_in = await rt.store.get(SIGNED_IN, cookie) if cookie else None
    return render(
        request,
        "demo.html",
        {
            "signed_in": signed_in,
            "error": request.query_params.get("error"),
            "error_description": request.query_params.get("error_description"),
        },
    )


async def login(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    client_id, redirect_uri = _demo(rt)
    state, nonce, verifier = generate_token(32), generate_token(32), generate_token(64)
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": SCOPES,
        "state": state,
        "nonce": nonce,
        "code_challenge": create_s256_code_challenge(verifier),
        "code_challenge_method": "S256",
    }
    url = f"{rt.settings.issuer}/oauth2/authorize?{urlencode(query)}"
    pending = secrets.token_urlsafe(24)
    await rt.store.put(PENDING, pending, {"state": state, "nonce": nonce, "verifier": verifier}, 1800)
    response = RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})
    _set_cookie(rt, response, pending)
    return response


async def callback(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    cookie = _cookie_id(request)
    pending = await rt.store.consume(PENDING, cookie) if cookie else None
    if pending is None or not pending.first:
        return error_page(request, "Demo: no sign-in in progress", "Start again at /demo.", status=400)
    params = request.query_params
    if not secrets.compare_digest(params.get("state", ""), pending.payload["state"]):
        return error_page(
            request, "Demo: state mismatch", "The response does not belong to this sign-in.", status=400
        )
    if params.get("iss") != rt.settings.issuer:
        return error_page(
            request, "Demo: issuer mismatch", "The response names another issuer (RFC 9207).", status=400
        )
    if "error" in params:
        query = urlencode(
            {"error": params["error"], "error_description": params.get("error_description", "")}
        )
        return RedirectResponse(f"/demo?{query}", status_code=303)
    try:
        tokens = await _exchange(rt, request, params.get("code", ""), pending.payload["verifier"])
        claims = await _validate_id_token(rt, request, tokens["id_token"], pending.payload["nonce"])
    except DemoError as exc:
        return error_page(request, "Demo: sign-in failed", str(exc), status=502)
    session = secrets.token_urlsafe(24)
    await rt.store.put(SIGNED_IN, session, {"claims": claims, "id_token": tokens["id_token"]}, 3600)
    response = RedirectResponse("/demo", status_code=303, headers={"Cache-Control": "no-store"})
    _set_cookie(rt, response, session)
    return response


async def _exchange(rt: Runtime, request: Request, code: str, verifier: str) -> dict[str, Any]:
    client_id, redirect_uri = _demo(rt)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "client_id": client_id,
        "code_verifier": verifier,
    }
    try:
        async with httpx.AsyncClient(transport=_transport(request), timeout=10) as http:
            response = await http.post(f"{rt.settings.issuer}/oauth2/token", data=form)
        token: dict[str, Any] = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise DemoError(f"the token endpoint could not be reached: {exc}") from exc
    if response.status_code != 200:
        raise DemoError(f"the code exchange failed: {token.get('error')}: {token.get('error_description')}")
    if "id_token" not in token:
        raise DemoError("the token response has no id_token")
    return token


async def _validate_id_token(rt: Runtime, request: Request, id_token: str, nonce: str) -> dict[str, Any]:
    client_id, _ = _demo(rt)
    try:
        async with httpx.AsyncClient(transport=_transport(request), timeout=10) as http:
            response = await http.get(f"{rt.settings.issuer}/oauth2/jwks")
        keys = KeySet.import_key_set(response.json())
        decoded = jwt.decode(id_token, keys, algorithms=["ES256", "RS256"])
        jwt.JWTClaimsRegistry(
            leeway=LEEWAY,
            iss={"essential": True, "value": rt.settings.issuer},
            aud={"essential": True, "value": client_id},
            nonce={"essential": True, "value": nonce},
            exp={"essential": True},
            iat={"essential": True},
            sub={"essential": True},
        ).validate(decoded.claims)
    except (JoseError, ValueError, httpx.HTTPError) as exc:
        raise DemoError(f"the ID token is not valid: {exc}") from exc
    if decoded.claims["iat"] > time.time() + LEEWAY:
        raise DemoError("the ID token was issued in the future")
    return dict(decoded.claims)


async def logout(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    try:
        await read_form(request)
    except BadForm as exc:
        return error_page(request, "Invalid request", str(exc), status=400)
    cookie = _cookie_id(request)
    signed_in = await rt.store.get(SIGNED_IN, cookie) if cookie else None
    if cookie:
        await rt.store.delete(SIGNED_IN, cookie)
    target = "/demo"
    if signed_in is not None:
        query = urlencode(
            {"id_token_hint": signed_in["id_token"], "post_logout_redirect_uri": f"{rt.settings.issuer}/demo"}
        )
        target = f"{rt.settings.issuer}/oauth2/logout?{query}"
    response = RedirectResponse(target, status_code=303, headers={"Cache-Control": "no-store"})
    response.delete_cookie(COOKIE, path="/demo")
    return response


ROUTES = [
    Route("/demo", home, methods=["GET"]),
    Route("/demo/login", login, methods=["GET"]),
    Route("/demo/callback", callback, methods=["GET"]),
    Route("/demo/logout", logout, methods=["POST"]),
]
