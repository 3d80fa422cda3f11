"""client_credentials (RFC 6749 4.4) for automation clients that call the admin API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.assertions import assert_oauth_error
from tests.support.gateway_app import ISSUER, default_config, make_settings, running_app
from tests.support.inspect_store import snapshot
from tests.support.smtp_server import SmtpServer

SECRET = "automation-secret-0123456789"
AUTOMATION = {
    "id": "automation",
    "name": "Provisioning job",
    "oidc": {
        "client_id": "automation",
        "client_secret": SECRET,
        "redirect_uris": ["https://jobs.example/cb"],
    },
    "api_permissions": ["User.Invite.All", "User.Read.All"],
}
CONFIDENTIAL_WITHOUT_PERMISSIONS = {
    "id": "portal",
    "name": "Portal",
    "oidc": {"client_id": "portal", "client_secret": SECRET, "redirect_uris": ["https://portal.example/cb"]},
}


@pytest.fixture
async def gateway(tmp_path: Path, smtp_server: SmtpServer) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    apps = [*default_config()["applications"], AUTOMATION, CONFIDENTIAL_WITHOUT_PERMISSIONS]
    async with running_app(make_settings(tmp_path, smtp_server, applications=apps)) as running:
        yield running


async def token(
    client: httpx.AsyncClient, client_id: str, secret: str | None, **extra: str
) -> httpx.Response:
    data = {"grant_type": "client_credentials", **extra}
    if secret is None:
        data["client_id"] = client_id
        return await client.post("/oauth2/token", data=data)
    return await client.post("/oauth2/token", data=data, auth=(client_id, secret))


async def test_automation_client_gets_an_app_token_with_its_roles(
    app: Any, client: httpx.AsyncClient
) -> None:
    response = await token(client, "automation", SECRET, scope=f"{ISSUER}/.default")
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["token_type"] == "Bearer" and body["access_token"].startswith("gwat_")
    introspection = await client.post(
        "/oauth2/introspect", data={"token": body["access_token"]}, auth=("automation", SECRET)
    )
    assert introspection.json()["active"] is True and introspection.json()["client_id"] == "automation"
    userinfo = await client.get(
        "/oauth2/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert userinfo.status_code == 403  # an app token is no user's: no openid scope


@pytest.mark.parametrize(
    ("client_id", "secret", "error", "status"),
    [
        ("automation", "wrong-secret-0123456789", "invalid_client", 401),
        ("demo", None, "unauthorized_client", 400),
        ("portal", SECRET, "unauthorized_client", 400),
    ],
    ids=["wrong secret", "public client", "confidential client without api_permissions"],
)
async def test_client_credentials_refused(
    app: Any, client: httpx.AsyncClient, client_id: str, secret: str | None, error: str, status: int
) -> None:
    before = snapshot(app)
    assert_oauth_error(await token(client, client_id, secret), error, status)
    assert snapshot(app).count("access") == before.count("access")


async def test_client_credentials_with_another_scope_is_refused(app: Any, client: httpx.AsyncClient) -> None:
    assert_oauth_error(await token(client, "automation", SECRET, scope="openid"), "invalid_scope")
    assert snapshot(app).count("access") == 0


async def test_api_permissions_need_a_confidential_client(tmp_path: Path, smtp_server: SmtpServer) -> None:
    from pydantic import ValidationError

    public = {**AUTOMATION, "oidc": {**AUTOMATION["oidc"], "client_secret": None}}  # type: ignore[dict-item]
    with pytest.raises(ValidationError, match="confidential"):
        make_settings(tmp_path, smtp_server, applications=[*default_config()["applications"], public])
