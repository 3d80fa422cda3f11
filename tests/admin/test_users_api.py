"""``GET /v1.0/users`` (paging, ``$filter``), ``PATCH`` / ``DELETE /v1.0/users/{id}``, and the
deleted-items endpoints (list, restore, the 30-day purge). Every refusal shows the error and that
nothing changed."""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from gateway.admin.models import UserCollection
from tests.admin.conftest import ApiFactory
from tests.admin.helpers import ADMIN, ISSUER, MEMBER, USER_ADMIN, Api, assert_error, bearer

GUEST = "guest@fabrikam.example"


def audit_records(caplog: pytest.LogCaptureFixture, action: str) -> list[dict[str, Any]]:
    records = [json.loads(r.getMessage()) for r in caplog.records if r.name == "gateway.audit"]
    return [r for r in records if r.get("event") == "admin" and r["action"] == action]


async def _directory(api: Api) -> dict[str, dict[str, Any]]:
    users = {
        "m1": await api.add_user("m1@contoso.example"),
        "g1": await api.add_user("g1@fabrikam.example", "Guest", externalUserState="PendingAcceptance"),
        "g2": await api.add_user("g2@fabrikam.example", "Guest", externalUserState="Accepted"),
        "g3": await api.add_user("g3@fabrikam.example", "Guest", externalUserState="Accepted"),
    }
    return users


# -- listing ---------------------------------------------------------------------------------------


async def test_list_pages_through_every_user_with_opaque_next_links(api: Api) -> None:
    users = await _directory(api)
    headers = bearer(await api.app_token("reader-app"))
    seen: list[str] = []
    url: str | None = "/v1.0/users?$top=3"
    pages = 0
    while url is not None:
        response = await api.client.get(url, headers=headers)
        assert response.status_code == 200, response.text
        page = response.json()
        UserCollection.model_validate(page)
        assert page["@odata.context"] == f"{ISSUER}/v1.0/$metadata#users"
        assert len(page["value"]) <= 3
        seen += [u["id"] for u in page["value"]]
        url = page.get("@odata.nextLink")
        if url is not None:
            assert url.startswith(f"{ISSUER}/v1.0/users?")
            query = parse_qs(urlsplit(url).query)
            assert query["$top"] == ["3"] and query["$skiptoken"]
            url = url.removeprefix(ISSUER)
        pages += 1
    assert pages == 2
    assert seen == sorted(u["id"] for u in users.values())


async def test_default_page_has_no_next_link(api: Api) -> None:
    await _directory(api)
    response = await api.client.get("/v1.0/users", headers=bearer(await api.app_token("admin-app")))
    assert response.status_code == 200
    assert len(response.json()["value"]) == 4 and "@odata.nextLink" not in response.json()


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("mail eq 'G2@fabrikam.example'", {"g2"}),
        ("externalUserState eq 'Accepted'", {"g2", "g3"}),
        ("externalUserState eq 'PendingAcceptance'", {"g1"}),
        ("userType eq 'Member'", {"m1"}),
        ("userType eq 'Guest' and externalUserState eq 'Accepted'", {"g2", "g3"}),
        ("userType eq 'Member' and mail eq 'g2@fabrikam.example'", set()),
    ],
)
async def test_filter(api: Api, expression: str, expected: set[str]) -> None:
    users = await _directory(api)
    response = await api.client.get(
        "/v1.0/users", params={"$filter": expression}, headers=bearer(await api.app_token("reader-app"))
    )
    assert response.status_code == 200, response.text
    assert {u["id"] for u in response.json()["value"]} == {users[k]["id"] for k in expected}


async def test_filter_survives_in_the_next_link(api: Api) -> None:
    await _directory(api)
    headers = bearer(await api.app_token("reader-app"))
    expression = "userType eq 'Guest'"
    first = await api.client.get("/v1.0/users", params={"$filter": expression, "$top": "2"}, headers=headers)
    link = first.json()["@odata.nextLink"]
    assert parse_qs(urlsplit(link).query)["$filter"] == [expression]
    second = await api.client.get(link.removeprefix(ISSUER), headers=headers)
    assert [u["userType"] for u in second.json()["value"]] == ["Guest"]


