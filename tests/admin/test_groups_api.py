"""``/v1.0/groups``: create, read, list, edit, delete; members and owners through ``$ref``; who may do
what (apps with group permissions, administrators, owners of *that* group only). Every refusal shows
the error and that the groups, their members and owners did not change."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.admin.models import GroupCollection, GroupOut, UserCollection
from tests.admin.conftest import ApiFactory
from tests.admin.helpers import ADMIN, ISSUER, MEMBER, SECRET, Api, applications, assert_error, bearer

GUEST = "guest@fabrikam.example"
MISSING = "00000000-0000-0000-0000-000000000000"


def _app(app_id: str, permissions: list[str]) -> dict[str, Any]:
    return {
        "id": app_id,
        "name": app_id,
        "oidc": {
            "client_id": app_id,
            "client_secret": SECRET,
            "redirect_uris": [f"https://{app_id}.example/cb"],
        },
        "api_permissions": permissions,
    }


@pytest.fixture
async def api(api_with: ApiFactory) -> AsyncIterator[Api]:
    apps = [
        *applications(),
        _app("group-app", ["Group.ReadWrite.All"]),
        _app("group-reader", ["Group.Read.All"]),
    ]
    async with api_with(applications=apps) as running:
        yield running


async def snapshot(api: Api) -> dict[str, Any]:
    groups, _ = await api.rt.store.list_groups(limit=999)
    return {
        g["id"]: (
            g,
            await api.rt.store.list_group_members(g["id"]),
            await api.rt.store.list_group_owners(g["id"]),
        )
        for g in groups
    }


def ref(user: dict[str, Any]) -> dict[str, str]:
    return {"@odata.id": f"{ISSUER}/v1.0/directoryObjects/{user['id']}"}


async def create(api: Api, token: str, **fields: Any) -> dict[str, Any]:
    response = await api.client.post(
        "/v1.0/groups", json={"displayName": "Partners", **fields}, headers=bearer(token)
    )
    assert response.status_code == 201, response.text
    group: dict[str, Any] = response.json()
    return group


def audit_records(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    records = [json.loads(r.getMessage()) for r in caplog.records if r.name == "gateway.audit"]
    return [r for r in records if r.get("event") == "admin"]


async def test_create_get_list_patch_delete(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="gateway.audit")
    token = await api.app_token("group-app")
    group = await create(api, token, description="Partner staff", mailNickname="partners")
    GroupOut.model_validate(group)
    assert group["displayName"] == "Partners" and group["securityEnabled"] is True
    got = await api.client.get(f"/v1.0/groups/{group['id']}", headers=bearer(token))
    assert got.json() == group
    await create(api, token, displayName="Second")
    listing = await api.client.get("/v1.0/groups?$top=1", headers=bearer(token))
    GroupCollection.model_validate(listing.json())
    assert len(listing.json()["value"]) == 1 and "@odata.nextLink" in listing.json()
    patched = await api.client.patch(
        f"/v1.0/groups/{group['id']}", json={"description": None}, headers=bearer(token)
    )
    assert patched.status_code == 204
    stored = await api.rt.store.get_group(group["id"])
    assert stored is not None and stored["description"] is None and stored["displayName"] == "Partners"
    deleted = await api.client.delete(f"/v1.0/groups/{group['id']}", headers=bearer(token))
    assert deleted.status_code == 204 and await api.rt.store.get_group(group["id"]) is None
    actions = [(r["action"], r["result"]) for r in audit_records(caplog)]
    assert actions == [
        ("createGroup", "success"), ("createGroup", "success"),
        ("updateGroup", "success"), ("deleteGroup", "success"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"displayName": "G", "id": MISSING}, "read_only_property"),
        ({"displayName": "G", "members": []}, "read_only_property"),
        ({"displayName": "G", "tenant_id": "x"}, "read_only_property"),
        ({"displayName": ""}, "invalid_field"),
        ({"displayName": None}, "invalid_field"),
        ({"displayName": 5}, "invalid_field"),
        ({"displayName": "x" * 257}, "invalid_field"),
        ({"displayName": "G", "mailNickname": "has space"}, "invalid_field"),
        ({"displayName": "G", "securityEnabled": "yes"}, "invalid_field"),
        ({}, "invalid_field"),
    ],
)
async def test_create_refuses_bad_bodies(api: Api, payload: dict[str, Any], reason: str) -> None:
    token = await api.app_token("group-app")
    response = await api.client.post("/v1.0/groups", json=payload, headers=bearer(token))
    assert_error(response, 400, "invalidRequest", reason)
    assert await snapshot(api) == {}


async def test_who_may_create_and_edit(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="gateway.audit")
    member = await api.add_user(MEMBER)
    admin = await api.add_user(ADMIN)
    group = await create(api, await api.user_token(admin))
    before = await snapshot(api)
    for token in (
        await api.app_token("group-reader"),
        await api.app_token("admin-app"),  # User.ReadWrite.All is not a group permission
        await api.user_token(member),
    ):
        created = await api.client.post("/v1.0/groups", json={"displayName": "X"}, headers=bearer(token))
        assert_error(created, 403, "accessDenied", "insufficient_privileges")
        patched = await api.client.patch(
            f"/v1.0/groups/{group['id']}", json={"displayName": "X"}, headers=bearer(token)
        )
        assert_error(patched, 403, "accessDenied", "insufficient_privileges")
        deleted = await api.client.delete(f"/v1.0/groups/{group['id']}", headers=bearer(token))
        assert_error(deleted, 403, "accessDenied", "insufficient_privileges")
    assert await snapshot(api) == before
    failures = [r for r in audit_records(caplog) if r["result"] == "failure"]
    assert len(failures) == 9 and {r["reasons"][0] for r in failures} == {"insufficient_privileges"}


async def test_patch_refuses_read_only_and_unknown_group(api: Api) -> None:
    token = bearer(await api.app_token("group-app"))
    group = await create(api, token["Authorization"].split()[1])
    before = await snapshot(api)
    bad = await api.client.patch(
        f"/v1.0/groups/{group['id']}", json={"id": MISSING, "displayName": "Y"}, headers=token
    )
    assert_error(bad, 400, "invalidRequest", "read_only_property")
    for url in (f"/v1.0/groups/{MISSING}", "/v1.0/groups/not-a-uuid"):
        missing = await api.client.patch(url, json={"displayName": "Y"}, headers=token)
        assert_error(missing, 404, "itemNotFound", "group_not_found")
    assert await snapshot(api) == before


async def test_members_and_owners_by_ref(api: Api) -> None:
    token = bearer(await api.app_token("group-app"))
    guest = await api.add_user(GUEST, "Guest")
    member = await api.add_user(MEMBER)
    group = await create(api, token["Authorization"].split()[1])
    base = f"/v1.0/groups/{group['id']}"
    assert (await api.client.post(f"{base}/members/$ref", json=ref(guest), headers=token)).status_code == 204
    by_users_path = {"@odata.id": f"{ISSUER}/v1.0/users/{member['id']}"}
    assert (
        await api.client.post(f"{base}/owners/$ref", json=by_users_path, headers=token)
    ).status_code == 204
    members = await api.client.get(f"{base}/members", headers=token)
    UserCollection.model_validate(members.json())
    assert [u["id"] for u in members.json()["value"]] == [guest["id"]]
    owners = await api.client.get(f"{base}/owners", headers=token)
    assert [u["id"] for u in owners.json()["value"]] == [member["id"]]
    again = await api.client.post(f"{base}/members/$ref", json=ref(guest), headers=token)
    assert_error(again, 400, "invalidRequest", "reference_exists")
    removed = await api.client.delete(f"{base}/members/{guest['id']}/$ref", headers=token)
    assert removed.status_code == 204
    assert await api.rt.store.list_group_members(group["id"]) == []
    gone = await api.client.delete(f"{base}/members/{guest['id']}/$ref", headers=token)
    assert_error(gone, 404, "itemNotFound", "reference_not_found")
    assert (await api.client.delete(f"{base}/owners/{member['id']}/$ref", headers=token)).status_code == 204
    assert await api.rt.store.list_group_owners(group["id"]) == []


@pytest.mark.parametrize(
    ("payload", "status", "reason"),
    [
        ({"@odata.id": "https://evil.example/v1.0/directoryObjects/" + MISSING}, 400, "invalid_reference"),
        ({"@odata.id": f"{ISSUER}/v1.0/groups/{MISSING}"}, 400, "invalid_reference"),
        ({"@odata.id": f"{ISSUER}/v1.0/directoryObjects/../x"}, 400, "invalid_reference"),
        ({"@odata.id": 5}, 400, "invalid_field"),
        ({}, 400, "invalid_field"),
        (
            {"@odata.id": f"{ISSUER}/v1.0/directoryObjects/{MISSING}", "role": "owner"},
            400,
            "read_only_property",
        ),
        ({"@odata.id": f"{ISSUER}/v1.0/directoryObjects/{MISSING}"}, 404, "user_not_found"),
    ],
)
async def test_bad_references_change_nothing(
    api: Api, payload: dict[str, Any], status: int, reason: str
) -> None:
    token = bearer(await api.app_token("group-app"))
    group = await create(api, token["Authorization"].split()[1])
    before = await snapshot(api)
    for relation in ("members", "owners"):
        response = await api.client.post(
            f"/v1.0/groups/{group['id']}/{relation}/$ref", json=payload, headers=token
        )
        assert_error(response, status, "invalidRequest" if status == 400 else "itemNotFound", reason)
    assert await snapshot(api) == before


async def test_owner_manages_members_of_their_group_only(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="gateway.audit")
    app = bearer(await api.app_token("group-app"))
    owner = await api.add_user("owner@contoso.example")
    other_owner = await api.add_user("other@contoso.example")
    guest = await api.add_user(GUEST, "Guest")
    mine = await create(api, app["Authorization"].split()[1], displayName="Mine")
    theirs = await create(api, app["Authorization"].split()[1], displayName="Theirs")
    await api.rt.store.add_group_owner(mine["id"], owner["id"])
    await api.rt.store.add_group_owner(theirs["id"], other_owner["id"])
    token = bearer(await api.user_token(owner))
    added = await api.client.post(f"/v1.0/groups/{mine['id']}/members/$ref", json=ref(guest), headers=token)
    assert added.status_code == 204, added.text
    assert await api.rt.store.list_group_members(mine["id"]) == [guest["id"]]
    (record,) = [r for r in audit_records(caplog) if r["action"] == "addMember"]
    assert record["actor"] == {"kind": "user", "id": owner["id"]}
    assert record["target"] == f"{mine['id']}/{guest['id']}"
    await api.rt.store.add_group_member(theirs["id"], guest["id"])
    before = await snapshot(api)
    horizontal = [
        api.client.post(f"/v1.0/groups/{theirs['id']}/members/$ref", json=ref(owner), headers=token),
        api.client.delete(f"/v1.0/groups/{theirs['id']}/members/{guest['id']}/$ref", headers=token),
        api.client.post(f"/v1.0/groups/{mine['id']}/owners/$ref", json=ref(guest), headers=token),
        api.client.delete(f"/v1.0/groups/{mine['id']}/owners/{owner['id']}/$ref", headers=token),
        api.client.patch(f"/v1.0/groups/{mine['id']}", json={"displayName": "X"}, headers=token),
        api.client.delete(f"/v1.0/groups/{mine['id']}", headers=token),
    ]
    for call in horizontal:
        assert_error(await call, 403, "accessDenied", "insufficient_privileges")
    assert await snapshot(api) == before
    removed = await api.client.delete(f"/v1.0/groups/{mine['id']}/members/{guest['id']}/$ref", headers=token)
    assert removed.status_code == 204 and await api.rt.store.list_group_members(mine["id"]) == []


async def test_guest_access_levels_for_reading_groups(api_with: ApiFactory) -> None:
    expectations = {"sameAsMembers": (200, 200), "limited": (403, 200), "restricted": (403, 403)}
    for level, (list_status, get_status) in expectations.items():
        async with api_with(external_collaboration={"guest_user_role": level}) as api:
            guest = await api.add_user(f"{level.lower()}@fabrikam.example", "Guest")
            group = {"id": "11111111-1111-4111-8111-111111111111", "displayName": "G"}
            await api.rt.store.create_group(group)
            token = bearer(await api.user_token(guest))
            assert (await api.client.get("/v1.0/groups", headers=token)).status_code == list_status, level
            assert (
                await api.client.get(f"/v1.0/groups/{group['id']}", headers=token)
            ).status_code == get_status
            members = await api.client.get(f"/v1.0/groups/{group['id']}/members", headers=token)
            assert members.status_code == get_status, level
            await api.rt.store.delete_group(group["id"])
