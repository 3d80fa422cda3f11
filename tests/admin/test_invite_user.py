"""POST /v1.0/invitations with user tokens: bootstrap administrators, guest inviters, members, guests."""

from __future__ import annotations

from typing import Any, cast

import pytest

from tests.admin.helpers import ADMIN, INVITER, MEMBER, SECRET, USER_ADMIN, Api, body
from tests.support import flows


async def test_a_bootstrap_admin_invites_with_an_escaped_custom_message_and_a_cc(api: Api) -> None:
    admin = await api.add_user(ADMIN, displayName="Ada Admin")
    token = await api.user_token(admin)
    message = "Hi <script>alert('x')</script> & welcome!\nSecond line"
    payload = body(
        "guest@partner.example",
        sendInvitationMessage=True,
        invitedUserMessageInfo={
            "customizedMessageBody": message,
            "messageLanguage": "en-US",
            "ccRecipients": [{"emailAddress": {"address": "copy@partner.example"}}],
        },
    )
    response = await api.invite(token, payload)
    assert response.status_code == 201, response.text
    invitation = response.json()
    assert invitation["invitedUserMessageInfo"] == {
        "messageLanguage": "en-US",
        "customizedMessageBody": message,
        "ccRecipients": [{"emailAddress": {"name": None, "address": "copy@partner.example"}}],
    }
    guest = api.state().users[invitation["invitedUser"]["id"]]
    assert guest["sponsors"] == [admin["id"]]  # the inviter is the default sponsor
    for to in ("guest@partner.example", "copy@partner.example"):
        mail = await api.smtp.wait_for(to=to, timeout=10)
        assert mail["Subject"] == "Ada Admin invited you to access applications within Contoso"
        assert mail["Reply-To"] == ADMIN  # §2.2: replies go to the inviter
        text = cast(Any, mail.get_body(preferencelist=("plain",))).get_content().replace("\r\n", "\n")
        html = cast(Any, mail.get_body(preferencelist=("html",))).get_content().replace("\r\n", "\n")
        assert "Ada Admin (admin@contoso.example) invited you to access applications within Contoso." in text
        assert (
            "    Hi <script>alert('x')</script> & welcome!\n    Second line" in text
        )  # plain text as written
        assert "<script>" not in html  # never markup in the HTML part
        assert "Hi &lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; welcome!\nSecond line" in html
        assert invitation["inviteRedeemUrl"] in text


async def test_the_user_administrator_role_matches_the_mail_ignoring_case(api: Api) -> None:
    user_admin = await api.add_user(USER_ADMIN.title())  # YAML lists it upper-case, stored title-case
    response = await api.invite(await api.user_token(user_admin), body(invitedUserType="Member"))
    assert response.status_code == 201, response.text
    assert response.json()["invitedUserType"] == "Member"
    assert api.state().users[response.json()["invitedUser"]["id"]]["userType"] == "Member"


@pytest.mark.parametrize(
    ("who", "status", "reason"),
    [
        ("admin", 201, None),
        ("admin-app", 201, None),
        ("inviter", 403, "member_type_needs_admin"),
        ("inviter-app", 403, "member_type_needs_admin"),
        ("member", 403, "member_type_needs_admin"),
    ],
)
async def test_only_administrators_invite_members(
    api: Api, who: str, status: int, reason: str | None
) -> None:
    if who.endswith("-app"):
        token = await api.app_token(who)
    else:
        token = await api.user_token(
            await api.add_user({"admin": ADMIN, "inviter": INVITER}.get(who, MEMBER))
        )
    before = api.state()
    response = await api.invite(token, body(invitedUserType="Member", sendInvitationMessage=True))
    assert response.status_code == status, response.text
    if reason is None:
        assert response.json()["invitedUserType"] == "Member"
        await api.smtp.wait_for(to="guest@partner.example", timeout=10)
    else:
        assert response.json()["error"]["innerError"]["code"] == reason
        api.assert_unchanged(before)
        await api.assert_no_mail()


async def test_a_guest_inviter_invites_guests_where_only_admins_and_inviters_may(api_with: Any) -> None:
    async with api_with(external_collaboration={"allow_invites_from": "adminsAndGuestInviters"}) as api:
        inviter = await api.add_user(INVITER)
        assert (await api.invite(await api.user_token(inviter), body())).status_code == 201
        token = await api.user_token(await api.add_user(MEMBER))
        before = api.state()
        refused = await api.invite(token, body("two@partner.example"))
        assert refused.status_code == 403
        assert refused.json()["error"]["innerError"]["code"] == "invitations_limited_to_admins"
        api.assert_unchanged(before)


async def test_roles_need_a_member_a_guest_with_an_admin_address_has_none(api_with: Any) -> None:
    async with api_with(external_collaboration={"allow_invites_from": "adminsAndGuestInviters"}) as api:
        token = await api.user_token(await api.add_user(ADMIN, user_type="Guest"))
        before = api.state()
        response = await api.invite(token, body())
        assert response.status_code == 403
        assert response.json()["error"]["innerError"]["code"] == "invitations_limited_to_admins"
        api.assert_unchanged(before)


async def test_members_invite_but_guests_may_not(api_with: Any) -> None:
    async with api_with(
        external_collaboration={"allow_invites_from": "adminsGuestInvitersAndAllMembers"}
    ) as api:
        member = await api.add_user(MEMBER)
        assert (await api.invite(await api.user_token(member), body())).status_code == 201
        token = await api.user_token(await api.add_user("visitor@partner.example", user_type="Guest"))
        before = api.state()
        response = await api.invite(token, body("friend@partner.example"))
        assert response.status_code == 403
        error = response.json()["error"]
        assert error["code"] == "accessDenied"
        assert error["innerError"]["code"] == "guests_may_not_invite"
        api.assert_unchanged(before)


async def test_a_real_sign_in_with_directory_access_reaches_the_api(api: Api) -> None:
    """The scope is granted through the ordinary authorization code flow to a client that lists it."""
    admin = await api.add_user(ADMIN)
    req = flows.AuthRequest(
        client_id="portal", redirect_uri="https://portal.example/cb", scope="openid email directory.access"
    )
    _, query = await flows.sign_in(api.client, api.smtp, ADMIN, req)
    tokens = await flows.exchange(api.client, req, query["code"], client_secret=SECRET)
    assert tokens.status_code == 200, tokens.text
    assert tokens.json()["scope"].split() == ["openid", "email", "directory.access"]
    token = tokens.json()["access_token"]
    me = await api.client.get("/v1.0/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200 and me.json()["id"] == admin["id"]
    assert (await api.invite(token, body())).status_code == 201


async def test_a_client_that_does_not_list_the_scope_is_not_granted_it(api: Api) -> None:
    await api.add_user(ADMIN)
    req = flows.AuthRequest(
        client_id="plain", redirect_uri="https://plain.example/cb", scope="openid directory.access"
    )
    _, query = await flows.sign_in(api.client, api.smtp, ADMIN, req)
    tokens = await flows.exchange(api.client, req, query["code"], client_secret=SECRET)
    assert tokens.json()["scope"] == "openid"
    response = await api.invite(tokens.json()["access_token"], body())
    assert response.status_code == 403
    assert response.json()["error"]["innerError"]["code"] == "insufficient_scope"
