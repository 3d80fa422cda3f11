"""CORS for single-page apps on the token and userinfo endpoints only, per app (``oidc.allowed_origins``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.assertions import PORTAL_SECRET, Op, applications, running_op, sign_in
from tests.support.flows import AuthRequest
from tests.support.smtp_server import SmtpServer

SPA = "https://spa.example"  # listed by demo
PORTAL_ORIGIN = "https://portal-ui.example:8443"  # listed by portal only
EVIL = "https://evil.example"
EMAIL = "guest@fabrikam.example"


def _apps() -> list[dict[str, Any]]:
    apps = applications()
    apps[0]["oidc"]["allowed_origins"] = [SPA, "http://127.0.0.1:3000"]
    apps[1]["oidc"]["allowed_origins"] = ["HTTPS://Portal-UI.example:8443"]  # normalised
    return apps


@pytest.fixture
async def op(tmp_path: Path, smtp_server: SmtpServer) -> AsyncIterator[Op]:
    async with running_op(tmp_path, smtp_server, applications=_apps()) as running:
        yield running


def preflight_headers(origin: str, method: str = "POST", headers: str | None = None) -> dict[str, str]:
    sent = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers is not None:
        sent["Access-Control-Request-Headers"] = headers
    return sent


def assert_no_cors(response: httpx.Response) -> None:
    assert not [name for name in response.headers if name.lower().startswith("access-control-")]


@pytest.mark.parametrize(("path", "methods"), [("/oauth2/token", "POST"), ("/oauth2/userinfo", "GET, POST")])
@pytest.mark.parametrize("origin", [SPA, PORTAL_ORIGIN, "http://127.0.0.1:3000"])
async def test_preflight_from_an_origin_some_app_allows(op: Op, path: str, methods: str, origin: str) -> None:
    response = await op.client.options(
        path, headers=preflight_headers(origin, headers="authorization,content-type")
    )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == origin
    assert response.headers["access-control-allow-methods"] == methods
    assert response.headers["access-control-allow-headers"] == "Authorization, Content-Type"
    assert int(response.headers["access-control-max-age"]) > 0
    assert "Origin" in response.headers["vary"]
    assert "access-control-allow-credentials" not in response.headers


@pytest.mark.parametrize(
    "sent",
    [
        preflight_headers(EVIL),
        preflight_headers("null"),
        preflight_headers("https://spa.example.evil.example"),
        preflight_headers("http://spa.example"),
        preflight_headers(SPA, method="PUT"),
        preflight_headers(SPA, headers="authorization, dpop"),
        preflight_headers(SPA, headers="x-requested-with"),
    ],
    ids=["unknown origin", "null origin", "suffix", "other scheme", "method", "dpop header", "other header"],
)
async def test_preflight_refused(op: Op, sent: dict[str, str]) -> None:
    response = await op.client.options("/oauth2/token", headers=sent)
    assert response.status_code == 403
    assert_no_cors(response)


async def test_userinfo_preflight_refuses_a_method_it_does_not_take(op: Op) -> None:
    response = await op.client.options("/oauth2/userinfo", headers=preflight_headers(SPA, method="DELETE"))
    assert response.status_code == 403
    assert_no_cors(response)


async def test_options_without_origin_is_no_preflight(op: Op) -> None:
    response = await op.client.options("/oauth2/token")
    assert response.status_code == 204
    assert response.headers["allow"] == "OPTIONS, POST"
    assert_no_cors(response)


@pytest.mark.parametrize("path", ["/oauth2/revoke", "/oauth2/introspect", "/oauth2/authorize", "/oauth2/jwks",
                                  "/.well-known/openid-configuration", "/oauth2/logout"])  # fmt: skip
async def test_other_endpoints_answer_no_cors(op: Op, path: str) -> None:
    preflight = await op.client.options(path, headers=preflight_headers(SPA))
    assert preflight.status_code == 405
    assert_no_cors(preflight)
    actual = await op.client.post(path, headers={"Origin": SPA}, data={"token": "x", "client_id": "demo"})
    assert_no_cors(actual)


async def test_actual_token_request_allows_only_the_identified_clients_origins(op: Op) -> None:
    data = {"grant_type": "authorization_code", "code": "nope", "redirect_uri": "x", "client_id": "demo"}
    mine = await op.client.post("/oauth2/token", data=data, headers={"Origin": SPA})
    assert mine.status_code == 400 and mine.json()["error"] == "invalid_grant"
    assert mine.headers["access-control-allow-origin"] == SPA
    assert "Origin" in mine.headers["vary"]
    assert "access-control-allow-credentials" not in mine.headers
    another_apps = await op.client.post("/oauth2/token", data=data, headers={"Origin": PORTAL_ORIGIN})
    assert "access-control-allow-origin" not in another_apps.headers
    assert "Origin" in another_apps.headers["vary"]
    evil = await op.client.post("/oauth2/token", data=data, headers={"Origin": EVIL})
    assert "access-control-allow-origin" not in evil.headers
    no_origin = await op.client.post("/oauth2/token", data=data)
    assert_no_cors(no_origin)


async def test_a_signed_in_spa_reads_its_tokens_and_userinfo(op: Op) -> None:
    req, code = await sign_in(op, EMAIL, AuthRequest())
    tokens = await op.client.post(
        "/oauth2/token", headers={"Origin": SPA},
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": req.redirect_uri,
              "client_id": "demo", "code_verifier": req.verifier},
    )  # fmt: skip
    assert tokens.status_code == 200 and tokens.headers["access-control-allow-origin"] == SPA
    bearer = {"Authorization": f"Bearer {tokens.json()['access_token']}"}
    info = await op.client.get("/oauth2/userinfo", headers={**bearer, "Origin": SPA})
    assert info.status_code == 200 and info.headers["access-control-allow-origin"] == SPA
    assert "Origin" in info.headers["vary"]
    # The portal's origin is allowed for the portal, not for a demo token.
    other = await op.client.get("/oauth2/userinfo", headers={**bearer, "Origin": PORTAL_ORIGIN})
    assert other.status_code == 200 and "access-control-allow-origin" not in other.headers


async def test_the_authenticated_client_decides_not_the_body(op: Op) -> None:
    data = {"grant_type": "authorization_code", "code": "nope", "redirect_uri": "x"}
    portal = await op.client.post(
        "/oauth2/token", data=data, auth=("portal", PORTAL_SECRET), headers={"Origin": PORTAL_ORIGIN}
    )
    assert portal.status_code == 400 and portal.headers["access-control-allow-origin"] == PORTAL_ORIGIN
    as_demo = await op.client.post(
        "/oauth2/token", data=data, auth=("portal", PORTAL_SECRET), headers={"Origin": SPA}
    )
    assert as_demo.status_code == 400 and "access-control-allow-origin" not in as_demo.headers


async def test_userinfo_without_a_live_token_lets_a_listed_origin_read_the_401(op: Op) -> None:
    bearer = {"Authorization": "Bearer gwat_unknown"}
    listed = await op.client.get("/oauth2/userinfo", headers={**bearer, "Origin": SPA})
    assert listed.status_code == 401 and listed.headers["access-control-allow-origin"] == SPA
    assert listed.headers["access-control-expose-headers"] == "WWW-Authenticate"
    unlisted = await op.client.get("/oauth2/userinfo", headers={**bearer, "Origin": EVIL})
    assert unlisted.status_code == 401 and "access-control-allow-origin" not in unlisted.headers
