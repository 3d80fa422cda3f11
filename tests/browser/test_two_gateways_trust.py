"""Two gateways, each the other's partner: MFA done at home counts at the resource only when trusted.

HOME (Fabrikam, ``127.0.0.2``) and RESOURCE (Contoso, ``127.0.0.1``) are real ``gateway serve``
processes (``tests.support.two_gateways``). Headless Chromium opens RESOURCE's ``/demo`` and types
a Fabrikam address; home-realm discovery sends it to HOME, where the user signs in with a passcode
(read from the SMTP server) and registers TOTP, because HOME requires MFA of everyone. Back at
RESOURCE, which requires MFA of guests:

- RESOURCE trusts HOME's MFA: no TOTP page at RESOURCE; the ID token says ``amr`` ``["fed", "mfa"]``
  and ``mfa_source`` ``home``;
- it does not: RESOURCE shows its own TOTP registration, then ``["fed", "otp", "mfa"]`` and
  ``resource``.

Either way RESOURCE's audit record names HOME's tenant and the access type ``b2bCollaboration``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyotp
import pytest
from playwright.async_api import Page, Request

from gateway.oidc.claims import ACR_MULTI_FACTOR
from tests.browser.test_demo_browser import claims_table
from tests.support.live_server import LiveServer
from tests.support.smtp_server import SmtpServer, extract_passcode
from tests.support.two_gateways import HOME, RESOURCE, TwoGateways, two_gateways

GUEST = f"bob@{HOME.domain}"
SIGNIN_ID = r"/signin/[A-Za-z0-9_-]+"
STEP_TIMEOUT_MS = 30_000  # two servers, a browser and other engineers' tests share two cores


@pytest.fixture
def gateways(
    request: pytest.FixtureRequest, tmp_path: Path, smtp_server: SmtpServer
) -> Iterator[TwoGateways]:
    trusted: bool = request.param
    with two_gateways(
        tmp_path, (smtp_server.host, smtp_server.port), resource_trusts_home_mfa=trusted
    ) as pair:
        yield pair
    for name, server in (("HOME", pair.home), ("RESOURCE", pair.resource)):
        print(f"{name} server log ({server.log_path}):\n{server.log()[-4000:]}")  # shown when the test failed


def at(base: str, path_pattern: str) -> re.Pattern[str]:
    """A URL of ``base`` whose path (and optional query) matches ``path_pattern``."""
    return re.compile(re.escape(base) + path_pattern + r"(\?.*)?$")


async def register_totp(page: Page, base: str) -> str:
    """On ``base``'s TOTP registration page: read the secret shown as text, enter a code; the secret."""
    await page.wait_for_url(at(base, SIGNIN_ID + "/mfa"), timeout=STEP_TIMEOUT_MS)
    await page.locator("#secret").wait_for()
    secret = (await page.inner_text("#secret")).replace(" ", "")
    await page.fill("input#code", pyotp.TOTP(secret).now())
    await page.click("form[action$='/mfa'] button[type=submit]")
    return secret


def signin_records(server: LiveServer) -> list[dict[str, Any]]:
    """The audit records (``gateway.audit``: one JSON object a line in the server's log)."""
    records = []
    for line in server.log().splitlines():
        if line.startswith("{") and '"event":"signin"' in line:
            records.append(json.loads(line))
    return records


def decisions(record: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(d["step"], d["outcome"], d["reason"]) for d in record["decisions"]]


