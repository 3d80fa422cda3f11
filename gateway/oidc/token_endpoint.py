"""The token endpoint (RFC 6749 3.2): authorization_code (with PKCE, RFC 7636), refresh_token and
client_credentials grants.

Each authenticated client may make ``limits.token_requests_per_client_per_minute`` requests a minute
(a counter in the shared store, so across replicas); past that the answer is 429 with ``Retry-After``
and ``{"error": "invalid_request", "error_description": "too many requests; ..."}`` (RFC 6749 has no
error code for it; ``invalid_request`` is its generic one). CORS for single-page apps:
``gateway.oidc.cors``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.directory.revocation import sessions_valid_from
from gateway.http import BadForm, client_ip, json_response, read_form, single_values, write_behind
from gateway.oidc import bearer, codes, cors, grants
from gateway.oidc.client_auth import authenticate_client
from gateway.oidc.errors import (
    InvalidClient,
    InvalidGrant,
    InvalidRequest,
    InvalidScope,
    OAuthError,
    UnsupportedGrantType,
)
from gateway.oidc.minting import Authentication, mint, mint_for_app
from gateway.runtime import Runtime
from gateway.settings.models import Application

_VERIFIER = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")
TOKEN_REQUESTS_KIND = "token-requests"
Redemption = tuple[codes.Redeemed | None, ...]
"""What ``_over_limit`` redeemed with its count: ``(found,)``, or ``()`` when it redeemed nothing."""
CHALLENGE = {"WWW-Authenticate": 'Basic realm="token", charset="UTF-8"'}
EXPOSE = "Retry-After, WWW-Authenticate"


@write_behind  # the tokens minted and the revocation check after them share one transaction
async def token(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    params: dict[str, str] = {}
    client: list[Application] = []  # the authenticated client, once known (for CORS)
    try:
        response = await _answer(rt, request, params, client)
    except InvalidClient as exc:
        response = json_response(exc.body(), exc.status, CHALLENGE)
    except OAuthError as exc:
        response = json_response(exc.body(), exc.status)
    app = client[0] if client else rt.settings.client(params.get("client_id", ""))
    return cors.allow(response, request, app, expose=EXPOSE)


async def _answer(
    rt: Runtime, request: Request, params: dict[str, str], client: list[Application]
) -> Response:
    """The answer to a token request. ``params`` gets the request's parameters as soon as they are
    read and ``client`` the authenticated client, so the caller has them when this raises."""
    try:
        form = await read_form(request)
    except BadForm as exc:
        raise InvalidRequest(str(exc)) from exc
    values, repeated = single_values(form.multi_items())
    params.update(values)
    if repeated:
        raise InvalidRequest(f"the {repeated} parameter is repeated")
    app = await authenticate_client(rt, request, params)
    client.append(app)
    grant_type = params.get("grant_type")
    code, redirect_uri = params.get("code"), params.get("redirect_uri")
    # A code grant that gets as far as redeeming its code has it redeemed with the count.
    redeem = grant_type == "authorization_code" and bool(redirect_uri) and codes.well_formed(code)
    limited, redeemed = await _over_limit(rt, request, app, code if redeem else None)
    if limited is not None:
        return limited
    if grant_type == "authorization_code":
        body = await _authorization_code(rt, app, params, redeemed)
    elif grant_type == "refresh_token":
        body = await _refresh_token(rt, app, params)
    elif grant_type == "client_credentials":
        body = await mint_for_app(rt, app, params.get("scope"))
    elif not grant_type:
        raise InvalidRequest("grant_type is required")
    else:
        raise UnsupportedGrantType(f"grant_type {grant_type} is not supported")
    return json_response(body)


async def _over_limit(
    rt: Runtime, request: Request, app: Application, code: str | None
) -> tuple[Response | None, Redemption]:
    """Count one request of ``app``'s client in this minute; the 429 answer when past the limit.
    A public client is "authenticated" by naming it, so anyone could spend its allowance and lock out
    every user of the app: its requests are counted per client address instead.

    With a ``code`` (a code grant that ``_authorization_code`` would redeem next: ``code`` well
    formed, ``redirect_uri`` given) the code is redeemed in the same store call as the count, only
    within the limit, as the two steps would (one SQLite transaction instead of two); the second
    value is then a 1-tuple of what the redemption found, else ``()``."""
    assert app.oidc is not None
    key = app.oidc.client_id
    if app.oidc.is_public:
        key = f"{key} {rt.box.keyed_hash('ip', client_ip(request))}"
    limit = rt.settings.limits.token_requests_per_client_per_minute
    redeemed: Redemption = ()
    if code is None:
        counter = await rt.store.incr(TOKEN_REQUESTS_KIND, key, 60)
    else:
        counter, found = await codes.redeem_counted(rt.store, code, TOKEN_REQUESTS_KIND, key, 60, limit)
        redeemed = (found,)
    if counter.value <= limit:
        return None, redeemed
    wait = max(counter.expires_in, 1)
    body = {"error": "invalid_request", "error_description": f"too many requests; try again in {wait} s"}
    return json_response(body, 429, {"Retry-After": str(wait)}), ()


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()


async def _active_user(rt: Runtime, user_id: str, auth_time: int | None = None) -> dict[str, Any]:
    user = await rt.store.get_user(user_id)
    if user is None or not user.get("accountEnabled", True):
        raise InvalidGrant("the user is no longer active")
    if auth_time is not None and auth_time < sessions_valid_from(user):
        raise InvalidGrant("the user's sign-in sessions were revoked")
    return user


async def _authorization_code(
    rt: Runtime, app: Application, params: dict[str, str], counted: Redemption = ()
) -> dict[str, Any]:
    """``counted``: the redemption ``_over_limit`` made with its count (``()`` when it made none)."""
    assert app.oidc is not None
    code, redirect_uri, verifier = params.get("code"), params.get("redirect_uri"), params.get("code_verifier")
    if not code:
        raise InvalidRequest("code is required")
    if not redirect_uri:
        raise InvalidRequest("redirect_uri is required")
    redeemed = counted[0] if counted else await codes.redeem(rt.store, code)
    if redeemed is None:
        raise InvalidGrant("the code is invalid or expired")
    grant, first = redeemed
    if not first:
        # RFC 6749 4.1.2: a reused code revokes every token issued from it.
        await grants.revoke(rt.store, grant.grant_id)
        raise InvalidGrant("the code was already used")
    if grant.client_id != app.oidc.client_id:
        await grants.revoke(rt.store, grant.grant_id)
        raise InvalidGrant("the code was issued to another client")
    if grant.redirect_uri != redirect_uri:
        raise InvalidGrant("redirect_uri does not match the authorization request")
    if grant.code_challenge is not None:
        if verifier is None or not _VERIFIER.match(verifier):
            raise InvalidGrant("a valid code_verifier is required")
        if not hmac.compare_digest(s256(verifier), grant.code_challenge):
            raise InvalidGrant("code_verifier does not match the code_challenge")
    elif verifier is not None:
        raise InvalidGrant("code_verifier sent, but the authorization request had no code_challenge")
    user = await _active_user(rt, grant.user_id)
    authn = Authentication(
        grant.user_id, grant.sid, grant.auth_time, grant.amr, grant.acr, grant.idp, grant.auth_claims
    )
    return await mint(rt, app, user, authn, scopes=grant.scopes, grant_id=grant.grant_id, nonce=grant.nonce)


def _refresh_scopes(original: list[str], requested: str | None) -> list[str]:
    """RFC 6749 6: the requested scope may narrow the grant's scope, never widen it."""
    if requested is None:
        return original
    asked = requested.split()
    if not set(asked) <= set(original):
        raise InvalidScope("the requested scope exceeds the original grant")
    return [s for s in original if s in asked]


