"""Conditional access end to end: report-only policies, the SSO session, sign-in frequency, terms of use
and the passcode guest, through the real sign-in with the partner IdP mounted by respx.

Fabrikam (``partner-a``) is not trusted for anything here unless a test says so, so MFA means TOTP
at the gateway. Every test asserts the ID token after the real token exchange, and every refusal
that nothing was minted (``tests/support/trust.py`` has the harness).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.mfa.methods import METHODS_KEY
from tests.support import flows
from tests.support.assertions import assert_error_page
from tests.support.smtp_server import SmtpServer, extract_passcode
from tests.support.trust import (
    ACR_MFA,
    ACR_SINGLE,
    APP_B_REDIRECT,
    PARTNER,
    PARTNER_TENANT,
    RESOURCE_TENANT,
    TERMS,
    TrustEnv,
    TrustGateway,
    audit_records,
    capture_audit,
    policy,
    policy_results,
    step_path,
    trust_env,
)

REPORT_ONLY = "enabledForReportingButNotEnforced"
HOUR = 3600
PASSCODE_GUEST = "pat@example.org"


@pytest.fixture
def env(tmp_path: Path, smtp_server: SmtpServer) -> Iterator[TrustEnv]:
    with trust_env(tmp_path, smtp_server) as found:
        yield found


@pytest.fixture
def audit_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    return capture_audit(caplog)


def app_b() -> flows.AuthRequest:
    return flows.AuthRequest(client_id="app-b", redirect_uri=APP_B_REDIRECT)


async def authorize(
    gw: TrustGateway, req: flows.AuthRequest, client: httpx.AsyncClient | None = None
) -> httpx.Response:
    """The app's authorization request, without hints (an SSO session may answer it)."""
    return await (client or gw.client).get(f"/oauth2/authorize?{req.query()}")


# -- report-only ----------------------------------------------------------------------------------


async def test_a_report_only_block_lets_the_sign_in_through_and_logs_its_failure(
    env: TrustEnv, audit_log: pytest.LogCaptureFixture
) -> None:
    async with env.gateway(policies=[policy("report-block", "block", state=REPORT_ONLY)]) as gw:
        req, done = await gw.sign_in()
        claims = await gw.id_claims(req, done)
    assert claims["amr"] == ["fed"] and claims["acr"] == ACR_SINGLE
    [record] = [r for r in audit_records(audit_log) if r["result"] == "success"]
    assert policy_results(record) == {"report-block": "reportOnlyFailure"}
    assert record["conditionalAccessStatus"] == "notApplied"  # nothing enforced


async def test_a_report_only_mfa_policy_does_not_prompt_and_logs_it_would_have(
    env: TrustEnv, audit_log: pytest.LogCaptureFixture
) -> None:
    async with env.gateway(policies=[policy("report-mfa", "mfa", state=REPORT_ONLY)]) as gw:
        req, done = await gw.sign_in()  # the callback answers with the code: no MFA page
        claims = await gw.id_claims(req, done)
        assert METHODS_KEY not in await gw.user()
    assert claims["amr"] == ["fed"] and "mfa_source" not in claims
    [record] = [r for r in audit_records(audit_log) if r["result"] == "success"]
    assert policy_results(record) == {"report-mfa": "reportOnlyInterrupted"}
    assert record["authenticationRequirement"] == "singleFactorAuthentication"


# -- the SSO session ------------------------------------------------------------------------------


async def test_an_sso_session_goes_straight_to_totp_for_an_app_that_needs_mfa(env: TrustEnv) -> None:
    async with env.gateway(policies=[policy("app-b-mfa", "mfa", apps=("app-b",))]) as gw:
        req, done = await gw.sign_in()  # demo: no policy applies
        first = await gw.id_claims(req, done)
        assert first["amr"] == ["fed"] and first["acr"] == ACR_SINGLE
        upstream_calls = gw.partner.routes["token"].call_count
        req_b = app_b()
        path = step_path(await authorize(gw, req_b), "mfa")  # no upstream round trip
        _, accepted = await gw.register_totp(path)
        claims_b = await gw.id_claims(req_b, accepted)
        assert claims_b["aud"] == "app-b" and claims_b["amr"] == ["fed", "otp", "mfa"]
        assert claims_b["mfa_source"] == "resource" and claims_b["auth_time"] == first["auth_time"]
        # App A still works from the session, with no page at all.
        req_a = flows.AuthRequest()
        claims_a = await gw.id_claims(req_a, await authorize(gw, req_a))
        assert claims_a["sub"] == first["sub"]
        assert gw.partner.routes["token"].call_count == upstream_calls


async def test_sign_in_frequency_for_mfa_asks_for_a_code_again_once_the_period_is_over(
    env: TrustEnv,
) -> None:
    frequency = {"type": "hours", "value": 1, "authentication_type": "secondaryAuthentication"}
    async with env.gateway(policies=[policy("guests-mfa", "mfa", session=frequency)]) as gw:
        req, callback = await gw.sign_in()
        secret, done = await gw.register_totp(step_path(callback, "mfa"))
        first = await gw.id_claims(req, done)
        assert "mfa" in first["amr"]
        gw.clock.advance(HOUR - 120)  # within the hour: the session answers
        within = flows.AuthRequest()
        assert "mfa" in (await gw.id_claims(within, await authorize(gw, within)))["amr"]
        gw.clock.advance(240)  # past it
        late = flows.AuthRequest()
        path = step_path(await authorize(gw, late), "mfa")
        upstream_calls = gw.partner.routes["token"].call_count
        fresh = await gw.id_claims(late, await gw.verify_totp(path, secret))
        assert fresh["amr"] == ["fed", "otp", "mfa"] and fresh["mfa_source"] == "resource"
        assert gw.partner.routes["token"].call_count == upstream_calls  # only MFA was asked again


