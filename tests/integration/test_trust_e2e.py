"""Cross-tenant trust end to end: a partner's guest signs in through the real journey and the tokens say
only what the organisation trusts.

The partner IdP (Fabrikam, ``partner-a``) and an unrelated IdP (``other-idp``) are real test IdPs
mounted with respx (``tests/support/trust.py``); the gateway runs in-process. Each test asserts the
ID token after the real token exchange, or, for a refusal, the page, the audit record and that
nothing was minted (and, where the refusal comes before the directory, that no user was written).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.mfa.methods import METHODS_KEY
from gateway.settings.federation import DEFAULT_MFA_ACR_VALUES
from tests.support import flows
from tests.support.assertions import assert_error_page
from tests.support.smtp_server import SmtpServer
from tests.support.trust import (
    ACR_MFA,
    ACR_SINGLE,
    ALICE_OID,
    APP_B_REDIRECT,
    OTHER,
    OTHER_TENANT,
    PARTNER_TENANT,
    RESOURCE_TENANT,
    TrustEnv,
    audit_records,
    capture_audit,
    decided,
    partner,
    policy,
    policy_results,
    step_path,
    trust_env,
)

TRUST_MFA = {"inbound_trust": {"mfa_accepted": True}}
BLOCKED_OID = "5e1f0c2a-1111-4aaa-8bbb-0000000000ff"
NOTHING_MINTED = {"code": 0, "access": 0, "refresh": 0, "session": 0}


@pytest.fixture
def env(tmp_path: Path, smtp_server: SmtpServer) -> Iterator[TrustEnv]:
    with trust_env(tmp_path, smtp_server) as found:
        yield found


@pytest.fixture
def audit_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    return capture_audit(caplog)


def targets(access_type: str, users: list[tuple[str, str]], apps: list[str]) -> dict[str, object]:
    """A ``b2b_collaboration_inbound`` entry: ``users`` as (target, target_type), ``apps`` as ids."""
    return {
        "users_and_groups": {
            "access_type": access_type,
            "targets": [{"target": t, "target_type": kind} for t, kind in users],
        },
        "applications": {
            "access_type": access_type,
            "targets": [{"target": app, "target_type": "application"} for app in apps],
        },
    }


# -- MFA trusted from the home organisation -------------------------------------------------------


async def test_mfa_done_at_a_trusted_home_satisfies_the_policy_without_a_prompt(
    env: TrustEnv, audit_log: pytest.LogCaptureFixture
) -> None:
    async with env.gateway(partners=[partner(**TRUST_MFA)], policies=[policy("guests-mfa", "mfa")]) as gw:
        req, done = await gw.sign_in()
        claims = await gw.id_claims(req, done)  # the callback answers with the code: no local prompt
        [user] = gw.users()
    assert claims["amr"] == ["fed", "mfa"]
    assert claims["acr"] == ACR_MFA
    assert claims["mfa_source"] == "home"
    assert "device_compliant" not in claims and "device_hybrid_joined" not in claims
    assert METHODS_KEY not in user  # nothing registered here
    [record] = [r for r in audit_records(audit_log) if r["result"] == "success"]
    assert record["homeTenantId"] == PARTNER_TENANT
    assert record["resourceTenantId"] == RESOURCE_TENANT
    assert record["crossTenantAccessType"] == "b2bCollaboration"
    assert record["conditionalAccessStatus"] == "success"
    assert record["authenticationRequirement"] == "multiFactorAuthentication"
    assert policy_results(record) == {"guests-mfa": "success"}
    assert decided(record, "trust", "mfa_trusted", "mfa_trusted_from_home")
    assert decided(record, "cross_tenant_access", "allowed", "cross_tenant_access_allowed")


async def test_an_untrusted_partner_s_guest_registers_totp_here_and_later_only_enters_a_code(
    env: TrustEnv,
) -> None:
    async with env.gateway(policies=[policy("guests-mfa", "mfa")]) as gw:
        req, callback = await gw.sign_in()  # the upstream says mfa, but Fabrikam is not trusted for it
        path = step_path(callback, "mfa")
        assert gw.snapshot().minted() == NOTHING_MINTED
        secret, done = await gw.register_totp(path)
        claims = await gw.id_claims(req, done)
        assert claims["amr"] == ["fed", "otp", "mfa"]
        assert claims["acr"] == ACR_MFA and claims["mfa_source"] == "resource"
        async with gw.browser() as other:  # no SSO session: a fresh sign-in at the partner's IdP
            again, second = await gw.sign_in(client=other)
            accepted = await gw.verify_totp(step_path(second, "mfa"), secret, other)
            later = await gw.id_claims(again, accepted, other)
        assert later["amr"] == ["fed", "otp", "mfa"] and later["mfa_source"] == "resource"
        assert len((await gw.user())[METHODS_KEY]) == 1


async def test_a_trusted_home_without_mfa_is_asked_again_with_the_mapping_s_acr_values(
    env: TrustEnv, audit_log: pytest.LogCaptureFixture
) -> None:
    mapping = {"mfa_amr_values": ["mfa"], "mfa_acr_values": ["urn:fabrikam:mfa"]}
    async with env.gateway(
        partners=[partner(**TRUST_MFA, claims_mapping=mapping)], policies=[policy("guests-mfa", "mfa")]
    ) as gw:
        gw.partner.says(amr=["pwd"], tid=PARTNER_TENANT, oid=ALICE_OID)
        req, first = await gw.sign_in()
        assert first.status_code == 303, first.text
        step_up = first.headers["location"]
        assert step_up.startswith(gw.partner.idp.url("/authorize?"))
        query = flows.query_of(step_up)
        assert query["prompt"] == "login" and query["acr_values"] == "urn:fabrikam:mfa"
        assert gw.snapshot().minted() == NOTHING_MINTED
        gw.partner.says(amr=["pwd"], acr="urn:fabrikam:mfa", tid=PARTNER_TENANT, oid=ALICE_OID)
        claims = await gw.id_claims(req, await gw.from_idp(step_up))
    assert claims["amr"] == ["fed", "mfa"] and claims["mfa_source"] == "home" and claims["acr"] == ACR_MFA
    [record] = [r for r in audit_records(audit_log) if r["result"] == "success"]
    assert decided(record, "trust", "mfa_trusted", "mfa_trusted_from_home")


async def test_the_audit_record_of_a_stepped_up_sign_in_keeps_the_first_pass_decisions(
    env: TrustEnv, audit_log: pytest.LogCaptureFixture
) -> None:
    async with env.gateway(partners=[partner(**TRUST_MFA)], policies=[policy("guests-mfa", "mfa")]) as gw:
        gw.partner.says(amr=["pwd"], tid=PARTNER_TENANT, oid=ALICE_OID)
        req, first = await gw.sign_in()
        gw.partner.says(amr=["pwd", "mfa"], tid=PARTNER_TENANT, oid=ALICE_OID)
        await gw.id_claims(req, await gw.from_idp(first.headers["location"]))
    [record] = [r for r in audit_records(audit_log) if r["result"] == "success"]
    reasons = [d["reason"] for d in record["decisions"]]
    assert "mfa_requested_from_home" in reasons  # the step-up itself
    assert reasons.index("mfa_requested_from_home") < reasons.index("mfa_trusted_from_home")


async def test_a_trusted_home_that_still_does_not_do_mfa_is_refused(
    env: TrustEnv, audit_log: pytest.LogCaptureFixture
) -> None:
    async with env.gateway(partners=[partner(**TRUST_MFA)], policies=[policy("guests-mfa", "mfa")]) as gw:
        gw.partner.says(amr=["pwd"], tid=PARTNER_TENANT, oid=ALICE_OID)
        _, first = await gw.sign_in()
        step_up = first.headers["location"]
        query = flows.query_of(step_up)
        assert query["prompt"] == "login" and query["acr_values"].split() == DEFAULT_MFA_ACR_VALUES
        refused = await gw.from_idp(step_up)
        assert_error_page(refused, 403)
        assert "Multi-factor authentication is required" in refused.text
        assert gw.snapshot().minted() == NOTHING_MINTED
        assert METHODS_KEY not in await gw.user()  # no TOTP offered instead
    [record] = [r for r in audit_records(audit_log) if r["result"] == "failure"]
    assert record["reason"] == "mfa_not_satisfied_at_home"
    assert record["homeTenantId"] == PARTNER_TENANT


async def test_an_app_asking_for_mfa_gets_totp_for_an_untrusted_guest_without_any_policy(
    env: TrustEnv,
) -> None:
    async with env.gateway() as gw:
        req, callback = await gw.sign_in(flows.AuthRequest(extra={"acr_values": ACR_MFA}))
        _, done = await gw.register_totp(step_path(callback, "mfa"))
        claims = await gw.id_claims(req, done)
        assert claims["acr"] == ACR_MFA and claims["amr"] == ["fed", "otp", "mfa"]
        # The same guest without the request: single factor, no prompt (SSO session from a new browser).
        async with gw.browser() as other:
            plain, answered = await gw.sign_in(client=other)
            single = await gw.id_claims(plain, answered, other)
        assert single["acr"] == ACR_SINGLE and single["amr"] == ["fed"] and "mfa_source" not in single


# -- device state ---------------------------------------------------------------------------------

DEVICE_CASES = [
    pytest.param(
        "compliantDevice", "compliant_device_accepted", "iscompliant", "device_compliant",
        "device_not_compliant", "A compliant device is required", id="compliant",
    ),
    pytest.param(
        "domainJoinedDevice", "hybrid_joined_device_accepted", "ismanaged", "device_hybrid_joined",
        "device_not_hybrid_joined", "A domain-joined device is required", id="hybrid-joined",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("control", "flag", "claim", "token_claim", "reason", "title"), DEVICE_CASES)
async def test_a_device_claim_from_a_partner_not_trusted_for_devices_is_refused(
    env: TrustEnv,
    audit_log: pytest.LogCaptureFixture,
    control: str,
    flag: str,
    claim: str,
    token_claim: str,
    reason: str,
    title: str,
) -> None:
    async with env.gateway(partners=[partner(**TRUST_MFA)], policies=[policy("devices", control)]) as gw:
        gw.partner.says(amr=["pwd", "mfa"], tid=PARTNER_TENANT, oid=ALICE_OID, **{claim: "true"})
        _, refused = await gw.sign_in()
        assert_error_page(refused, 403)
        assert title in refused.text
        assert gw.snapshot().minted() == NOTHING_MINTED
    [record] = [r for r in audit_records(audit_log) if r["result"] == "failure"]
    assert record["reason"] == reason
    assert policy_results(record) == {"devices": "failure"}
    assert decided(record, "trust", "mfa_trusted", "mfa_trusted_from_home")


@pytest.mark.parametrize(("control", "flag", "claim", "token_claim", "reason", "title"), DEVICE_CASES)
async def test_a_device_claim_from_a_partner_trusted_for_devices_satisfies_the_policy(
    env: TrustEnv, control: str, flag: str, claim: str, token_claim: str, reason: str, title: str
) -> None:
    async with env.gateway(
        partners=[partner(inbound_trust={flag: True})], policies=[policy("devices", control)]
    ) as gw:
        gw.partner.says(amr=["pwd"], tid=PARTNER_TENANT, oid=ALICE_OID, **{claim: "TRUE"})
        req, done = await gw.sign_in()
        claims = await gw.id_claims(req, done)
        assert claims[token_claim] is True
        other_claim = {"device_compliant", "device_hybrid_joined"} - {token_claim}
        assert not other_claim & set(claims)
        assert claims["amr"] == ["fed"] and "mfa_source" not in claims
        # The same trust, but the upstream says no: refused.
        gw.partner.says(amr=["pwd"], tid=PARTNER_TENANT, oid=ALICE_OID, **{claim: "false"})
        async with gw.browser() as other:
            _, refused = await gw.sign_in(client=other)
        assert_error_page(refused, 403)
        assert title in refused.text


# -- inbound cross-tenant access ------------------------------------------------------------------


async def test_a_blocked_partner_is_refused_before_the_directory_is_written(
    env: TrustEnv, audit_log: pytest.LogCaptureFixture
) -> None:
    blocked = targets("blocked", [("AllUsers", "user")], ["AllApplications"])
    async with env.gateway(partners=[partner(b2b_collaboration_inbound=blocked)]) as gw:
        before = gw.snapshot()
        _, refused = await gw.sign_in()
        assert_error_page(refused, 403)
        assert "access is blocked" in refused.text
        after = gw.snapshot()
        assert after.user_count == before.user_count == 0
        assert after.minted() == NOTHING_MINTED
    [record] = [r for r in audit_records(audit_log) if r["result"] == "failure"]
    assert record["reason"] == "cross_tenant_user_blocked" and record["user"] is None
    assert record["homeTenantId"] == PARTNER_TENANT
    assert record["crossTenantAccessType"] == "b2bCollaboration"


async def test_an_app_outside_the_partner_s_allowed_applications_is_refused_before_the_directory(
    env: TrustEnv, audit_log: pytest.LogCaptureFixture
) -> None:
    only_b = targets("allowed", [("AllUsers", "user")], ["app-b"])
    async with env.gateway(partners=[partner(b2b_collaboration_inbound=only_b)]) as gw:
        _, refused = await gw.sign_in()  # to demo
        assert_error_page(refused, 403)
        assert "not open to your organisation" in refused.text
        assert gw.snapshot().user_count == 0 and gw.snapshot().minted() == NOTHING_MINTED
        [record] = [r for r in audit_records(audit_log) if r["result"] == "failure"]
        assert record["reason"] == "cross_tenant_application_blocked"
        # The allowed app lets the same guest in.
        async with gw.browser() as other:
            req = flows.AuthRequest(client_id="app-b", redirect_uri=APP_B_REDIRECT)
            req, done = await gw.sign_in(req, client=other)
            claims = await gw.id_claims(req, done, other)
        assert claims["aud"] == "app-b" and len(gw.users()) == 1


async def test_a_partner_user_target_blocks_only_that_user(
    env: TrustEnv, audit_log: pytest.LogCaptureFixture
) -> None:
    # Access types must agree, so the applications rule is a block too: of app-b, not demo.
    one_user = targets("blocked", [(BLOCKED_OID, "user")], ["app-b"])
    async with env.gateway(partners=[partner(b2b_collaboration_inbound=one_user)]) as gw:
        gw.partner.says(amr=["pwd"], tid=PARTNER_TENANT, oid=BLOCKED_OID.upper())  # ids compare as UUIDs
        _, refused = await gw.sign_in()
        assert_error_page(refused, 403)
        assert gw.snapshot().user_count == 0 and gw.snapshot().minted() == NOTHING_MINTED
        [record] = [r for r in audit_records(audit_log) if r["result"] == "failure"]
        assert record["reason"] == "cross_tenant_user_blocked"
        gw.partner.says(amr=["pwd"], tid=PARTNER_TENANT, oid=ALICE_OID)
        async with gw.browser() as other:
            req, done = await gw.sign_in(client=other)
            claims = await gw.id_claims(req, done, other)
        assert claims["amr"] == ["fed"] and len(gw.users()) == 1


# -- whose claims count ---------------------------------------------------------------------------


async def test_mfa_claimed_through_a_connector_not_bound_to_the_partner_is_not_trusted(
    env: TrustEnv, audit_log: pytest.LogCaptureFixture
) -> None:
    async with env.gateway(partners=[partner(**TRUST_MFA)], policies=[policy("guests-mfa", "mfa")]) as gw:
        gw.upstreams[OTHER].says(amr=["pwd", "mfa"], acr=ACR_MFA, tid=PARTNER_TENANT, oid=ALICE_OID)
        req, callback = await gw.sign_in(connector=OTHER)
        path = step_path(callback, "mfa")  # TOTP here, not the partner's word
        _, done = await gw.register_totp(path)
        claims = await gw.id_claims(req, done)
    assert claims["amr"] == ["fed", "otp", "mfa"] and claims["mfa_source"] == "resource"
    [record] = [r for r in audit_records(audit_log) if r["result"] == "success"]
    assert record["homeTenantId"] == PARTNER_TENANT  # its access settings apply, its trust does not
    assert record["connector"] == OTHER
    assert decided(record, "trust", "mfa_not_trusted", "home_not_authoritative")


async def test_a_partner_connector_reporting_another_tenant_is_refused(
    env: TrustEnv, audit_log: pytest.LogCaptureFixture
) -> None:
    async with env.gateway(partners=[partner(**TRUST_MFA)]) as gw:
        gw.partner.says(amr=["pwd", "mfa"], tid=OTHER_TENANT, oid=ALICE_OID)
        _, refused = await gw.sign_in()
        assert_error_page(refused, 403)
        assert "an organisation other than" in refused.text
        assert gw.snapshot().user_count == 0 and gw.snapshot().minted() == NOTHING_MINTED
    [record] = [r for r in audit_records(audit_log) if r["result"] == "failure"]
    assert record["reason"] == "home_tenant_mismatch" and record["user"] is None
