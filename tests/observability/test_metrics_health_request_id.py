"""/metrics after a passcode sign-in, its access rule, the health probes and request ids."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest

from gateway.runtime import Runtime
from tests.support.flows import signed_in_tokens
from tests.support.gateway_app import make_settings, running_app
from tests.support.smtp_server import SmtpServer

CLIENT_NET = {"observability": {"metrics": {"allow": ["203.0.113.0/24"]}}}  # the test client's address


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in the Prometheus text ``text``."""
    for line in text.splitlines():
        match = re.match(r"^([a-z_]+)(?:\{(.*)\})? (\S+)$", line)
        if match is None or match.group(1) != name:
            continue
        found = dict(re.findall(r'([a-z_]+)="([^"]*)"', match.group(2) or ""))
        if found == labels:
            return float(match.group(3))
    return None


async def test_metrics_after_a_passcode_signin(tmp_path: Path, smtp_server: SmtpServer) -> None:
    settings = make_settings(tmp_path, smtp_server, **CLIENT_NET)
    async with running_app(settings) as (_, client):
        await signed_in_tokens(client, smtp_server, "guest@fabrikam.example")
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = response.text
    assert sample(text, "gateway_signins_total", app="demo", connector="email", result="success") == 1.0
    assert sample(text, "gateway_tokens_issued_total", app="demo", kind="access") == 1.0
    assert sample(text, "gateway_tokens_issued_total", app="demo", kind="id") == 1.0
    assert (
        sample(text, "gateway_policy_outcomes_total", policy="conditional_access", outcome="notApplied")
        == 1.0
    )
    assert (
        sample(text, "gateway_http_requests_total", route="/signin/{signin_id}/passcode", status="303") == 1.0
    )
    assert sample(text, "gateway_http_requests_total", route="/oauth2/token", status="200") == 1.0
    assert sample(text, "gateway_http_request_seconds_count", route="/oauth2/authorize") == 1.0
    assert "/signin/" + "x" not in text  # raw paths never become labels
    assert not re.search(r'route="/signin/[0-9A-Za-z_-]{20,}', text)


async def test_metrics_refused_to_other_addresses(tmp_path: Path) -> None:
    async with running_app(make_settings(tmp_path)) as (_, client):  # default: loopback only
        response = await client.get("/metrics")
    assert response.status_code == 403
    assert "gateway_" not in response.text


async def test_metrics_disabled(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, observability={"metrics": {"enabled": False, "allow": ["0.0.0.0/0"]}})
    async with running_app(settings) as (_, client):
        assert (await client.get("/metrics")).status_code == 404


def test_bad_allow_network_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="CIDR"):
        make_settings(tmp_path, observability={"metrics": {"allow": ["10.0.0.1/8"]}})
    with pytest.raises(ValueError, match="Extra inputs"):
        make_settings(tmp_path, observability={"metric": {}})


async def test_live_and_ready(tmp_path: Path) -> None:
    async with running_app(make_settings(tmp_path)) as (_, client):
        assert (await client.get("/healthz/live")).json() == {"status": "ok"}
        ready = await client.get("/healthz/ready")
        assert ready.status_code == 200
        assert ready.json()["checks"] == {"store": "ok", "keys": "ok"}


async def test_ready_503_when_signing_keys_are_missing(tmp_path: Path) -> None:
    async with running_app(make_settings(tmp_path)) as (app, client):
        rt: Runtime = app.state.runtime
        rt.keys._install([], ())
        ready = await client.get("/healthz/ready")
        assert ready.status_code == 503
        assert ready.json()["failed"] == ["keys"]
        assert "no ES256 signing key loaded" in ready.json()["checks"]["keys"]
        assert (await client.get("/healthz/live")).status_code == 200


async def test_ready_503_when_the_store_is_down(tmp_path: Path) -> None:
    async with running_app(make_settings(tmp_path)) as (app, client):
        rt: Runtime = app.state.runtime
        await rt.store.close()
        ready = await client.get("/healthz/ready")
        assert ready.status_code == 503
        assert ready.json()["failed"] == ["store"]
        assert ready.json()["checks"]["store"] == "unreachable"


async def test_request_id_taken_generated_and_in_the_audit_record(
    tmp_path: Path, smtp_server: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(tmp_path, smtp_server, observability={"trust_request_id": True})
    async with running_app(settings) as (_, client):
        given = await client.get("/healthz/live", headers={"X-Request-Id": "abc.DEF_123-x"})
        assert given.headers["x-request-id"] == "abc.DEF_123-x"
        for bad in ("a" * 65, "has space", "semi;colon"):
            fresh = await client.get("/healthz/live", headers={"X-Request-Id": bad})
            assert re.fullmatch(r"[0-9a-f]{32}", fresh.headers["x-request-id"])
        generated = await client.get("/healthz/live")
        assert re.fullmatch(r"[0-9a-f]{32}", generated.headers["x-request-id"])
        assert generated.headers["x-request-id"] != fresh.headers["x-request-id"]
        with caplog.at_level(logging.INFO, logger="gateway.audit"):
            client.headers["X-Request-Id"] = "signin-req-1"
            await signed_in_tokens(client, smtp_server, "guest@fabrikam.example")
    records = [json.loads(r.getMessage()) for r in caplog.records if r.name == "gateway.audit"]
    signins = [r for r in records if r.get("event") == "signin"]
    assert signins and all(r["request_id"] == "signin-req-1" for r in signins)


async def test_an_incoming_request_id_is_replaced_unless_trusted(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)  # the default: any client could choose the id in the logs
    async with running_app(settings) as (_, client):
        response = await client.get("/healthz/live", headers={"X-Request-Id": "mine"})
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])


def test_json_log_lines_carry_the_request_id() -> None:
    from gateway.cli import JsonFormatter
    from gateway.observability.context import CURRENT, RequestContext
    from gateway.observability.hub import Hub
    from gateway.observability.logs import AccessJsonFormatter

    record = logging.LogRecord("gateway", logging.INFO, __file__, 1, "hello", None, None)
    assert "request_id" not in json.loads(JsonFormatter().format(record))
    token = CURRENT.set(RequestContext("rid-1", {}, Hub([])))
    try:
        assert json.loads(JsonFormatter().format(record))["request_id"] == "rid-1"
        access = logging.LogRecord(
            "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
            ("127.0.0.1:5", "GET", "/oauth2/authorize?login_hint=a@b.example", "1.1", 302), None,
        )  # fmt: skip
        line = json.loads(AccessJsonFormatter().format(access))
    finally:
        CURRENT.reset(token)
    assert line["path"] == "/oauth2/authorize" and line["status"] == 302 and line["request_id"] == "rid-1"
