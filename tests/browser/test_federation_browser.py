"""Headless Chromium signs in at /demo as a partner organisation's guest, at the partner's own IdP.

The real gateway (``gateway serve``, a subprocess) has an ``oidc`` connector ``partner-a`` whose
issuer is the test IdP on loopback (``serve_on_loopback``, interactive: it shows a "Sign in"
page), and a partner entry routing ``partner-a.example`` to it. The browser goes demo -> email-first
page -> continuation page -> the IdP's page -> the gateway's callback -> the demo's claims page.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, Request

from tests.browser.test_demo_browser import claims_table
from tests.support.live_server import LiveServer, live_server
from tests.support.oidc_idp import IdpClient, IdpUser, OidcTestIdP, serve_on_loopback

ALICE = "alice@partner-a.example"
PARTNER_TENANT = "11111111-2222-4333-8444-555555555555"
SECRET_ENV = "PARTNER_A_CLIENT_SECRET"
SECRET = "browser-test secret & symbols"


@pytest.fixture
def idp() -> Iterator[OidcTestIdP]:
    # Its client (the gateway) is registered once the gateway's port, hence its callback, is known.
    with serve_on_loopback(clients=[], user=IdpUser(email=ALICE)) as server:
        server.knobs.interactive = True
        yield server


def overrides(idp: OidcTestIdP) -> dict[str, Any]:
    return {
        "connectors": [
            {"id": "email", "type": "email_otp"},
            {
                "id": "partner-a",
                "type": "oidc",
                "issuer": idp.issuer,
                "client_id": "gateway",
                "client_secret": "${" + SECRET_ENV + "}",
                "allowed_algorithms": [idp.knobs.signing_alg],
                "display_name": "Partner A",
            },
        ],
        "user_flows": [{"id": "default", "identity_providers": ["email", "partner-a"]}],
        "cross_tenant_access": {
            "partners": [
                {"tenant_id": PARTNER_TENANT, "domains": ["partner-a.example"], "connector": "partner-a"}
            ]
        },
    }


@pytest.fixture
def federated_gateway(
    tmp_path: Path, idp: OidcTestIdP, monkeypatch: pytest.MonkeyPatch
) -> Iterator[LiveServer]:
    monkeypatch.setenv(SECRET_ENV, SECRET)  # the config says ${...}; live_server passes the environment on
    with live_server(tmp_path / "server", overrides=overrides(idp)) as server:
        idp.clients["gateway"] = IdpClient(
            client_id="gateway", client_secret=SECRET, redirect_uris=[f"{server.base_url}/callback/partner-a"]
        )
        yield server
    print(f"server log ({server.log_path}):\n{server.log()[-4000:]}")  # shown when the test failed


@pytest.mark.browser
async def test_partner_guest_signs_in_at_their_idp_through_the_email_page(
    page: Page, federated_gateway: LiveServer, idp: OidcTestIdP, tmp_path: Path
) -> None:
    base = federated_gateway.base_url
    requested: list[str] = []

    def record(request: Request) -> None:
        requested.append(request.url)

    page.on("request", record)

    await page.goto(f"{base}/demo")
    await page.click("#signin")
    await page.wait_for_url(re.compile(re.escape(base) + r"/oauth2/authorize\?.+"))  # the email page
    await page.fill("input#email", ALICE)
    email_shot = tmp_path / "federation-email-page.png"
    await page.screenshot(path=email_shot, full_page=True)
    await page.click("form[action$='/email'] button[type=submit]")

    # The continuation page moves on by itself to the IdP, which shows its own sign-in page.
    await page.wait_for_url(re.compile(re.escape(f"{idp.issuer}/authorize?") + ".*"))
    assert ALICE in await page.inner_text("body")
    await page.get_by_role("button", name="Sign in").click()

    await page.wait_for_url(f"{base}/demo")
    await page.locator("#claims").wait_for()
    claims_shot = tmp_path / "federation-claims-page.png"
    await page.screenshot(path=claims_shot, full_page=True)
    print(f"screenshots: {email_shot} {claims_shot}")

    claims = await claims_table(page)
    assert claims["idp"] == idp.issuer
    assert claims["email"] == ALICE
    assert ast.literal_eval(claims["amr"]) == ["fed"]
    assert claims["iss"] == base and claims["aud"] == "demo"
    assert claims["acct"] == "1"  # a guest

    # The path the browser really took: the continuation page, the IdP (GET page, POST form), the callback.
    upstream_page = next(i for i, url in enumerate(requested) if re.search(r"/signin/[^/]+/upstream$", url))
    at_idp = [i for i, url in enumerate(requested) if url.startswith(f"{idp.issuer}/authorize")]
    callback = next(i for i, url in enumerate(requested) if url.startswith(f"{base}/callback/partner-a?"))
    assert upstream_page < at_idp[0] < callback and len(at_idp) == 2
    assert "login_hint=alice%40partner-a.example" in requested[at_idp[0]]
    assert email_shot.stat().st_size > 0 and claims_shot.stat().st_size > 0
