"""The whole self-service sign-up in headless Chromium, against the example approval service.

The gateway runs as a subprocess; the approval service (deploy/examples/approval_service) runs on
loopback as both of the user flow's API connectors, authenticated with HTTP Basic. The browser asks
for French (``Accept-Language``): the first sign-up fills the French attribute page and is told its
request waits for approval; no user exists. The administrator approves it through the service's API;
the next sign-in gets Continue at both steps, the guest is created with the typed attributes, and the
demo app shows the ID token.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Page, async_playwright

from tests.browser.conftest import CHROMIUM_ARGS, TIMEOUT_MS
from tests.examples.approval import (
    ADMIN_PASSWORD,
    CONNECTOR_PASSWORD,
    CONNECTOR_USER,
    ENVIRONMENT,
    load_service,
)
from tests.support.inspect_store import users
from tests.support.live_server import LiveServer, free_port, live_server
from tests.support.oidc_idp import serve_in_thread
from tests.support.smtp_server import SmtpServer, extract_passcode

EMAIL = "grace.guest@fabrikam.example"


def store(server: LiveServer) -> Path:
    return server.workdir / "var" / "gateway.db"


@pytest.fixture
def approvals(tmp_path: Path) -> Iterator[str]:
    service = load_service("approval_service_browser", {**ENVIRONMENT, "APPROVAL_DB": str(tmp_path / "a.db")})
    app = service.create_app(
        str(tmp_path / "approvals.db"), CONNECTOR_USER, CONNECTOR_PASSWORD, ADMIN_PASSWORD
    )
    port = free_port("127.0.0.1")
    with serve_in_thread(app, "127.0.0.1", port, "approval-service"):
        yield f"http://127.0.0.1:{port}"


def connector(id: str, url: str) -> dict[str, object]:
    basic = {"username": CONNECTOR_USER, "password": CONNECTOR_PASSWORD}
    return {"id": id, "target_url": url, "authentication": {"basic": basic}}


@pytest.fixture
def gateway(tmp_path: Path, smtp_server: SmtpServer, approvals: str) -> Iterator[LiveServer]:
    overrides = {
        "passcode": {"resend_interval_seconds": 0},  # two sign-ins for one address within a minute
        "api_connectors": [
            connector("approval-check", f"{approvals}/api/post-federation-signup"),
            connector("approval-request", f"{approvals}/api/post-attribute-collection"),
        ],
        "user_flows": [
            {
                "id": "default",
                "identity_providers": ["email"],
                "attributes": [
                    {"name": "displayName", "required": True},
                    {"name": "jobTitle"},
                    {"name": "badgeNumber", "type": "Int", "required": True,
                     "label": {"en": "Badge number", "fr": "Numéro de badge"}},
                ],
                "api_connectors": {
                    "post_federation_signup": "approval-check",
                    "post_attribute_collection": "approval-request",
                },
            }
        ],
    }  # fmt: skip
    with live_server(
        tmp_path / "server", smtp=(smtp_server.host, smtp_server.port), overrides=overrides
    ) as server:
        yield server
    print(f"server log ({server.log_path}):\n{server.log()[-4000:]}")


async def sign_in_to_attribute_page(page: Page, base: str, smtp: SmtpServer) -> None:
    smtp.clear()
    await page.goto(f"{base}/demo")
    await page.click("#signin")
    await page.wait_for_url(re.compile(re.escape(base) + r"/oauth2/authorize\?.+"))
    await page.fill("input#email", EMAIL)
    await page.click("form[action$='/email'] button[type=submit]")
    await page.wait_for_url(re.compile(re.escape(base) + r"/signin/[A-Za-z0-9_-]+/email$"))
    await page.fill("input#passcode", extract_passcode(await smtp.wait_for(to=EMAIL, timeout=15)))
    await page.click("form[action$='/passcode'] button[type=submit]")
    await page.wait_for_url(re.compile(re.escape(base) + r"/signin/[A-Za-z0-9_-]+/signup$"))


async def fill_attributes(page: Page) -> None:
    await page.get_by_label("Nom d\u2019affichage").fill("Grace Hopper")
    await page.get_by_label("Fonction").fill("Rear admiral")
    await page.get_by_label("Numéro de badge").fill("1906")
    await page.click("#continue")


@pytest.mark.browser
async def test_sign_up_waits_for_approval_then_creates_the_guest(
    chromium_path: str, gateway: LiveServer, approvals: str, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    base = gateway.base_url
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = await browser.new_context(locale="fr-FR")
            page = await context.new_page()
            page.set_default_timeout(TIMEOUT_MS)

            # First sign-up: the French attribute page, a client-side-free form checked on the server.
            await sign_in_to_attribute_page(page, base, smtp_server)
            assert await page.get_attribute("html", "lang") == "fr"
            assert await page.inner_text("h1") == "Parlez-nous de vous"
            await page.get_by_label("Nom d\u2019affichage").fill("Grace Hopper")
            await page.get_by_label("Numéro de badge").fill("dix-neuf")
            await page.click("#continue")
            badge = page.locator("#attr-badgeNumber")
            assert await badge.get_attribute("aria-invalid") == "true"
            assert await page.inner_text("#err-attr-badgeNumber") == "Saisissez un nombre entier."
            await page.screenshot(path=tmp_path / "attribute-page-error.png", full_page=True)
            await fill_attributes(page)
            notice = await page.inner_text("#user-message")
            assert "approbation" in notice or "attente" in notice, notice  # the service's French message
            assert users(store(gateway)) == []  # nothing created while it waits

            # The administrator approves the filed request through the service's API.
            async with httpx.AsyncClient(base_url=approvals, auth=("admin", ADMIN_PASSWORD)) as admin:
                [filed] = (await admin.get("/admin/api/requests")).json()["value"]
                assert filed["email"] == EMAIL and filed["status"] == "pending"
                approved = await admin.post(f"/admin/api/requests/{filed['id']}/approve", json={})
                assert approved.status_code == 200, approved.text

            # The next sign-in: Continue at both steps, the guest is created, the app gets its tokens.
            await sign_in_to_attribute_page(page, base, smtp_server)
            await fill_attributes(page)
            await page.wait_for_url(f"{base}/demo")
            await page.locator("#claims").wait_for()
            [user] = users(store(gateway))
            assert user["creationType"] == "SelfServiceSignUp" and user["displayName"] == "Grace Hopper"
            assert user["jobTitle"] == "Rear admiral"
            assert [v for k, v in user.items() if k.endswith("_badgeNumber")] == [1906]
            assert json.dumps(user).count("extension_") == 1
        finally:
            await browser.close()
