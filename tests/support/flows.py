"""Driving the sign-in over HTTP as a browser would, for integration tests."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from tests.support.smtp_server import SmtpServer, extract_passcode

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
EMAIL_FORM = re.compile(r'<form method="post" action="(/signin/[A-Za-z0-9_-]+)/email"')
DEMO_REDIRECT = "http://127.0.0.1:8000/demo/callback"


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


@dataclass
class AuthRequest:
    client_id: str = "demo"
    redirect_uri: str = DEMO_REDIRECT
    scope: str = "openid profile email"
    state: str = ""
    nonce: str = ""
    verifier: str = ""
    challenge: str = ""
    extra: dict[str, str] | None = None

    def __post_init__(self) -> None:
        self.state = self.state or secrets.token_urlsafe(12)
        self.nonce = self.nonce or secrets.token_urlsafe(12)
        if not self.verifier:
            self.verifier, self.challenge = pkce_pair()

    def query(self) -> str:
        params = {
            "response_type": "code", "client_id": self.client_id, "redirect_uri": self.redirect_uri,
            "scope": self.scope, "state": self.state, "nonce": self.nonce,
            "code_challenge": self.challenge, "code_challenge_method": "S256",
        }
        params.update(self.extra or {})
        return urlencode({k: v for k, v in params.items() if v is not None})


def csrf_of(page: httpx.Response) -> str:
    match = CSRF.search(page.text)
    assert match, f"no CSRF token on the page: {page.text[:300]}"
    return match.group(1)


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def signin_path_of(response: httpx.Response) -> str:
    """The sign-in path (``/signin/{id}``) of an email page, as the authorization endpoint answers it."""
    assert response.status_code == 200, response.text
    match = EMAIL_FORM.search(response.text)
    assert match, f"not the email page: {response.text[:300]}"
    return match.group(1)


async def start(client: httpx.AsyncClient, req: AuthRequest) -> str:
    """GET /oauth2/authorize, answered with the email page; returns the sign-in path."""
    return signin_path_of(await client.get(f"/oauth2/authorize?{req.query()}"))


async def submit_email(client: httpx.AsyncClient, signin_path: str, email: str) -> httpx.Response:
    page = await client.get(signin_path)
    assert page.status_code == 200, page.text
    return await client.post(f"{signin_path}/email", data={"csrf": csrf_of(page), "email": email})


async def submit_passcode(client: httpx.AsyncClient, signin_path: str, code: str) -> httpx.Response:
    """Open the passcode page (``GET``), then post ``code`` with its form."""
    page = await client.get(f"{signin_path}/passcode")
    assert page.status_code == 200, page.text
    return await post_passcode(client, signin_path, page, code)


async def post_passcode(
    client: httpx.AsyncClient, signin_path: str, page: httpx.Response, code: str
) -> httpx.Response:
    """Post ``code`` with the form of ``page``, a passcode page (as the email POST answers)."""
    return await client.post(f"{signin_path}/passcode", data={"csrf": csrf_of(page), "passcode": code})


async def sign_in(
    client: httpx.AsyncClient, smtp: SmtpServer, email: str, req: AuthRequest | None = None
) -> tuple[AuthRequest, dict[str, str]]:
    """The whole passcode sign-in; returns the request and the authorization response's query."""
    req = req or AuthRequest()
    path = await start(client, req)
    sent = await submit_email(client, path, email)
    assert sent.status_code == 200 and 'autocomplete="one-time-code"' in sent.text, sent.text
    message = await smtp.wait_for(to=email, timeout=10)
    done = await post_passcode(client, path, sent, extract_passcode(message))
    assert done.status_code == 303, done.text
    return req, query_of(done.headers["location"])


async def exchange(
    client: httpx.AsyncClient, req: AuthRequest, code: str, **extra: str
) -> httpx.Response:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": req.redirect_uri,
            "client_id": req.client_id, "code_verifier": req.verifier}
    data.update(extra)
    return await client.post("/oauth2/token", data={k: v for k, v in data.items() if v is not None})


async def signed_in_tokens(
    client: httpx.AsyncClient, smtp: SmtpServer, email: str, req: AuthRequest | None = None
) -> tuple[AuthRequest, dict[str, Any]]:
    req, query = await sign_in(client, smtp, email, req)
    response = await exchange(client, req, query["code"])
    assert response.status_code == 200, response.text
    return req, response.json()