@pytest.mark.parametrize(
    "expression",
    [
        "displayName eq 'x'",
        "mail ne 'a@b.example'",
        "mail eq 'a@b.example' or userType eq 'Guest'",
        "userType eq 'Admin'",
        "externalUserState eq 'Pending Acceptance'",
        "userType eq 'Guest' and userType eq 'Member'",
        "startswith(mail,'a')",
        "mail eq ''",
        "",
        "userType eq 'Guest' and ",
    ],
)
async def test_unsupported_filter_is_refused(api: Api, expression: str) -> None:
    response = await api.client.get(
        "/v1.0/users", params={"$filter": expression}, headers=bearer(await api.app_token("reader-app"))
    )
    assert_error(response, 400, "invalidRequest", "unsupported_filter")


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"$top": "0"}, "invalid_top"),
        ({"$top": "1000"}, "invalid_top"),
        ({"$top": "ten"}, "invalid_top"),
        ({"$top": "²"}, "invalid_top"),
        ({"$skiptoken": "../x"}, "invalid_skiptoken"),
        ({"$skiptoken": "a" * 65}, "invalid_skiptoken"),
    ],
)
async def test_bad_paging_is_refused(api: Api, params: dict[str, str], reason: str) -> None:
    response = await api.client.get(
        "/v1.0/users", params=params, headers=bearer(await api.app_token("reader-app"))
    )
    assert_error(response, 400, "invalidRequest", reason)


async def test_who_may_list(api_with: ApiFactory) -> None:
    async with api_with() as api:  # default guest access level: limited
        member = await api.add_user(MEMBER)
        guest = await api.add_user(GUEST, "Guest")
        ok = await api.client.get("/v1.0/users", headers=bearer(await api.user_token(member)))
        assert ok.status_code == 200 and len(ok.json()["value"]) == 2
        limited = await api.client.get("/v1.0/users", headers=bearer(await api.user_token(guest)))
        assert_error(limited, 403, "accessDenied", "insufficient_privileges")
        no_permission = await api.client.get(
            "/v1.0/users", headers=bearer(await api.app_token("inviter-app"))
        )
        assert_error(no_permission, 403, "accessDenied", "insufficient_privileges")
    for level, status in (("sameAsMembers", 200), ("restricted", 403)):
        async with api_with(external_collaboration={"guest_user_role": level}) as api:
            guest = await api.add_user(f"{level.lower()}@fabrikam.example", "Guest")
            response = await api.client.get("/v1.0/users", headers=bearer(await api.user_token(guest)))
            assert response.status_code == status, (level, response.text)


# -- PATCH -----------------------------------------------------------------------------------------


async def test_patch_writes_only_the_given_properties(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="gateway.audit")
    guest = await api.add_user(GUEST, "Guest")
    changes = {
        "displayName": "Guest One",
        "givenName": "Guest",
        "surname": None,
        "otherMails": ["alt@x.example"],
    }
    response = await api.client.patch(
        f"/v1.0/users/{guest['id']}", json=changes, headers=bearer(await api.app_token("admin-app"))
    )
    assert response.status_code == 204, response.text
    assert response.content == b""
    stored = await api.rt.store.get_user(guest["id"])
    assert stored is not None
    assert {k: stored[k] for k in changes} == changes
    assert {k: v for k, v in stored.items() if k not in changes} == {
        k: v for k, v in guest.items() if k not in changes
    }
    assert [u["id"] for u in await api.rt.store.find_users_by_mail("alt@x.example")] == [guest["id"]]
    (record,) = audit_records(caplog, "updateUser")
    assert record["result"] == "success" and record["target"] == guest["id"]
    assert record["actor"] == {"kind": "app", "id": "admin-app"}


