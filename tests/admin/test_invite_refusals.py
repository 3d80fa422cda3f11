"""Every refused invitation: the Graph-shaped error, and nothing created (no user, ticket or mail)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.admin.helpers import ADMIN, BAD_ADDRESSES, SECRET, Api, bearer, body, refused

MAILED: dict[str, Any] = {"sendInvitationMessage": True}


# -- who may invite ---------------------------------------------------------------------------------


async def test_invitations_switched_off_refuse_even_admins(api_with: Any) -> None:
    async with api_with(external_collaboration={"allow_invites_from": "none"}) as api:
        for token in (await api.app_token("admin-app"), await api.user_token(await api.add_user(ADMIN))):
            error = await refused(api, await api.invite(token, body(**MAILED)), 403, "accessDenied",
                                  "invitations_disabled")  # fmt: skip
            assert "does not allow guest invitations" in error["message"]
            assert "administrator" in error["message"]


async def test_an_app_without_an_invite_permission(api: Api) -> None:
    response = await api.invite(await api.app_token("reader-app"), body(**MAILED))
    error = await refused(api, response, 403, "accessDenied", "app_lacks_invite_permission")
    assert "User.Invite.All" in error["message"]


async def test_apps_are_refused_when_only_admins_and_inviters_may_invite(api_with: Any) -> None:
    async with api_with(external_collaboration={"allow_invites_from": "adminsAndGuestInviters"}) as api:
        response = await api.invite(await api.app_token(), body(**MAILED))
        await refused(api, response, 403, "accessDenied", "invitations_limited_to_admins")


async def test_the_caller_is_checked_before_the_body_is_read(api: Api) -> None:
    response = await api.client.post(
        "/v1.0/invitations", content=b"{not json", headers=bearer(await api.app_token("reader-app"))
    )
    await refused(api, response, 403, "accessDenied", "app_lacks_invite_permission")


# -- domains ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "address", "reason"),
    [
        ({"blocked_domains": ["partner.example"]}, "guest@Partner.Example", "domain_blocked"),
        ({"blocked_domains": ["*.partner.example"]}, "guest@eu.partner.example", "domain_blocked"),
        ({"allowed_domains": ["friends.example"]}, "guest@partner.example", "domain_not_allowed"),
        ({"allowed_domains": ["*.friends.example"]}, "guest@friends.example", "domain_not_allowed"),
    ],
    ids=["blocked", "blocked-subdomain", "not-allowed", "wildcard-excludes-the-domain-itself"],
)
async def test_domain_restrictions(api_with: Any, policy: dict[str, Any], address: str, reason: str) -> None:
    async with api_with(external_collaboration=policy) as api:
        response = await api.invite(await api.app_token(), body(address, **MAILED))
        error = await refused(api, response, 403, "accessDenied", reason)
        assert error["details"][0]["target"] == "invitedUserEmailAddress"
        assert address.split("@")[1].lower() in error["message"]


async def test_an_allowed_domain_passes(api_with: Any) -> None:
    async with api_with(external_collaboration={"allowed_domains": ["*.friends.example"]}) as api:
        response = await api.invite(await api.app_token(), body("guest@eu.friends.example"))
        assert response.status_code == 201, response.text


# -- the body ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("address", BAD_ADDRESSES)
async def test_bad_addresses(api: Api, address: str) -> None:
    response = await api.invite(await api.app_token(), body(address, **MAILED))
    error = await refused(api, response, 400, "invalidRequest", "invalid_field")
    assert [d["target"] for d in error["details"]] == ["invitedUserEmailAddress"]


@pytest.mark.parametrize(
    "address", ["_a_@partner.example", "a.b-c@partner.example", "o'neil@partner.example"]
)
async def test_user_name_characters_the_reference_allows(api: Api, address: str) -> None:
    assert (await api.invite(await api.app_token(), body(address))).status_code == 201


CC = {"emailAddress": {"address": "copy@partner.example"}}
LONG = "x" * 70_000


@pytest.mark.parametrize(
    ("payload", "target"),
    [
        ({"inviteRedirectUrl": "https://app.example"}, "invitedUserEmailAddress"),
        ({"invitedUserEmailAddress": "guest@partner.example"}, "inviteRedirectUrl"),
        (body(resetRedemption=True), "invitedUser.id"),
        (body(resetRedemption=True, invitedUser={"displayName": "x"}), "invitedUser.id"),
        (body(invitedUserMessageInfo={"ccRecipients": [CC, CC]}), "invitedUserMessageInfo.ccRecipients"),
        (
            body(invitedUserMessageInfo={"ccRecipients": [{"emailAddress": {"address": "x#y@z.example"}}]}),
            "invitedUserMessageInfo.ccRecipients.0.emailAddress.address",
        ),
        (
            body(invitedUserMessageInfo={"messageLanguage": "english please"}),
            "invitedUserMessageInfo.messageLanguage",
        ),
        (body(invitedUser={"id": "not-a-uuid"}, resetRedemption=True), "invitedUser.id"),
        # wrong types: never coerced
        (body(5), "invitedUserEmailAddress"),
        (
            {"invitedUserEmailAddress": "guest@partner.example", "inviteRedirectUrl": None},
            "inviteRedirectUrl",
        ),
        (body(sendInvitationMessage="true"), "sendInvitationMessage"),
        (body(sendInvitationMessage=1), "sendInvitationMessage"),
        (body(resetRedemption="yes"), "resetRedemption"),
        (body(invitedUserType="guest"), "invitedUserType"),
        (body(invitedUserType="Admin"), "invitedUserType"),
        (body(invitedUserDisplayName=["Guest"]), "invitedUserDisplayName"),
        (body(invitedUserMessageInfo="hello"), "invitedUserMessageInfo"),
        (body(invitedUserMessageInfo={"ccRecipients": CC}), "invitedUserMessageInfo.ccRecipients"),
        (body(invitedUser="someone"), "invitedUser"),
        # huge or unsafe strings
        (body("a" * 250 + "@partner.example"), "invitedUserEmailAddress"),
        (body(invitedUserDisplayName="x" * 257), "invitedUserDisplayName"),
        (body(invitedUserDisplayName="Evil\r\nBcc: victim@example.com"), "invitedUserDisplayName"),
        (
            body(invitedUserMessageInfo={"customizedMessageBody": "x" * 4001}),
            "invitedUserMessageInfo.customizedMessageBody",
        ),
        (
            body(invitedUserMessageInfo={"customizedMessageBody": "bell\x07"}),
            "invitedUserMessageInfo.customizedMessageBody",
        ),
        (body(inviteRedirectUrl="https://app.example/" + "x" * 2100), "inviteRedirectUrl"),
        # redirect URLs
        (body(inviteRedirectUrl="javascript:alert(1)"), "inviteRedirectUrl"),
        (body(inviteRedirectUrl="http://app.example/"), "inviteRedirectUrl"),
        (body(inviteRedirectUrl="/relative"), "inviteRedirectUrl"),
        (body(inviteRedirectUrl="https://app.example/#fragment"), "inviteRedirectUrl"),
    ],
)
async def test_invalid_bodies(api: Api, payload: dict[str, Any], target: str) -> None:
    response = await api.invite(await api.app_token("admin-app"), {**MAILED, **payload})
    error = await refused(api, response, 400, "invalidRequest", "invalid_field")
    assert target in [d["target"] for d in error["details"]], error
    assert all(d["code"] == "invalid_field" for d in error["details"])
    assert LONG not in response.text and "victim" not in response.text  # inputs are never echoed


@pytest.mark.parametrize(
    "raw",
    [b"{", b"[]", b'"guest@partner.example"', b"null", b"", b'{"a": 1, "a": 2}',
     b'{"invitedUserEmailAddress": NaN}', b"[" * 60_000, b'{"x": "\xff"}', b"{'single': 'quotes'}"],
    ids=["truncated", "array", "string", "null", "empty", "duplicate-key", "nan", "deep", "not-utf8",
         "quotes"],
)  # fmt: skip
async def test_malformed_json(api: Api, raw: bytes) -> None:
    response = await api.client.post(
        "/v1.0/invitations",
        content=raw,
        headers={**bearer(await api.app_token()), "Content-Type": "application/json"},
    )
    await refused(api, response, 400, "invalidRequest", "malformed_json")


async def test_a_body_over_64_kib(api: Api) -> None:
    payload = body(invitedUserDisplayName="Guest", padding=LONG, **MAILED)
    response = await api.invite(await api.app_token(), payload)
    await refused(api, response, 413, "payloadTooLarge", "body_too_large")


async def test_a_streamed_body_over_64_kib_without_length(api: Api) -> None:
    async def chunks() -> Any:
        for _ in range(20):
            yield b" " * 4096

    response = await api.client.post(
        "/v1.0/invitations", content=chunks(),
        headers={**bearer(await api.app_token()), "Content-Type": "application/json"},
    )  # fmt: skip
    await refused(api, response, 413, "payloadTooLarge", "body_too_large")


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1", None],
)
async def test_wrong_content_type(api: Api, content_type: str | None) -> None:
    headers = bearer(await api.app_token())
    if content_type is not None:
        headers["Content-Type"] = content_type
    response = await api.client.post(
        "/v1.0/invitations", content=b'{"invitedUserEmailAddress": "guest@partner.example"}', headers=headers
    )
    await refused(api, response, 415, "unsupportedMediaType", "unsupported_media_type")


# -- the token -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("authorization", "reason"),
    [
        (None, "missing_token"),
        ("Basic aW52aXRlci1hcHA6c2VjcmV0", "missing_token"),
        ("Bearer", "missing_token"),
        ("Bearer gwat_" + "x" * 43, "invalid_token"),
        ("Bearer not-a-token", "invalid_token"),
    ],
)
async def test_no_usable_token(api: Api, authorization: str | None, reason: str) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = await api.client.post("/v1.0/invitations", json=body(**MAILED), headers=headers)
    await refused(api, response, 401, "unauthenticated", reason)
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="http://127.0.0.1:8000"')
    assert ("error=" in challenge) == (reason == "invalid_token")  # RFC 6750 3.1: no error without a token


async def test_an_expired_token(api: Api) -> None:
    token = await api.app_token()
    api.clock.advance(3601)
    response = await api.invite(token, body(**MAILED))
    await refused(api, response, 401, "unauthenticated", "invalid_token")
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_a_revoked_token(api: Api) -> None:
    token = await api.app_token()
    revoked = await api.client.post("/oauth2/revoke", data={"token": token}, auth=("inviter-app", SECRET))
    assert revoked.status_code == 200
    response = await api.invite(token, body(**MAILED))
    await refused(api, response, 401, "unauthenticated", "invalid_token")


async def test_a_user_token_without_directory_access(api: Api) -> None:
    token = await api.user_token(await api.add_user(ADMIN), scopes=("openid", "profile", "email"))
    response = await api.invite(token, body(**MAILED))
    await refused(api, response, 403, "accessDenied", "insufficient_scope")
    challenge = response.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge and 'scope="directory.access"' in challenge


async def test_a_disabled_or_deleted_user(api: Api) -> None:
    admin = await api.add_user(ADMIN)
    token = await api.user_token(admin)
    await api.rt.store.update_user({**admin, "accountEnabled": False})
    await refused(api, await api.invite(token, body(**MAILED)), 401, "unauthenticated", "account_disabled")
    await api.rt.store.delete_user(admin["id"])
    await refused(api, await api.invite(token, body(**MAILED)), 401, "unauthenticated", "user_not_found")


async def test_permissions_removed_from_the_yaml_stop_working_at_once(api: Api) -> None:
    token = await api.app_token()
    settings = api.rt.settings
    reduced = [
        a.model_copy(update={"api_permissions": ["User.Read.All"]}) if a.id == "inviter-app" else a
        for a in settings.applications
    ]
    api.rt.settings = settings.model_copy(update={"applications": reduced})
    await refused(
        api, await api.invite(token, body(**MAILED)), 403, "accessDenied", "app_lacks_invite_permission"
    )
    api.rt.settings = settings.model_copy(
        update={"applications": [a for a in settings.applications if a.id != "inviter-app"]}
    )
    await refused(api, await api.invite(token, body(**MAILED)), 401, "unauthenticated", "invalid_token")
