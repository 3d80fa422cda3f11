"""Headless Chromium: sign in at /demo, open My apps, leave the organisation in two steps, signed out."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Page

from tests.browser.demo_sign_in import sign_in_at_demo
from tests.support.live_server import LiveServer
from tests.support.smtp_server import SmtpServer

EMAIL = "grace.guest@fabrikam.example"


@pytest.mark.browser
async def test_a_guest_sees_their_apps_and_leaves_the_organisation(
    page: Page, live_gateway: LiveServer, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    base = live_gateway.base_url
    await sign_in_at_demo(page, base, smtp_server, EMAIL)

    await page.goto(f"{base}/myapps")
    assert await page.inner_text("#email") == EMAIL
    assert await page.inner_text("#user-type") == "Guest"
    demo_link = page.locator("#apps a[data-app='demo']")
    assert await demo_link.inner_text() == "Demo app"
    assert await demo_link.get_attribute("href") == base
    shot = tmp_path / "myapps-page.png"
    await page.screenshot(path=shot, full_page=True)
    print(f"screenshot: {shot}")

    await page.click("#leave-start")
    await page.locator("#leave-confirm").wait_for()
    assert "deleted for good after 30 days" in await page.inner_text("#consequences")
    await page.click("#leave-confirm")
    await page.locator("#left").wait_for()
    assert (await page.inner_text("#left")).startswith("You left ")
    assert not [c for c in await page.context.cookies() if c["name"] == "gw_session"]

    await page.goto(f"{base}/myapps")
    await page.locator("#signed-out").wait_for()
    assert await page.get_attribute("#signin", "href") == "/demo"
    assert await page.locator("#profile").count() == 0
