"""Headless Chromium signs in to a real SAML SP (pysaml2) through the gateway's SAML IdP.

The gateway runs live (``gateway serve``) at ``http://127.0.0.1:<port>`` with one SAML
application, ``payroll``, whose SP (``tests/support/saml_sp.py``) is served over https on loopback
as ``sp.northwind.test`` (Chromium's ``--host-resolver-rules``, certificate errors ignored): a site
of its own, as a real app is. The SP sends an HTTP-Redirect AuthnRequest; the guest signs in with
an emailed passcode (the session's SMTP server); the gateway's page POSTs the signed assertion to
the SP's ACS, where pysaml2 verifies it with the certificate it read from ``/saml2/metadata``
and shows the NameID, the AuthnContextClassRef and the attributes. A second visit is answered
from the gateway's SSO session: no email page, no passcode.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
from playwright.async_api import Browser, Page, Request, async_playwright

from gateway.settings.saml_app import NAME_ID_FORMATS
from tests.browser.conftest import CHROMIUM_ARGS, TIMEOUT_MS
from tests.support.gateway_app import default_config
from tests.support.live_server import LiveServer, free_port, live_server
from tests.support.saml_sp import REFEDS_SFA, SamlTestSP, serve_on_loopback
from tests.support.smtp_server import SmtpServer, extract_passcode

pytestmark = pytest.mark.browser

SP_HOST = "sp.northwind.test"
EMAIL_CLAIM = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress"
UPN_CLAIM = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn"
GUEST = "grace.guest@fabrikam.example"
WAIT_MS = 20_000


@pytest.fixture(scope="module")
def sp() -> Iterator[SamlTestSP]:
    with serve_on_loopback(name=SP_HOST) as served:
        yield served


def overrides(sp: SamlTestSP, base: str) -> dict[str, Any]:
    demo = next(app for app in default_config()["applications"] if app["id"] == "demo")
    demo["oidc"]["redirect_uris"] = [f"{base}/demo/callback"]
    demo["oidc"]["post_logout_redirect_uris"] = [f"{base}/demo"]
    payroll = {
        "id": "payroll",
        "name": "Northwind payroll",
        "user_flow": "default",
        "saml": {
            "entity_id": sp.entity_id,
            "acs_urls": [sp.acs_url],
            "name_id_format": "persistent",
            "attributes": [
                {"name": EMAIL_CLAIM, "source": "mail"},
                {"name": UPN_CLAIM, "source": "userPrincipalName"},
                {"name": "userType", "source": "userType"},
            ],
        },
    }
    return {"applications": [demo, payroll]}


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, sp: SamlTestSP, smtp_server: SmtpServer
) -> Iterator[LiveServer]:
    workdir = tmp_path_factory.mktemp("saml-app-browser")
    port = free_port()  # chosen first: the applications list replaces the one the demo's URIs are in
    config = overrides(sp, f"http://127.0.0.1:{port}")
    with live_server(
        workdir / "server", smtp=(smtp_server.host, smtp_server.port), overrides=config, port=port
    ) as server:
        sp.idp_metadata_url = f"{server.base_url}/saml2/metadata"
        yield server
    print(f"server log ({server.log_path}):\n{server.log()[-6000:]}")  # shown when a test failed


@pytest.fixture
async def browser(chromium_path: str, sp: SamlTestSP) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=chromium_path,
            headless=True,
            args=[
                *CHROMIUM_ARGS,
                f"--host-resolver-rules=MAP {SP_HOST} {sp.address}",
                "--ignore-certificate-errors",
            ],
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(ignore_https_errors=True)
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.set_default_navigation_timeout(WAIT_MS)
    yield page
    await context.close()


async def attributes_table(page: Page) -> dict[str, str]:
    rows = page.locator("#attributes tr")
    found: dict[str, str] = {}
    for index in range(await rows.count()):
        row = rows.nth(index)
        found[(await row.locator("th").inner_text()).strip()] = (await row.locator("td").inner_text()).strip()
    return found


class AcsPosts:
    """The browser's POSTs to the SP's ACS: their fields and Sec-Fetch-Site."""

    def __init__(self, page: Page, acs_url: str) -> None:
        self.acs_url = acs_url
        self.requests: list[Request] = []
        page.on("request", self._seen)

    def _seen(self, request: Request) -> None:
        if request.method == "POST" and request.url == self.acs_url:
            self.requests.append(request)

    async def fields(self) -> list[tuple[dict[str, str], str]]:
        found = []
        for request in self.requests:
            headers = await request.all_headers()
            found.append((dict(parse_qsl(request.post_data or "")), headers.get("sec-fetch-site", "")))
        return found


async def test_guest_signs_in_to_a_saml_app_and_the_sso_session_answers_the_next_visit(
    page: Page, gateway: LiveServer, sp: SamlTestSP, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    base = gateway.base_url
    posts = AcsPosts(page, sp.acs_url)

    await page.goto(f"{sp.login_url}?relay_state=%2Freports")
    await page.wait_for_url(re.compile(re.escape(base) + r"/saml2/sso\?SAMLRequest=.+"))  # the email page
    await page.fill("input#email", GUEST)
    await page.click("form[action$='/email'] button[type=submit]")
    await page.wait_for_url(re.compile(re.escape(base) + r"/signin/[A-Za-z0-9_-]+/email$"))
    await page.fill("input#passcode", extract_passcode(await smtp_server.wait_for(to=GUEST, timeout=15)))
    await page.click("form[action$='/passcode'] button[type=submit]")
    await page.wait_for_url(sp.acs_url, timeout=WAIT_MS)
    await page.locator("#name-id").wait_for()
    shot = tmp_path / "saml-sp-signed-in.png"
    await page.screenshot(path=shot, full_page=True)
    print(f"screenshot: {shot}")

    assert sp.refused == []
    attributes = await attributes_table(page)
    assert attributes[EMAIL_CLAIM] == GUEST
    assert attributes[UPN_CLAIM] == "grace.guest_fabrikam.example#EXT#@contoso.example"
    assert attributes["userType"] == "Guest"
    assert await page.inner_text("#authn-context") == REFEDS_SFA
    assert await page.inner_text("#name-id-format") == NAME_ID_FORMATS["persistent"]
    assert await page.inner_text("#relay-state") == "/reports"
    name_id = await page.inner_text("#name-id")
    assert name_id and GUEST not in name_id
    [received] = sp.received
    assert received.assertion_signed and received.issuer == f"{base}/saml2/metadata"
    [(fields, fetch_site)] = await posts.fields()
    assert set(fields) == {"SAMLResponse", "RelayState"} and fields["RelayState"] == "/reports"
    assert fetch_site == "cross-site"

    # The next visit: the SSO session answers, no email page and no passcode.
    mails = len(smtp_server.messages)
    await page.goto(sp.login_url)
    await page.wait_for_url(sp.acs_url, timeout=WAIT_MS)
    await page.locator("#name-id").wait_for()
    assert await page.inner_text("#name-id") == name_id
    assert len(sp.received) == 2 and len(smtp_server.messages) == mails
    assert sp.outstanding == {}
