"""Sign-in abuse limits: passcode sends per client IP (``limits``) and per address (``passcode``), and
failed passcode checks per client IP and per address; 429 + Retry-After, shared by two gateway
instances on one store, and the window resets."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.assertions import Clock
from tests.support.flows import AuthRequest, start, submit_email, submit_passcode
from tests.support.gateway_app import make_settings, running_app
from tests.support.inspect_store import snapshot
from tests.support.smtp_server import SmtpServer, extract_passcode

OTHER_IP = "198.51.100.9"


@asynccontextmanager
async def gateway(
    tmp_path: Path, smtp: SmtpServer, clock: Clock | None = None, **limits: Any
) -> AsyncIterator[tuple[Any, httpx.AsyncClient, Any]]:
    settings = make_settings(
        tmp_path, smtp, limits=limits,
        passcode={"resend_interval_seconds": 0, "max_sends_per_address_per_hour": 100},
    )  # fmt: skip
    async with running_app(settings, clock=clock) as (app, client):
        if clock is not None:
            app.state.runtime.store._clock = clock  # the SQLite store's windows follow the test clock
        yield app, client, settings


@asynccontextmanager
async def from_ip(app: Any, ip: str) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=(ip, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client:
        yield client


async def passcode_sent(client: httpx.AsyncClient, smtp: SmtpServer, email: str) -> tuple[str, str]:
    """A new sign-in with a passcode sent to ``email``: its path and the passcode."""
    path = await start(client, AuthRequest())
    sent = await submit_email(client, path, email)
    assert sent.status_code == 200, sent.text  # the passcode page
    return path, extract_passcode(await smtp.wait_for(to=email, timeout=10))


def wrong(code: str) -> str:
    return "1" * len(code) if code != "1" * len(code) else "2" * len(code)


def assert_limited(response: httpx.Response, window: int = 3600) -> int:
    assert response.status_code == 429, response.text
    wait = int(response.headers["retry-after"])
    assert window - 10 <= wait <= window
    return wait


def assert_signed_in(response: httpx.Response) -> None:
    assert response.status_code == 303, response.text
    assert "code=" in response.headers["location"]


# -- failed passcode checks ------------------------------------------------------------------------


async def test_failures_per_ip_block_even_a_right_passcode_and_mint_nothing(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    async with gateway(tmp_path, smtp_server, signin_failures_per_ip_per_hour=2) as (app, client, settings):
        for n in range(2):
            path, code = await passcode_sent(client, smtp_server, f"guess{n}@fabrikam.example")
            assert (await submit_passcode(client, path, wrong(code))).status_code == 400
        path, code = await passcode_sent(client, smtp_server, "guest@fabrikam.example")
        before = snapshot(settings).minted()
        refused = await submit_passcode(client, path, code)
        assert_limited(refused)
        assert "Too many wrong codes" in refused.text
        assert snapshot(settings).minted() == before
        async with from_ip(app, OTHER_IP) as elsewhere:  # another IP address is not limited
            other_path, other_code = await passcode_sent(elsewhere, smtp_server, "other@fabrikam.example")
            assert_signed_in(await submit_passcode(elsewhere, other_path, other_code))


async def test_failures_per_address_block_that_address_from_every_ip(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    async with gateway(tmp_path, smtp_server, signin_failures_per_address_per_hour=2) as (app, client, _):
        path, code = await passcode_sent(client, smtp_server, "victim@fabrikam.example")
        for _ in range(2):
            assert (await submit_passcode(client, path, wrong(code))).status_code == 400
        async with from_ip(app, OTHER_IP) as elsewhere:
            victim_path, victim_code = await passcode_sent(elsewhere, smtp_server, "victim@fabrikam.example")
            assert_limited(await submit_passcode(elsewhere, victim_path, victim_code))
            other_path, other_code = await passcode_sent(elsewhere, smtp_server, "other@fabrikam.example")
            assert_signed_in(await submit_passcode(elsewhere, other_path, other_code))


async def test_failures_are_shared_by_two_instances_on_one_store(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    async with (
        gateway(tmp_path, smtp_server, signin_failures_per_ip_per_hour=1) as (_, first, _),
        gateway(tmp_path, smtp_server, signin_failures_per_ip_per_hour=1) as (_, second, _),
    ):
        path, code = await passcode_sent(first, smtp_server, "guess@fabrikam.example")
        assert (await submit_passcode(first, path, wrong(code))).status_code == 400
        path, code = await passcode_sent(second, smtp_server, "guest@fabrikam.example")
        assert_limited(await submit_passcode(second, path, code))


async def test_the_failure_window_resets(tmp_path: Path, smtp_server: SmtpServer) -> None:
    clock = Clock()
    async with gateway(tmp_path, smtp_server, clock, signin_failures_per_ip_per_hour=1) as (_, client, _):
        path, code = await passcode_sent(client, smtp_server, "guess@fabrikam.example")
        assert (await submit_passcode(client, path, wrong(code))).status_code == 400
        path, code = await passcode_sent(client, smtp_server, "guest@fabrikam.example")
        wait = assert_limited(await submit_passcode(client, path, code))
        clock.advance(wait + 1)
        path, code = await passcode_sent(client, smtp_server, "guest@fabrikam.example")
        assert_signed_in(await submit_passcode(client, path, code))


# -- passcode sends --------------------------------------------------------------------------------


async def test_passcode_sends_per_ip_are_shared_and_reset(tmp_path: Path, smtp_server: SmtpServer) -> None:
    clock = Clock()
    async with (
        gateway(tmp_path, smtp_server, clock, passcode_sends_per_ip_per_hour=1) as (_, first, _),
        gateway(tmp_path, smtp_server, clock, passcode_sends_per_ip_per_hour=1) as (_, second, _),
    ):
        await passcode_sent(first, smtp_server, "one@fabrikam.example")
        path = await start(second, AuthRequest())
        wait = assert_limited(await submit_email(second, path, "two@fabrikam.example"))
        clock.advance(wait + 1)
        await passcode_sent(second, smtp_server, "two@fabrikam.example")


@pytest.mark.parametrize("shared", [False, True], ids=["one instance", "two instances"])
async def test_passcode_sends_per_address_are_limited(
    tmp_path: Path, smtp_server: SmtpServer, shared: bool
) -> None:
    passcode = {"resend_interval_seconds": 0, "max_sends_per_address_per_hour": 1}
    settings = make_settings(tmp_path, smtp_server, passcode=passcode)
    async with running_app(settings) as (app, client), running_app(settings) as (other_app, _):
        await passcode_sent(client, smtp_server, "guest@fabrikam.example")
        async with from_ip(other_app if shared else app, OTHER_IP) as elsewhere:
            path = await start(elsewhere, AuthRequest())
            refused = await submit_email(elsewhere, path, "guest@fabrikam.example")
            assert refused.status_code == 429
            assert 1 <= int(refused.headers["retry-after"]) <= 3600
            assert re.search(r"try again|Try again|wait", refused.text, re.IGNORECASE)
