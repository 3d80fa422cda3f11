"""Inviting an address that already has a user, ignoring read-only fields, and resetting a redemption."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from gateway.invitations import check_ticket
from tests.admin.helpers import ADMIN, INVITER, MEMBER, TENANT_DOMAIN, TENANT_ID, Api, body

OLD, NEW = "old@partner.example", "new@newjob.example"
UNKNOWN = "99999999-9999-4999-8999-999999999999"


def ticket_of(invitation: dict[str, Any]) -> str:
    return str(parse_qs(urlsplit(invitation["inviteRedeemUrl"]).query)["ticket"][0])


async def invited(api: Api, address: str = OLD) -> dict[str, Any]:
    response = await api.invite(await api.app_token(), body(address))
    assert response.status_code == 201, response.text
    invitation: dict[str, Any] = response.json()
    return invitation


# -- an address that already has a user --------------------------------------------------------------


async def test_a_pending_guest_is_answered_with_itself_and_no_mail(api: Api) -> None:
    first = await invited(api)
    token = await api.app_token()
    before = api.state()
    again = await api.invite(token, body(OLD.upper(), sendInvitationMessage=True))
    assert again.status_code == 201, again.text
    answer = again.json()
    assert answer["invitedUser"] == first["invitedUser"]
    assert answer["status"] == "PendingAcceptance"
    assert answer["inviteRedeemUrl"] is None and answer["sendInvitationMessage"] is False
    assert answer["id"] != first["id"]
    api.assert_unchanged(before)
    await api.assert_no_mail()
    assert await check_ticket(api.rt.store, TENANT_ID, first["invitedUser"]["id"], ticket_of(first))


async def test_a_member_holding_the_address_in_other_mails(api: Api) -> None:
    member = await api.add_user(MEMBER, otherMails=["Alias@Partner.Example"])
    token = await api.app_token()
    before = api.state()
    response = await api.invite(token, body("alias@partner.example", sendInvitationMessage=True))
    assert response.status_code == 201
    assert response.json()["invitedUser"] == {"id": member["id"]}
    assert response.json()["status"] == "Completed" and response.json()["invitedUserType"] == "Member"
    api.assert_unchanged(before)
    await api.assert_no_mail()


async def test_the_ext_user_principal_name_also_finds_the_user(api: Api) -> None:
    first = await invited(api)
    user = api.state().users[first["invitedUser"]["id"]]
    await api.rt.store.update_user({**user, "mail": "renamed@partner.example"})  # OLD no longer a mail
    token = await api.app_token()
    before = api.state()
    response = await api.invite(token, body(OLD, sendInvitationMessage=True))
    assert response.json()["invitedUser"] == first["invitedUser"]
    api.assert_unchanged(before)
    await api.assert_no_mail()


# -- no mass assignment ----------------------------------------------------------------------------------


async def test_read_only_and_unknown_fields_are_ignored(api: Api) -> None:
    chosen = "11111111-2222-4333-8444-555555555555"
    response = await api.invite(
        await api.app_token(),
        body(
            id=chosen,
            status="Completed",
            inviteRedeemUrl="https://evil.example/redeem",
            role="Global Administrator",
            roles=["Global Administrator"],
            tenant_id="00000000-0000-0000-0000-000000000000",
            userType="Member",
            accountEnabled=False,
            externalUserState="Accepted",
            creationType="LocalAccount",
            sponsors=["someone"],
            invitedUser={"userType": "Member", "accountEnabled": False, "mail": "x@evil.example"},
            invitedUserSponsors=[{"id": chosen}],
        ),
    )
    assert response.status_code == 201, response.text
    invitation = response.json()
    assert invitation["id"] != chosen and invitation["invitedUser"]["id"] != chosen
    assert invitation["status"] == "PendingAcceptance" and invitation["invitedUserType"] == "Guest"
    assert invitation["inviteRedeemUrl"].startswith(f"http://127.0.0.1:8000/redeem?tenant={TENANT_ID}&")
    user = api.state().users[invitation["invitedUser"]["id"]]
    assert (user["userType"], user["accountEnabled"], user["externalUserState"]) == (
        "Guest", True, "PendingAcceptance",
    )  # fmt: skip
    assert (user["creationType"], user["sponsors"], user["mail"]) == (
        "Invitation",
        [],
        "guest@partner.example",
    )
    assert "role" not in user and "roles" not in user and "tenant_id" not in user


async def test_an_invited_user_id_without_reset_is_ignored(api: Api) -> None:
    member = await api.add_user(MEMBER)
    response = await api.invite(await api.app_token("admin-app"), body(invitedUser={"id": member["id"]}))
    assert response.status_code == 201
    assert response.json()["invitedUser"]["id"] != member["id"]
    assert api.state().users[member["id"]] == member


# -- reset redemption ----------------------------------------------------------------------------------


async def test_reset_keeps_the_object_and_invalidates_the_old_ticket(api: Api) -> None:
    first = await invited(api)
    user_id = first["invitedUser"]["id"]
    old_ticket = ticket_of(first)
    # As if redeemed: the identity of the IdP used, state Accepted.
    user = api.state().users[user_id]
    redeemed = {
        **user,
        "externalUserState": "Accepted",
        "identities": [{"signInType": "federated", "issuer": "mail", "issuerAssignedId": OLD}],
    }
    await api.rt.store.update_user(redeemed)
    api.clock.advance(60)
    response = await api.invite(
        await api.app_token("admin-app"),
        body(NEW, resetRedemption=True, invitedUser={"id": user_id}, sendInvitationMessage=True),
    )
    assert response.status_code == 201, response.text
    answer = response.json()
    assert answer["invitedUser"] == {"id": user_id} and answer["resetRedemption"] is True
    assert answer["status"] == "PendingAcceptance" and answer["invitedUserEmailAddress"] == NEW
    after = api.state().users[user_id]
    upn = f"old_partner.example#EXT#@{TENANT_DOMAIN}"
    assert after["userPrincipalName"] == upn == user["userPrincipalName"]  # the UPN stays
    assert after["mail"] == OLD and after["otherMails"] == [NEW]
    assert after["externalUserState"] == "PendingAcceptance"
    assert after["externalUserStateChangeDateTime"] > user["externalUserStateChangeDateTime"]
    assert after["identities"] == [
        {"signInType": "userPrincipalName", "issuer": TENANT_DOMAIN, "issuerAssignedId": upn}
    ]
    assert (after["createdDateTime"], after["sponsors"]) == (user["createdDateTime"], user["sponsors"])
    assert await check_ticket(api.rt.store, TENANT_ID, user_id, old_ticket) is None
    current = await check_ticket(api.rt.store, TENANT_ID, user_id, ticket_of(answer))
    assert current is not None and current.email == NEW and current.id == answer["id"]
    assert len(api.state().ids("invite-ticket")) == 1  # the old one was removed too
    await api.smtp.wait_for(to=NEW, timeout=10)
    found = await api.rt.store.find_users_by_mail(NEW)
    assert [u["id"] for u in found] == [user_id]


async def test_reset_to_an_address_the_user_holds_changes_no_mails(api: Api) -> None:
    first = await invited(api)
    user_id = first["invitedUser"]["id"]
    response = await api.invite(
        await api.app_token("admin-app"), body(OLD.upper(), resetRedemption=True, invitedUser={"id": user_id})
    )
    assert response.status_code == 201
    after = api.state().users[user_id]
    assert after["mail"] == OLD and after["otherMails"] == []
    assert await check_ticket(api.rt.store, TENANT_ID, user_id, ticket_of(first)) is None


async def test_an_admin_user_may_reset(api: Api) -> None:
    first = await invited(api)
    token = await api.user_token(await api.add_user(ADMIN))
    response = await api.invite(
        token, body(NEW, resetRedemption=True, invitedUser={"id": first["invitedUser"]["id"]})
    )
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("who", ["inviter-app", "inviter"])
async def test_reset_needs_an_administrator(api: Api, who: str) -> None:
    first = await invited(api)
    before_tickets = api.state().ids("invite-ticket")
    token = await (
        api.app_token(who) if who.endswith("-app") else api.user_token(await api.add_user(INVITER))
    )
    before = api.state()
    response = await api.invite(
        token,
        body(
            NEW,
            resetRedemption=True,
            invitedUser={"id": first["invitedUser"]["id"]},
            sendInvitationMessage=True,
        ),
    )
    assert response.status_code == 403
    assert response.json()["error"]["innerError"]["code"] == "reset_needs_admin"
    api.assert_unchanged(before)
    assert api.state().ids("invite-ticket") == before_tickets
    await api.assert_no_mail()


async def test_reset_refusals(api: Api) -> None:
    first = await invited(api)
    other = await invited(api, "other@partner.example")
    member = await api.add_user(MEMBER)
    token = await api.app_token("admin-app")
    before = api.state()
    cases = [
        (UNKNOWN, NEW, 404, "itemNotFound", "user_not_found", "invitedUser.id"),
        (member["id"], NEW, 400, "invalidRequest", "reset_target_not_guest", "invitedUser.id"),
        (first["invitedUser"]["id"], "other@partner.example", 409, "conflict", "address_in_use",
         "invitedUserEmailAddress"),
    ]  # fmt: skip
    for user_id, address, status, code, reason, target in cases:
        response = await api.invite(
            token,
            body(address, resetRedemption=True, invitedUser={"id": user_id}, sendInvitationMessage=True),
        )
        assert response.status_code == status, response.text
        error = response.json()["error"]
        assert (error["code"], error["innerError"]["code"]) == (code, reason)
        assert error["details"][0]["target"] == target
        api.assert_unchanged(before)
    for invitation in (first, other):
        assert await check_ticket(
            api.rt.store, TENANT_ID, invitation["invitedUser"]["id"], ticket_of(invitation)
        )
    await api.assert_no_mail()


async def test_reset_of_a_blocked_domain_is_refused(api_with: Any) -> None:
    async with api_with(external_collaboration={"blocked_domains": ["newjob.example"]}) as api:
        first = await invited(api)
        token = await api.app_token("admin-app")
        payload = body(NEW, resetRedemption=True, invitedUser={"id": first["invitedUser"]["id"]})
        refusal = await api.invite(token, {**payload, "sendInvitationMessage": True})
        assert refusal.json()["error"]["innerError"]["code"] == "domain_blocked"
        assert api.state().users[first["invitedUser"]["id"]]["otherMails"] == []
        assert await check_ticket(api.rt.store, TENANT_ID, first["invitedUser"]["id"], ticket_of(first))
