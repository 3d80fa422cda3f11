"""A small but real OpenID Provider for tests: discovery, JWKS, /authorize, /token, /userinfo.

``OidcTestIdP(issuer, clients=[...])`` is a Starlette app (``.app``) that signs real ID
tokens with keys generated for it (an RSA key and a P-256 key from the start; P-384 and
Ed25519 on first use; ``rotate()`` replaces one). Use it in-process through
``httpx.ASGITransport`` or ``idp.mount(respx_router)`` (which also names the routes so
tests can count calls), or on loopback with ``serve_on_loopback()`` (uvicorn in a thread)
for browser tests. ``authorize(idp, url)`` plays the browser for the auto-approve mode.

It behaves by default: ``/authorize`` checks the client and redirect URI and requires PKCE
S256, auto-approves ``idp.user`` (or, with ``knobs.interactive``, renders a form with a
"Sign in" button), redirects back with ``code`` + ``state`` (+ ``iss`` when
``knobs.send_iss``); ``/token`` checks client authentication, the single-use code, the
redirect URI and the verifier; ``/userinfo`` wants a Bearer header. ``idp.knobs``
(``Knobs``) makes it misbehave in the ways a relying party must survive.

``RelyingParty(respx_router)`` is the unit-test harness: the ``oidc`` connector wired to
such an IdP, with a shared manual clock and an in-memory state that must stay empty.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import html
import json
import secrets
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal
from urllib.parse import unquote_plus, urlencode, urlsplit

import httpx
import respx
import uvicorn
from joserfc import jws
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, Key, OKPKey, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from idp_connectors.base import BeginRequest, Callback, ConnectorContext, Redirect, UpstreamIdentity
from idp_connectors.oidc.config import OidcConfig
from idp_connectors.oidc.connector import OidcConnector
from tests.support.memory_state import ManualClock, MemoryState

REMOVE = object()
"""A value for ``Knobs.id_token_claims`` / ``userinfo_claims`` that deletes the claim."""

KeyKind = Literal["RSA", "P-256", "P-384", "Ed25519"]
AuthMethod = Literal["client_secret_basic", "client_secret_post", "none"]


def key_kind(alg: str) -> KeyKind:
    if alg[:2] in ("RS", "PS"):
        return "RSA"
    return {"ES256": "P-256", "ES384": "P-384", "EdDSA": "Ed25519"}[alg]  # type: ignore[return-value]


def generate_key(kind: KeyKind) -> Key:
    """A fresh private key of ``kind`` whose ``kid`` is its thumbprint."""
    key: Key
    if kind == "RSA":
        key = RSAKey.generate_key(2048, auto_kid=True)
    elif kind == "Ed25519":
        key = OKPKey.generate_key("Ed25519", auto_kid=True)
    else:
        key = ECKey.generate_key(kind, auto_kid=True)
    return key


@cache
def _shared_key(kind: KeyKind) -> Key:
    """Start-up keys shared by the IdPs of one test run (RSA generation is slow); never rotated in place."""
    return generate_key(kind)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def left_half_hash(value: str, alg: str) -> str:
    """``at_hash``: the left half of the hash that goes with ``alg`` (Ed25519: SHA-512)."""
    name = "sha512" if alg == "EdDSA" else "sha" + alg[2:]
    digest = hashlib.new(name, value.encode("ascii")).digest()
    return b64url(digest[: len(digest) // 2])


@dataclass
class IdpUser:
    sub: str = "alice-0001"
    email: str = "alice@partner-a.example"
    email_verified: Any = True
    name: str = "Alice Example"
    given_name: str = "Alice"
    family_name: str = "Example"
    extra: dict[str, Any] = field(default_factory=lambda: {"amr": ["pwd", "mfa"], "acr": "urn:test:mfa"})


@dataclass
class IdpClient:
    client_id: str = "gateway"
    client_secret: str | None = "s3cret with spaces & symbols"
    redirect_uris: list[str] = field(default_factory=lambda: ["https://gateway.test/callback/partner-a"])
    auth_method: AuthMethod = "client_secret_basic"


@dataclass
class Knobs:
    """Misbehaviour switches; the defaults are a well-behaved IdP."""

    signing_alg: str = "RS256"
    interactive: bool = False
    authorize_error: str | None = None  # e.g. "access_denied": the redirect carries this error
    advertise_iss: bool = False  # authorization_response_iss_parameter_supported in discovery
    send_iss: bool = False  # iss in the authorization response
    response_iss: str | None = None  # the iss value sent (default: the issuer)
    discovery_issuer: str | None = None  # the issuer the discovery document names
    header_alg: str | None = None  # "none": unsigned; "HS256": HMAC keyed with the public key PEM
    sign_with_wrong_key: bool = False  # a fresh key, under the published kid
    kid: str | Callable[[], str] | None = (
        None  # the kid header to send (e.g. an unknown one, or a fresh one each time)
    )
    omit_kid: bool = False
    id_token_claims: dict[str, Any] = field(default_factory=dict)  # overrides; REMOVE deletes
    exp_offset: int = 300
    iat_offset: int = 0
    claims_in_id_token: bool = True  # profile/email claims in the ID token (else userinfo only)
    include_at_hash: bool = True
    userinfo_claims: dict[str, Any] = field(default_factory=dict)  # overrides; REMOVE deletes
    userinfo_signed: bool = False
    token_status: int = 200
    token_body: bytes | None = None  # a raw body (e.g. not JSON) instead of the tokens
    token_delay: float = 0.0


@dataclass
class _Grant:
    client_id: str
    redirect_uri: str
    scope: list[str]
    nonce: str | None
    code_challenge: str | None
    auth_time: int


class OidcTestIdP:
    """One upstream OpenID Provider; ``.app`` is its ASGI app."""

    def __init__(
        self,
        issuer: str = "https://idp.partner-a.test",
        *,
        clients: list[IdpClient] | None = None,
        user: IdpUser | None = None,
        clock: Callable[[], float] = time.time,
        fresh_keys: bool = False,
    ) -> None:
        self.issuer = issuer
        self.clients = {c.client_id: c for c in (clients or [IdpClient()])}
        self.user = user or IdpUser()
        self.clock = clock
        self.knobs = Knobs()
        self._fresh = fresh_keys
        self.keys: dict[KeyKind, Key] = {}
        self.retired: list[Key] = []  # still published after a rotation with keep_old
        for kind in ("RSA", "P-256"):  # the start-up keys
            self._key(kind)
        self.grants: dict[str, _Grant] = {}
        self.access_tokens: dict[str, IdpUser] = {}
        self.issued_id_tokens: list[str] = []
        prefix = urlsplit(issuer).path.rstrip("/")
        self.app = Starlette(
            routes=[
                Route(f"{prefix}/.well-known/openid-configuration", self.discovery),
                Route(f"{prefix}/jwks", self.jwks),
                Route(f"{prefix}/authorize", self.authorize, methods=["GET", "POST"]),
                Route(f"{prefix}/token", self.token, methods=["POST"]),
                Route(f"{prefix}/userinfo", self.userinfo, methods=["GET", "POST"]),
            ]
        )

    # -- keys ---------------------------------------------------------------------------------

    def _key(self, kind: KeyKind) -> Key:
        if kind not in self.keys:
            self.keys[kind] = generate_key(kind) if self._fresh else _shared_key(kind)
        return self.keys[kind]

    def rotate(self, alg: str = "RS256", *, keep_old: bool = False) -> Key:
        """Replace the signing key for ``alg`` (new kid); ``keep_old`` keeps publishing the old one."""
        kind = key_kind(alg)
        old = self.keys.get(kind)
        if keep_old and old is not None:
            self.retired.append(old)
        self.keys[kind] = generate_key(kind)
        return self.keys[kind]

    def jwks_document(self) -> dict[str, Any]:
        keys = [*self.keys.values(), *self.retired]
        return {"keys": [k.as_dict(private=False, use="sig") for k in keys]}

    # -- endpoints ------------------------------------------------------------------------------

    def url(self, path: str) -> str:
        return self.issuer.rstrip("/") + path

    async def discovery(self, request: Request) -> Response:
        doc: dict[str, Any] = {
            "issuer": self.knobs.discovery_issuer or self.issuer,
            "authorization_endpoint": self.url("/authorize"),
            "token_endpoint": self.url("/token"),
            "userinfo_endpoint": self.url("/userinfo"),
            "jwks_uri": self.url("/jwks"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [
                "RS256",
                "RS384",
                "RS512",
                "PS256",
                "ES256",
                "ES384",
                "EdDSA",
            ],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "scopes_supported": ["openid", "profile", "email"],
        }
        if self.knobs.advertise_iss:
            doc["authorization_response_iss_parameter_supported"] = True
        return JSONResponse(doc)

    async def jwks(self, request: Request) -> Response:
        return JSONResponse(self.jwks_document())

    async def authorize(self, request: Request) -> Response:
        params = dict(request.query_params) if request.method == "GET" else dict(await request.form())
        client = self.clients.get(str(params.get("client_id", "")))
        redirect_uri = str(params.get("redirect_uri", ""))
        if client is None or redirect_uri not in client.redirect_uris:
            return HTMLResponse("<h1>Unknown client or redirect URI</h1>", status_code=400)
        state = params.get("state")
        if self.knobs.interactive and request.method == "GET":
            return HTMLResponse(self._form(params))
        if self.knobs.authorize_error:
            return self._back(
                redirect_uri,
                {
                    "error": self.knobs.authorize_error,
                    "error_description": "The user said no.",
                    "state": state,
                },
            )
        problem = None
        if params.get("response_type") != "code":
            problem = "unsupported_response_type"
        elif not params.get("code_challenge") or params.get("code_challenge_method") != "S256":
            problem = "invalid_request"
        elif "openid" not in str(params.get("scope", "")).split():
            problem = "invalid_scope"
        if problem:
            return self._back(redirect_uri, {"error": problem, "state": state})
        code = secrets.token_urlsafe(24)
        self.grants[code] = _Grant(
            client_id=client.client_id,
            redirect_uri=redirect_uri,
            scope=str(params.get("scope", "")).split(),
            nonce=str(params["nonce"]) if params.get("nonce") else None,
            code_challenge=str(params["code_challenge"]),
            auth_time=int(self.clock()),
        )
        return self._back(redirect_uri, {"code": code, "state": state})

    def _back(self, redirect_uri: str, params: dict[str, Any]) -> Response:
        if self.knobs.send_iss:
            params["iss"] = self.knobs.response_iss or self.issuer
        query = urlencode({k: v for k, v in params.items() if v is not None})
        return RedirectResponse(
            f"{redirect_uri}{'&' if '?' in redirect_uri else '?'}{query}", status_code=302
        )

    def _form(self, params: dict[str, Any]) -> str:
        hidden = "".join(
            f'<input type="hidden" name="{html.escape(str(k))}" value="{html.escape(str(v))}">'
            for k, v in params.items()
        )
        return (
            "<!doctype html><html><head><title>Test IdP</title></head><body>"
            f"<p>Signing in as {html.escape(self.user.email)}</p>"
            f'<form method="post" action="{html.escape(self.url("/authorize"))}">{hidden}'
            '<button type="submit">Sign in</button></form></body></html>'
        )

    def _client_auth(self, request: Request, form: dict[str, str]) -> IdpClient | None:
        header = request.headers.get("authorization", "")
        if header.lower().startswith("basic "):
            try:
                raw = base64.b64decode(header[6:], validate=True).decode()
            except ValueError:
                return None
            client_id, _, secret = raw.partition(":")
            client = self.clients.get(unquote_plus(client_id))
            if client is None or client.auth_method != "client_secret_basic" or client.client_secret is None:
                return None
            return client if hmac.compare_digest(unquote_plus(secret), client.client_secret) else None
        client = self.clients.get(form.get("client_id", ""))
        if client is None:
            return None
        if client.auth_method == "none":
            return client if "client_secret" not in form else None
        if client.auth_method == "client_secret_post" and client.client_secret is not None:
            return (
                client if hmac.compare_digest(form.get("client_secret", ""), client.client_secret) else None
            )
        return None

    async def token(self, request: Request) -> Response:
        knobs = self.knobs
        if knobs.token_delay:
            await asyncio.sleep(knobs.token_delay)
        if knobs.token_status != 200:
            return JSONResponse({"error": "server_error"}, status_code=knobs.token_status)
        form = {k: str(v) for k, v in (await request.form()).items()}
        client = self._client_auth(request, form)
        if client is None:
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        grant = self.grants.pop(form.get("code", ""), None)
        if (
            grant is None
            or form.get("grant_type") != "authorization_code"
            or grant.client_id != client.client_id
        ):
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        if form.get("redirect_uri") != grant.redirect_uri:
            return JSONResponse(
                {"error": "invalid_grant", "error_description": "redirect_uri"}, status_code=400
            )
        verifier = form.get("code_verifier", "")
        if grant.code_challenge is None or not hmac.compare_digest(
            b64url(hashlib.sha256(verifier.encode()).digest()), grant.code_challenge
        ):
            return JSONResponse({"error": "invalid_grant", "error_description": "PKCE"}, status_code=400)
        if knobs.token_body is not None:
            return Response(knobs.token_body, media_type="text/html")
        access_token = secrets.token_urlsafe(32)
        self.access_tokens[access_token] = self.user
        id_token = self.sign(self.id_token_claims(grant, access_token))
        self.issued_id_tokens.append(id_token)
        body = {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": 3600,
            "id_token": id_token,
        }
        return JSONResponse(body, headers={"cache-control": "no-store"})

    def user_claims(self, scope: list[str]) -> dict[str, Any]:
        user = self.user
        claims: dict[str, Any] = {"sub": user.sub}
        if "email" in scope:
            claims.update(email=user.email, email_verified=user.email_verified)
        if "profile" in scope:
            claims.update(name=user.name, given_name=user.given_name, family_name=user.family_name)
        claims.update(user.extra)
        return claims

    def id_token_claims(self, grant: _Grant, access_token: str) -> dict[str, Any]:
        now = int(self.clock())
        knobs = self.knobs
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": grant.client_id,
            "exp": now + knobs.exp_offset,
            "iat": now + knobs.iat_offset,
            "auth_time": grant.auth_time,
            **(self.user_claims(grant.scope) if knobs.claims_in_id_token else {"sub": self.user.sub}),
        }
        if grant.nonce is not None:
            claims["nonce"] = grant.nonce
        if knobs.include_at_hash and knobs.header_alg is None:
            claims["at_hash"] = left_half_hash(access_token, knobs.signing_alg)
        return _apply(claims, knobs.id_token_claims)

    def sign(self, claims: dict[str, Any], *, typ: str | None = None) -> str:
        """Sign ``claims`` as the knobs say (normally with the current key for ``signing_alg``)."""
        knobs = self.knobs
        alg = knobs.signing_alg
        key = self._key(key_kind(alg))
        header: dict[str, Any] = {"alg": knobs.header_alg or alg}
        if typ:
            header["typ"] = typ
        if not knobs.omit_kid:
            header["kid"] = (knobs.kid() if callable(knobs.kid) else knobs.kid) or key.kid
        payload = json.dumps(claims, separators=(",", ":")).encode()
        if knobs.header_alg == "none":
            return f"{b64url(json.dumps(header).encode())}.{b64url(payload)}."
        if knobs.header_alg == "HS256":
            signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(payload)}"
            assert isinstance(key, RSAKey | ECKey | OKPKey)
            pem = key.as_pem(private=False)
            return f"{signing_input}.{b64url(hmac.new(pem, signing_input.encode(), 'sha256').digest())}"
        if knobs.sign_with_wrong_key:
            key = generate_key(key_kind(alg))
        with warnings.catch_warnings(action="ignore", category=SecurityWarning):
            return jws.serialize_compact(header, payload, key, algorithms=[header["alg"]])

    async def userinfo(self, request: Request) -> Response:
        header = request.headers.get("authorization", "")
        token = header[7:] if header[:7].lower() == "bearer " else ""
        user = self.access_tokens.get(token)
        if user is None:
            return JSONResponse(
                {"error": "invalid_token"},
                status_code=401,
                headers={"www-authenticate": 'Bearer error="invalid_token"'},
            )
        claims = _apply(self.user_claims(["openid", "profile", "email"]), self.knobs.userinfo_claims)
        if self.knobs.userinfo_signed:
            claims = {"iss": self.issuer, "aud": next(iter(self.clients)), **claims}
            return Response(self.sign(claims), media_type="application/jwt")
        return JSONResponse(claims)

    # -- test plumbing -----------------------------------------------------------------------

    def mount(self, router: respx.MockRouter) -> dict[str, respx.Route]:
        """Route this IdP's URLs on ``router`` to the app; returns the routes by name (to count calls)."""
        handler = respx.ASGIHandler(self.app)
        names = {
            "discovery": "/.well-known/openid-configuration",
            "jwks": "/jwks",
            "authorize": "/authorize",
            "token": "/token",
            "userinfo": "/userinfo",
        }
        return {
            name: router.route(url=self.url(path)).mock(side_effect=handler) for name, path in names.items()
        }


