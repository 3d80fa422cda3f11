"""A partner's OIDC IdP that is down: refused connections, a 5xx token endpoint, a token endpoint
that never answers.

The gateway runs in-process; the partner IdP is the test IdP on real loopback sockets (or a port
with nothing listening). Every request the gateway makes to the upstream is counted through an
event hook on the runtime's shared HTTP client. Each case shows a clear page, leaves an audit
record naming ``upstream_unavailable``, creates no user, and makes at most one request per user
action (the connector does not retry; discovery failures are remembered for a few seconds, so a
burst of users costs one request).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.runtime import Runtime
from idp_connectors.oidc import metadata
from tests.support import flows
from tests.support.gateway_app import make_settings, running_app
from tests.support.oidc_idp import IdpClient, IdpUser, OidcTestIdP, free_port, serve_on_loopback
from tests.support.smtp_server import SmtpServer

PARTNER_TENANT = "11111111-2222-4333-8444-555555555555"
CALLBACK = "http://127.0.0.1:8000/callback/partner-a"
SECRET = "s3cret with spaces & symbols"
ALICE = "alice@partner-a.example"
CONTINUE = re.compile(r'id="continue" href="([^"]+)"')


def partner_settings(tmp_path: Path, smtp: SmtpServer, issuer: str, **connector: Any) -> Any:
    entry = {
        "id": "partner-a", "type": "oidc", "issuer": issuer, "client_id": "gateway",
        "client_secret": SECRET, "display_name": "Partner A", **connector,
    }  # fmt: skip
    return make_settings(
        tmp_path,
        smtp,
        connectors=[{"id": "email", "type": "email_otp"}, entry],
        user_flows=[{"id": "default", "identity_providers": ["email", "partner-a"]}],
        cross_tenant_access={
            "partners": [
                {"tenant_id": PARTNER_TENANT, "domains": ["partner-a.example"], "connector": "partner-a"}
            ]
        },
    )


class Counter:
    """Counts the requests the runtime's HTTP client sends to one host:port, by path."""

    def __init__(self, rt: Runtime, netloc: str) -> None:
        self.netloc = netloc
        self.paths: list[str] = []
        rt.http.event_hooks["request"].append(self._hook)

    async def _hook(self, request: httpx.Request) -> None:
        if request.url.netloc.decode() == self.netloc:
            self.paths.append(request.url.path)

    def count(self, suffix: str) -> int:
        return sum(1 for path in self.paths if path.endswith(suffix))


@pytest.fixture
def audit(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="gateway.audit")
    return caplog


def failures(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    found = []
    for record in caplog.records:
        if record.name == "gateway.audit":
            parsed = json.loads(record.getMessage())
            if parsed.get("result") == "failure":
                found.append(parsed)
    return found


async def begin_upstream(client: httpx.AsyncClient) -> httpx.Response:
    """Email-first page -> the partner's address -> the page that would send the browser home."""
    path = await flows.start(client, flows.AuthRequest())
    sent = await flows.submit_email(client, path, ALICE)
    assert sent.status_code == 303, sent.text
    assert sent.headers["location"] == f"{path}/upstream"
    return await client.get(sent.headers["location"])


def assert_unavailable_page(response: httpx.Response) -> None:
    assert response.status_code == 502, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "location" not in response.headers
    assert "Your organisation&#39;s sign-in is unavailable" in response.text or (
        "Your organisation's sign-in is unavailable" in response.text
    )
    assert "Traceback" not in response.text


@pytest.fixture
def idp() -> Iterator[OidcTestIdP]:
    with serve_on_loopback(clients=[IdpClient(redirect_uris=[CALLBACK])], user=IdpUser(email=ALICE)) as idp:
        yield idp


async def test_refused_connection_shows_a_clear_page_and_a_burst_costs_one_request(
    tmp_path: Path, smtp_server: SmtpServer, audit: pytest.LogCaptureFixture
) -> None:
    port = free_port()  # nothing listens there: connection refused
    settings = partner_settings(tmp_path, smtp_server, f"http://127.0.0.1:{port}")
    async with running_app(settings) as (app, client):
        counter = Counter(app.state.runtime, f"127.0.0.1:{port}")
        first = await begin_upstream(client)
        assert_unavailable_page(first)
        assert "could not be reached" in first.text
        for _ in range(4):  # four more users within the negative-cache window
            assert_unavailable_page(await begin_upstream(client))
        assert counter.count("/.well-known/openid-configuration") == 1
        assert len(counter.paths) == 1
        records = failures(audit)
        assert len(records) == 5
        assert {r["reason"] for r in records} == {"upstream_unavailable"}
        assert all(r["connector"] == "partner-a" for r in records)
        assert (await app.state.runtime.store.list_users())[0] == []


async def test_discovery_is_tried_again_once_the_negative_cache_expired(
    tmp_path: Path, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(metadata, "NEGATIVE_CACHE_SECONDS", 0.0)
    port = free_port()
    settings = partner_settings(tmp_path, smtp_server, f"http://127.0.0.1:{port}")
    async with running_app(settings) as (app, client):
        counter = Counter(app.state.runtime, f"127.0.0.1:{port}")
        for _ in range(3):
            assert_unavailable_page(await begin_upstream(client))
        assert counter.count("/.well-known/openid-configuration") == 3  # one per user action, no more


async def _through_idp(client: httpx.AsyncClient, idp: OidcTestIdP) -> httpx.Response:
    """Begin, let the (real) IdP answer the browser, then deliver its answer to the callback."""
    page = await begin_upstream(client)
    assert page.status_code == 200, page.text
    match = CONTINUE.search(page.text)
    assert match
    url = match.group(1).replace("&amp;", "&")
    async with httpx.AsyncClient() as browser:
        at_idp = await browser.get(url)
    assert at_idp.status_code == 302, at_idp.text
    location = at_idp.headers["location"]
    assert location.startswith(CALLBACK)
    return await client.get("/callback/partner-a", params=flows.query_of(location))


@pytest.mark.parametrize("fault", ["http_503", "timeout"])
async def test_token_endpoint_failure_shows_a_clear_page_after_one_request(
    tmp_path: Path, smtp_server: SmtpServer, idp: OidcTestIdP, audit: pytest.LogCaptureFixture, fault: str
) -> None:
    if fault == "http_503":
        idp.knobs.token_status = 503
    else:
        idp.knobs.token_delay = 2.0
    settings = partner_settings(tmp_path, smtp_server, idp.issuer, http_timeout_seconds=0.5)
    async with running_app(settings) as (app, client):
        counter = Counter(app.state.runtime, idp.issuer.removeprefix("http://"))
        answer = await _through_idp(client, idp)
        assert answer.status_code == 400, answer.text
        assert answer.headers["content-type"].startswith("text/html")
        assert "Sign-in failed at your organisation" in answer.text
        expected = "failed (HTTP 503)" if fault == "http_503" else "did not answer within 0.5 seconds"
        assert expected in answer.text
        assert counter.count("/token") == 1  # no retry, no loop
        assert counter.count("/.well-known/openid-configuration") == 1
        [record] = failures(audit)
        assert record["reason"] == "upstream_unavailable"
        assert record["connector"] == "partner-a"
        assert (await app.state.runtime.store.list_users())[0] == []

        idp.knobs.token_status, idp.knobs.token_delay = 200, 0.0  # the IdP is back: the user retries
        retried = await _through_idp(client, idp)
        assert retried.status_code == 303, retried.text
        assert len((await app.state.runtime.store.list_users())[0]) == 1