@pytest.mark.parametrize(
    "extra",
    [
        {"id": "00000000-0000-0000-0000-000000000000"},
        {"userType": "Member"},
        {"mail": "evil@x.example"},
        {"identities": []},
        {"creationType": None},
        {"externalUserState": "Accepted"},
        {"role": "Global Administrator"},
        {"tenant_id": "x"},
        {"userPrincipalName": "x@contoso.example"},
        {"signInSessionsValidFromDateTime": "2000-01-01T00:00:00Z"},
    ],
)
async def test_patch_refuses_read_only_properties(
    api: Api, extra: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.audit")
    guest = await api.add_user(GUEST, "Guest")
    headers = bearer(await api.app_token("admin-app"))
    before = api.state()
    response = await api.client.patch(
        f"/v1.0/users/{guest['id']}", json={"displayName": "Changed", **extra}, headers=headers
    )
    error = assert_error(response, 400, "invalidRequest", "read_only_property")
    assert error["details"][0]["target"] == next(iter(extra))
    api.assert_unchanged(before)
    (record,) = audit_records(caplog, "updateUser")
    assert record["result"] == "failure" and record["reasons"] == ["read_only_property"]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"displayName": 5}, "invalid_field"),
        ({"displayName": None}, "invalid_field"),
        ({"displayName": "x" * 257}, "invalid_field"),
        ({"displayName": "a\nb"}, "invalid_field"),
        ({"accountEnabled": "false"}, "invalid_field"),
        ({"accountEnabled": None}, "invalid_field"),
        ({"otherMails": "a@x.example"}, "invalid_field"),
        ({"otherMails": ["not-an-address"]}, "invalid_field"),
        ({"otherMails": [f"a{i}@x.example" for i in range(251)]}, "invalid_field"),
    ],
)
async def test_patch_refuses_bad_values(api: Api, payload: dict[str, Any], reason: str) -> None:
    guest = await api.add_user(GUEST, "Guest")
    headers = bearer(await api.app_token("admin-app"))
    before = api.state()
    response = await api.client.patch(f"/v1.0/users/{guest['id']}", json=payload, headers=headers)
    assert_error(response, 400, "invalidRequest", reason)
    api.assert_unchanged(before)


async def test_patch_refuses_malformed_json_and_another_users_address(api: Api) -> None:
    guest = await api.add_user(GUEST, "Guest")
    await api.add_user(MEMBER)
    headers = bearer(await api.app_token("admin-app"))
    before = api.state()
    malformed = await api.client.patch(
        f"/v1.0/users/{guest['id']}", content=b"{", headers={**headers, "Content-Type": "application/json"}
    )
    assert_error(malformed, 400, "invalidRequest", "malformed_json")
    taken = await api.client.patch(
        f"/v1.0/users/{guest['id']}", json={"otherMails": [MEMBER.upper()]}, headers=headers
    )
    assert_error(taken, 409, "conflict", "address_in_use")
    api.assert_unchanged(before)


async def test_patch_needs_a_write_permission_or_admin_role(api: Api) -> None:
    guest = await api.add_user(GUEST, "Guest")
    member = await api.add_user(MEMBER)
    user_admin = await api.add_user(USER_ADMIN)
    tokens = [
        await api.app_token("reader-app"),
        await api.app_token("inviter-app"),
        await api.user_token(member),
        await api.user_token(guest),  # not even themselves
    ]
    before = api.state()
    for token in tokens:
        response = await api.client.patch(
            f"/v1.0/users/{guest['id']}", json={"displayName": "X"}, headers=bearer(token)
        )
        assert_error(response, 403, "accessDenied", "insufficient_privileges")
    api.assert_unchanged(before)
    ok = await api.client.patch(
        f"/v1.0/users/{guest['id']}",
        json={"displayName": "X"},
        headers=bearer(await api.user_token(user_admin)),
    )
    assert ok.status_code == 204


async def test_patch_unknown_user_is_404(api: Api) -> None:
    response = await api.client.patch(
        "/v1.0/users/00000000-0000-0000-0000-000000000000",
        json={"displayName": "X"},
        headers=bearer(await api.app_token("admin-app")),
    )
    assert_error(response, 404, "itemNotFound", "user_not_found")


async def test_disabling_revokes_sign_in_sessions(api: Api) -> None:
    member = await api.add_user(MEMBER)
    token = await api.user_token(member)
    assert (await api.client.get("/v1.0/me", headers=bearer(token))).status_code == 200
    response = await api.client.patch(
        f"/v1.0/users/{member['id']}",
        json={"accountEnabled": False},
        headers=bearer(await api.app_token("admin-app")),
    )
    assert response.status_code == 204
    stored = await api.rt.store.get_user(member["id"])
    assert stored is not None and stored["accountEnabled"] is False
    assert stored["signInSessionsValidFromDateTime"]
    assert_error(
        await api.client.get("/v1.0/me", headers=bearer(token)), 401, "unauthenticated", "account_disabled"
    )


# -- DELETE, deleted items, restore ----------------------------------------------------------------


