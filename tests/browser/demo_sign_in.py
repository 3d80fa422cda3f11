"""Signing in through `/demo` in the browser, with the passcode read from the SMTP fixture."""

from __future__ import annotations

import re

from playwright.async_api import Page

from tests.support.smtp_server import SmtpServer, extract_passcode


async def sign_in_at_demo(page: Page, base: str, smtp_server: SmtpServer, email: str) -> None:
    await page.goto(f"{base}/demo")
    await page.click("#signin")
    await page.wait_for_url(re.compile(re.escape(base) + r"/oauth2/authorize\?.+"))  # the email page
    await page.fill("input#email", email)
    await page.click("form[action$='/email'] button[type=submit]")
    await page.wait_for_url(re.compile(re.escape(base) + r"/signin/[A-Za-z0-9_-]+/email$"))
    await page.fill("input#passcode", extract_passcode(await smtp_server.wait_for(to=email, timeout=15)))
    await page.click("form[action$='/passcode'] button[type=submit]")
    await page.wait_for_url(f"{base}/demo")
    await page.locator("#claims").wait_for()
