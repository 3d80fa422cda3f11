"""The audit trail: exactly one JSON record on ``gateway.audit`` per sign-in attempt, with its decisions."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import flows
from tests.support.gateway_app import default_config, make_settings, running_app
from tests.support.inspect_store import users
from tests.support.smtp_server import SmtpServer, extract_passcode

EMAIL = "guest@fabrikam.example"
TENANT = "4f5c2b0e-6a71-4c3e-9a8e-2f1d7c9b1a00"
KEYS = {
    "event", "result", "time", "tenant", "app", "connector", "user", "ip", "reason", "detail", "decisions",
    "homeTenantId", "resourceTenantId", "crossTenantAccessType", "conditionalAccessStatus",
    "authenticationRequirement", "appliedConditionalAccessPolicies", "request_id",
}


@pytest.fixture
def audit(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.INFO, logger="gateway.audit")
    yield caplog


def records(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    found = []
    for record in caplog.records:
        if record.name == "gateway.audit":
            message = record.getMessage()
            assert "\n" not in message  # one line each
            parsed = json.loads(message)
            assert set(parsed) == KEYS, parsed
            found.append(parsed)
    return found


def reasons(record: dict[str, Any]) -> list[str]:
    assert all(set(d) == {"step", "outcome", "reason"} for d in record["decisions"])
    return [d["reason"] for d in record["decisions"]]


async def begin(
    client: httpx.AsyncClient, smtp: SmtpServer, email: str = EMAIL, req: flows.AuthRequest | None = None
) -> tuple[str, str]:
    path = await flows.start(client, req or flows.AuthRequest())
    assert (await flows.submit_email(client, path, email)).status_code == 200
    return path, extract_passcode(await smtp.wait_for(to=email, timeout=10))


def wrong(code: str) -> str:
    return str((int(code) + 1) % 10**8).zfill(8)


async def test_a_successful_sign_in_leaves_one_success_record(
    client: httpx.AsyncClient, smtp_server: SmtpServer, audit: pytest.LogCaptureFixture, app: Any
) -> None:
    await flows.sign_in(client, smtp_server, EMAIL)
    [record] = records(audit)
    [user] = users(app)
    assert record["event"] == "signin" and record["result"] == "success"
    assert record["app"] == "demo" and record["connector"] == "email" and record["user"] == user["id"]
    assert record["tenant"] == TENANT and record["ip"] == "203.0.113.7"
    assert record["reason"] is None
    assert reasons(record) == ["upstream_identity_verified", "user_flow_allows_signup", "sso_session_started"]
    assert [d["step"] for d in record["decisions"]] == ["authentication", "directory", "session"]


async def test_a_returning_user_is_found_not_created(
    tmp_path: Path, smtp_server: SmtpServer, audit: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(tmp_path, smtp_server, passcode={"resend_interval_seconds": 0})
    async with running_app(settings) as (app, client):
        await flows.sign_in(client, smtp_server, EMAIL)
        audit.clear()
        await flows.sign_in(client, smtp_server, EMAIL, flows.AuthRequest(extra={"prompt": "login"}))
        [record] = records(audit)
        assert record["result"] == "success" and record["user"] == users(app)[0]["id"]
        assert reasons(record) == ["upstream_identity_verified", "existing_user", "sso_session_started"]


async def test_sso_reuse_leaves_one_success_record(
    client: httpx.AsyncClient, smtp_server: SmtpServer, audit: pytest.LogCaptureFixture, app: Any
) -> None:
    await flows.sign_in(client, smtp_server, EMAIL)
    audit.clear()
    response = await client.get(f"/oauth2/authorize?{flows.AuthRequest().query()}")
    assert response.headers["location"].startswith(flows.DEMO_REDIRECT)
    [record] = records(audit)
    assert record["result"] == "success" and record["user"] == users(app)[0]["id"]
    assert record["connector"] == "email" and reasons(record) == ["session_valid"]


async def test_pages_and_the_email_step_are_not_attempts(
    client: httpx.AsyncClient, smtp_server: SmtpServer, audit: pytest.LogCaptureFixture
) -> None:
    path, _ = await begin(client, smtp_server)
    await client.get(f"{path}/passcode")
    assert records(audit) == []


async def test_each_wrong_passcode_leaves_one_failure_record(
    client: httpx.AsyncClient, smtp_server: SmtpServer, audit: pytest.LogCaptureFixture
) -> None:
    path, code = await begin(client, smtp_server)
    for expected in (1, 2):
        await flows.submit_passcode(client, path, wrong(code))
        found = records(audit)
        assert len(found) == expected
    record = found[-1]
    assert record["result"] == "failure" and record["reason"] == "invalid_passcode"
    assert record["app"] == "demo" and record["connector"] == "email" and record["user"] is None
    assert reasons(record) == ["invalid_passcode"]
    audit.clear()
    await flows.submit_passcode(client, path, code)
    [success] = records(audit)
    assert success["result"] == "success"
    assert code not in json.dumps(success) and code not in json.dumps(found)  # never the passcode
    assert EMAIL not in json.dumps(found) + json.dumps(success)  # the address stays out of the log


async def test_a_known_user_failing_is_named(
    tmp_path: Path, smtp_server: SmtpServer, audit: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(tmp_path, smtp_server, passcode={"resend_interval_seconds": 0})
    async with running_app(settings) as (app, client):
        await flows.sign_in(client, smtp_server, EMAIL)
        path, code = await begin(client, smtp_server, req=flows.AuthRequest(extra={"prompt": "login"}))
        audit.clear()
        await flows.submit_passcode(client, path, wrong(code))
        [record] = records(audit)
        assert record["result"] == "failure" and record["user"] == users(app)[0]["id"]


async def test_the_attempt_that_stops_a_sign_in_says_so(
    client: httpx.AsyncClient, smtp_server: SmtpServer, audit: pytest.LogCaptureFixture
) -> None:
    path, code = await begin(client, smtp_server)
    for _ in range(5):
        await flows.submit_passcode(client, path, wrong(code))
    found = records(audit)
    assert len(found) == 5 and all(r["result"] == "failure" for r in found)
    assert reasons(found[-1]) == ["invalid_passcode", "too_many_attempts"]
    assert all(reasons(r) == ["invalid_passcode"] for r in found[:4])


async def test_an_expired_passcode_leaves_one_failure_record(
    tmp_path: Path, smtp_server: SmtpServer, audit: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(tmp_path, smtp_server, passcode={"validity_seconds": 1})
    async with running_app(settings) as (_, client):
        path, code = await begin(client, smtp_server)
        await asyncio.sleep(1.2)
        await flows.submit_passcode(client, path, code)
        [record] = records(audit)
        assert record["result"] == "failure" and record["reason"] == "expired"


async def test_a_refused_sign_up_leaves_one_failure_record(
    tmp_path: Path, smtp_server: SmtpServer, audit: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    demo = {**default_config()["applications"][0], "user_flow": None}
    settings = make_settings(tmp_path, smtp_server, applications=[demo])
    async with running_app(settings) as (app, client):
        rt = app.state.runtime
        monkeypatch.setattr(rt.email_otp, "_new_code", lambda: "24681357")  # nobody is mailed this one
        path = await flows.start(client, flows.AuthRequest())
        await flows.submit_email(client, path, EMAIL)
        refused = await flows.submit_passcode(client, path, "24681357")
        assert refused.status_code == 403
        [record] = records(audit)
        assert record["result"] == "failure" and record["reason"] == "app_has_no_user_flow"
        assert record["user"] is None and record["connector"] == "email" and record["app"] == "demo"
        assert reasons(record) == ["upstream_identity_verified", "app_has_no_user_flow"]
        refused_by = {"step": "directory", "outcome": "refused", "reason": "app_has_no_user_flow"}
        assert record["decisions"][-1] == refused_by


async def test_a_refused_authorization_request_is_recorded(
    client: httpx.AsyncClient, audit: pytest.LogCaptureFixture
) -> None:
    req = flows.AuthRequest(extra={"prompt": "none"})
    response = await client.get(f"/oauth2/authorize?{req.query()}")
    assert flows.query_of(response.headers["location"])["error"] == "login_required"
    [record] = records(audit)
    assert record["result"] == "failure" and record["reason"] == "login_required" and record["app"] == "demo"