def _apply(claims: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    result = dict(claims)
    for name, value in overrides.items():
        if value is REMOVE:
            result.pop(name, None)
        else:
            result[name] = value
    return result


async def authorize(idp: OidcTestIdP, url: str) -> tuple[str, dict[str, str]]:
    """Play the browser at ``url`` (auto-approve mode): the redirect target and its query parameters."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=idp.app)) as browser:
        response = await browser.get(url)
    if response.status_code != 302:
        raise AssertionError(f"the IdP did not redirect: {response.status_code} {response.text[:200]}")
    location = urlsplit(response.headers["location"])
    target = f"{location.scheme}://{location.netloc}{location.path}"
    return target, dict(httpx.QueryParams(location.query))


def free_port(host: str = "127.0.0.1") -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


@contextmanager
def serve_in_thread(app: Any, host: str, port: int, name: str) -> Iterator[None]:
    """Serve ``app`` with uvicorn in a daemon thread at ``host:port`` until the block ends (the test
    upstreams' ``serve_on_loopback``); fails when it has not started within 10 s."""
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, name=f"{name}-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the test server {name} did not start")
        time.sleep(0.01)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def serve_on_loopback(host: str = "127.0.0.1", **kwargs: Any) -> Iterator[OidcTestIdP]:
    """An ``OidcTestIdP`` at ``http://127.0.0.1:PORT`` served by uvicorn in a thread (for browser tests)."""
    port = free_port(host)
    idp = OidcTestIdP(f"http://{host}:{port}", **kwargs)
    with serve_in_thread(idp.app, host, port, "oidc-idp"):
        yield idp


ISSUER = "https://idp.partner-a.test"
CALLBACK = "https://gateway.test/callback/partner-a"
NOW = 1_700_000_000.0


class RelyingParty:
    """Unit-test harness: an ``OidcConnector`` wired to an ``OidcTestIdP`` through a respx router.

    The IdP and the connector share a ``ManualClock``; the connector's state is a
    ``MemoryState`` that tests check stays empty (the connector persists nothing).
    """

    def __init__(self, router: respx.MockRouter, **idp_kwargs: Any) -> None:
        self.clock = ManualClock(NOW)
        self.idp = OidcTestIdP(ISSUER, clock=self.clock, **idp_kwargs)
        self.routes = self.idp.mount(router)
        self.router = router
        self.state = MemoryState(self.clock)
        self.http = httpx.AsyncClient()
        self.configure()

    def configure(self, **overrides: Any) -> OidcConnector:
        """A new connector (empty caches) with the default test config plus ``overrides``."""
        client = next(iter(self.idp.clients.values()))
        settings: dict[str, Any] = {
            "id": "partner-a",
            "type": "oidc",
            "issuer": ISSUER,
            "client_id": client.client_id,
            "client_secret": client.client_secret,
            "token_endpoint_auth_method": client.auth_method,
        }
        settings.update(overrides)
        self.config = OidcConfig.model_validate(settings)
        ctx = ConnectorContext(
            state=self.state,
            mail=NoMail(),
            keyed_hash=lambda purpose, value: f"{purpose}:{value}",
            tenant_name="Contoso",
            http=self.http,
            clock=self.clock,
        )
        self.connector = self.config.open(ctx)
        return self.connector

    async def begin(self, **request: Any) -> Redirect:
        request.setdefault("state", secrets.token_urlsafe(16))
        request.setdefault("callback_url", CALLBACK)
        return await self.connector.begin(BeginRequest(**request))

    async def callback(self, **request: Any) -> Callback:
        """``begin``, then the browser at the IdP: the callback ``complete`` would get."""
        redirect = await self.begin(**request)
        target, params = await authorize(self.idp, redirect.url)
        return Callback(params=params, state=redirect.state, callback_url=target)

    async def sign_in(self, **request: Any) -> UpstreamIdentity:
        return await self.connector.complete(await self.callback(**request))

    def calls(self, name: str) -> int:
        return int(self.routes[name].call_count)

    def assert_nothing_persisted(self) -> None:
        assert self.state.entries == {} and self.state.counters == {}


class NoMail:
    def send(self, message: object) -> None:
        raise AssertionError("the oidc connector sends no mail")
