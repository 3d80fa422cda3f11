"""App role assignments (``/servicePrincipals/{id}/appRoleAssignedTo``, ``/users/{id}/appRoleAssignments``)
and app owners: who may assign (permissions, administrators, owners of *that* app only), the body's
rules (400, 404, 409) with nothing stored, and an audit record for every write."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.admin.models import DEFAULT_ACCESS_ROLE_ID
from tests.admin.conftest import ApiFactory
from tests.admin.helpers import ADMIN, ISSUER, MEMBER, Api, _confidential, applications, assert_error, bearer

ROLE_ID = "6a1b2c3d-0000-4000-8000-00000000beef"
CRM: dict[str, Any] = {
    "id": "crm",
    "name": "Contoso CRM",
    "oidc": {"client_id": "crm", "redirect_uris": ["https://crm.contoso.example/cb"]},
    "app_roles": [{"id": ROLE_ID, "value": "Reader", "display_name": "Reader"}],
    "assignment_required": True,
}
WIKI = {**CRM, "id": "wiki", "name": "Wiki", "oidc": {**CRM["oidc"], "client_id": "wiki"}}
BASE = f"/v1.0/servicePrincipals/{CRM['id']}/appRoleAssignedTo"


@pytest.fixture
async def api(api_with: ApiFactory) -> AsyncIterator[Api]:
    apps = [*applications(), CRM, WIKI, _confidential("assigner-app", ["AppRoleAssignment.ReadWrite.All"])]
    async with api_with(applications=apps) as running:
        yield running


def payload(principal: str, role: str = ROLE_ID, resource: str = "crm") -> dict[str, Any]:
    return {"principalId": principal, "resourceId": resource, "appRoleId": role}


async def stored(api: Api) -> list[dict[str, Any]]:
    return await api.rt.store.list_app_role_assignments(resource_id="crm")


def audits(caplog: pytest.LogCaptureFixture, action: str) -> list[dict[str, Any]]:
    records = [json.loads(r.getMessage()) for r in caplog.records if r.name == "gateway.audit"]
    return [r for r in records if r["action"] == action]


async def test_an_assigner_app_assigns_lists_and_removes(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    guest = await api.add_user("guest@partner.example", "Guest")
    auth = bearer(await api.app_token("assigner-app"))
    created = await api.client.post(BASE, json=payload(guest["id"]), headers=auth)
    assert created.status_code == 201, created.text
    body = created.json()
    assert uuid.UUID(body["id"]).version == 4
    assert body["principalType"] == "User" and body["resourceId"] == "crm" and body["appRoleId"] == ROLE_ID
    assert body["createdDateTime"].endswith("Z")
    assert created.headers["location"] == f"{ISSUER}{BASE}/{body['id']}"
    listed = await api.client.get(BASE, headers=auth)
    assert [a["id"] for a in listed.json()["value"]] == [body["id"]]
    mine = await api.client.get(f"/v1.0/users/{guest['id']}/appRoleAssignments", headers=auth)
    assert [a["id"] for a in mine.json()["value"]] == [body["id"]]
    deleted = await api.client.delete(f"{BASE}/{body['id']}", headers=auth)
    assert deleted.status_code == 204
    assert await stored(api) == []
    assert audits(caplog, "addAppRoleAssignment") and audits(caplog, "removeAppRoleAssignment")


async def test_a_group_gets_default_access(api: Api) -> None:
    group = {"id": str(uuid.uuid4()), "displayName": "Partners"}
    await api.rt.store.create_group(group)
    auth = bearer(await api.user_token(await api.add_user(ADMIN)))
    created = await api.client.post(BASE, json=payload(group["id"], DEFAULT_ACCESS_ROLE_ID), headers=auth)
    assert created.status_code == 201, created.text
    assert created.json()["principalType"] == "Group"


async def test_an_owner_assigns_to_their_app_but_not_to_another(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    owner = await api.add_user(MEMBER)
    guest = await api.add_user("guest@partner.example", "Guest")
    await api.rt.store.add_app_owner("crm", owner["id"])
    auth = bearer(await api.user_token(owner))
    created = await api.client.post(BASE, json=payload(guest["id"]), headers=auth)
    assert created.status_code == 201, created.text
    other = await api.client.post(
        "/v1.0/servicePrincipals/wiki/appRoleAssignedTo", json=payload(guest["id"], resource="wiki"),
        headers=auth,
    )  # fmt: skip
    assert_error(other, 403, "accessDenied", "insufficient_privileges")
    assert await api.rt.store.list_app_role_assignments(resource_id="wiki") == []
    listed = await api.client.get("/v1.0/servicePrincipals/wiki/appRoleAssignedTo", headers=auth)
    assert_error(listed, 403, "accessDenied", "insufficient_privileges")
    assert [r["result"] for r in audits(caplog, "addAppRoleAssignment")] == ["success", "failure"]
    owners = await api.client.post(
        "/v1.0/servicePrincipals/crm/owners/$ref",
        json={"@odata.id": f"{ISSUER}/v1.0/directoryObjects/{guest['id']}"}, headers=auth,
    )  # fmt: skip
    assert_error(owners, 403, "accessDenied", "insufficient_privileges")
    assert await api.rt.store.list_app_owners("crm") == [owner["id"]]


async def test_a_plain_member_and_an_unprivileged_app_may_not_assign(api: Api) -> None:
    guest = await api.add_user("guest@partner.example", "Guest")
    for token in (await api.user_token(await api.add_user(MEMBER)), await api.app_token("inviter-app")):
        response = await api.client.post(BASE, json=payload(guest["id"]), headers=bearer(token))
        assert_error(response, 403, "accessDenied", "insufficient_privileges")
    assert await stored(api) == []


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"principalId": "x", "resourceId": "crm", "appRoleId": ROLE_ID}, "invalid_field"),
        ({"resourceId": "crm", "appRoleId": ROLE_ID}, "invalid_field"),
        ({"principalId": "{guest}", "resourceId": "wiki", "appRoleId": ROLE_ID}, "resource_mismatch"),
        ({"principalId": "{guest}", "resourceId": "crm", "appRoleId": str(uuid.uuid4())}, "unknown_app_role"),
        (
            {"principalId": "{guest}", "resourceId": "crm", "appRoleId": ROLE_ID, "id": "x"},
            "read_only_property",
        ),
        ({"principalId": "{guest}", "resourceId": "crm", "appRoleId": 7}, "invalid_field"),
    ],
)
async def test_bad_bodies_are_400_and_store_nothing(api: Api, body: dict[str, Any], reason: str) -> None:
    guest = await api.add_user("guest@partner.example", "Guest")
    filled = {k: (guest["id"] if v == "{guest}" else v) for k, v in body.items()}
    response = await api.client.post(BASE, json=filled, headers=bearer(await api.app_token("assigner-app")))
    assert_error(response, 400, "invalidRequest", reason)
    assert await stored(api) == []


async def test_unknown_app_principal_and_duplicate(api: Api) -> None:
    auth = bearer(await api.app_token("assigner-app"))
    guest = await api.add_user("guest@partner.example", "Guest")
    missing = await api.client.post(
        "/v1.0/servicePrincipals/nope/appRoleAssignedTo",
        json=payload(guest["id"], resource="nope"),
        headers=auth,
    )
    assert_error(missing, 404, "itemNotFound", "app_not_found")
    nobody = await api.client.post(BASE, json=payload(str(uuid.uuid4())), headers=auth)
    assert_error(nobody, 404, "itemNotFound", "principal_not_found")
    assert await stored(api) == []
    first = await api.client.post(BASE, json=payload(guest["id"]), headers=auth)
    assert first.status_code == 201
    again = await api.client.post(BASE, json=payload(guest["id"]), headers=auth)
    assert_error(again, 409, "conflict", "assignment_exists")
    assert len(await stored(api)) == 1
    gone = await api.client.delete(f"{BASE}/{uuid.uuid4()}", headers=auth)
    assert_error(gone, 404, "itemNotFound", "assignment_not_found")


async def test_an_assignment_of_another_app_cannot_be_deleted_through_this_one(api: Api) -> None:
    guest = await api.add_user("guest@partner.example", "Guest")
    auth = bearer(await api.app_token("assigner-app"))
    created = await api.client.post(BASE, json=payload(guest["id"]), headers=auth)
    wrong = await api.client.delete(
        f"/v1.0/servicePrincipals/wiki/appRoleAssignedTo/{created.json()['id']}", headers=auth
    )
    assert_error(wrong, 404, "itemNotFound", "assignment_not_found")
    assert len(await stored(api)) == 1


async def test_a_user_reads_their_own_assignments_only(api: Api) -> None:
    me = await api.add_user(MEMBER)
    other = await api.add_user("other@contoso.example")
    auth = bearer(await api.user_token(me))
    own = await api.client.get(f"/v1.0/users/{me['id']}/appRoleAssignments", headers=auth)
    assert own.status_code == 200 and own.json()["value"] == []
    theirs = await api.client.get(f"/v1.0/users/{other['id']}/appRoleAssignments", headers=auth)
    assert_error(theirs, 403, "accessDenied", "insufficient_privileges")


async def test_admins_manage_app_owners(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    auth = bearer(await api.user_token(await api.add_user(ADMIN)))
    user = await api.add_user(MEMBER)
    ref = {"@odata.id": f"{ISSUER}/v1.0/directoryObjects/{user['id']}"}
    added = await api.client.post("/v1.0/servicePrincipals/crm/owners/$ref", json=ref, headers=auth)
    assert added.status_code == 204, added.text
    listed = await api.client.get("/v1.0/servicePrincipals/crm/owners", headers=auth)
    assert [u["id"] for u in listed.json()["value"]] == [user["id"]]
    twice = await api.client.post("/v1.0/servicePrincipals/crm/owners/$ref", json=ref, headers=auth)
    assert_error(twice, 400, "invalidRequest", "reference_exists")
    bad = await api.client.post(
        "/v1.0/servicePrincipals/crm/owners/$ref", json={"@odata.id": "https://evil.example/x"}, headers=auth
    )
    assert_error(bad, 400, "invalidRequest", "invalid_reference")
    removed = await api.client.delete(f"/v1.0/servicePrincipals/crm/owners/{user['id']}/$ref", headers=auth)
    assert removed.status_code == 204
    assert await api.rt.store.list_app_owners("crm") == []
    assert len(audits(caplog, "addAppOwner")) == 3 and audits(caplog, "removeAppOwner")
