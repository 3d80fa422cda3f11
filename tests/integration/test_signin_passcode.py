"""Passcode rules over ASGI: wrong attempts, resend throttles, per-IP limits, binding, expiry, reuse.

Every refusal is checked twice: the page the guest sees, and that nothing was minted (no
code, token, session or user) and no extra passcode mail left.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from tests.support import flows
from tests.support.gateway_app import make_settings, running_app
from tests.support.inspect_store import snapshot
from tests.support.smtp_server import SmtpServer, extract_passcode

EMAIL = "guest@fabrikam.example"
NOTHING_MINTED = {"code": 0, "access": 0, "refresh": 0, "session": 0}


def wrong(code: str) -> str:
    """A well-formed passcode that is not ``code``."""
    return str((int(code) + 1) % 10 ** len(code)).zfill(len(code))


async def begin(client: httpx.AsyncClient, smtp: SmtpServer, email: str = EMAIL) -> tuple[str, str]:
    """Start a sign-in and ask for a passcode; returns the sign-in path and the mailed code."""
    path = await flows.start(client, flows.AuthRequest())
    sent = await flows.submit_email(client, path, email)
    assert sent.status_code == 200, sent.text  # the passcode page
    return path, extract_passcode(await smtp.wait_for(to=email, timeout=10))


async def resend(client: httpx.AsyncClient, path: str) -> httpx.Response:
    page = await client.get(f"{path}/passcode")
    return await client.post(f"{path}/resend", data={"csrf": flows.csrf_of(page)})


def assert_nothing_minted(app: Any) -> None:
    state = snapshot(app)
    assert state.minted() == NOTHING_MINTED
    assert state.user_count == 0


async def test_a_wrong_passcode_says_how_many_tries_are_left(
    app: Any, client: httpx.AsyncClient, smtp_server: SmtpServer
) -> None:
    path, code = await begin(client, smtp_server)
    response = await flows.submit_passcode(client, path, wrong(code))
    assert response.status_code == 400
    assert "That passcode is not right. 4 attempts left." in response.text
    assert 'aria-invalid="true"' in response.text
    assert_nothing_minted(app)
    ok = await flows.submit_passcode(client, path, code)
    assert ok.status_code == 303


async def test_six_wrong_passcodes_stop_the_sign_in(
    app: Any, client: httpx.AsyncClient, smtp_server: SmtpServer
) -> None:
    path, code = await begin(client, smtp_server)
    for left in (4, 3, 2):
        response = await flows.submit_passcode(client, path, wrong(code))
        assert response.status_code == 400 and f"{left} attempts left" in response.text
    response = await flows.submit_passcode(client, path, wrong(code))
    assert response.status_code == 400 and "1 attempt left." in response.text
    fifth = await flows.submit_passcode(client, path, wrong(code))
    assert fifth.status_code == 400 and "this sign-in was stopped" in fifth.text
    # The sixth try, even with the right passcode, does not sign in.
    page = await client.get(f"{path}/passcode")
    assert page.status_code == 400
    sixth = await client.post(f"{path}/passcode", data={"csrf": "x", "passcode": code})
    assert sixth.status_code == 400
    assert_nothing_minted(app)
    assert snapshot(app).count("signin") == 0 and snapshot(app).count("passcode") == 0


async def test_right_code_after_five_wrong_ones_fails_even_with_the_form_kept(
    app: Any, client: httpx.AsyncClient, smtp_server: SmtpServer
) -> None:
    path, code = await begin(client, smtp_server)
    page = await client.get(f"{path}/passcode")
    csrf = flows.csrf_of(page)
    for _ in range(5):
        await client.post(f"{path}/passcode", data={"csrf": csrf, "passcode": wrong(code)})
    late = await client.post(f"{path}/passcode", data={"csrf": csrf, "passcode": code})
    assert late.status_code == 400 and "location" not in late.headers
    assert_nothing_minted(app)


async def test_a_resend_does_not_reset_the_attempt_count(tmp_path: Path, smtp_server: SmtpServer) -> None:
    settings = make_settings(tmp_path, smtp_server, passcode={"resend_interval_seconds": 0})
    async with running_app(settings) as (app, client):
        path, code = await begin(client, smtp_server)
        for _ in range(3):
            assert (await flows.submit_passcode(client, path, wrong(code))).status_code == 400
        again = await resend(client, path)  # answered with the passcode page and its notice
        assert again.status_code == 200 and "We sent you a new passcode." in again.text
        new_code = extract_passcode(await smtp_server.wait_for(to=EMAIL, timeout=10))
        first = await flows.submit_passcode(client, path, wrong(new_code))
        assert "1 attempt left." in first.text
        stopped = await flows.submit_passcode(client, path, wrong(new_code))
        assert stopped.status_code == 400 and "this sign-in was stopped" in stopped.text
        final = await client.post(f"{path}/passcode", data={"csrf": "x", "passcode": new_code})
        assert final.status_code == 400
        assert_nothing_minted(app)


async def test_only_the_newest_passcode_works(tmp_path: Path, smtp_server: SmtpServer) -> None:
    settings = make_settings(tmp_path, smtp_server, passcode={"resend_interval_seconds": 0})
    async with running_app(settings) as (app, client):
        path, old = await begin(client, smtp_server)
        assert (await resend(client, path)).status_code == 200
        new = extract_passcode(await smtp_server.wait_for(to=EMAIL, timeout=10))
        if old != new:
            refused = await flows.submit_passcode(client, path, old)
            assert refused.status_code == 400 and "not right" in refused.text
            assert_nothing_minted(app)
        assert (await flows.submit_passcode(client, path, new)).status_code == 303


async def test_a_resend_within_60_seconds_is_refused_with_retry_after(
    app: Any, client: httpx.AsyncClient, smtp_server: SmtpServer
) -> None:
    path, code = await begin(client, smtp_server)
    before = snapshot(app)
    response = await resend(client, path)
    assert response.status_code == 429
    assert 1 <= int(response.headers["retry-after"]) <= 60
    assert "A passcode was sent recently" in response.text and 'name="passcode"' in response.text
    await asyncio.sleep(0.2)
    assert len(smtp_server.messages) == 1
    assert snapshot(app).minted() == before.minted() == NOTHING_MINTED
    # The refused resend did not replace the passcode that was sent.
    assert (await flows.submit_passcode(client, path, code)).status_code == 303


async def test_at_most_five_passcodes_an_hour_per_address(tmp_path: Path, smtp_server: SmtpServer) -> None:
    settings = make_settings(tmp_path, smtp_server, passcode={"resend_interval_seconds": 0})
    async with running_app(settings) as (app, client):
        path, _ = await begin(client, smtp_server)
        for _ in range(4):
            assert (await resend(client, path)).status_code == 200
            await smtp_server.wait_for(to=EMAIL, timeout=10)
        sixth = await resend(client, path)
        assert sixth.status_code == 429
        assert 3000 < int(sixth.headers["retry-after"]) <= 3600
        # Another sign-in for the same address is limited too.
        other = await flows.start(client, flows.AuthRequest())
        refused = await flows.submit_email(client, other, EMAIL)
        assert refused.status_code == 429 and "retry-after" in refused.headers
        assert 'type="email"' in refused.text
        await asyncio.sleep(0.2)
        assert len(smtp_server.messages) == 5
        assert_nothing_minted(app)
        # The address is not remembered on the refused sign-in.
        assert (await client.get(f"{other}/passcode")).headers["location"] == other


async def test_sends_are_limited_per_client_ip(tmp_path: Path, smtp_server: SmtpServer) -> None:
    settings = make_settings(tmp_path, smtp_server, limits={"passcode_sends_per_ip_per_hour": 2})
    async with running_app(settings) as (app, client):
        for n in range(2):
            await begin(client, smtp_server, f"guest{n}@fabrikam.example")
        path = await flows.start(client, flows.AuthRequest())
        refused = await flows.submit_email(client, path, "guest2@fabrikam.example")
        assert refused.status_code == 429
        assert 3000 < int(refused.headers["retry-after"]) <= 3600
        assert "Too many passcodes were requested from your network" in refused.text
        await asyncio.sleep(0.2)
        assert len(smtp_server.messages) == 2
        assert snapshot(app).count("passcode") == 2
        assert_nothing_minted(app)


async def test_a_passcode_from_another_sign_in_fails(tmp_path: Path, smtp_server: SmtpServer) -> None:
    settings = make_settings(tmp_path, smtp_server, passcode={"resend_interval_seconds": 0})
    async with running_app(settings) as (app, client):
        first, first_code = await begin(client, smtp_server)
        second, second_code = await begin(client, smtp_server)
        for path, code in ((first, second_code), (second, first_code)):
            if code in (first_code, second_code) and first_code == second_code:
                continue  # one chance in 10^8: the swap proves nothing
            response = await flows.submit_passcode(client, path, code)
            assert response.status_code == 400 and "not right" in response.text
        assert_nothing_minted(app)
        assert (await flows.submit_passcode(client, first, first_code)).status_code == 303


async def test_a_passcode_for_another_address_fails(
    app: Any, client: httpx.AsyncClient, smtp_server: SmtpServer
) -> None:
    mine, _ = await begin(client, smtp_server, "mine@fabrikam.example")
    _, theirs = await begin(client, smtp_server, "theirs@fabrikam.example")
    response = await flows.submit_passcode(client, mine, theirs)
    assert response.status_code == 400
    assert_nothing_minted(app)


async def test_an_expired_passcode_fails(tmp_path: Path, smtp_server: SmtpServer) -> None:
    settings = make_settings(tmp_path, smtp_server, passcode={"validity_seconds": 1})
    async with running_app(settings) as (app, client):
        path, code = await begin(client, smtp_server)
        assert "It works for 1 second." in (await client.get(f"{path}/passcode")).text
        await asyncio.sleep(1.2)
        response = await flows.submit_passcode(client, path, code)
        assert response.status_code == 400
        assert "That passcode has expired. Ask for a new one." in response.text
        assert_nothing_minted(app)


async def test_a_used_passcode_cannot_be_used_again(
    app: Any, client: httpx.AsyncClient, smtp_server: SmtpServer
) -> None:
    path, code = await begin(client, smtp_server)
    page = await client.get(f"{path}/passcode")
    csrf = flows.csrf_of(page)
    done = await client.post(f"{path}/passcode", data={"csrf": csrf, "passcode": code})
    assert done.status_code == 303
    before = snapshot(app)
    again = await client.post(f"{path}/passcode", data={"csrf": csrf, "passcode": code})
    assert again.status_code == 400 and "expired or is unknown" in again.text
    after = snapshot(app)
    assert after.minted() == before.minted() == {"code": 1, "access": 0, "refresh": 0, "session": 1}


async def test_concurrent_right_passcodes_sign_in_once(
    app: Any, client: httpx.AsyncClient, smtp_server: SmtpServer
) -> None:
    path, code = await begin(client, smtp_server)
    page = await client.get(f"{path}/passcode")
    csrf = flows.csrf_of(page)
    results = await asyncio.gather(
        *(client.post(f"{path}/passcode", data={"csrf": csrf, "passcode": code}) for _ in range(4))
    )
    assert sorted(r.status_code for r in results).count(303) == 1
    state = snapshot(app)
    assert state.count("code") == 1 and state.count("session") == 1 and state.user_count == 1


async def test_spaces_in_the_typed_passcode_are_ignored(
    client: httpx.AsyncClient, smtp_server: SmtpServer
) -> None:
    path, code = await begin(client, smtp_server)
    response = await flows.submit_passcode(client, path, f" {code[:4]} {code[4:]} ")
    assert response.status_code == 303


async def test_an_invalid_address_is_refused_without_mail(
    app: Any, client: httpx.AsyncClient, smtp_server: SmtpServer
) -> None:
    path = await flows.start(client, flows.AuthRequest())
    for bad in ("", "not-an-address", "a@b", "guest@[127.0.0.1]", "x" * 300 + "@fabrikam.example"):
        response = await flows.submit_email(client, path, bad)
        assert response.status_code == 400 and "Enter a valid email address." in response.text
    await asyncio.sleep(0.2)
    assert smtp_server.messages == []
    state = snapshot(app)
    assert state.count("passcode") == 0 and state.counters == {}
    assert_nothing_minted(app)


async def test_switching_the_address_does_not_reset_the_count(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    settings = make_settings(tmp_path, smtp_server, passcode={"resend_interval_seconds": 0})
    async with running_app(settings) as (app, client):
        path, code = await begin(client, smtp_server, "first@fabrikam.example")
        for _ in range(4):
            await flows.submit_passcode(client, path, wrong(code))
        switched = await flows.submit_email(client, path, "second@fabrikam.example")  # "Use another address"
        assert switched.status_code == 200  # the passcode page, for the new address
        second = extract_passcode(await smtp_server.wait_for(to="second@fabrikam.example", timeout=10))
        stopped = await flows.submit_passcode(client, path, wrong(second))
        assert stopped.status_code == 400 and "this sign-in was stopped" in stopped.text
        assert_nothing_minted(app)


async def test_a_stopped_sign_in_sends_no_more_passcodes(
    app: Any, client: httpx.AsyncClient, smtp_server: SmtpServer
) -> None:
    path, code = await begin(client, smtp_server)
    page = await client.get(f"{path}/passcode")
    csrf = flows.csrf_of(page)
    for _ in range(5):
        await client.post(f"{path}/passcode", data={"csrf": csrf, "passcode": wrong(code)})
    later = [("resend", {"csrf": csrf}), ("email", {"csrf": csrf, "email": "other@fabrikam.example"})]
    for action, data in later:
        response = await client.post(f"{path}/{action}", data=data)
        assert response.status_code == 400 and response.headers["content-type"].startswith("text/html")
    await asyncio.sleep(0.2)
    assert len(smtp_server.messages) == 1
    assert_nothing_minted(app)


async def test_the_email_form_posted_again_shows_the_passcode_page_without_another_mail(
    app: Any, client: httpx.AsyncClient, smtp_server: SmtpServer
) -> None:
    """The passcode page answers the email POST itself, so a reload (or the back button) posts the
    same address again: the page again, no second mail, the first passcode still good."""
    path, code = await begin(client, smtp_server)
    before = snapshot(app)
    again = await flows.submit_email(client, path, EMAIL)
    assert again.status_code == 200 and 'autocomplete="one-time-code"' in again.text
    assert "A passcode was sent recently" not in again.text
    await asyncio.sleep(0.2)
    assert len(smtp_server.messages) == 1
    assert snapshot(app) == before
    assert (await flows.submit_passcode(client, path, code)).status_code == 303
