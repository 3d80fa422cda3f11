"""Headless Chromium signs in at /demo with an emailed passcode, sees the ID token's claims, signs out."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from playwright.async_api import Page, Request

from tests.support.gateway_app import default_config
from tests.support.live_server import LiveServer
from tests.support.smtp_server import SmtpServer, extract_passcode

EMAIL = "ada.guest@fabrikam.example"


async def claims_table(page: Page) -> dict[str, str]:
    rows = page.locator("#claims tr")
    claims: dict[str, str] = {}
    for index in range(await rows.count()):
        row = rows.nth(index)
        claims[(await row.locator("th").inner_text()).strip()] = (
            await row.locator("td").inner_text()
        ).strip()
    return claims


@pytest.mark.browser
async def test_demo_passcode_sign_in_shows_claims_and_signs_out(
    page: Page, live_gateway: LiveServer, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    base = live_gateway.base_url
    requested: list[str] = []

    def record(request: Request) -> None:
        requested.append(request.url)

    page.on("request", record)

    await page.goto(f"{base}/demo")
    await page.click("#signin")
    await page.wait_for_url(re.compile(re.escape(base) + r"/oauth2/authorize\?.+"))  # the email page
    assert await page.get_attribute("input#email", "type") == "email"
    await page.fill("input#email", EMAIL)
    await page.click("form[action$='/email'] button[type=submit]")
    await page.wait_for_url(re.compile(re.escape(base) + r"/signin/[A-Za-z0-9_-]+/email$"))
    assert await page.get_attribute("input#passcode", "autocomplete") == "one-time-code"
    assert EMAIL in await page.inner_text("#address")
    passcode_shot = tmp_path / "passcode-page.png"
    await page.screenshot(path=passcode_shot, full_page=True)

    passcode = extract_passcode(await smtp_server.wait_for(to=EMAIL, timeout=15))
    await page.fill("input#passcode", passcode)
    await page.click("form[action$='/passcode'] button[type=submit]")
    await page.wait_for_url(f"{base}/demo")
    await page.locator("#claims").wait_for()
    claims_shot = tmp_path / "claims-page.png"
    await page.screenshot(path=claims_shot, full_page=True)
    print(f"screenshots: {passcode_shot} {claims_shot}")

    claims = await claims_table(page)
    assert claims["email"] == EMAIL
    assert claims["idp"] == "mail"
    assert json.loads(claims["amr"]) == ["otp"]
    assert claims["acct"] == "1"
    assert claims["tid"] == default_config()["tenant"]["id"]
    assert claims["iss"] == base
    assert claims["aud"] == "demo"
    assert claims["email_verified"] == "true"
    assert claims["sub"] and claims["oid"]
    assert any(url.startswith(f"{base}/demo/callback?") and "code=" in url for url in requested)

    await page.click("form[action='/demo/logout'] button[type=submit]")
    await page.locator("#signin").wait_for()
    assert await page.locator("#claims").count() == 0
    assert re.fullmatch(re.escape(base) + r"/demo\??", page.url), page.url
    assert any(url.startswith(f"{base}/oauth2/logout?") and "id_token_hint=" in url for url in requested)

    # The gateway's SSO session ended too: signing in again asks for an email, not straight back to claims.
    await page.click("#signin")
    await page.wait_for_url(re.compile(re.escape(base) + r"/oauth2/authorize\?.+"))  # the email page
    await page.locator("input#email").wait_for()
