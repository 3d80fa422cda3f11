"""Client authentication at the token, revocation and introspection endpoints (RFC 6749 2.3).

Supported: ``client_secret_basic``, ``client_secret_post``, ``private_key_jwt`` (RFC 7523,
``gateway.oidc.client_assertion``) and ``none`` (public clients, which must then use PKCE). Exactly
one method per request, and the one the client is registered for; secrets compared in constant time.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from urllib.parse import unquote_plus

from starlette.requests import Request

from gateway.oidc.client_assertion import asserted_client_id, verify_client_assertion
from gateway.oidc.errors import InvalidClient, InvalidRequest
from gateway.runtime import Runtime
from gateway.settings.models import Application

_DUMMY_SECRET = b"\x00" * 32


def _basic_credentials(header: str) -> tuple[str, str]:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        raise InvalidClient("unsupported authorization scheme")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidClient("malformed Basic credentials") from exc
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise InvalidClient("malformed Basic credentials")
    # RFC 6749 2.3.1: both parts are form-urlencoded before being joined.
    return unquote_plus(client_id), unquote_plus(secret)


async def authenticate_client(rt: Runtime, request: Request, params: dict[str, str]) -> Application:
    """The application whose client authenticated this request; ``InvalidClient`` otherwise."""
    header = request.headers.get("authorization")
    body_id, body_secret = params.get("client_id"), params.get("client_secret")
    if "client_assertion" in params or "client_assertion_type" in params:
        if header is not None or body_secret is not None:
            raise InvalidRequest("use one client authentication method, not several")
        return await _by_assertion(rt, request, params)
    settings = rt.settings
    if header is not None:
        if body_secret is not None:
            raise InvalidRequest("use one client authentication method, not several")
        client_id, secret = _basic_credentials(header)
        if body_id is not None and body_id != client_id:
            raise InvalidRequest("client_id does not match the authenticated client")
        method, presented = "client_secret_basic", secret
    elif body_secret is not None:
        method, client_id, presented = "client_secret_post", body_id or "", body_secret
    else:
        method, client_id, presented = "none", body_id or "", None
    if not client_id:
        raise InvalidClient("client authentication failed")
    app = settings.client(client_id)
    registered = app.oidc if app else None
    expected = registered.client_secret.encode() if registered and registered.client_secret else _DUMMY_SECRET
    secret_ok = presented is not None and hmac.compare_digest(presented.encode(), expected)
    if app is None or registered is None:
        raise InvalidClient("client authentication failed")
    if registered.is_public:
        if method != "none":
            raise InvalidClient("this client is public and has no secret")
        return app
    allowed = (
        (registered.token_endpoint_auth_method,)
        if registered.token_endpoint_auth_method
        else ("client_secret_basic", "client_secret_post")
    )
    if method not in allowed or not secret_ok:
        raise InvalidClient("client authentication failed")
    return app


async def _by_assertion(rt: Runtime, request: Request, params: dict[str, str]) -> Application:
    app = rt.settings.client(asserted_client_id(params))
    if app is None or app.oidc is None or app.oidc.token_endpoint_auth_method != "private_key_jwt":
        raise InvalidClient("client authentication failed")
    await verify_client_assertion(rt, request, app, params)
    return app
