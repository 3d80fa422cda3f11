"""Fixtures for browser tests: the real gateway as a subprocess, and a headless Chromium page.

``chromium_path`` fails the test (never skips) when Debian's ``chromium`` is missing: ``make test``
installs it. ``live_gateway`` runs ``gateway serve`` on a free loopback port with its mail going
to the session's SMTP server. ``page`` is a fresh browser context's page (no cookies), closed after
the test.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from playwright.async_api import Page, async_playwright

from tests.support.live_server import LiveServer, live_server
from tests.support.smtp_server import SmtpServer

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-background-networking", "--disable-gpu", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]  # fmt: skip
TIMEOUT_MS = 15_000


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")
    if path is None:
        pytest.fail(
            f"Chromium is missing ({CHROMIUM}): run `make test` (it installs Debian's chromium) "
            "or `apt-get install chromium`",
            pytrace=False,
        )
    return path


@pytest.fixture
def live_gateway(tmp_path: Path, smtp_server: SmtpServer) -> Iterator[LiveServer]:
    with live_server(tmp_path / "server", smtp=(smtp_server.host, smtp_server.port)) as server:
        yield server
    print(f"server log ({server.log_path}):\n{server.log()[-4000:]}")  # shown when the test failed


@pytest.fixture
async def page(chromium_path: str) -> AsyncIterator[Page]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = await browser.new_context()
            page = await context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            yield page
            await context.close()
        finally:
            await browser.close()