@pytest.mark.browser
@pytest.mark.parametrize(
    ("gateways", "amr", "mfa_source"),
    [(True, ["fed", "mfa"], "home"), (False, ["fed", "otp", "mfa"], "resource")],
    ids=["home-mfa-trusted", "home-mfa-not-trusted"],
    indirect=["gateways"],
)
async def test_home_mfa_counts_at_the_resource_only_when_trusted(
    page: Page, gateways: TwoGateways, smtp_server: SmtpServer, amr: list[str], mfa_source: str
) -> None:
    home, resource = gateways.home.base_url, gateways.resource.base_url
    assert home.startswith(f"http://{HOME.host}:") and resource.startswith(f"http://{RESOURCE.host}:")
    requested: list[str] = []

    def record(request: Request) -> None:
        requested.append(request.url)

    page.on("request", record)

    # RESOURCE: the demo app, then the email page; Fabrikam's domain is a partner's.
    await page.goto(f"{resource}/demo")
    await page.click("#signin")
    await page.wait_for_url(at(resource, "/oauth2/authorize"), timeout=STEP_TIMEOUT_MS)
    await page.fill("input#email", GUEST)
    await page.click("form[action$='/email'] button[type=submit]")

    # HOME: its own email page (the address forwarded as login_hint), passcode, TOTP registration.
    await page.wait_for_url(at(home, "/oauth2/authorize"), timeout=STEP_TIMEOUT_MS)
    assert await page.input_value("input#email") == GUEST
    await page.click("form[action$='/email'] button[type=submit]")
    await page.wait_for_url(at(home, SIGNIN_ID + "/email"), timeout=STEP_TIMEOUT_MS)
    passcode = extract_passcode(await smtp_server.wait_for(to=GUEST, timeout=30))
    await page.fill("input#passcode", passcode)
    await page.click("form[action$='/passcode'] button[type=submit]")
    home_secret = await register_totp(page, home)

    # RESOURCE again: its own TOTP registration only when it does not trust HOME's MFA.
    if not gateways.resource_trusts_home_mfa:
        resource_secret = await register_totp(page, resource)
        assert resource_secret != home_secret
    await page.wait_for_url(f"{resource}/demo", timeout=STEP_TIMEOUT_MS)
    await page.locator("#claims").wait_for()

    claims = await claims_table(page)
    assert json.loads(claims["amr"]) == amr
    assert claims["mfa_source"] == mfa_source
    assert claims["acr"] == ACR_MULTI_FACTOR
    assert claims["email"] == GUEST and claims["acct"] == "1"  # a guest at RESOURCE
    assert claims["idp"] == home and claims["iss"] == resource and claims["tid"] == RESOURCE.tenant_id

    # The path the browser took: TOTP pages at HOME once, at RESOURCE only when HOME is not trusted.
    home_mfa = [url for url in requested if at(home, SIGNIN_ID + "/mfa").match(url)]
    resource_mfa = [url for url in requested if at(resource, SIGNIN_ID + "/mfa").match(url)]
    assert len(home_mfa) == 2  # the registration page, then the code posted
    assert len(resource_mfa) == (0 if gateways.resource_trusts_home_mfa else 2)

    # HOME's audit: a passcode sign-up (a b2bCollaborationGuest there, with no home organisation:
    # b2b-concepts §8), its MFA policy, and the TOTP registered there.
    [home_record] = [r for r in signin_records(gateways.home) if r["result"] == "success"]
    assert home_record["app"] == RESOURCE.client_id and home_record["connector"] == "email"
    assert home_record["tenant"] == HOME.tenant_id and home_record["homeTenantId"] is None
    assert home_record["crossTenantAccessType"] == "b2bCollaboration"
    assert [p["id"] for p in home_record["appliedConditionalAccessPolicies"]] == ["everyone-mfa"]
    assert ("mfa", "passed", "mfa_registered") in decisions(home_record)
    assert not any(step == "trust" for step, _, _ in decisions(home_record))

    # RESOURCE's audit: the guest's home organisation, the access type, and what became of HOME's MFA.
    [resource_record] = [r for r in signin_records(gateways.resource) if r["result"] == "success"]
    assert resource_record["app"] == "demo" and resource_record["connector"] == HOME.connector_id
    assert resource_record["homeTenantId"] == HOME.tenant_id
    assert resource_record["resourceTenantId"] == RESOURCE.tenant_id
    assert resource_record["crossTenantAccessType"] == "b2bCollaboration"
    assert resource_record["conditionalAccessStatus"] == "success"
    [policy] = resource_record["appliedConditionalAccessPolicies"]
    assert policy["id"] == "guests-mfa" and policy["result"] == "success"
    if gateways.resource_trusts_home_mfa:
        assert ("trust", "mfa_trusted", "mfa_trusted_from_home") in decisions(resource_record)
        assert not any(step == "mfa" for step, _, _ in decisions(resource_record))
    else:  # HOME's token said MFA; RESOURCE did not take it and had the guest do TOTP here
        assert ("trust", "mfa_not_trusted", "mfa_claim_not_trusted") in decisions(resource_record)
        assert ("mfa", "passed", "mfa_registered") in decisions(resource_record)
    assert [r["result"] for r in signin_records(gateways.resource)] == ["success"]
