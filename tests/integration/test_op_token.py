"""The token endpoint (RFC 6749 3.2, 4.1.3, 6; RFC 7636 4.6; RFC 9700 4.8 and 4.14).

Conformance modules (checklist 1.1): ``oidcc-codereuse``, ``oidcc-codereuse-30seconds``,
``oidcc-server-client-secret-post``, ``oidcc-refresh-token``,
``oidcc-ensure-request-with-valid-pkce-succeeds``. Each refusal checks the JSON error
(RFC 6749 5.2) and that nothing was minted; reuse cases check that the family is revoked.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.assertions import (
    PORTAL_REDIRECT,
    PORTAL_SECRET,
    STRICT_REDIRECT,
    Op,
    assert_nothing_minted,
    assert_oauth_error,
    client_post,
    no_pkce,
    redeem,
    running_op,
    sign_in,
    signed_in_tokens,
    snapshot,
    verify_id_token,
)
from tests.support.flows import DEMO_REDIRECT, AuthRequest, pkce_pair
from tests.support.smtp_server import SmtpServer

EMAIL = "guest@fabrikam.example"
OFFLINE = "openid profile email offline_access"
VSCHAR = re.compile(r"^[\x20-\x7e]+$")  # RFC 6749 A.17 refresh-token = 1*VSCHAR


@pytest.fixture
async def op(tmp_path: Path, smtp_server: SmtpServer) -> AsyncIterator[Op]:
    async with running_op(tmp_path, smtp_server) as running:
        yield running


async def userinfo_status(op: Op, access_token: str) -> int:
    response = await op.client.get("/oauth2/userinfo", headers={"Authorization": f"Bearer {access_token}"})
    return response.status_code


async def refresh(op: Op, client_id: str, refresh_token: str, **extra: str | None) -> httpx.Response:
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token, **extra}
    return await client_post(op, client_id, data)


async def offline_tokens(op: Op) -> tuple[AuthRequest, dict[str, Any]]:
    return await signed_in_tokens(op, EMAIL, AuthRequest(scope=OFFLINE))


# -- authorization_code -----------------------------------------------------------------------------


async def test_success_is_json_no_store_with_an_opaque_access_token_and_no_refresh_token(op: Op) -> None:
    req, tokens = await signed_in_tokens(op, EMAIL)
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == 3600
    assert tokens["scope"] == "openid profile email"
    assert tokens["access_token"].startswith("gwat_") and "." not in tokens["access_token"]
    assert "refresh_token" not in tokens
    await verify_id_token(op, tokens["id_token"], client_id="demo", nonce=req.nonce)


@pytest.mark.parametrize("wait", [0, 30], ids=["oidcc-codereuse", "oidcc-codereuse-30seconds"])
async def test_code_reuse_is_invalid_grant_and_revokes_the_tokens_of_its_first_use(op: Op, wait: int) -> None:
    req, code = await sign_in(op, EMAIL, AuthRequest(scope=OFFLINE))
    first = (await redeem(op, req, code)).json()
    assert await userinfo_status(op, first["access_token"]) == 200
    op.clock.advance(wait)
    before = snapshot(op)
    assert_oauth_error(await redeem(op, req, code), "invalid_grant")
    assert await userinfo_status(op, first["access_token"]) == 401
    assert_oauth_error(await refresh(op, "demo", first["refresh_token"]), "invalid_grant")
    assert_oauth_error(await redeem(op, req, code), "invalid_grant")
    assert_nothing_minted(op, before)
    assert snapshot(op).count("access") == snapshot(op).count("refresh") == 0


async def test_code_redeemed_by_another_client_is_invalid_grant_and_burns_the_code(op: Op) -> None:
    req, code = await sign_in(op, EMAIL)
    before = snapshot(op)
    data: dict[str, str | None] = {"grant_type": "authorization_code", "code": code,
                                   "redirect_uri": req.redirect_uri, "code_verifier": req.verifier}
    stolen = await client_post(op, "portal", data)
    assert_oauth_error(stolen, "invalid_grant")
    assert_oauth_error(await redeem(op, req, code), "invalid_grant")
    assert_nothing_minted(op, before)


@pytest.mark.parametrize("redirect_uri", [DEMO_REDIRECT + "/", DEMO_REDIRECT + "?x=1", PORTAL_REDIRECT])
async def test_code_with_another_redirect_uri_is_invalid_grant(op: Op, redirect_uri: str) -> None:
    req, code = await sign_in(op, EMAIL)
    before = snapshot(op)
    assert_oauth_error(await redeem(op, req, code, redirect_uri=redirect_uri), "invalid_grant")
    assert_nothing_minted(op, before)


@pytest.mark.parametrize("missing", ["redirect_uri", "code"])
async def test_code_request_without_redirect_uri_or_code_is_invalid_request(op: Op, missing: str) -> None:
    req, code = await sign_in(op, EMAIL)
    before = snapshot(op)
    data: dict[str, str | None] = {"grant_type": "authorization_code", "code": code,
                                   "redirect_uri": req.redirect_uri, "code_verifier": req.verifier}
    data[missing] = None
    assert_oauth_error(await client_post(op, "demo", data), "invalid_request")
    assert_nothing_minted(op, before)
    assert (await redeem(op, req, code)).status_code == 200


@pytest.mark.parametrize("verifier", [None, pkce_pair()[0], "short", "x" * 129],
                         ids=["missing", "wrong", "too_short", "too_long"])
async def test_missing_or_wrong_code_verifier_is_invalid_grant(op: Op, verifier: str | None) -> None:
    req, code = await sign_in(op, EMAIL)
    before = snapshot(op)
    assert_oauth_error(await redeem(op, req, code, code_verifier=verifier), "invalid_grant")
    assert_nothing_minted(op, before)


async def test_verifier_without_challenge_is_invalid_grant_pkce_downgrade(op: Op) -> None:
    req, code = await sign_in(op, EMAIL, no_pkce("portal", PORTAL_REDIRECT))
    before = snapshot(op)
    assert_oauth_error(await redeem(op, req, code, code_verifier=pkce_pair()[0]), "invalid_grant")
    assert_nothing_minted(op, before)


async def test_expired_code_is_invalid_grant(tmp_path: Path, smtp_server: SmtpServer) -> None:
    async with running_op(tmp_path, smtp_server, tokens={"authorization_code_seconds": 1}) as op:
        req, code = await sign_in(op, EMAIL)
        await asyncio.sleep(1.1)
        before = snapshot(op)
        assert_oauth_error(await redeem(op, req, code), "invalid_grant")
        assert_nothing_minted(op, before)


# -- client authentication ------------------------------------------------------------------------


@pytest.mark.parametrize("auth", ["basic", "post"],
                         ids=["client_secret_basic", "oidcc-server-client-secret-post"])
async def test_confidential_client_authenticates_and_gets_an_rs256_id_token(op: Op, auth: str) -> None:
    req, code = await sign_in(op, EMAIL, no_pkce("portal", PORTAL_REDIRECT))
    response = await redeem(op, req, code, auth=auth)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    await verify_id_token(op, response.json()["id_token"], client_id="portal", nonce=req.nonce, alg="RS256")


async def test_oidcc_ensure_request_with_valid_pkce_succeeds_for_a_require_pkce_client(op: Op) -> None:
    req, code = await sign_in(op, EMAIL, AuthRequest(client_id="strict", redirect_uri=STRICT_REDIRECT))
    response = await redeem(op, req, code)
    assert response.status_code == 200, response.text
    await verify_id_token(op, response.json()["id_token"], client_id="strict", nonce=req.nonce)


@pytest.mark.parametrize("auth", ["basic", "post"])
async def test_wrong_secret_is_401_invalid_client_with_www_authenticate_and_keeps_the_code(
    op: Op, auth: str
) -> None:
    req, code = await sign_in(op, EMAIL, no_pkce("portal", PORTAL_REDIRECT))
    before = snapshot(op)
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": req.redirect_uri}
    if auth == "basic":
        response = await op.client.post("/oauth2/token", data=data, auth=("portal", PORTAL_SECRET + "x"))
    else:
        wrong = {**data, "client_id": "portal", "client_secret": "x" * 30}
        response = await op.client.post("/oauth2/token", data=wrong)
    assert_oauth_error(response, "invalid_client", 401)
    assert response.headers["www-authenticate"].startswith("Basic")
    assert_nothing_minted(op, before)
    assert (await redeem(op, req, code)).status_code == 200  # a failed client authentication burns nothing


async def test_unknown_client_is_invalid_client(op: Op) -> None:
    req, code = await sign_in(op, EMAIL)
    before = snapshot(op)
    assert_oauth_error(await redeem(op, req, code, client_id="nobody"), "invalid_client", 401)
    assert_nothing_minted(op, before)


async def test_two_client_authentication_methods_at_once_are_invalid_request(op: Op) -> None:
    req, code = await sign_in(op, EMAIL, no_pkce("portal", PORTAL_REDIRECT))
    before = snapshot(op)
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": req.redirect_uri,
            "client_id": "portal", "client_secret": PORTAL_SECRET}
    response = await op.client.post("/oauth2/token", data=data, auth=("portal", PORTAL_SECRET))
    assert_oauth_error(response, "invalid_request")
    assert_nothing_minted(op, before)


@pytest.mark.parametrize("how", ["post", "basic"])
async def test_public_client_presenting_a_secret_is_invalid_client(op: Op, how: str) -> None:
    req, code = await sign_in(op, EMAIL)
    before = snapshot(op)
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": req.redirect_uri,
            "code_verifier": req.verifier}
    if how == "post":
        with_secret = {**data, "client_id": "demo", "client_secret": "s" * 20}
        response = await op.client.post("/oauth2/token", data=with_secret)
    else:
        response = await op.client.post("/oauth2/token", data=data, auth=("demo", "s" * 20))
    assert_oauth_error(response, "invalid_client", 401)
    assert_nothing_minted(op, before)


async def test_client_registered_for_basic_cannot_use_client_secret_post(op: Op) -> None:
    before = snapshot(op)
    data: dict[str, str | None] = {"grant_type": "authorization_code", "code": "c" * 43,
                                   "redirect_uri": "https://strict.example/callback"}
    response = await client_post(op, "strict", data, auth="post")
    assert_oauth_error(response, "invalid_client", 401)
    assert_nothing_minted(op, before)


# -- malformed requests -------------------------------------------------------------------------------


@pytest.mark.parametrize(("grant_type", "error"), [
    ("password", "unsupported_grant_type"),
    ("client_credentials", "unauthorized_client"),  # portal has no api_permissions
    ("implicit\r\nX-Injected:\tyes", "unsupported_grant_type"),
    (None, "invalid_request"),
])
async def test_unsupported_or_missing_grant_type(op: Op, grant_type: str | None, error: str) -> None:
    before = snapshot(op)
    response = await client_post(op, "portal", {"grant_type": grant_type, "username": "u", "password": "p"})
    assert_oauth_error(response, error)
    assert_nothing_minted(op, before)


async def test_repeated_parameter_and_non_form_body_are_invalid_request(op: Op) -> None:
    req, code = await sign_in(op, EMAIL)
    before = snapshot(op)
    body = f"grant_type=authorization_code&code={code}&code={code}&client_id=demo"
    repeated = await op.client.post("/oauth2/token", content=body,
                                    headers={"content-type": "application/x-www-form-urlencoded"})
    assert_oauth_error(repeated, "invalid_request")
    as_json = await op.client.post("/oauth2/token", json={"grant_type": "authorization_code", "code": code})
    assert_oauth_error(as_json, "invalid_request")
    assert_nothing_minted(op, before)
    assert (await redeem(op, req, code)).status_code == 200


# -- refresh_token (oidcc-refresh-token) ------------------------------------------------------------------


async def test_oidcc_refresh_token_rotates_and_uses_only_rfc6749_characters(op: Op) -> None:
    req, tokens = await offline_tokens(op)
    first_claims = await verify_id_token(op, tokens["id_token"], client_id="demo", nonce=req.nonce)
    assert VSCHAR.match(tokens["refresh_token"])
    response = await refresh(op, "demo", tokens["refresh_token"])
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    rotated = response.json()
    assert VSCHAR.match(rotated["refresh_token"])
    assert rotated["refresh_token"] != tokens["refresh_token"]
    assert rotated["scope"] == OFFLINE
    claims = await verify_id_token(op, rotated["id_token"], client_id="demo", nonce=None)
    assert (claims["sub"], claims["auth_time"]) == (first_claims["sub"], first_claims["auth_time"])
    assert await userinfo_status(op, rotated["access_token"]) == 200
    again = await refresh(op, "demo", rotated["refresh_token"])
    assert again.status_code == 200, again.text


async def test_rotated_refresh_token_reused_revokes_the_whole_family(op: Op) -> None:
    _, tokens = await offline_tokens(op)
    rotated = (await refresh(op, "demo", tokens["refresh_token"])).json()
    newest = (await refresh(op, "demo", rotated["refresh_token"])).json()
    before = snapshot(op)
    assert_oauth_error(await refresh(op, "demo", tokens["refresh_token"]), "invalid_grant")
    assert_nothing_minted(op, before)
    assert_oauth_error(await refresh(op, "demo", newest["refresh_token"]), "invalid_grant")
    for access in (tokens["access_token"], rotated["access_token"], newest["access_token"]):
        assert await userinfo_status(op, access) == 401
    assert snapshot(op).count("refresh") == snapshot(op).count("access") == 0


async def test_refresh_token_of_another_client_is_invalid_grant(op: Op) -> None:
    _, tokens = await offline_tokens(op)
    before = snapshot(op)
    assert_oauth_error(await refresh(op, "portal", tokens["refresh_token"]), "invalid_grant")
    assert_nothing_minted(op, before)


async def test_refresh_scope_can_be_narrowed_and_the_grant_keeps_its_scope(op: Op) -> None:
    _, tokens = await offline_tokens(op)
    narrowed = await refresh(op, "demo", tokens["refresh_token"], scope="openid offline_access")
    assert narrowed.status_code == 200, narrowed.text
    body = narrowed.json()
    assert body["scope"] == "openid offline_access"
    claims = await verify_id_token(op, body["id_token"], client_id="demo", nonce=None)
    assert "email" not in claims and "name" not in claims
    bearer = {"Authorization": f"Bearer {body['access_token']}"}
    info = await op.client.get("/oauth2/userinfo", headers=bearer)
    assert "email" not in info.json()
    full = await refresh(op, "demo", body["refresh_token"])
    assert full.json()["scope"] == OFFLINE


async def test_refresh_scope_widening_is_invalid_scope_and_changes_nothing(op: Op) -> None:
    _, tokens = await signed_in_tokens(op, EMAIL, AuthRequest(scope="openid offline_access"))
    before = snapshot(op)
    widened = await refresh(op, "demo", tokens["refresh_token"], scope="openid email offline_access")
    assert_oauth_error(widened, "invalid_scope")
    assert_nothing_minted(op, before)
    assert (await refresh(op, "demo", tokens["refresh_token"])).status_code == 200


@pytest.mark.parametrize(("value", "error"), [
    (None, "invalid_request"), ("gwrt_" + "A" * 43, "invalid_grant"), ("not-a-token", "invalid_grant"),
])
async def test_missing_or_unknown_refresh_token(op: Op, value: str | None, error: str) -> None:
    before = snapshot(op)
    response = await client_post(op, "demo", {"grant_type": "refresh_token", "refresh_token": value})
    assert_oauth_error(response, error)
    assert_nothing_minted(op, before)


async def test_concurrent_code_redemptions_leave_no_live_token(op: Op) -> None:
    """A replay racing the genuine redemption: at most one answer has tokens, and they are revoked."""
    req, code = await sign_in(op, EMAIL, AuthRequest(scope=OFFLINE))
    responses = await asyncio.gather(*(redeem(op, req, code) for _ in range(3)))
    winners = [r.json() for r in responses if r.status_code == 200]
    assert len(winners) <= 1
    for response in responses:
        if response.status_code != 200:
            assert_oauth_error(response, "invalid_grant")
    for tokens in winners:
        assert await userinfo_status(op, tokens["access_token"]) == 401
        assert_oauth_error(await refresh(op, "demo", tokens["refresh_token"]), "invalid_grant")
    assert snapshot(op).count("access") == snapshot(op).count("refresh") == 0


async def test_concurrent_refresh_with_one_token_leaves_no_live_family(op: Op) -> None:
    """Reuse detection cannot be outrun: whatever the interleaving, the family ends revoked."""
    _, tokens = await offline_tokens(op)
    responses = await asyncio.gather(*(refresh(op, "demo", tokens["refresh_token"]) for _ in range(3)))
    winners = [r.json() for r in responses if r.status_code == 200]
    assert len(winners) <= 1
    assert any(r.status_code == 400 for r in responses)
    for rotated in winners:
        assert_oauth_error(await refresh(op, "demo", rotated["refresh_token"]), "invalid_grant")
        assert await userinfo_status(op, rotated["access_token"]) == 401
    assert await userinfo_status(op, tokens["access_token"]) == 401
    assert snapshot(op).count("access") == snapshot(op).count("refresh") == 0
