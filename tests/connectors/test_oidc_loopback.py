"""The ``oidc`` connector against the test IdP over real loopback HTTP (uvicorn in a thread)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from idp_connectors.base import BeginRequest, Callback, ConnectorContext, ConnectorError
from idp_connectors.oidc.config import OidcConfig
from idp_connectors.oidc.connector import OidcConnector
from tests.support.memory_state import MemoryState
from tests.support.oidc_idp import CALLBACK, NoMail, OidcTestIdP, free_port, serve_on_loopback


@pytest.fixture(scope="module")
def idp() -> Iterator[OidcTestIdP]:
    with serve_on_loopback() as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def connector(issuer: str, http: httpx.AsyncClient, **overrides: object) -> OidcConnector:
    config = OidcConfig.model_validate(
        {
            "id": "partner-a",
            "type": "oidc",
            "issuer": issuer,
            "client_id": "gateway",
            "client_secret": "s3cret with spaces & symbols",
            **overrides,
        }
    )
    ctx = ConnectorContext(
        state=MemoryState(),
        mail=NoMail(),
        keyed_hash=lambda purpose, value: value,
        tenant_name="Contoso",
        http=http,
    )
    return config.open(ctx)


async def test_full_sign_in_over_loopback_http(idp: OidcTestIdP, http: httpx.AsyncClient) -> None:
    idp.knobs.advertise_iss = idp.knobs.send_iss = True
    try:
        rp = connector(idp.issuer, http)
        redirect = await rp.begin(BeginRequest(state="st-1", callback_url=CALLBACK, login_hint="alice"))
        answer = await http.get(redirect.url)
        assert answer.status_code == 302
        location = answer.headers["location"]
        assert location.startswith(CALLBACK + "?")
        params = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
        assert params["iss"] == idp.issuer
        identity = await rp.complete(Callback(params=params, state=redirect.state, callback_url=CALLBACK))
        assert identity.subject == "alice-0001"
        assert identity.issuer == idp.issuer
    finally:
        idp.knobs.advertise_iss = idp.knobs.send_iss = False


async def test_interactive_sign_in_form(idp: OidcTestIdP, http: httpx.AsyncClient) -> None:
    idp.knobs.interactive = True
    try:
        rp = connector(idp.issuer, http)
        redirect = await rp.begin(BeginRequest(state="st-2", callback_url=CALLBACK))
        page = await http.get(redirect.url)
        assert page.status_code == 200
        assert "<button" in page.text and "Sign in" in page.text
        fields = dict(parse_qs(urlsplit(redirect.url).query))
        answer = await http.post(idp.url("/authorize"), data={k: v[0] for k, v in fields.items()})
        assert answer.status_code == 302
        params = {k: v[0] for k, v in parse_qs(urlsplit(answer.headers["location"]).query).items()}
        identity = await rp.complete(Callback(params=params, state=redirect.state, callback_url=CALLBACK))
        assert identity.email == "alice@partner-a.example"
    finally:
        idp.knobs.interactive = False


async def test_token_endpoint_timeout_over_loopback(idp: OidcTestIdP, http: httpx.AsyncClient) -> None:
    idp.knobs.token_delay = 1.5
    try:
        rp = connector(idp.issuer, http, http_timeout_seconds=0.3)
        redirect = await rp.begin(BeginRequest(state="st-3", callback_url=CALLBACK))
        answer = await http.get(redirect.url)
        params = {k: v[0] for k, v in parse_qs(urlsplit(answer.headers["location"]).query).items()}
        with pytest.raises(ConnectorError) as caught:
            await rp.complete(Callback(params=params, state=redirect.state, callback_url=CALLBACK))
        assert caught.value.code == "upstream_unavailable"
    finally:
        idp.knobs.token_delay = 0


async def test_unreachable_upstream_is_upstream_unavailable(http: httpx.AsyncClient) -> None:
    rp = connector(f"http://127.0.0.1:{free_port()}", http, http_timeout_seconds=2)
    with pytest.raises(ConnectorError) as caught:
        await rp.begin(BeginRequest(state="st-4", callback_url=CALLBACK))
    assert caught.value.code == "upstream_unavailable"