async def test_delete_soft_deletes_and_restore_brings_back(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.audit")
    guest = await api.add_user(GUEST, "Guest")
    headers = bearer(await api.app_token("admin-app"))
    deleted = await api.client.delete(f"/v1.0/users/{guest['id']}", headers=headers)
    assert deleted.status_code == 204
    assert await api.rt.store.get_user(guest["id"]) is None
    stored = await api.rt.store.get_deleted_user(guest["id"])
    assert stored is not None and stored["signInSessionsValidFromDateTime"]
    assert_error(
        await api.client.get(f"/v1.0/users/{guest['id']}", headers=headers),
        404,
        "itemNotFound",
        "user_not_found",
    )
    listing = await api.client.get("/v1.0/directory/deletedItems/microsoft.graph.user", headers=headers)
    assert listing.status_code == 200
    (item,) = listing.json()["value"]
    assert item["id"] == guest["id"] and item["deletedDateTime"] and item["accountEnabled"] is False
    restored = await api.client.post(f"/v1.0/directory/deletedItems/{guest['id']}/restore", headers=headers)
    assert restored.status_code == 200, restored.text
    assert restored.json()["id"] == guest["id"] and restored.json()["accountEnabled"] is True
    assert await api.rt.store.get_user(guest["id"]) is not None
    assert [r["result"] for r in audit_records(caplog, "deleteUser")] == ["success"]
    assert [r["result"] for r in audit_records(caplog, "restoreUser")] == ["success"]


async def test_delete_and_restore_refusals_change_nothing(api: Api) -> None:
    guest = await api.add_user(GUEST, "Guest")
    member = await api.add_user(MEMBER)
    tokens = [await api.app_token("reader-app"), await api.user_token(member)]
    before = api.state()
    for token in tokens:
        response = await api.client.delete(f"/v1.0/users/{guest['id']}", headers=bearer(token))
        assert_error(response, 403, "accessDenied", "insufficient_privileges")
    api.assert_unchanged(before)
    assert await api.rt.store.get_deleted_user(guest["id"]) is None
    admin = bearer(await api.app_token("admin-app"))
    missing = await api.client.delete("/v1.0/users/00000000-0000-0000-0000-000000000000", headers=admin)
    assert_error(missing, 404, "itemNotFound", "user_not_found")
    assert (await api.client.delete(f"/v1.0/users/{guest['id']}", headers=admin)).status_code == 204
    refused = await api.client.post(
        f"/v1.0/directory/deletedItems/{guest['id']}/restore",
        headers=bearer(await api.app_token("reader-app")),
    )
    assert_error(refused, 403, "accessDenied", "insufficient_privileges")
    assert await api.rt.store.get_user(guest["id"]) is None
    live = await api.client.post(f"/v1.0/directory/deletedItems/{member['id']}/restore", headers=admin)
    assert_error(live, 404, "itemNotFound", "deleted_item_not_found")


async def test_members_may_not_list_deleted_users(api: Api) -> None:
    member = await api.add_user(MEMBER)
    response = await api.client.get(
        "/v1.0/directory/deletedItems/microsoft.graph.user", headers=bearer(await api.user_token(member))
    )
    assert_error(response, 403, "accessDenied", "insufficient_privileges")
    admin = await api.add_user(ADMIN)
    ok = await api.client.get(
        "/v1.0/directory/deletedItems/microsoft.graph.user", headers=bearer(await api.user_token(admin))
    )
    assert ok.status_code == 200 and ok.json()["value"] == []


async def test_users_deleted_over_30_days_ago_are_purged_from_the_listing(api: Api) -> None:
    old = await api.add_user("old@fabrikam.example", "Guest")
    recent = await api.add_user("recent@fabrikam.example", "Guest")
    assert await api.rt.store.soft_delete_user(old["id"], api.rt.now() - 31 * 86400) is not None
    assert await api.rt.store.soft_delete_user(recent["id"], api.rt.now() - 29 * 86400) is not None
    response = await api.client.get(
        "/v1.0/directory/deletedItems/microsoft.graph.user", headers=bearer(await api.app_token("reader-app"))
    )
    assert [u["id"] for u in response.json()["value"]] == [recent["id"]]
    assert await api.rt.store.get_deleted_user(old["id"]) is None
    assert await api.rt.store.get_deleted_user(recent["id"]) is not None