async def _refresh_token(rt: Runtime, app: Application, params: dict[str, str]) -> dict[str, Any]:
    assert app.oidc is not None
    presented = params.get("refresh_token")
    if not presented:
        raise InvalidRequest("refresh_token is required")
    # A request that is wrong in itself (scope) is refused before the token is used up, so it
    # changes nothing; only a live token of this client gets that far.
    current = await bearer.find_refresh(rt.store, presented)
    if current is None:
        raise InvalidGrant("the refresh token is invalid or expired")
    if bearer.is_live_refresh(current, rt.now()) and current["client_id"] == app.oidc.client_id:
        _refresh_scopes(current["scopes"], params.get("scope"))
    found = await bearer.consume_refresh(rt.store, presented)
    if found is None:
        raise InvalidGrant("the refresh token is invalid or expired")
    record = found.payload
    if not found.first or record.get("rotated"):
        # Rotation reuse detection (RFC 9700 4.14.2): the whole family is revoked.
        await grants.revoke(rt.store, record["grant_id"])
        raise InvalidGrant("the refresh token was already used; its grant is revoked")
    if record["client_id"] != app.oidc.client_id:
        await grants.revoke(rt.store, record["grant_id"])
        raise InvalidGrant("the refresh token was issued to another client")
    now = rt.now()
    if record["exp"] <= now:
        raise InvalidGrant("the refresh token is invalid or expired")
    original: list[str] = record["scopes"]
    scopes = _refresh_scopes(original, params.get("scope"))
    await bearer.mark_rotated(rt.store, presented, record, now)
    authn = Authentication(**record["authn"])
    user = await _active_user(rt, authn.user_id, authn.auth_time)
    return await mint(
        rt,
        app,
        user,
        authn,
        scopes=scopes,
        grant_id=record["grant_id"],
        nonce=None,
        refresh_scopes=original,
        refresh_absolute_expiry=record["absolute_expiry"],
    )
