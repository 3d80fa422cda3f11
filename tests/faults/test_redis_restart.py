"""Redis stops in the middle of a passcode sign-in, then comes back.

The gateway runs in-process on a private ``redis-server`` (``RestartableRedis``). While Redis is
down every request that needs the store gets a 503 with ``Retry-After`` (a page naming a
temporary problem, the OAuth JSON error ``temporarily_unavailable`` on the token endpoint, the
RFC 6749 4.1.2.1 error redirect at the authorization endpoint) and ``/healthz/ready`` says 503;
nothing is written. With AOF the user sends the same passcode again once Redis is back and is
signed in; without persistence the sign-in is gone, the retry gets the "expired" page, and
starting again from the application succeeds. Either way exactly one user exists afterwards,
with its identity and mail index entries.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.runtime import Runtime
from tests.faults.restartable_redis import RestartableRedis
from tests.support import flows
from tests.support.gateway_app import make_settings, running_app
from tests.support.smtp_server import SmtpServer, extract_passcode

GUEST = "guest@fabrikam.example"


def _running(workdir: Path, *, aof: bool) -> Iterator[RestartableRedis]:
    server = RestartableRedis(workdir, aof=aof)
    server.workdir.mkdir()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def aof_redis(tmp_path: Path) -> Iterator[RestartableRedis]:
    yield from _running(tmp_path / "aof", aof=True)


@pytest.fixture
def volatile_redis(tmp_path: Path) -> Iterator[RestartableRedis]:
    yield from _running(tmp_path / "volatile", aof=False)


async def _to_passcode_form(
    client: httpx.AsyncClient, smtp: SmtpServer
) -> tuple[flows.AuthRequest, str, str, str]:
    """Authorize, submit the email, read the mailed passcode and the passcode form's CSRF token."""
    req = flows.AuthRequest()
    path = await flows.start(client, req)
    sent = await flows.submit_email(client, path, GUEST)
    assert sent.status_code == 200, sent.text  # the passcode page
    code = extract_passcode(await smtp.wait_for(to=GUEST, timeout=10))
    form = await client.get(f"{path}/passcode")
    assert form.status_code == 200, form.text
    return req, path, flows.csrf_of(form), code


