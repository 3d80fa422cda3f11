"""``limits.token_requests_per_client_per_minute``: per authenticated client, counted in the shared store
(two gateway instances on one SQLite file or one Redis share it), 429 + Retry-After, window resets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.assertions import Clock, assert_oauth_error
from tests.support.flows import exchange, sign_in
from tests.support.gateway_app import default_config, make_settings, running_app
from tests.support.inspect_store import snapshot
from tests.support.smtp_server import SmtpServer

SECRET = "automation-secret-0123456789"


def automation(app_id: str) -> dict[str, Any]:
    return {
        "id": app_id, "name": app_id, "api_permissions": ["User.Read.All"],
        "oidc": {"client_id": app_id, "client_secret": SECRET, "redirect_uris": [f"https://{app_id}.example/cb"]},
    }  # fmt: skip


def settings_for(tmp_path: Path, smtp: SmtpServer, store: str | None = None) -> Any:
    overrides: dict[str, Any] = {
        "applications": [*default_config()["applications"], automation("job-a"), automation("job-b")],
        "limits": {"token_requests_per_client_per_minute": 2},
    }
    if store is not None:
        overrides["store"] = store
    return make_settings(tmp_path, smtp, **overrides)


async def app_token(client: httpx.AsyncClient, client_id: str, secret: str = SECRET) -> httpx.Response:
    return await client.post(
        "/oauth2/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
    )


def assert_limited(response: httpx.Response) -> int:
    body = assert_oauth_error(response, "invalid_request", 429)
    assert body["error_description"].startswith("too many requests")
    wait = int(response.headers["retry-after"])
    assert 1 <= wait <= 60
    return wait


async def test_past_the_limit_is_429_with_retry_after_and_nothing_minted(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    settings = settings_for(tmp_path, smtp_server)
    async with running_app(settings) as (_, client):
        for _ in range(2):
            assert (await app_token(client, "job-a")).status_code == 200
        minted = snapshot(settings).count("access")
        assert_limited(await app_token(client, "job-a"))
        assert snapshot(settings).count("access") == minted
        assert (await app_token(client, "job-b")).status_code == 200  # per client


async def test_failed_authentication_does_not_use_up_the_clients_requests(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    async with running_app(settings_for(tmp_path, smtp_server)) as (_, client):
        for _ in range(5):
            assert_oauth_error(
                await app_token(client, "job-a", "wrong-secret-0123456789"), "invalid_client", 401
            )
        assert (await app_token(client, "job-a")).status_code == 200


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
async def test_the_limit_is_shared_by_two_instances_on_one_store(
    tmp_path: Path, smtp_server: SmtpServer, fresh_redis_url: str, backend: str
) -> None:
    settings = settings_for(tmp_path, smtp_server, fresh_redis_url if backend == "redis" else None)
    async with running_app(settings) as (_, first), running_app(settings) as (_, second):
        assert (await app_token(first, "job-a")).status_code == 200
        assert (await app_token(second, "job-a")).status_code == 200
        assert_limited(await app_token(first, "job-a"))
        assert_limited(await app_token(second, "job-a"))


async def test_the_window_resets(tmp_path: Path, smtp_server: SmtpServer) -> None:
    clock = Clock()
    async with running_app(settings_for(tmp_path, smtp_server), clock=clock) as (app, client):
        app.state.runtime.store._clock = clock  # the SQLite store's windows follow the test clock
        for _ in range(2):
            assert (await app_token(client, "job-a")).status_code == 200
        wait = assert_limited(await app_token(client, "job-a"))
        clock.advance(wait - 1)
        assert_limited(await app_token(client, "job-a"))
        clock.advance(2)
        assert (await app_token(client, "job-a")).status_code == 200


async def test_a_public_clients_requests_are_counted_per_client_address(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    """Anyone can name a public client (``demo``): one address past the limit must not lock out every
    user of the app."""
    settings = settings_for(tmp_path, smtp_server)
    refresh = {"grant_type": "refresh_token", "client_id": "demo", "refresh_token": "not-a-token"}
    async with running_app(settings) as (app, client):
        for _ in range(2):
            assert_oauth_error(await client.post("/oauth2/token", data=refresh), "invalid_grant", 400)
        assert_limited(await client.post("/oauth2/token", data=refresh))
        other = httpx.ASGITransport(app=app, client=("198.51.100.9", 40000))
        async with httpx.AsyncClient(transport=other, base_url=str(client.base_url)) as elsewhere:
            answer = await elsewhere.post("/oauth2/token", data=refresh)
            assert_oauth_error(answer, "invalid_grant", 400)  # not 429: another address has its own count


async def test_a_code_exchange_past_the_limit_leaves_the_code_unused(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    """The count and the code's redemption are one store call: past the limit the code is not used up,
    so it still works once the window has passed (and then only once)."""
    clock = Clock()
    settings = settings_for(tmp_path, smtp_server)
    settings = settings.model_copy(
        update={"tokens": settings.tokens.model_copy(update={"authorization_code_seconds": 600})}
    )
    async with running_app(settings, clock=clock) as (app, client):
        app.state.runtime.store._clock = clock
        req, query = await sign_in(client, smtp_server, "limited@partner.example")
        refresh = {"grant_type": "refresh_token", "client_id": "demo", "refresh_token": "not-a-token"}
        for _ in range(2):
            assert_oauth_error(await client.post("/oauth2/token", data=refresh), "invalid_grant", 400)
        minted = snapshot(settings).count("access")
        wait = assert_limited(await exchange(client, req, query["code"]))
        assert snapshot(settings).count("access") == minted
        # Within the limit, a request that is wrong before the code is redeemed leaves it unused too.
        clock.advance(wait + 1)
        missing = await exchange(client, req, query["code"], redirect_uri="")
        assert_oauth_error(missing, "invalid_request", 400)
        assert (await exchange(client, req, query["code"])).status_code == 200
        clock.advance(61)
        assert_oauth_error(await exchange(client, req, query["code"]), "invalid_grant", 400)