# -- terms of use ---------------------------------------------------------------------------------


async def accept_terms(
    gw: TrustGateway, path: str, version: str, client: httpx.AsyncClient | None = None
) -> httpx.Response:
    """The terms page offers ``version``; tick it and accept."""
    browser = client or gw.client
    page = await browser.get(f"{path}/terms")
    assert page.status_code == 200, page.text
    assert f'value="{version}"' in page.text and TERMS["url"] in page.text
    data = {"csrf": flows.csrf_of(page), "decision": "accept", f"accept_{TERMS['id']}": version}
    return await browser.post(f"{path}/terms", data=data)


TERMS_POLICY = policy("guest-terms", terms=(TERMS["id"],))


async def test_terms_are_accepted_once_per_version_and_recorded_on_the_user(env: TrustEnv) -> None:
    async with env.gateway(policies=[TERMS_POLICY]) as gw:
        req, callback = await gw.sign_in()
        path = step_path(callback, "terms")
        assert gw.snapshot().count("code") == 0
        claims = await gw.id_claims(req, await accept_terms(gw, path, TERMS["version"]))
        assert claims["amr"] == ["fed"]
        accepted = (await gw.user())["termsOfUseAcceptances"]
        assert list(accepted) == [TERMS["id"]] and accepted[TERMS["id"]]["version"] == TERMS["version"]
        async with gw.browser() as other:  # a fresh sign-in: not asked again
            again, done = await gw.sign_in(client=other)
            await gw.id_claims(again, done, other)
    bumped = {**TERMS, "version": "2026-02"}
    async with env.gateway(policies=[TERMS_POLICY], terms_of_use=[bumped]) as gw:
        req, callback = await gw.sign_in()
        path = step_path(callback, "terms")  # a new version: asked again
        await gw.id_claims(req, await accept_terms(gw, path, "2026-02"))
        assert (await gw.user())["termsOfUseAcceptances"][TERMS["id"]]["version"] == "2026-02"


async def test_declining_the_terms_ends_the_sign_in_without_a_code(
    env: TrustEnv, audit_log: pytest.LogCaptureFixture
) -> None:
    async with env.gateway(policies=[TERMS_POLICY]) as gw:
        _, callback = await gw.sign_in()
        path = step_path(callback, "terms")
        page = await gw.client.get(f"{path}/terms")
        declined = await gw.client.post(
            f"{path}/terms", data={"csrf": flows.csrf_of(page), "decision": "decline"}
        )
        assert_error_page(declined, 403)
        assert "Guest terms" in declined.text
        assert gw.snapshot().minted() == {"code": 0, "access": 0, "refresh": 0, "session": 0}
        assert "termsOfUseAcceptances" not in await gw.user()
        late = await gw.client.post(
            f"{path}/terms",
            data={
                "csrf": flows.csrf_of(page),
                "decision": "accept",
                f"accept_{TERMS['id']}": TERMS["version"],
            },
        )
        assert late.status_code == 400  # the sign-in is over: accepting now changes nothing
        assert "termsOfUseAcceptances" not in await gw.user()
    [record] = [r for r in audit_records(audit_log) if r["result"] == "failure"]
    assert record["reason"] == "terms_declined" and record["connector"] == PARTNER


# -- a guest without an organisation --------------------------------------------------------------


async def test_a_passcode_guest_does_mfa_here_and_has_no_home_tenant(
    env: TrustEnv, audit_log: pytest.LogCaptureFixture
) -> None:
    async with env.gateway(policies=[policy("guests-mfa", "mfa")]) as gw:
        req = flows.AuthRequest()
        path = await flows.start(gw.client, req)
        sent = await flows.submit_email(gw.client, path, PASSCODE_GUEST)
        assert sent.status_code == 200, sent.text  # the passcode page
        message = await gw.smtp.wait_for(to=PASSCODE_GUEST, timeout=10)
        passcode = await flows.submit_passcode(gw.client, path, extract_passcode(message))
        assert step_path(passcode, "mfa") == path
        _, done = await gw.register_totp(path)
        claims = await gw.id_claims(req, done)
    assert claims["amr"] == ["otp", "mfa"] and claims["acr"] == ACR_MFA and claims["mfa_source"] == "resource"
    [record] = [r for r in audit_records(audit_log) if r["result"] == "success"]
    assert record["homeTenantId"] is None
    assert record["resourceTenantId"] == RESOURCE_TENANT
    assert record["conditionalAccessStatus"] == "success"
    assert policy_results(record) == {"guests-mfa": "success"}
    assert not any(d["step"] == "trust" for d in record["decisions"])  # no organisation to trust
    assert PARTNER_TENANT not in str(record)
