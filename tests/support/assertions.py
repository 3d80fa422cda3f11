"""OpenID Provider test support: a configured gateway, what it stored, and the checks every flow must pass.

- ``running_op(tmp_path, smtp, **overrides)``: the gateway with three relying parties
  (``demo``, public; ``portal``, confidential, RS256, no PKCE required; ``strict``,
  confidential with ``require_pkce``), passcode resends not throttled, and a ``Clock`` the
  tests can move forward. Yields an ``Op``.
- ``snapshot(op)`` / ``assert_nothing_minted(op, before)``: a read-only look at the SQLite
  file (opened with ``sqlite3`` directly, not through the gateway) — live artefacts of the
  kinds code/access/refresh/session/signin and the users — and the check that none appeared.
- ``verify_id_token``: the conformance suite's section-0 checks, with an independent
  verifier (joserfc) against the published JWKS.
- ``assert_authorization_error`` / ``assert_error_page``: the two shapes of a refused
  authorization request.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.support.flows import AuthRequest, post_passcode, query_of, signin_path_of, submit_email
from tests.support.gateway_app import ISSUER, default_config, make_settings, running_app
from tests.support.smtp_server import SmtpServer, extract_passcode

PORTAL_SECRET = "portal-secret-0123456789abcdef"
STRICT_SECRET = "strict-secret-0123456789abcdef"
PORTAL_REDIRECT = "https://portal.example/callback"
STRICT_REDIRECT = "https://strict.example/callback"
TRACKED_KINDS = ("code", "access", "refresh", "session", "signin")
_CTL = re.compile(r"[\r\n\t]")


def applications() -> list[dict[str, Any]]:
    demo = next(a for a in default_config()["applications"] if a["id"] == "demo")
    return [
        demo,
        {"id": "portal", "name": "Partner portal", "user_flow": "default", "oidc": {
            "client_id": "portal", "client_secret": PORTAL_SECRET, "redirect_uris": [PORTAL_REDIRECT],
            "post_logout_redirect_uris": ["https://portal.example/signed-out"],
            "id_token_signed_response_alg": "RS256", "require_pkce": False}},
        {"id": "strict", "name": "Strict app", "user_flow": "default", "oidc": {
            "client_id": "strict", "client_secret": STRICT_SECRET, "redirect_uris": [STRICT_REDIRECT],
            "require_pkce": True, "token_endpoint_auth_method": "client_secret_basic"}},
    ]


class Clock:
    """Real time plus an offset the test moves forward (the gateway's ``rt.now()``)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@dataclass
class Op:
    app: Any
    client: httpx.AsyncClient
    clock: Clock
    smtp: SmtpServer

    @property
    def db_path(self) -> str:
        return str(self.app.state.runtime.store.path)

    def now(self) -> int:
        return int(self.clock())


@asynccontextmanager
async def running_op(tmp_path: Path, smtp: SmtpServer, **overrides: Any) -> AsyncIterator[Op]:
    config: dict[str, Any] = {
        "applications": applications(),
        "passcode": {"resend_interval_seconds": 0, "max_sends_per_address_per_hour": 100},
    }
    config.update(overrides)
    clock = Clock()
    async with running_app(make_settings(tmp_path, smtp, **config), clock=clock) as (app, client):
        yield Op(app, client, clock, smtp)


# -- what the store holds ------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    artefacts: dict[str, frozenset[str]]
    users: frozenset[str]

    def count(self, kind: str) -> int:
        return len(self.artefacts[kind])


def snapshot(op: Op) -> Snapshot:
    """Live artefacts of the tracked kinds, and every user, read straight from the SQLite file."""
    conn = sqlite3.connect(f"file:{op.db_path}?mode=ro", uri=True)
    try:
        now = time.time()
        artefacts = {
            kind: frozenset(row[0] for row in conn.execute(
                "SELECT id FROM artefacts WHERE kind = ? AND expires_at > ?", (kind, now)))
            for kind in TRACKED_KINDS
        }
        users = frozenset(row[0] for row in conn.execute("SELECT id FROM users"))
    finally:
        conn.close()
    return Snapshot(artefacts, users)


def assert_nothing_minted(op: Op, before: Snapshot) -> None:
    """No code, token, session, sign-in transaction or user appeared since ``before``."""
    after = snapshot(op)
    for kind in TRACKED_KINDS:
        new = after.artefacts[kind] - before.artefacts[kind]
        assert not new, f"{len(new)} new {kind} artefact(s) were stored"
    assert after.users == before.users, "a user was created"


# -- authorization responses -------------------------------------------------------------------


def auth_query(req: AuthRequest, **changes: str | None) -> str:
    """The authorization request's query with parameters replaced (a value) or dropped (None)."""
    params: dict[str, str | None] = {
        "response_type": "code", "client_id": req.client_id, "redirect_uri": req.redirect_uri,
        "scope": req.scope, "state": req.state, "nonce": req.nonce,
        "code_challenge": req.challenge or None, "code_challenge_method": "S256" if req.challenge else None,
    }
    params.update(req.extra or {})
    params.update(changes)
    return urlencode({k: v for k, v in params.items() if v is not None})


def no_pkce(client_id: str, redirect_uri: str, scope: str = "openid profile email") -> AuthRequest:
    req = AuthRequest(client_id=client_id, redirect_uri=redirect_uri, scope=scope)
    req.verifier = req.challenge = ""
    return req


async def authorize(op: Op, req: AuthRequest, **changes: str | None) -> httpx.Response:
    return await op.client.get(f"/oauth2/authorize?{auth_query(req, **changes)}")


def assert_code_response(response: httpx.Response, req: AuthRequest) -> str:
    """A successful authorization response to ``req``: its code (state and RFC 9207 ``iss`` checked)."""
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.startswith(req.redirect_uri + "?"), location
    query = query_of(location)
    assert query["state"] == req.state
    assert query["iss"] == ISSUER
    assert "error" not in query
    return query["code"]


async def complete_sign_in(op: Op, signin_path: str, email: str) -> httpx.Response:
    """Email, then the passcode read from the SMTP server; the final response (a redirect to the client)."""
    sent = await submit_email(op.client, signin_path, email)
    assert_passcode_page(sent)
    message = await op.smtp.wait_for(to=email, timeout=10)
    return await post_passcode(op.client, signin_path, sent, extract_passcode(message))


def assert_passcode_page(response: httpx.Response) -> None:
    """``response`` is the passcode page (as a POST of the email form answers once a code was sent)."""
    assert response.status_code == 200, response.text
    assert 'autocomplete="one-time-code"' in response.text, response.text


async def sign_in(
    op: Op, email: str, req: AuthRequest | None = None, **changes: str | None
) -> tuple[AuthRequest, str]:
    """A whole passcode sign-in as ``email`` (or, when the browser has an SSO session, whoever it
    belongs to, with no page); returns the request and its code."""
    req = req or AuthRequest()
    started = await authorize(op, req, **changes)
    if started.status_code != 200:
        return req, assert_code_response(started, req)
    done = await complete_sign_in(op, signin_path_of(started), email)
    return req, assert_code_response(done, req)


SECRETS = {"portal": PORTAL_SECRET, "strict": STRICT_SECRET}


async def redeem(
    op: Op, req: AuthRequest, code: str, *, auth: str = "basic", **changes: str | None
) -> httpx.Response:
    """The token request for ``code``; confidential clients authenticate with ``auth`` (basic or post)."""
    data: dict[str, str | None] = {
        "grant_type": "authorization_code", "code": code, "redirect_uri": req.redirect_uri,
        "code_verifier": req.verifier or None, **changes,
    }
    return await client_post(op, req.client_id, data, auth=auth)


async def client_post(
    op: Op, client_id: str, data: dict[str, str | None], *, auth: str = "basic", path: str = "/oauth2/token"
) -> httpx.Response:
    """POST ``data`` to ``path`` as ``client_id``: a confidential client's secret by ``auth`` ("basic",
    "post" or "none"); a public client names itself. ``None`` values are left out."""
    form = dict(data)
    secret = SECRETS.get(client_id)
    if secret is not None and auth == "post":
        form = {"client_id": client_id, "client_secret": secret, **form}
    elif secret is None or auth == "none":
        form = {"client_id": client_id, **form}
    body = {k: v for k, v in form.items() if v is not None}
    if secret is not None and auth == "basic":
        return await op.client.post(path, data=body, auth=(client_id, secret))
    return await op.client.post(path, data=body)


async def signed_in_tokens(
    op: Op, email: str, req: AuthRequest | None = None
) -> tuple[AuthRequest, dict[str, Any]]:
    req, code = await sign_in(op, email, req)
    response = await redeem(op, req, code)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    return req, response.json()


def assert_authorization_error(response: httpx.Response, req: AuthRequest, error: str) -> dict[str, str]:
    """An error redirected to the client: the error, state and ``iss``; no code; a clean description."""
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.startswith(req.redirect_uri + "?"), location
    query = query_of(location)
    assert query["error"] == error, query
    assert "code" not in query
    assert query.get("state") == req.state
    assert query["iss"] == ISSUER
    assert not _CTL.search(query.get("error_description", ""))
    return query


def assert_error_page(response: httpx.Response, status: int = 400) -> None:
    """An HTML error page in the gateway's own origin: never a redirect."""
    assert response.status_code == status, response.text
    assert "location" not in response.headers
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-store"


def assert_oauth_error(response: httpx.Response, error: str, status: int = 400) -> dict[str, Any]:
    """A JSON error body (RFC 6749 5.2) that is never cached and carries no code or token."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["cache-control"] == "no-store"
    body: dict[str, Any] = response.json()
    assert body["error"] == error, body
    assert not _CTL.search(body.get("error_description", ""))
    assert not {"access_token", "id_token", "refresh_token", "code"} & set(body)
    return body


# -- ID tokens -------------------------------------------------------------------------------------


async def verify_id_token(
    op: Op, token: str, *, client_id: str, nonce: str | None, alg: str = "ES256"
) -> dict[str, Any]:
    """Section 0 of the conformance checklist, with joserfc against ``/oauth2/jwks``; returns the claims."""
    discovery = (await op.client.get("/.well-known/openid-configuration")).json()
    jwks = (await op.client.get("/oauth2/jwks")).json()
    kids = [key["kid"] for key in jwks["keys"]]
    assert len(kids) == len(set(kids)), "JWKS kids are not distinct"
    decoded = jwt.decode(token, KeySet.import_key_set(jwks), algorithms=[alg])
    assert decoded.header["alg"] == alg
    assert decoded.header["kid"] in kids
    signer = next(key for key in jwks["keys"] if key["kid"] == decoded.header["kid"])
    assert signer["alg"] == alg
    claims: dict[str, Any] = decoded.claims
    now = op.now()
    assert claims["iss"] == discovery["issuer"] == ISSUER
    assert claims["aud"] == client_id or client_id in claims["aud"]
    assert isinstance(claims["sub"], str) and claims["sub"]
    assert now < claims["exp"] <= now + 86400, "exp is in the past or absurdly far off"
    assert now - 300 <= claims["iat"] <= now
    assert claims.get("nbf", now) <= now
    assert now - 365 * 86400 < claims["auth_time"] <= now
    assert isinstance(claims["acr"], str) and claims["acr"]
    if nonce is None:
        assert "nonce" not in claims
    else:
        assert claims["nonce"] == nonce
    return claims
