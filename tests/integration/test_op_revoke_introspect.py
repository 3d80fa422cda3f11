"""Token revocation (RFC 7009) and introspection (RFC 7662).

Revoking an access token removes that token; revoking a refresh token removes its whole
family (RFC 7009 2.1). An unknown token, or one of another client, is answered 200 and
left alone (RFC 7009 2.2). Introspection is for confidential clients and reports only
their own live tokens as active.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.assertions import (
    PORTAL_REDIRECT,
    PORTAL_SECRET,
    Op,
    assert_nothing_minted,
    assert_oauth_error,
    client_post,
    no_pkce,
    running_op,
    signed_in_tokens,
    snapshot,
)
from tests.support.flows import AuthRequest
from tests.support.gateway_app import ISSUER
from tests.support.smtp_server import SmtpServer

EMAIL = "guest@fabrikam.example"
OFFLINE = "openid profile email offline_access"


@pytest.fixture
async def op(tmp_path: Path, smtp_server: SmtpServer) -> AsyncIterator[Op]:
    async with running_op(tmp_path, smtp_server) as running:
        yield running


async def demo_tokens(op: Op) -> dict[str, Any]:
    return (await signed_in_tokens(op, EMAIL, AuthRequest(scope=OFFLINE)))[1]


async def portal_tokens(op: Op) -> dict[str, Any]:
    return (await signed_in_tokens(op, EMAIL, no_pkce("portal", PORTAL_REDIRECT, OFFLINE)))[1]


async def revoke(op: Op, client_id: str, token: str, **extra: str | None) -> httpx.Response:
    return await client_post(op, client_id, {"token": token, **extra}, path="/oauth2/revoke")


async def introspect(op: Op, client_id: str, token: str, **extra: str | None) -> httpx.Response:
    return await client_post(op, client_id, {"token": token, **extra}, path="/oauth2/introspect")


async def userinfo_status(op: Op, access_token: str) -> int:
    response = await op.client.get("/oauth2/userinfo", headers={"Authorization": f"Bearer {access_token}"})
    return response.status_code


async def refresh_status(op: Op, client_id: str, refresh_token: str) -> int:
    data: dict[str, str | None] = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    return (await client_post(op, client_id, data)).status_code


def assert_revocation_ok(response: httpx.Response) -> None:
    assert response.status_code == 200, response.text
    assert response.content == b""
    assert response.headers["cache-control"] == "no-store"


# -- revocation --------------------------------------------------------------------------------------


async def test_revoking_an_access_token_stops_it_at_once_and_leaves_the_refresh_token(op: Op) -> None:
    tokens = await demo_tokens(op)
    assert await userinfo_status(op, tokens["access_token"]) == 200
    before = snapshot(op)
    assert_revocation_ok(await revoke(op, "demo", tokens["access_token"], token_type_hint="access_token"))
    assert await userinfo_status(op, tokens["access_token"]) == 401
    assert_nothing_minted(op, before)
    assert await refresh_status(op, "demo", tokens["refresh_token"]) == 200


@pytest.mark.parametrize("hint", [None, "refresh_token", "access_token"])
async def test_revoking_a_refresh_token_revokes_its_whole_family(op: Op, hint: str | None) -> None:
    tokens = await demo_tokens(op)
    rotated = (await client_post(op, "demo", {"grant_type": "refresh_token",
                                              "refresh_token": tokens["refresh_token"]})).json()
    before = snapshot(op)
    assert_revocation_ok(await revoke(op, "demo", rotated["refresh_token"], token_type_hint=hint))
    assert_nothing_minted(op, before)
    assert await refresh_status(op, "demo", rotated["refresh_token"]) == 400
    for access in (tokens["access_token"], rotated["access_token"]):
        assert await userinfo_status(op, access) == 401
    assert snapshot(op).count("refresh") == snapshot(op).count("access") == 0


@pytest.mark.parametrize("token", ["gwat_" + "A" * 43, "gwrt_" + "B" * 43, "unknown", "x" * 3000])
async def test_unknown_token_is_answered_200_and_changes_nothing(op: Op, token: str) -> None:
    tokens = await demo_tokens(op)
    before = snapshot(op)
    assert_revocation_ok(await revoke(op, "demo", token))
    assert snapshot(op) == before
    assert await userinfo_status(op, tokens["access_token"]) == 200


async def test_token_of_another_client_is_answered_200_and_stays_valid(op: Op) -> None:
    tokens = await demo_tokens(op)
    before = snapshot(op)
    assert_revocation_ok(await revoke(op, "portal", tokens["access_token"]))
    assert_revocation_ok(await revoke(op, "portal", tokens["refresh_token"]))
    assert snapshot(op) == before
    assert await userinfo_status(op, tokens["access_token"]) == 200
    assert await refresh_status(op, "demo", tokens["refresh_token"]) == 200


async def test_revocation_requires_client_authentication(op: Op) -> None:
    tokens = await portal_tokens(op)
    before = snapshot(op)
    wrong = await op.client.post("/oauth2/revoke", data={"token": tokens["access_token"]},
                                 auth=("portal", PORTAL_SECRET + "x"))
    assert_oauth_error(wrong, "invalid_client", 401)
    assert wrong.headers["www-authenticate"].startswith("Basic")
    anonymous = await op.client.post("/oauth2/revoke", data={"token": tokens["access_token"]})
    assert_oauth_error(anonymous, "invalid_client", 401)
    assert_oauth_error(await client_post(op, "portal", {}, path="/oauth2/revoke"), "invalid_request")
    assert snapshot(op) == before
    assert await userinfo_status(op, tokens["access_token"]) == 200


# -- introspection ------------------------------------------------------------------------------------


async def test_introspection_reports_own_access_and_refresh_tokens_active(op: Op) -> None:
    tokens = await portal_tokens(op)
    sub = (await op.client.get("/oauth2/userinfo",
                               headers={"Authorization": f"Bearer {tokens['access_token']}"})).json()["sub"]
    now = op.now()
    for token, token_type in ((tokens["access_token"], "Bearer"), (tokens["refresh_token"], "refresh_token")):
        response = await introspect(op, "portal", token)
        assert response.status_code == 200, response.text
        assert response.headers["cache-control"] == "no-store"
        body = response.json()
        assert body["active"] is True
        assert body["token_type"] == token_type
        assert (body["client_id"], body["aud"], body["iss"], body["sub"]) == ("portal", "portal", ISSUER, sub)
        assert body["scope"] == OFFLINE
        assert body["iat"] <= now < body["exp"]


async def test_introspection_with_client_secret_post(op: Op) -> None:
    tokens = await portal_tokens(op)
    response = await client_post(op, "portal", {"token": tokens["access_token"]}, auth="post",
                                 path="/oauth2/introspect")
    assert response.json()["active"] is True


async def test_revoked_expired_rotated_unknown_and_foreign_tokens_are_inactive(op: Op) -> None:
    tokens = await portal_tokens(op)
    demo = await demo_tokens(op)
    rotated = (await client_post(op, "portal", {"grant_type": "refresh_token",
                                                "refresh_token": tokens["refresh_token"]})).json()
    assert_revocation_ok(await revoke(op, "portal", rotated["access_token"]))
    inactive = {
        "revoked_access": rotated["access_token"],
        "rotated_refresh": tokens["refresh_token"],
        "unknown": "gwat_" + "C" * 43,
        "other_clients_access": demo["access_token"],
        "other_clients_refresh": demo["refresh_token"],
        "id_token": rotated["id_token"],
    }
    for name, token in inactive.items():
        assert (await introspect(op, "portal", token)).json() == {"active": False}, name
    assert (await introspect(op, "portal", rotated["refresh_token"])).json()["active"] is True
    op.clock.advance(3600)
    assert (await introspect(op, "portal", tokens["access_token"])).json() == {"active": False}


async def test_introspection_refuses_public_and_unauthenticated_clients(op: Op) -> None:
    demo = await demo_tokens(op)
    portal = await portal_tokens(op)
    before = snapshot(op)
    public = await introspect(op, "demo", demo["access_token"])
    assert_oauth_error(public, "invalid_client", 401)
    wrong = await op.client.post("/oauth2/introspect", data={"token": portal["access_token"]},
                                 auth=("portal", "wrong-secret-wrong-secret"))
    assert_oauth_error(wrong, "invalid_client", 401)
    assert_oauth_error(await client_post(op, "portal", {}, path="/oauth2/introspect"), "invalid_request")
    assert snapshot(op) == before
