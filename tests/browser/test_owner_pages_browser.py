"""Headless Chromium: a signed-in owner of the demo app opens /owner, adds a new guest to the app
with default access through the page's form, sees the confirmation, and the assignment is in the
live server's store afterwards; the owners' page is saved as a screenshot."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from playwright.async_api import Page

from gateway.admin.models import DEFAULT_ACCESS_ROLE_ID
from gateway.store.base import Store
from gateway.store.factory import open_store
from tests.browser.demo_sign_in import sign_in_at_demo
from tests.support.live_server import LiveServer
from tests.support.smtp_server import SmtpServer

OWNER = "olivia.owner@fabrikam.example"
GUEST = "new.guest@partner.example"
APP_ID = "demo"


@asynccontextmanager
async def server_store(server: LiveServer) -> AsyncIterator[Store]:
    """The live server's SQLite store (``sqlite:///var/gateway.db`` under its working directory)."""
    store = open_store(f"sqlite:///{(server.workdir / 'var' / 'gateway.db').resolve()}")
    try:
        yield store
    finally:
        await store.close()


@pytest.mark.browser
async def test_an_app_owner_adds_a_guest_with_default_access(
    page: Page, live_gateway: LiveServer, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    base = live_gateway.base_url
    await sign_in_at_demo(page, base, smtp_server, OWNER)
    async with server_store(live_gateway) as store:
        [owner] = await store.find_users_by_mail(OWNER)
        assert await store.add_app_owner(APP_ID, str(owner["id"])) is True
        assert await store.find_users_by_mail(GUEST) == []

    await page.goto(f"{base}/owner")
    section = page.locator(f"#app-{APP_ID}")
    await section.wait_for()
    assert await section.locator("h3").inner_text() == "Demo app"
    assert await page.locator("#owns-nothing").count() == 0
    shot = tmp_path / "owner-page.png"
    await page.screenshot(path=shot, full_page=True)
    print(f"screenshot: {shot}")
    assert shot.stat().st_size > 0

    await section.locator("input[name=email]").fill(GUEST)
    assert await section.locator("select[name=role]").input_value() == DEFAULT_ACCESS_ROLE_ID
    await section.locator("button[type=submit]").click()
    await page.wait_for_url(f"{base}/owner/apps/{APP_ID}/guests")
    await page.locator("#done").wait_for()
    done = await page.inner_text("#done")
    assert done == f"{GUEST} was invited and now has access to Demo app (default access)."
    await smtp_server.wait_for(to=GUEST, timeout=15)

    async with server_store(live_gateway) as store:
        [guest] = await store.find_users_by_mail(GUEST)
        assert guest["userType"] == "Guest"
        [assignment] = await store.list_app_role_assignments(principal_id=str(guest["id"]))
        assert (assignment["resourceId"], assignment["appRoleId"]) == (APP_ID, DEFAULT_ACCESS_ROLE_ID)
