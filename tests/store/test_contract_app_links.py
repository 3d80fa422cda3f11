"""The store contract for app role assignments and application owners: every test runs against
SQLite and against a real Redis (``backend``)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.store.conftest import Backend

ISS = "https://idp.partner.example"
T0 = 1_700_000_000
DEFAULT_ROLE = "00000000-0000-0000-0000-000000000000"


def assignment(id: str, principal: str, resource: str = "app-1", **fields: Any) -> dict[str, Any]:
    return {
        "id": id,
        "appRoleId": DEFAULT_ROLE,
        "principalId": principal,
        "principalType": "User",
        "resourceId": resource,
        "createdDateTime": "2023-11-14T22:13:20Z",
        **fields,
    }


async def setup(backend: Backend) -> None:
    for user_id in ("u1", "u2"):
        assert await backend.store.create_user({"id": user_id}, [(ISS, user_id)])
    await backend.store.create_group({"id": "g1", "displayName": "G1"})


async def listed(backend: Backend, **query: Any) -> list[str]:
    return [a["id"] for a in await backend.store.list_app_role_assignments(**query)]


# -- app role assignments ----------------------------------------------------------------------


async def test_assignments_are_listed_by_resource_and_by_principal(backend: Backend) -> None:
    s = backend.store
    await setup(backend)
    added = [
        assignment("a3", "u1"),
        assignment("a1", "u2", principalDisplayName="U2 ✓"),
        assignment("a2", "g1", principalType="Group"),
        assignment("a4", "u1", "app-2", appRoleId="role-admin"),
        assignment("a0", "u1", "app-2"),
    ]
    for item in added:
        assert await s.add_app_role_assignment(item) is True
    assert await s.list_app_role_assignments(resource_id="app-1") == [added[1], added[2], added[0]]
    assert await listed(backend, resource_id="app-2") == ["a0", "a4"]
    assert await listed(backend, principal_id="u1") == ["a0", "a3", "a4"]
    assert await listed(backend, principal_id="g1") == ["a2"]
    assert await listed(backend, principal_id="u1", resource_id="app-2") == ["a0", "a4"]
    assert await listed(backend, principal_id="u2", resource_id="app-2") == []
    assert await listed(backend) == ["a0", "a1", "a2", "a3", "a4"]
    assert await listed(backend, resource_id="app-none") == []

    assert await s.remove_app_role_assignment("a3") is True
    assert await s.remove_app_role_assignment("a3") is False
    assert await s.remove_app_role_assignment("a-none") is False
    assert await listed(backend, principal_id="u1") == ["a0", "a4"]
    assert await listed(backend, resource_id="app-1") == ["a1", "a2"]
    assert await s.add_app_role_assignment(assignment("a5", "u1")) is True  # its triple is free again


async def test_one_assignment_per_principal_resource_and_role(backend: Backend) -> None:
    s = backend.store
    await setup(backend)
    assert await s.add_app_role_assignment(assignment("a1", "u1")) is True
    assert await s.add_app_role_assignment(assignment("a2", "u1")) is False  # same triple
    assert await s.add_app_role_assignment(assignment("a1", "u1")) is False  # the same one again
    assert await s.add_app_role_assignment(assignment("a3", "u1", appRoleId="other")) is True
    assert await s.add_app_role_assignment(assignment("a4", "u1", "app-2")) is True
    with pytest.raises(ValueError, match="an app role assignment with id 'a1' already exists"):
        await s.add_app_role_assignment(assignment("a1", "u2"))
    assert await listed(backend) == ["a1", "a3", "a4"]
    assert await listed(backend, principal_id="u2") == []


async def test_triples_that_run_together_stay_apart(backend: Backend) -> None:
    s = backend.store
    for user_id in ("a", "ab", "1:a"):
        assert await s.create_user({"id": user_id}, [(ISS, user_id)])
    assert await s.add_app_role_assignment(assignment("x1", "a", "bc", appRoleId="d"))
    assert await s.add_app_role_assignment(assignment("x2", "ab", "c", appRoleId="d"))
    assert await s.add_app_role_assignment(assignment("x3", "a", "b", appRoleId="cd"))
    assert await s.add_app_role_assignment(assignment("x4", "1:a", "b", appRoleId="cd"))
    assert await listed(backend, principal_id="a") == ["x1", "x3"]
    assert await listed(backend, resource_id="b") == ["x3", "x4"]
    assert await listed(backend, resource_id="bc") == ["x1"]


async def test_the_principal_must_exist(backend: Backend) -> None:
    s = backend.store
    await setup(backend)
    await s.soft_delete_user("u2", T0)
    with pytest.raises(KeyError, match="no user with id 'u-none'"):
        await s.add_app_role_assignment(assignment("a1", "u-none"))
    with pytest.raises(KeyError, match="no user with id 'u2'"):
        await s.add_app_role_assignment(assignment("a1", "u2"))
    with pytest.raises(KeyError, match="no group with id 'u1'"):
        await s.add_app_role_assignment(assignment("a1", "u1", principalType="Group"))
    with pytest.raises(KeyError, match="no user with id 'g1'"):
        await s.add_app_role_assignment(assignment("a1", "g1"))
    assert await listed(backend) == []
    assert await s.add_app_role_assignment(assignment("a1", "g1", principalType="Group")) is True


async def test_a_soft_deleted_users_assignments_are_hidden_until_restored(backend: Backend) -> None:
    s = backend.store
    await setup(backend)
    assert await s.add_app_role_assignment(assignment("a1", "u1"))
    assert await s.add_app_role_assignment(assignment("a2", "u2"))
    assert await s.add_app_role_assignment(assignment("a3", "g1", principalType="Group"))
    await s.soft_delete_user("u1", T0)
    assert await listed(backend) == ["a2", "a3"]
    assert await listed(backend, resource_id="app-1") == ["a2", "a3"]
    assert await listed(backend, principal_id="u1") == []
    assert await s.add_app_role_assignment(assignment("a4", "u2")) is False  # others unaffected
    await s.restore_user("u1")
    assert await listed(backend, principal_id="u1") == ["a1"]
    assert await listed(backend) == ["a1", "a2", "a3"]


@pytest.mark.parametrize(
    ("bad", "error", "message"),
    [
        (["a1"], TypeError, "app role assignment must be a JSON object"),
        (assignment("", "u1"), ValueError, r"appRoleAssignment\['id'\] must be a non-empty string"),
        ({**assignment("a1", "u1"), "appRoleId": None}, ValueError, r"'appRoleId'\] must be a non-empty"),
        (assignment("a1", ""), ValueError, r"'principalId'\] must be a non-empty"),
        (assignment("a1", "u1", ""), ValueError, r"'resourceId'\] must be a non-empty"),
        (assignment("a1", "u1", 7), ValueError, r"'resourceId'\] must be a non-empty"),  # type: ignore[arg-type]
        (assignment("a1", "u1", "r" * 1025), ValueError, "longer than 1024"),
        (
            assignment("a1", "u1", principalType="user"),
            ValueError,
            "principalType'] must be one of User, Group",
        ),
        ({k: v for k, v in assignment("a1", "u1").items() if k != "principalType"}, ValueError, "one of"),
        (assignment("a1", "u1", principalType=["User"]), ValueError, "one of User, Group"),
        (assignment("a1", "u1", createdDateTime=1700000000), TypeError, "createdDateTime"),
        (assignment("a1", "u1", note="x" * 70_000), ValueError, "larger than 65536 characters"),
    ],
)
async def test_bad_assignments_are_refused_and_nothing_is_written(
    backend: Backend, bad: Any, error: type[Exception], message: str
) -> None:
    s = backend.store
    await setup(backend)
    with pytest.raises(error, match=message):
        await s.add_app_role_assignment(bad)
    assert await listed(backend) == []
    assert await s.add_app_role_assignment(assignment("a1", "u1")) is True  # nothing was claimed


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (("remove_app_role_assignment", ""), "app role assignment id must be a non-empty string"),
        (("list_app_role_assignments", {"resource_id": ""}), "resource id must be a non-empty string"),
        (("list_app_role_assignments", {"principal_id": 5}), "principal id must be a non-empty string"),
    ],
)
async def test_bad_assignment_ids_are_refused(backend: Backend, call: tuple[Any, ...], message: str) -> None:
    s = backend.store
    await setup(backend)
    assert await s.add_app_role_assignment(assignment("a1", "u1"))
    name, arg = call
    with pytest.raises(ValueError, match=message):
        await (getattr(s, name)(**arg) if isinstance(arg, dict) else getattr(s, name)(arg))
    assert await listed(backend) == ["a1"]


# -- application owners ------------------------------------------------------------------------


async def test_app_owners_are_indexed_both_ways(backend: Backend) -> None:
    s = backend.store
    await setup(backend)
    assert await s.add_app_owner("app-2", "u1") is True
    assert await s.add_app_owner("app-1", "u2") is True
    assert await s.add_app_owner("app-1", "u1") is True
    assert await s.add_app_owner("app-1", "u1") is False
    assert await s.list_app_owners("app-1") == ["u1", "u2"]
    assert await s.list_owned_apps("u1") == ["app-1", "app-2"]
    assert await s.list_app_owners("app-none") == []
    assert await s.list_owned_groups("u1") == []  # apps and groups are apart
    assert await s.remove_app_owner("app-1", "u1") is True
    assert await s.remove_app_owner("app-1", "u1") is False
    assert await s.list_app_owners("app-1") == ["u2"]
    assert await s.list_owned_apps("u1") == ["app-2"]


async def test_an_app_owner_must_be_a_live_user(backend: Backend) -> None:
    s = backend.store
    await setup(backend)
    await s.soft_delete_user("u2", T0)
    with pytest.raises(KeyError, match="no user with id 'u-none'"):
        await s.add_app_owner("app-1", "u-none")
    with pytest.raises(KeyError, match="no user with id 'u2'"):
        await s.add_app_owner("app-1", "u2")
    assert await s.list_app_owners("app-1") == []
    assert await s.list_owned_apps("u-none") == []


@pytest.mark.parametrize("method", ["add_app_owner", "remove_app_owner"])
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("", "u1"), "app id must be a non-empty string"),
        (("app-1", None), "user id must be a non-empty string"),
        (("a" * 1025, "u1"), "longer than 1024"),
    ],
)
async def test_bad_app_owner_ids_are_refused_and_nothing_changes(
    backend: Backend, method: str, args: tuple[Any, Any], message: str
) -> None:
    s = backend.store
    await setup(backend)
    await s.add_app_owner("app-1", "u1")
    with pytest.raises(ValueError, match=message):
        await getattr(s, method)(*args)
    assert await s.list_app_owners("app-1") == ["u1"]
    with pytest.raises(ValueError, match="app id must be a non-empty string"):
        await s.list_app_owners("")
