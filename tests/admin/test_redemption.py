"""Redeeming an invitation in the browser: the redeem link, the passcode, the consent page, just-in-time."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.admin.conftest import ApiFactory
from tests.admin.helpers import REDIRECT, Api, body
from tests.support import flows
from tests.support.assertions import assert_error_page
from tests.support.inspect_store import snapshot
from tests.support.smtp_server import extract_passcode

GUEST = "guest@partner.example"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


async def invite(api: Api, email: str = GUEST) -> tuple[str, str]:
    """An invitation by an automation app; returns (guest id, redeem path with query)."""
    response = await api.invite(await api.app_token(), body(email))
    assert response.status_code == 201, response.text
    created = response.json()
    parts = urlsplit(created["inviteRedeemUrl"])
    return created["invitedUser"]["id"], f"{parts.path}?{parts.query}"


async def passcode_to_consent(api: Api, signin_path: str, email: str = GUEST) -> httpx.Response:
    page = await api.client.get(signin_path)
    assert page.status_code == 200 and "readonly" in page.text and email in page.text
    sent = await api.client.post(f"{signin_path}/email", data={"csrf": flows.csrf_of(page), "email": email})
    assert sent.status_code == 200, sent.text  # the passcode page
    code = extract_passcode(await api.smtp.wait_for(to=email, timeout=10))
    done = await flows.submit_passcode(api.client, signin_path, code)
    assert done.status_code == 303, done.text
    assert done.headers["location"] == f"{signin_path}/consent"
    return done


async def open_link(api: Api, redeem_path: str) -> str:
    response = await api.client.get(redeem_path)
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.startswith("/signin/")
    return location


async def consent(api: Api, signin_path: str, decision: str) -> httpx.Response:
    page = await api.client.get(f"{signin_path}/consent")
    assert page.status_code == 200 and "Review permissions" in page.text
    match = CSRF.search(page.text)
    assert match
    return await api.client.post(
        f"{signin_path}/consent", data={"csrf": match.group(1), "decision": decision}
    )


def guest_of(api: Api, guest_id: str) -> dict[str, Any]:
    return api.state().users[guest_id]


async def test_redeem_link_passcode_consent_then_invite_redirect(api: Api) -> None:
    guest_id, link = await invite(api)
    signin = await open_link(api, link)
    await passcode_to_consent(api, signin)
    assert guest_of(api, guest_id)["externalUserState"] == "PendingAcceptance"  # not before consent
    accepted = await consent(api, signin, "accept")
    assert accepted.status_code == 303 and accepted.headers["location"] == REDIRECT
    assert "gw_session" in accepted.headers.get("set-cookie", "")
    guest = guest_of(api, guest_id)
    assert guest["externalUserState"] == "Accepted" and guest["externalUserStateChangeDateTime"]
    assert guest["identities"] == [{"signInType": "federated", "issuer": "mail", "issuerAssignedId": GUEST}]
    # The link is a way back afterwards: straight to the app.
    again = await api.client.get(link)
    assert again.status_code == 303 and again.headers["location"] == REDIRECT


async def test_declining_changes_nothing(api: Api) -> None:
    guest_id, link = await invite(api)
    signin = await open_link(api, link)
    await passcode_to_consent(api, signin)
    before = snapshot(api.app)
    declined = await consent(api, signin, "decline")
    assert declined.status_code == 200 and "did not accept" in declined.text
    guest = guest_of(api, guest_id)
    assert guest["externalUserState"] == "PendingAcceptance"
    assert snapshot(api.app).count("session") == before.count("session") == 0


async def test_tampered_or_foreign_ticket_is_refused(api: Api) -> None:
    guest_id, link = await invite(api)
    other_id, _ = await invite(api, "other@partner.example")
    tampered = link[:-2] + ("AA" if not link.endswith("AA") else "BB")
    foreign = link.replace(guest_id, other_id)
    for bad in (tampered, foreign, "/redeem", "/redeem?tenant=x&user=y&ticket=z"):
        before = snapshot(api.app)
        assert_error_page(await api.client.get(bad), 400)
        assert snapshot(api.app).count("signin") == before.count("signin")


async def test_a_reset_invalidates_the_old_link(api: Api) -> None:
    guest_id, old_link = await invite(api)
    reset = await api.invite(
        await api.app_token("admin-app"),
        body("new@partner.example", resetRedemption=True, invitedUser={"id": guest_id}),
    )
    assert reset.status_code == 201, reset.text
    assert_error_page(await api.client.get(old_link), 400)


async def test_another_address_cannot_redeem(api: Api) -> None:
    _, link = await invite(api)
    signin = await open_link(api, link)
    page = await api.client.get(signin)
    before = snapshot(api.app)
    response = await api.client.post(
        f"{signin}/email", data={"csrf": flows.csrf_of(page), "email": "intruder@evil.example"}
    )
    assert response.status_code == 400 and "another address" in response.text
    assert snapshot(api.app).counters == before.counters  # no passcode sent or counted


async def test_domain_blocked_after_the_invitation_fails_redemption(api_with: ApiFactory) -> None:
    async with api_with() as api:
        guest_id, link = await invite(api)
    async with api_with(external_collaboration={"blocked_domains": ["partner.example"]}) as api:
        signin = await open_link(api, link)
        page = await api.client.get(signin)
        sent = await api.client.post(f"{signin}/email", data={"csrf": flows.csrf_of(page), "email": GUEST})
        assert sent.status_code == 200  # the passcode page
        code = extract_passcode(await api.smtp.wait_for(to=GUEST, timeout=10))
        refused = await flows.submit_passcode(api.client, signin, code)
        assert_error_page(refused, 403)
        assert guest_of(api, guest_id)["externalUserState"] == "PendingAcceptance"
        assert snapshot(api.app).count("session") == 0


async def test_just_in_time_redemption_through_an_app(api: Api) -> None:
    """The guest skips the mail and signs in to an app: consent first, then the app gets its code."""
    guest_id, _ = await invite(api)
    req = flows.AuthRequest()
    signin = await flows.start(api.client, req)
    sent = await flows.submit_email(api.client, signin, GUEST)
    assert sent.status_code == 200  # the passcode page
    code = extract_passcode(await api.smtp.wait_for(to=GUEST, timeout=10))
    done = await flows.submit_passcode(api.client, signin, code)
    assert done.headers["location"] == f"{signin}/consent"
    accepted = await consent(api, signin, "accept")
    assert accepted.status_code == 303
    assert accepted.headers["location"].startswith(req.redirect_uri)
    assert flows.query_of(accepted.headers["location"])["state"] == req.state
    assert guest_of(api, guest_id)["externalUserState"] == "Accepted"
    holders = [u["id"] for u in api.state().users.values() if u.get("mail") == GUEST]
    assert holders == [guest_id]  # redeemed, not signed up a second time


async def redeem_with_passcode(api: Api, link: str, email: str = GUEST) -> None:
    signin = await open_link(api, link)
    await passcode_to_consent(api, signin, email)
    assert (await consent(api, signin, "accept")).status_code == 303
    api.client.cookies.clear()


async def test_after_a_reset_the_old_identity_no_longer_signs_in(api_with: ApiFactory) -> None:
    async with api_with(passcode={"resend_interval_seconds": 0}) as api:
        await _old_identity_after_reset(api)


async def _old_identity_after_reset(api: Api) -> None:
    guest_id, link = await invite(api)
    await redeem_with_passcode(api, link)
    reset = await api.invite(
        await api.app_token("admin-app"),
        body("new@partner.example", resetRedemption=True, invitedUser={"id": guest_id}),
    )
    assert reset.status_code == 201, reset.text
    assert guest_of(api, guest_id)["signInSessionsValidFromDateTime"]  # the reset ended every sign-in
    signin = await flows.start(api.client, flows.AuthRequest())
    await flows.submit_email(api.client, signin, GUEST)
    code = extract_passcode(await api.smtp.wait_for(to=GUEST, timeout=10))
    before = snapshot(api.app)
    assert_error_page(await flows.submit_passcode(api.client, signin, code), 403)
    assert snapshot(api.app).minted() == before.minted()
    # The new address redeems the new invitation and keeps the object id.
    new_link = urlsplit(reset.json()["inviteRedeemUrl"])
    await redeem_with_passcode(api, f"{new_link.path}?{new_link.query}", "new@partner.example")
    assert guest_of(api, guest_id)["externalUserState"] == "Accepted"


async def test_a_bootstrap_administrator_becomes_a_member_on_first_passcode_sign_in(api: Api) -> None:
    from tests.admin.helpers import ADMIN

    _, query = await flows.sign_in(api.client, api.smtp, ADMIN)
    assert "code" in query
    [admin] = [u for u in api.state().users.values() if u.get("mail") == ADMIN]
    assert admin["userType"] == "Member" and admin["creationType"] is None
    assert admin["userPrincipalName"] == ADMIN


async def test_only_the_address_s_own_identity_provider_may_redeem(api_with: ApiFactory) -> None:
    """Any IdP can say "verified" about any address: only the one home-realm discovery picks counts."""
    from gateway.signin.redemption import RedemptionRefused, redemption_check
    from gateway.signin.transaction import SignIn
    from idp_connectors.base import UpstreamIdentity

    other_idp = {
        "id": "partner-b",
        "type": "oidc",
        "issuer": "https://idp.partner-b.test",
        "client_id": "gw",
        "client_secret": "secret-0123456789",
        "domains": ["partner-b.example"],
    }
    async with api_with(connectors=[{"id": "email", "type": "email_otp"}, other_idp]) as api:
        guest_id, _ = await invite(api)
        guest = guest_of(api, guest_id)
        signin = SignIn(
            id="s",
            app_id="",
            client_id="",
            redirect_uri=REDIRECT,
            scopes=[],
            browser="b",
            created_at=0,
            invited_email=GUEST,
            redeem_user_id=guest_id,
        )
        forged = UpstreamIdentity(
            connector_id="partner-b",
            issuer="https://idp.partner-b.test",
            subject="x",
            email=GUEST,
            email_verified=True,
        )
        with pytest.raises(RedemptionRefused) as refused:
            await redemption_check(api.rt, signin, guest, forged, "oidc")
        assert refused.value.reason == "connector_not_authoritative"
        passcode = UpstreamIdentity(
            connector_id="email", issuer="mail", subject=GUEST, email=GUEST, email_verified=True
        )
        await redemption_check(api.rt, signin, guest, passcode, "email_otp")  # the mailbox's own proof
