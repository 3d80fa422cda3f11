"""POST /v1.0/invitations with an app token (client_credentials, User.Invite.All)."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import uuid
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

import pytest

from gateway.invitations import check_ticket
from tests.admin.helpers import ISSUER, REDIRECT, TENANT_DOMAIN, TENANT_ID, Api, body
from tests.support.inspect_store import store_file

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def ticket_of(redeem_url: str) -> str:
    return parse_qs(urlsplit(redeem_url).query)["ticket"][0]


async def test_app_invites_a_guest_201_in_the_reference_shape(api: Api) -> None:
    token = await api.app_token()
    response = await api.invite(token, body("Guest@Partner.Example", invitedUserDisplayName="Guest One"))
    assert response.status_code == 201, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    invitation = response.json()
    assert set(invitation) == {
        "id", "inviteRedeemUrl", "invitedUserDisplayName", "invitedUserType", "invitedUserEmailAddress",
        "sendInvitationMessage", "resetRedemption", "inviteRedirectUrl", "status", "invitedUserMessageInfo",
        "invitedUser",
    }  # fmt: skip
    assert uuid.UUID(invitation["id"]).version == 4
    user_id = invitation["invitedUser"]["id"]
    assert invitation["invitedUser"] == {"id": user_id} and uuid.UUID(user_id).version == 4
    assert invitation["invitedUserEmailAddress"] == "Guest@partner.example"  # domain lower-cased
    assert invitation["invitedUserDisplayName"] == "Guest One"
    assert invitation["invitedUserType"] == "Guest"
    assert invitation["sendInvitationMessage"] is False
    assert invitation["resetRedemption"] is False
    assert invitation["inviteRedirectUrl"] == REDIRECT
    assert invitation["status"] == "PendingAcceptance"
    assert invitation["invitedUserMessageInfo"] == {
        "messageLanguage": None, "customizedMessageBody": None, "ccRecipients": [],
    }  # fmt: skip
    parts = urlsplit(invitation["inviteRedeemUrl"])
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{ISSUER}/redeem"
    query = parse_qs(parts.query)
    assert set(query) == {"tenant", "user", "ticket"}
    assert query["tenant"] == [TENANT_ID] and query["user"] == [user_id]
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", query["ticket"][0])  # 256 bits


async def test_the_guest_object_is_exactly_as_specified(api: Api) -> None:
    response = await api.invite(await api.app_token(), body("guest@partner.example"))
    user_id = response.json()["invitedUser"]["id"]
    stored = api.state().users[user_id]
    upn = f"guest_partner.example#EXT#@{TENANT_DOMAIN}"
    assert stored == {
        "id": user_id,
        "userType": "Guest",
        "creationType": "Invitation",
        "accountEnabled": True,
        "displayName": "guest",
        "mail": "guest@partner.example",
        "otherMails": [],
        "userPrincipalName": upn,
        "identities": [{"signInType": "userPrincipalName", "issuer": TENANT_DOMAIN, "issuerAssignedId": upn}],
        "externalUserState": "PendingAcceptance",
        "externalUserStateChangeDateTime": stored["externalUserStateChangeDateTime"],
        "createdDateTime": stored["createdDateTime"],
        "sponsors": [],  # an app is nobody's sponsor
    }
    assert TIMESTAMP.match(stored["createdDateTime"])
    assert stored["externalUserStateChangeDateTime"] == stored["createdDateTime"]


async def test_the_ticket_is_stored_only_hashed_and_bound(api: Api) -> None:
    response = await api.invite(await api.app_token(), body())
    invitation = response.json()
    ticket = ticket_of(invitation["inviteRedeemUrl"])
    user_id = invitation["invitedUser"]["id"]
    state = api.state()
    digest = hashlib.sha256(ticket.encode()).hexdigest()
    assert state.ids("invite-ticket") == {digest}
    assert state.ids("invite-current") == {user_id}
    raw = store_file(api.app).read_bytes()
    for path in store_file(api.app).parent.glob("gateway.db*"):
        raw += path.read_bytes()
    assert ticket.encode() not in raw, "the ticket itself reached the store"
    found = await check_ticket(api.rt.store, TENANT_ID, user_id, ticket)
    assert found is not None
    assert (found.id, found.user_id, found.tenant_id) == (invitation["id"], user_id, TENANT_ID)
    assert (found.email, found.redirect_url, found.invited_by) == (
        "guest@partner.example", REDIRECT, "app:inviter-app",
    )  # fmt: skip
    lifetime = found.expires_at - found.created_at
    assert lifetime == 90 * 86400
    assert 90 * 86400 - 5 <= await api.rt.store.ttl("invite-ticket", digest) <= 90 * 86400  # type: ignore[operator]


async def test_the_lifetime_is_configurable(api_with: Any) -> None:
    async with api_with(invitations={"ticket_lifetime_days": 7}) as api:
        invitation = (await api.invite(await api.app_token(), body())).json()
        found = await check_ticket(
            api.rt.store, TENANT_ID, invitation["invitedUser"]["id"], ticket_of(invitation["inviteRedeemUrl"])
        )
        assert found is not None and found.expires_at - found.created_at == 7 * 86400


async def test_an_app_mail_drops_the_custom_message_and_copies_the_cc(api: Api) -> None:
    payload = body(
        "guest@partner.example",
        invitedUserDisplayName="Guest One",
        sendInvitationMessage=True,
        invitedUserMessageInfo={
            "customizedMessageBody": "Welcome aboard <b>friend</b>",
            "ccRecipients": [{"emailAddress": {"address": "boss@partner.example", "name": "Boss"}}],
        },
    )
    response = await api.invite(await api.app_token(), payload)
    assert response.status_code == 201, response.text
    invitation = response.json()
    assert invitation["sendInvitationMessage"] is True
    assert invitation["invitedUserMessageInfo"]["ccRecipients"] == [
        {"emailAddress": {"name": "Boss", "address": "boss@partner.example"}}
    ]
    to_guest = await api.smtp.wait_for(to="guest@partner.example", timeout=10)
    to_cc = await api.smtp.wait_for(to="boss@partner.example", timeout=10)
    for message in (to_guest, to_cc):
        assert message["Subject"] == "You're invited to access applications within Contoso"
        assert message["Reply-To"] is None  # an app has no address to reply to
        text = cast(Any, message.get_body(preferencelist=("plain",))).get_content()
        html = cast(Any, message.get_body(preferencelist=("html",))).get_content()
        assert invitation["inviteRedeemUrl"] in text
        assert invitation["inviteRedeemUrl"].replace("&", "&amp;") in html
        assert "Welcome aboard" not in text and "Welcome aboard" not in html  # §2.2: dropped for apps
        assert "Hello Guest One," in text
        assert "Contoso invited you to access its applications." in text


async def test_every_invitation_is_audited(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="gateway.audit")
    response = await api.invite(await api.app_token(), body())
    refused = await api.invite(await api.app_token("reader-app"), body("other@partner.example"))
    assert refused.status_code == 403
    records = [json.loads(r.getMessage()) for r in caplog.records if r.name == "gateway.audit"]
    invites = [r for r in records if r["event"] == "admin"]
    assert len(invites) == 2
    ok, failed = invites
    keys = {"event", "action", "result", "time", "tenant", "actor", "target", "ip", "reasons", "detail"}
    keys.add("request_id")
    assert set(ok) == keys and set(failed) == keys
    assert ok["action"] == "invite" and ok["result"] == "success"
    assert ok["actor"] == {"kind": "app", "id": "inviter-app"}
    assert ok["target"] == response.json()["invitedUser"]["id"]
    assert ok["reasons"] == ["app_permission", "domain_not_listed", "user_created"]
    assert failed["result"] == "failure" and failed["actor"] == {"kind": "app", "id": "reader-app"}
    assert failed["reasons"] == ["app_lacks_invite_permission"] and failed["target"] is None