def assert_temporary_page(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["retry-after"] == "5"
    assert response.headers["cache-control"] == "no-store"
    assert "Temporarily unavailable" in response.text
    assert "Traceback" not in response.text and "ConnectionError" not in response.text


async def _assert_down_answers(client: httpx.AsyncClient, path: str, csrf: str, code: str) -> None:
    """Every kind of endpoint, while Redis is down: a clear 503 of its own kind."""
    posted = await client.post(f"{path}/passcode", data={"csrf": csrf, "passcode": code})
    assert_temporary_page(posted)

    ready = await client.get("/healthz/ready")
    assert ready.status_code == 503
    assert ready.json()["checks"]["store"] == "unreachable"
    assert (await client.get("/healthz/live")).status_code == 200

    token = await client.post(
        "/oauth2/token",
        data={"grant_type": "authorization_code", "code": "x" * 43, "client_id": "demo",
              "redirect_uri": flows.DEMO_REDIRECT, "code_verifier": "v" * 43},
    )  # fmt: skip
    assert token.status_code == 503, token.text
    assert token.headers["retry-after"] == "5"
    assert token.headers["cache-control"] == "no-store"
    assert token.json()["error"] == "temporarily_unavailable"

    again = flows.AuthRequest()
    authorize = await client.get(f"/oauth2/authorize?{again.query()}")
    assert authorize.status_code == 303, authorize.text
    assert authorize.headers["retry-after"] == "5"
    query = flows.query_of(authorize.headers["location"])
    assert authorize.headers["location"].startswith(flows.DEMO_REDIRECT + "?")
    assert query["error"] == "temporarily_unavailable"
    assert query["state"] == again.state
    assert query["iss"] == "http://127.0.0.1:8000"

    untrusted = flows.AuthRequest(redirect_uri="https://evil.example/cb")
    refused = await client.get(f"/oauth2/authorize?{untrusted.query()}")
    assert refused.status_code in (400, 503)  # never a redirect to an unregistered URI
    assert "location" not in refused.headers


async def _assert_one_consistent_user(app: Any) -> dict[str, Any]:
    """Exactly one user, reachable through its identity and its mail index entries."""
    rt: Runtime = app.state.runtime
    page = await rt.store.list_users()
    listed = page[0] if isinstance(page, tuple) else page
    users = list(listed)
    assert len(users) == 1, users
    [user] = users
    for identity in user["identities"]:
        found = await rt.store.find_user_by_identity(identity["issuer"], identity["issuerAssignedId"])
        assert found is not None and found["id"] == user["id"]
    assert [u["id"] for u in await rt.store.find_users_by_mail(GUEST)] == [user["id"]]
    return dict(user)


async def test_with_aof_the_user_retries_the_same_passcode_and_succeeds(
    tmp_path: Path, smtp_server: SmtpServer, aof_redis: RestartableRedis
) -> None:
    settings = make_settings(tmp_path, smtp_server, store=aof_redis.url)
    async with running_app(settings) as (app, client):
        req, path, csrf, code = await _to_passcode_form(client, smtp_server)
        aof_redis.stop()
        await _assert_down_answers(client, path, csrf, code)
        aof_redis.start()
        assert not [key for key in aof_redis.stored_keys() if ":users" in key]  # nothing written while down
        assert (await client.get("/healthz/ready")).status_code == 200

        done = await client.post(f"{path}/passcode", data={"csrf": csrf, "passcode": code})
        assert done.status_code == 303, done.text
        query = flows.query_of(done.headers["location"])
        assert query["state"] == req.state
        tokens = await flows.exchange(client, req, query["code"])
        assert tokens.status_code == 200, tokens.text
        user = await _assert_one_consistent_user(app)
        assert user["mail"] == GUEST


async def test_without_persistence_the_retry_is_told_to_start_again_and_a_restart_succeeds(
    tmp_path: Path, smtp_server: SmtpServer, volatile_redis: RestartableRedis
) -> None:
    settings = make_settings(tmp_path, smtp_server, store=volatile_redis.url)
    async with running_app(settings) as (app, client):
        _, path, csrf, code = await _to_passcode_form(client, smtp_server)
        volatile_redis.stop()
        await _assert_down_answers(client, path, csrf, code)
        volatile_redis.start()
        assert volatile_redis.stored_keys() == []  # the restart lost everything, and nothing was half-written

        # The gateway's own install data (signing keys, meta) are gone too: ready says so until a
        # restart of the gateway re-creates them; the sign-in itself is gone and says "start again".
        retry = await client.post(f"{path}/passcode", data={"csrf": csrf, "passcode": code})
        assert retry.status_code in (400, 403), retry.text
        assert retry.headers["content-type"].startswith("text/html")
        assert "Traceback" not in retry.text
        assert not [key for key in volatile_redis.stored_keys() if ":users" in key]

    smtp_server.clear()
    async with running_app(settings) as (app, client):
        assert (await client.get("/healthz/ready")).status_code == 200
        req, query = await flows.sign_in(client, smtp_server, GUEST)
        tokens = await flows.exchange(client, req, query["code"])
        assert tokens.status_code == 200, tokens.text
        await _assert_one_consistent_user(app)


async def test_a_restart_between_two_requests_is_not_noticed(
    tmp_path: Path, smtp_server: SmtpServer, aof_redis: RestartableRedis
) -> None:
    """Pooled connections that the restart closed are replaced before use: no request fails.

    The pause lets the event loop read the end of the closed connections, as a serving gateway's
    loop does while Redis restarts (a restart takes far longer than that)."""
    settings = make_settings(tmp_path, smtp_server, store=aof_redis.url)
    async with running_app(settings) as (app, client):
        req, path, csrf, code = await _to_passcode_form(client, smtp_server)
        aof_redis.stop()
        await asyncio.sleep(0.2)
        aof_redis.start()
        done = await client.post(f"{path}/passcode", data={"csrf": csrf, "passcode": code})
        assert done.status_code == 303, done.text
        tokens = await flows.exchange(client, req, flows.query_of(done.headers["location"])["code"])
        assert tokens.status_code == 200, tokens.text
        await _assert_one_consistent_user(app)
