"""Headless Chromium: the bootstrap administrator signs in at /demo, opens /admin, invites a guest
with the form (no JavaScript involved) and sees them listed; the page is saved as a screenshot."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.async_api import Page

from tests.browser.demo_sign_in import sign_in_at_demo
from tests.support.live_server import LiveServer, live_server
from tests.support.smtp_server import SmtpServer

ADMIN = "admin@contoso.example"
GUEST = "lin.guest@fabrikam.example"


@pytest.fixture
def admin_gateway(tmp_path: Path, smtp_server: SmtpServer) -> Iterator[LiveServer]:
    overrides = {"directory": {"administrators": [{"email": ADMIN, "roles": ["Global Administrator"]}]}}
    with live_server(
        tmp_path / "server", smtp=(smtp_server.host, smtp_server.port), overrides=overrides
    ) as server:
        yield server
    print(f"server log ({server.log_path}):\n{server.log()[-4000:]}")  # shown when the test failed


@pytest.mark.browser
async def test_an_admin_invites_a_guest_and_sees_them_listed(
    page: Page, admin_gateway: LiveServer, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    base = admin_gateway.base_url
    await sign_in_at_demo(page, base, smtp_server, ADMIN)

    await page.goto(f"{base}/admin")
    assert await page.inner_text("#admin-email") == ADMIN
    await page.locator("#no-guests").wait_for()
    await page.fill("#email", GUEST)
    await page.fill("#redirect_url", "https://app.contoso.example/welcome")
    await page.fill("#display_name", "Lin")
    assert await page.is_checked("#send_mail")
    await page.click("#invite-submit")
    await page.locator("#done").wait_for()
    assert (await page.inner_text("#done")).startswith(f"Invited {GUEST}.")
    assert "/redeem" in await page.inner_text("#redeem-url")
    await smtp_server.wait_for(to=GUEST, timeout=15)

    await page.click("#back")
    await page.wait_for_url(f"{base}/admin")
    row = page.locator("#guests tr", has_text=GUEST)
    assert await row.locator("td.state").inner_text() == "PendingAcceptance"
    assert await row.locator("td.name").inner_text() == "Lin"
    assert await row.locator("button.remove").count() == 1
    shot = tmp_path / "admin-page.png"
    await page.screenshot(path=shot, full_page=True)
    print(f"screenshot: {shot}")
    assert shot.stat().st_size > 0
