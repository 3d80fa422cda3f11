"""Binding a sign-in to its browser: session cookie tampering, CSRF, other browsers, bad ids and bodies.

Each refusal is checked for the page the guest sees and for "nothing changed": the store's live
artefacts and counters are exactly as before, no user appeared and no passcode mail left.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import flows
from tests.support.assertions import assert_error_page
from tests.support.gateway_app import make_settings, running_app
from tests.support.inspect_store import snapshot
from tests.support.smtp_server import SmtpServer, extract_passcode

EMAIL = "guest@fabrikam.example"
MULTIPART = b'--x\r\nContent-Disposition: form-data; name="email"\r\n\r\nguest@fabrikam.example\r\n--x--\r\n'


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def other_browser(app: Any) -> httpx.AsyncClient:
    """A second browser: same app, its own (empty) cookie jar."""
    return httpx.AsyncClient(transport=app.state.demo_transport, base_url="http://127.0.0.1:8000")


async def assert_unchanged(app: Any, before: Any, smtp: SmtpServer, mails: int = 0) -> None:
    await asyncio.sleep(0.2)  # give a wrongly queued mail the time to arrive
    assert snapshot(app) == before
    assert len(smtp.messages) == mails


@pytest.fixture
async def signin(client: httpx.AsyncClient) -> AsyncIterator[str]:
    yield await flows.start(client, flows.AuthRequest())


# -- the SSO session cookie ------------------------------------------------------------------------


@pytest.mark.parametrize("tamper", ["flip", "random", "oversize"])
async def test_a_tampered_session_cookie_is_ignored(
    app: Any, client: httpx.AsyncClient, smtp_server: SmtpServer, tamper: str
) -> None:
    await flows.sign_in(client, smtp_server, EMAIL)
    value = client.cookies["gw_session"]
    forged = {
        "flip": value[:-1] + ("A" if value[-1] != "A" else "B"),
        "random": "x" * len(value),
        "oversize": value * 3,
    }[tamper]
    client.cookies.set("gw_session", forged, domain="127.0.0.1", path="/")
    before = snapshot(app)
    response = await client.get(f"/oauth2/authorize?{flows.AuthRequest().query()}")
    flows.signin_path_of(response)  # must sign in again: the email page, no code
    after = snapshot(app)
    assert after.minted() == before.minted() and after.user_count == before.user_count
    assert after.count("signin") == before.count("signin") + 1
    assert len(smtp_server.messages) == 1


async def test_prompt_none_with_a_tampered_session_cookie_is_login_required(
    app: Any, client: httpx.AsyncClient, smtp_server: SmtpServer
) -> None:
    await flows.sign_in(client, smtp_server, EMAIL)
    client.cookies.set("gw_session", "A" * 43, domain="127.0.0.1", path="/")
    before = snapshot(app)
    req = flows.AuthRequest(extra={"prompt": "none"})
    response = await client.get(f"/oauth2/authorize?{req.query()}")
    assert flows.query_of(response.headers["location"])["error"] == "login_required"
    assert snapshot(app) == before


# -- CSRF --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("csrf", [None, "", "A" * 43, "x" * 500])
async def test_email_post_without_a_valid_csrf_token_is_refused(
    app: Any, client: httpx.AsyncClient, smtp_server: SmtpServer, signin: str, csrf: str | None
) -> None:
    before = snapshot(app)
    data = {"email": EMAIL} if csrf is None else {"email": EMAIL, "csrf": csrf}
    response = await client.post(f"{signin}/email", data=data)
    assert_error_page(response, 403)
    assert "This form is no longer valid" in response.text
    await assert_unchanged(app, before, smtp_server)
    # The sign-in did not take the address.
    assert (await client.get(f"{signin}/passcode")).headers["location"] == signin


async def test_another_sign_ins_csrf_token_is_refused(
    app: Any, client: httpx.AsyncClient, smtp_server: SmtpServer, signin: str
) -> None:
    other = await flows.start(client, flows.AuthRequest())
    other_csrf = flows.csrf_of(await client.get(other))
    before = snapshot(app)
    response = await client.post(f"{signin}/email", data={"email": EMAIL, "csrf": other_csrf})
    assert_error_page(response, 403)
    await assert_unchanged(app, before, smtp_server)


async def test_passcode_post_without_csrf_is_refused_and_not_counted(
    app: Any, client: httpx.AsyncClient, smtp_server: SmtpServer, signin: str
) -> None:
    await flows.submit_email(client, signin, EMAIL)
    code = extract_passcode(await smtp_server.wait_for(to=EMAIL, timeout=10))
    before = snapshot(app)
    for data in ({"passcode": code}, {"passcode": code, "csrf": "forged"}):
        response = await client.post(f"{signin}/passcode", data=data)
        assert_error_page(response, 403)
    await assert_unchanged(app, before, smtp_server, mails=1)
    wrong = str((int(code) + 1) % 10**8).zfill(8)
    counted = await flows.submit_passcode(client, signin, wrong)
    assert "4 attempts left" in counted.text  # the refused posts were never checked


async def test_resend_without_csrf_is_refused(
    app: Any, client: httpx.AsyncClient, smtp_server: SmtpServer, signin: str
) -> None:
    await flows.submit_email(client, signin, EMAIL)
    await smtp_server.wait_for(to=EMAIL, timeout=10)
    before = snapshot(app)
    response = await client.post(f"{signin}/resend", data={"passcode": ""})
    assert_error_page(response, 403)
    await assert_unchanged(app, before, smtp_server, mails=1)


# -- another browser -----------------------------------------------------------------------------


async def test_a_sign_in_opened_in_another_browser_is_refused(
    app: Any, client: httpx.AsyncClient, smtp_server: SmtpServer, signin: str
) -> None:
    csrf = flows.csrf_of(await client.get(signin))
    before = snapshot(app)
    async with other_browser(app) as stranger:
        for path in (signin, f"{signin}/passcode"):
            page = await stranger.get(path)
            assert_error_page(page, 403)
            assert "started in another browser" in page.text
        refused = await stranger.post(f"{signin}/email", data={"email": EMAIL, "csrf": csrf})
        assert_error_page(refused, 403)
        await flows.start(stranger, flows.AuthRequest())  # now it has a browser cookie of its own
        assert "gw_browser" in stranger.cookies
        again = await stranger.post(f"{signin}/email", data={"email": EMAIL, "csrf": csrf})
        assert_error_page(again, 403)
    after = snapshot(app)
    assert after.minted() == before.minted() and after.counters == before.counters
    await asyncio.sleep(0.2)
    assert smtp_server.messages == []


async def test_a_passcode_typed_in_another_browser_is_refused(
    app: Any, client: httpx.AsyncClient, smtp_server: SmtpServer, signin: str
) -> None:
    await flows.submit_email(client, signin, EMAIL)
    code = extract_passcode(await smtp_server.wait_for(to=EMAIL, timeout=10))
    csrf = flows.csrf_of(await client.get(f"{signin}/passcode"))
    before = snapshot(app)
    async with other_browser(app) as stranger:
        response = await stranger.post(f"{signin}/passcode", data={"csrf": csrf, "passcode": code})
    assert_error_page(response, 403)
    await assert_unchanged(app, before, smtp_server, mails=1)
    assert (await flows.submit_passcode(client, signin, code)).status_code == 303


async def test_a_malformed_browser_cookie_is_treated_as_none(
    app: Any, client: httpx.AsyncClient, signin: str
) -> None:
    client.cookies.set("gw_browser", "short", domain="127.0.0.1", path="/")
    assert_error_page(await client.get(signin), 403)


# -- unknown or expired sign-ins ----------------------------------------------------------------------


@pytest.mark.parametrize("signin_id", ["unknown", "x" * 65, "%00", "%C3%A9"])
async def test_an_unknown_sign_in_id_gets_an_error_page(
    app: Any, client: httpx.AsyncClient, smtp_server: SmtpServer, signin: str, signin_id: str
) -> None:
    csrf = flows.csrf_of(await client.get(signin))
    before = snapshot(app)
    page = await client.get(f"/signin/{signin_id}")
    assert_error_page(page, 400)
    assert "expired or is unknown" in page.text
    posted = await client.post(f"/signin/{signin_id}/email", data={"email": EMAIL, "csrf": csrf})
    assert_error_page(posted, 400)
    await assert_unchanged(app, before, smtp_server)


async def test_an_expired_sign_in_gets_an_error_page_and_sends_nothing(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    clock = Clock()
    settings = make_settings(tmp_path, smtp_server, tokens={"signin_seconds": 600})
    async with running_app(settings, clock=clock) as (app, client):
        path = await flows.start(client, flows.AuthRequest())
        csrf = flows.csrf_of(await client.get(path))
        clock.now += 601
        before = snapshot(app)
        page = await client.get(path)
        assert_error_page(page, 400)
        assert "expired or is unknown" in page.text
        posted = await client.post(f"{path}/email", data={"email": EMAIL, "csrf": csrf})
        assert_error_page(posted, 400)
        await assert_unchanged(app, before, smtp_server)


async def test_a_finished_sign_in_cannot_be_replayed(
    app: Any, client: httpx.AsyncClient, smtp_server: SmtpServer, signin: str
) -> None:
    await flows.submit_email(client, signin, EMAIL)
    code = extract_passcode(await smtp_server.wait_for(to=EMAIL, timeout=10))
    csrf = flows.csrf_of(await client.get(f"{signin}/passcode"))
    assert (await client.post(f"{signin}/passcode", data={"csrf": csrf, "passcode": code})).status_code == 303
    before = snapshot(app)
    replays = [(f"{signin}/email", {"csrf": csrf, "email": EMAIL}), (f"{signin}/resend", {"csrf": csrf})]
    for path, data in replays:
        assert_error_page(await client.post(path, data=data), 400)
    await assert_unchanged(app, before, smtp_server, mails=1)


# -- request bodies -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type, body",
    [
        ("application/json", b'{"email": "guest@fabrikam.example"}'),
        ("text/plain", b"email=guest%40fabrikam.example"),
        ("multipart/form-data; boundary=x", MULTIPART),
        (None, b"email=guest%40fabrikam.example"),
    ],
)
async def test_a_body_that_is_not_a_form_is_refused(
    app: Any, client: httpx.AsyncClient, smtp_server: SmtpServer, signin: str, content_type: str | None,
    body: bytes,
) -> None:
    before = snapshot(app)
    headers = {"content-type": content_type} if content_type else {}
    response = await client.post(f"{signin}/email", content=body, headers=headers)
    assert_error_page(response, 400)
    assert "application/x-www-form-urlencoded" in response.text
    await assert_unchanged(app, before, smtp_server)


async def test_an_oversize_body_is_refused(
    app: Any, client: httpx.AsyncClient, smtp_server: SmtpServer, signin: str
) -> None:
    csrf = flows.csrf_of(await client.get(signin))
    before = snapshot(app)
    response = await client.post(f"{signin}/email", data={"csrf": csrf, "email": EMAIL, "pad": "x" * 70_000})
    assert_error_page(response, 400)
    assert "too large" in response.text
    await assert_unchanged(app, before, smtp_server)


async def test_an_oversize_chunked_body_is_refused(
    app: Any, client: httpx.AsyncClient, smtp_server: SmtpServer, signin: str
) -> None:
    csrf = flows.csrf_of(await client.get(signin))
    before = snapshot(app)

    async def chunks() -> AsyncIterator[bytes]:
        yield f"csrf={csrf}&email=guest%40fabrikam.example&pad=".encode()
        for _ in range(70):
            yield b"x" * 1000

    response = await client.post(
        f"{signin}/email", content=chunks(), headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert "content-length" not in response.request.headers
    assert response.status_code == 400
    await assert_unchanged(app, before, smtp_server)


async def test_a_typed_address_is_echoed_escaped(client: httpx.AsyncClient, signin: str) -> None:
    response = await flows.submit_email(client, signin, '"><script>alert(1)</script>')
    assert response.status_code == 400
    assert "<script>" not in response.text and "&lt;script&gt;" in response.text


async def test_a_new_sign_in_replaces_the_browsers_session(tmp_path: Path, smtp_server: SmtpServer) -> None:
    settings = make_settings(tmp_path, smtp_server, passcode={"resend_interval_seconds": 0})
    async with running_app(settings) as (app, client):
        await flows.sign_in(client, smtp_server, "first@fabrikam.example")
        old = client.cookies["gw_session"]
        again = flows.AuthRequest(extra={"prompt": "login"})
        await flows.sign_in(client, smtp_server, "second@fabrikam.example", again)
        assert client.cookies["gw_session"] != old  # a fresh cookie value: no session fixation
        assert snapshot(app).count("session") == 1  # the old session record is gone
        client.cookies.set("gw_session", old, domain="127.0.0.1", path="/")
        replay = await client.get(f"/oauth2/authorize?{flows.AuthRequest().query()}")
        flows.signin_path_of(replay)  # the email page: the old session is gone
