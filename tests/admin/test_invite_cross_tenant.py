"""Invitations under cross-tenant access settings (b2b-concepts §5.5): an organisation whose inbound
settings block all its users cannot be invited, nor redeem an invitation sent before the block.

Deny list first; an allow-listed domain still yields to an explicit cross-tenant block; otherwise the
partner entry claiming the domain (else the default) decides. Specific user targets are checked at
sign-in, not at invitation time.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from tests.admin.conftest import ApiFactory
from tests.admin.helpers import Api, body, refused
from tests.admin.test_redemption import guest_of, invite, open_link
from tests.support import flows
from tests.support.assertions import assert_error_page
from tests.support.inspect_store import snapshot
from tests.support.smtp_server import extract_passcode

FABRIKAM = "7d0b8a51-3f2e-4c1a-9b6d-0e5f4a3c2b10"
USER = "0b7e3f0a-1111-4222-8333-444455556666"
MAILED: dict[str, Any] = {"sendInvitationMessage": True}


def everyone(access: str) -> dict[str, Any]:
    return {
        "users_and_groups": {
            "access_type": access,
            "targets": [{"target": "AllUsers", "target_type": "user"}],
        },
        "applications": {
            "access_type": access,
            "targets": [{"target": "AllApplications", "target_type": "application"}],
        },
    }


SOME_USERS_BLOCKED = {
    "users_and_groups": {"access_type": "blocked", "targets": [{"target": USER, "target_type": "user"}]},
    "applications": everyone("blocked")["applications"],
}


def fabrikam(inbound: dict[str, Any] | None) -> dict[str, Any]:
    return {"tenant_id": FABRIKAM, "domains": ["fabrikam.example"], "b2b_collaboration_inbound": inbound}


BLOCKING_DEFAULT = {"default": {"b2b_collaboration_inbound": everyone("blocked")}}
WOODGROVE_CONNECTORS = [
    {"id": "email", "type": "email_otp"},
    {"id": "woodgrove", "type": "oidc", "issuer": "https://login.woodgrove.example", "client_id": "gw",
     "client_secret": "woodgrove secret", "domains": ["woodgrove.example"]},
]  # fmt: skip
FABRIKAM_BLOCKED = {"partners": [fabrikam(everyone("blocked"))]}

REFUSED_ROWS: list[tuple[str, dict[str, Any], str, str]] = [
    ("the-default-blocks-everyone-of-an-organisation-without-an-entry",
     {"cross_tenant_access": BLOCKING_DEFAULT, "connectors": WOODGROVE_CONNECTORS}, "guest@woodgrove.example",
     "cross_tenant_access_blocked"),
    ("the-partner-blocks-everyone", {"cross_tenant_access": FABRIKAM_BLOCKED}, "Guest@Fabrikam.Example",
     "cross_tenant_access_blocked"),
    ("a-null-partner-setting-inherits-the-block",
     {"cross_tenant_access": {**BLOCKING_DEFAULT, "partners": [fabrikam(None)]}}, "guest@fabrikam.example",
     "cross_tenant_access_blocked"),
    ("the-allow-list-yields-to-an-explicit-block",
     {"cross_tenant_access": FABRIKAM_BLOCKED,
      "external_collaboration": {"allowed_domains": ["fabrikam.example"]}},
     "guest@fabrikam.example", "cross_tenant_access_blocked"),
    ("the-deny-list-wins-over-a-partner-that-allows",
     {"cross_tenant_access": {"partners": [fabrikam(everyone("allowed"))]},
      "external_collaboration": {"blocked_domains": ["fabrikam.example"]}},
     "guest@fabrikam.example", "domain_blocked"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("overrides", "address", "reason"), [r[1:] for r in REFUSED_ROWS], ids=[r[0] for r in REFUSED_ROWS]
)
async def test_refused_invitations(
    api_with: ApiFactory, overrides: dict[str, Any], address: str, reason: str
) -> None:
    async with api_with(**overrides) as api:
        response = await api.invite(await api.app_token(), body(address, **MAILED))
        error = await refused(api, response, 403, "accessDenied", reason)
        assert error["details"][0]["target"] == "invitedUserEmailAddress"
        assert address.split("@")[1].lower() in error["message"]
        if reason == "cross_tenant_access_blocked":
            assert "cross-tenant access settings" in error["message"]


ALLOWED_ROWS: list[tuple[str, dict[str, Any], str]] = [
    ("a-partner-that-allows-over-a-blocking-default",
     {**BLOCKING_DEFAULT, "partners": [fabrikam(everyone("allowed"))]}, "guest@fabrikam.example"),
    ("specific-users-are-checked-at-sign-in", {"partners": [fabrikam(SOME_USERS_BLOCKED)]},
     "guest@fabrikam.example"),
    ("another-domain-gets-the-default", FABRIKAM_BLOCKED, "guest@eu.fabrikam.example"),
    ("a-blocking-default-leaves-addresses-without-an-organisation-alone", BLOCKING_DEFAULT,
     "guest@woodgrove.example"),
]  # fmt: skip


@pytest.mark.parametrize(("cta", "address"), [r[1:] for r in ALLOWED_ROWS], ids=[r[0] for r in ALLOWED_ROWS])
async def test_invitations_that_pass(api_with: ApiFactory, cta: dict[str, Any], address: str) -> None:
    async with api_with(cross_tenant_access=cta) as api:
        response = await api.invite(await api.app_token(), body(address))
        assert response.status_code == 201, response.text
        assert response.json()["status"] == "PendingAcceptance"


async def test_the_refusal_is_audited(api_with: ApiFactory, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="gateway.audit")
    async with api_with(cross_tenant_access=FABRIKAM_BLOCKED) as api:
        response = await api.invite(await api.app_token(), body("guest@fabrikam.example"))
        assert response.status_code == 403
    records = [json.loads(r.getMessage()) for r in caplog.records if r.name == "gateway.audit"]
    invites = [r for r in records if r.get("action") == "invite"]
    assert len(invites) == 1
    assert invites[0]["result"] == "failure"
    assert invites[0]["reasons"] == ["cross_tenant_access_blocked"]


async def test_a_reset_to_a_blocked_organisation_is_refused(api_with: ApiFactory) -> None:
    async with api_with(cross_tenant_access=FABRIKAM_BLOCKED) as api:
        guest_id, _ = await invite(api, "guest@woodgrove.example")
        token = await api.app_token("admin-app")
        before = api.state()
        payload = body("guest@fabrikam.example", resetRedemption=True, invitedUser={"id": guest_id}, **MAILED)
        response = await api.invite(token, payload)
        assert response.status_code == 403, response.text
        assert response.json()["error"]["innerError"]["code"] == "cross_tenant_access_blocked"
        api.assert_unchanged(before)
        assert guest_of(api, guest_id)["otherMails"] == []


async def test_an_invitation_sent_before_the_block_cannot_be_redeemed(
    api_with: ApiFactory, caplog: pytest.LogCaptureFixture
) -> None:
    guest = "guest@fabrikam.example"
    async with api_with(cross_tenant_access={"partners": [fabrikam(None)]}) as api:
        guest_id, link = await invite(api, guest)
    caplog.set_level(logging.INFO, logger="gateway.audit")
    async with api_with(cross_tenant_access=FABRIKAM_BLOCKED) as api:
        signin = await open_link(api, link)
        page = await api.client.get(signin)
        sent = await api.client.post(f"{signin}/email", data={"csrf": flows.csrf_of(page), "email": guest})
        assert sent.status_code == 200  # the passcode page
        code = extract_passcode(await api.smtp.wait_for(to=guest, timeout=10))
        response = await flows.submit_passcode(api.client, signin, code)
        assert_error_page(response, 403)
        assert "no longer accepts guests from your organisation" in response.text
        assert guest_of(api, guest_id)["externalUserState"] == "PendingAcceptance"
        assert guest_of(api, guest_id)["identities"][0]["signInType"] == "userPrincipalName"
        assert snapshot(api.app).count("session") == 0
    records = [json.loads(r.getMessage()) for r in caplog.records if r.name == "gateway.audit"]
    assert [r["reason"] for r in records if r.get("reason") == "cross_tenant_access_blocked"]


async def test_redemption_still_works_when_nothing_blocks(api: Api) -> None:
    """Control for the test above: the same steps without a block reach the consent page."""
    guest = "guest@partner.example"
    _, link = await invite(api, guest)
    signin = await open_link(api, link)
    page = await api.client.get(signin)
    await api.client.post(f"{signin}/email", data={"csrf": flows.csrf_of(page), "email": guest})
    code = extract_passcode(await api.smtp.wait_for(to=guest, timeout=10))
    response = await flows.submit_passcode(api.client, signin, code)
    assert response.status_code == 303 and response.headers["location"] == f"{signin}/consent"
