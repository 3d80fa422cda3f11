"""The UserInfo endpoint (OIDC Core 5.3) as an RFC 6750 protected resource.

Conformance modules (checklist 1.1): ``oidcc-userinfo-get``, ``oidcc-userinfo-post-header``,
``oidcc-userinfo-post-body`` (our documented choice: a token in the form body is refused
with 400 ``invalid_request``), ``oidcc-scope-profile``, ``oidcc-scope-email``. A request
without usable credentials gets 401 and a ``WWW-Authenticate: Bearer`` challenge.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.assertions import (
    Op,
    assert_nothing_minted,
    client_post,
    running_op,
    signed_in_tokens,
    snapshot,
    verify_id_token,
)
from tests.support.flows import AuthRequest
from tests.support.gateway_app import ISSUER
from tests.support.smtp_server import SmtpServer

EMAIL = "guest@fabrikam.example"
BARE_CHALLENGE = f'Bearer realm="{ISSUER}"'


@pytest.fixture
async def op(tmp_path: Path, smtp_server: SmtpServer) -> AsyncIterator[Op]:
    async with running_op(tmp_path, smtp_server) as running:
        yield running


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_invalid_token(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith(f'{BARE_CHALLENGE}, error="invalid_token"'), challenge
    assert response.json()["error"] == "invalid_token"
    assert "sub" not in response.json()


def assert_bare_challenge(response: httpx.Response) -> None:
    """RFC 6750 3.1: no authentication information -> 401, a challenge without an error code."""
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == BARE_CHALLENGE
    assert response.headers["cache-control"] == "no-store"
    assert response.content == b""


async def tokens_and_claims(
    op: Op, scope: str = "openid profile email"
) -> tuple[dict[str, Any], dict[str, Any]]:
    req, tokens = await signed_in_tokens(op, EMAIL, AuthRequest(scope=scope))
    return tokens, await verify_id_token(op, tokens["id_token"], client_id="demo", nonce=req.nonce)


@pytest.mark.parametrize("method", ["GET", "POST"], ids=["oidcc-userinfo-get", "oidcc-userinfo-post-header"])
async def test_userinfo_with_bearer_header_returns_claims_whose_sub_matches_the_id_token(
    op: Op, method: str
) -> None:
    tokens, claims = await tokens_and_claims(op)
    response = await op.client.request(method, "/oauth2/userinfo", headers=bearer(tokens["access_token"]))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["cache-control"] == "no-store"
    info = response.json()
    assert info["sub"] == claims["sub"]
    assert info["email"] == EMAIL and info["email_verified"] is True
    assert info["name"] == EMAIL
    assert (info["oid"], info["tid"], info["idp"], info["acct"]) == (claims["oid"], claims["tid"], "mail", 1)


@pytest.mark.parametrize(("scope", "present", "absent"), [
    ("openid", {"sub"}, {"email", "email_verified", "name"}),
    ("openid email", {"sub", "email", "email_verified"}, {"name"}),
    ("openid profile", {"sub", "name"}, {"email", "email_verified"}),
], ids=["openid_only", "oidcc-scope-email", "oidcc-scope-profile"])
async def test_userinfo_releases_the_claims_of_the_granted_scopes(
    op: Op, scope: str, present: set[str], absent: set[str]
) -> None:
    tokens, _ = await tokens_and_claims(op, scope)
    info = (await op.client.get("/oauth2/userinfo", headers=bearer(tokens["access_token"]))).json()
    assert present <= set(info)
    assert not absent & set(info)


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_missing_token_is_401_with_a_bare_bearer_challenge(op: Op, method: str) -> None:
    before = snapshot(op)
    assert_bare_challenge(await op.client.request(method, "/oauth2/userinfo"))
    assert_nothing_minted(op, before)


async def test_another_authorization_scheme_gets_the_bare_challenge(op: Op) -> None:
    tokens, _ = await tokens_and_claims(op)
    response = await op.client.get("/oauth2/userinfo", auth=("demo", tokens["access_token"]))
    assert_bare_challenge(response)


async def test_token_in_the_query_is_not_accepted(op: Op) -> None:
    tokens, _ = await tokens_and_claims(op)
    response = await op.client.get("/oauth2/userinfo", params={"access_token": tokens["access_token"]})
    assert_bare_challenge(response)


async def test_oidcc_userinfo_post_body_is_refused_with_invalid_request(op: Op) -> None:
    tokens, _ = await tokens_and_claims(op)
    before = snapshot(op)
    response = await op.client.post("/oauth2/userinfo", data={"access_token": tokens["access_token"]})
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"
    assert response.headers["www-authenticate"].startswith(f'{BARE_CHALLENGE}, error="invalid_request"')
    assert "sub" not in response.json()
    assert_nothing_minted(op, before)


async def test_empty_bearer_token_is_invalid_request(op: Op) -> None:
    response = await op.client.get("/oauth2/userinfo", headers={"Authorization": "Bearer "})
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"


async def test_forged_tokens_are_401_invalid_token(op: Op) -> None:
    tokens, _ = await tokens_and_claims(op)
    real = tokens["access_token"]
    forged = [
        "gwat_" + "A" * 43,
        real[:-1] + ("A" if real[-1] != "A" else "B"),
        tokens["id_token"],  # an ID token is no access token
        "not-a-token",
        "gwat_" + "x" * 500,
    ]
    before = snapshot(op)
    for token in forged:
        assert_invalid_token(await op.client.get("/oauth2/userinfo", headers=bearer(token)))
    assert_nothing_minted(op, before)


async def test_expired_token_is_401_invalid_token(op: Op) -> None:
    tokens, _ = await tokens_and_claims(op)
    live = await op.client.get("/oauth2/userinfo", headers=bearer(tokens["access_token"]))
    assert live.status_code == 200
    op.clock.advance(3600)
    assert_invalid_token(await op.client.get("/oauth2/userinfo", headers=bearer(tokens["access_token"])))


async def test_revoked_token_is_401_invalid_token_at_once(op: Op) -> None:
    tokens, _ = await tokens_and_claims(op)
    revoked = await client_post(op, "demo", {"token": tokens["access_token"]}, path="/oauth2/revoke")
    assert revoked.status_code == 200, revoked.text
    assert_invalid_token(await op.client.get("/oauth2/userinfo", headers=bearer(tokens["access_token"])))
    assert_invalid_token(await op.client.post("/oauth2/userinfo", headers=bearer(tokens["access_token"])))
