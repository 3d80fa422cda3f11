"""The store contract for groups, their members and owners, and what deleting a user or a group
does to those links: every test runs against SQLite and against a real Redis (``backend``)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.store.conftest import Backend

ISS = "https://idp.partner.example"
T0 = 1_700_000_000


def group(group_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": group_id,
        "displayName": f"Group {group_id}",
        "description": None,
        "mailNickname": group_id,
        "securityEnabled": True,
        "createdDateTime": "2023-11-14T22:13:20Z",
        **fields,
    }


async def users(backend: Backend, *user_ids: str) -> None:
    for user_id in user_ids:
        assert await backend.store.create_user({"id": user_id}, [(ISS, user_id)])


async def groups(backend: Backend, *group_ids: str) -> None:
    for group_id in group_ids:
        await backend.store.create_group(group(group_id))


# -- group objects -----------------------------------------------------------------------------


async def test_create_get_update_and_list_groups(backend: Backend) -> None:
    s = backend.store
    sales = group("g-sales", description="Sales ✓", extra={"kept": [1, 2]})
    await s.create_group(sales)
    assert await s.get_group("g-sales") == sales
    assert await s.get_group("g-none") is None
    await groups(backend, "g-b", "g-a", "g-é", "g-Z")
    assert [g["id"] for g in (await s.list_groups())[0]] == ["g-Z", "g-a", "g-b", "g-sales", "g-é"]
    page, cursor = await s.list_groups(limit=2)
    assert ([g["id"] for g in page], cursor) == (["g-Z", "g-a"], "g-a")
    page, cursor = await s.list_groups(limit=3, after=cursor)
    assert ([g["id"] for g in page], cursor) == (["g-b", "g-sales", "g-é"], None)
    assert await s.list_groups(after="g-é") == ([], None)

    renamed = {**sales, "displayName": "Sales EMEA", "securityEnabled": False}
    await s.update_group(renamed)
    assert await s.get_group("g-sales") == renamed


async def test_a_taken_group_id_is_refused_and_the_group_kept(backend: Backend) -> None:
    s = backend.store
    await s.create_group(group("g1"))
    with pytest.raises(ValueError, match="a group with id 'g1' already exists"):
        await s.create_group(group("g1", displayName="Other"))
    assert await s.get_group("g1") == group("g1")
    assert await s.list_groups() == ([group("g1")], None)


async def test_updating_an_absent_group_writes_nothing(backend: Backend) -> None:
    s = backend.store
    with pytest.raises(KeyError, match="g1"):
        await s.update_group(group("g1"))
    assert await s.get_group("g1") is None
    assert await s.list_groups() == ([], None)


@pytest.mark.parametrize(
    ("bad", "error", "message"),
    [
        ("not a dict", TypeError, "group must be a JSON object"),
        ({"displayName": "No id"}, ValueError, r"group\['id'\] must be a non-empty string"),
        (group(""), ValueError, r"group\['id'\] must be a non-empty string"),
        (group("g" * 1025), ValueError, "longer than 1024"),
        ({"id": "g1"}, ValueError, r"group\['displayName'\] is required"),
        (group("g1", displayName=""), ValueError, "must not be empty"),
        (group("g1", displayName=None), TypeError, r"displayName'\] must be a string"),
        (group("g1", displayName="x" * 257), ValueError, "longer than 256"),
        (group("g1", description=5), TypeError, r"description'\] must be a string"),
        (group("g1", description="x" * 1025), ValueError, "longer than 1024"),
        (group("g1", mailNickname="x" * 65), ValueError, "longer than 64"),
        (group("g1", mailNickname=""), ValueError, "must not be empty"),
        (group("g1", securityEnabled="yes"), TypeError, "must be true or false"),
        (group("g1", mailEnabled=1), TypeError, "must be true or false"),
        (group("g1", createdDateTime=1700000000), TypeError, "createdDateTime"),
        (group("g1", notes="x" * 70_000), ValueError, "larger than 65536 characters"),
        (group("g1", score=float("nan")), ValueError, "not JSON-serialisable"),
        (group("g1", when=object()), TypeError, "not JSON-serialisable"),
    ],
)
async def test_bad_groups_are_refused_and_nothing_is_written(
    backend: Backend, bad: Any, error: type[Exception], message: str
) -> None:
    s = backend.store
    await s.create_group(group("g-kept"))
    with pytest.raises(error, match=message):
        await s.create_group(bad)
    assert await s.list_groups() == ([group("g-kept")], None)
    with pytest.raises(error, match=message):
        await s.update_group(
            {**bad, "id": "g-kept"} if isinstance(bad, dict) and bad.get("id") == "g1" else bad
        )
    assert await s.get_group("g-kept") == group("g-kept")


# -- members and owners ------------------------------------------------------------------------


async def test_members_are_indexed_both_ways(backend: Backend) -> None:
    s = backend.store
    await users(backend, "u-b", "u-a", "u-c")
    await groups(backend, "g2", "g1")
    assert await s.add_group_member("g1", "u-b") is True
    assert await s.add_group_member("g1", "u-a") is True
    assert await s.add_group_member("g1", "u-a") is False  # already a member
    assert await s.add_group_member("g2", "u-a") is True
    assert await s.list_group_members("g1") == ["u-a", "u-b"]
    assert await s.list_group_members("g2") == ["u-a"]
    assert await s.list_user_groups("u-a") == ["g1", "g2"]
    assert await s.list_user_groups("u-c") == []
    assert await s.list_group_members("g-none") == []
    assert await s.list_group_owners("g1") == []  # members are not owners
    assert await s.list_owned_groups("u-a") == []

    assert await s.remove_group_member("g1", "u-a") is True
    assert await s.remove_group_member("g1", "u-a") is False
    assert await s.remove_group_member("g-none", "u-a") is False
    assert await s.list_group_members("g1") == ["u-b"]
    assert await s.list_user_groups("u-a") == ["g2"]


async def test_owners_are_indexed_both_ways(backend: Backend) -> None:
    s = backend.store
    await users(backend, "u1", "u2")
    await groups(backend, "g1", "g2")
    assert await s.add_group_owner("g2", "u1") is True
    assert await s.add_group_owner("g1", "u1") is True
    assert await s.add_group_owner("g1", "u1") is False
    assert await s.add_group_owner("g1", "u2") is True
    assert await s.list_group_owners("g1") == ["u1", "u2"]
    assert await s.list_owned_groups("u1") == ["g1", "g2"]
    assert await s.list_group_members("g1") == []  # owners are not members
    assert await s.list_user_groups("u1") == []
    assert await s.remove_group_owner("g1", "u1") is True
    assert await s.remove_group_owner("g1", "u1") is False
    assert await s.list_group_owners("g1") == ["u2"]
    assert await s.list_owned_groups("u1") == ["g2"]


async def test_ids_that_run_together_stay_apart(backend: Backend) -> None:
    s = backend.store
    await users(backend, "1u", "u", "2:x")
    await groups(backend, "g", "g1", "1:g")
    assert await s.add_group_member("g", "1u")  # "g" + "1u" == "g1" + "u"
    assert await s.add_group_member("g1", "u")
    assert await s.add_group_member("1:g", "2:x")
    assert await s.list_group_members("g") == ["1u"]
    assert await s.list_group_members("g1") == ["u"]
    assert await s.list_group_members("1:g") == ["2:x"]
    assert await s.list_user_groups("u") == ["g1"]
    assert await s.list_user_groups("1u") == ["g"]
    assert await s.remove_group_member("g", "u") is False


async def test_links_need_a_group_and_a_live_user(backend: Backend) -> None:
    s = backend.store
    await users(backend, "u1", "u-gone")
    await groups(backend, "g1")
    await s.soft_delete_user("u-gone", T0)
    for add in (s.add_group_member, s.add_group_owner):
        with pytest.raises(KeyError, match="no group with id 'g-none'"):
            await add("g-none", "u1")
        with pytest.raises(KeyError, match="no user with id 'u-none'"):
            await add("g1", "u-none")
        with pytest.raises(KeyError, match="no user with id 'u-gone'"):
            await add("g1", "u-gone")
    assert await s.list_group_members("g-none") == []
    assert await s.list_user_groups("u1") == []
    assert await s.list_owned_groups("u1") == []
    assert await s.list_group_members("g1") == []
    assert await s.list_group_owners("g1") == []


@pytest.mark.parametrize(
    "method", ["add_group_member", "remove_group_member", "add_group_owner", "remove_group_owner"]
)
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("", "u1"), "group id must be a non-empty string"),
        ((None, "u1"), "group id must be a non-empty string"),
        (("g1", ""), "user id must be a non-empty string"),
        (("g1", 7), "user id must be a non-empty string"),
        (("g1", "u" * 1025), "longer than 1024"),
    ],
)
async def test_bad_link_ids_are_refused_and_nothing_changes(
    backend: Backend, method: str, args: tuple[Any, Any], message: str
) -> None:
    s = backend.store
    await users(backend, "u1")
    await groups(backend, "g1")
    await s.add_group_member("g1", "u1")
    await s.add_group_owner("g1", "u1")
    with pytest.raises(ValueError, match=message):
        await getattr(s, method)(*args)
    assert await s.list_group_members("g1") == ["u1"]
    assert await s.list_group_owners("g1") == ["u1"]


@pytest.mark.parametrize("method", ["list_group_members", "list_group_owners"])
async def test_listing_needs_a_group_id(backend: Backend, method: str) -> None:
    with pytest.raises(ValueError, match="group id must be a non-empty string"):
        await getattr(backend.store, method)("")


@pytest.mark.parametrize("method", ["list_user_groups", "list_owned_groups", "list_owned_apps"])
async def test_listing_needs_a_user_id(backend: Backend, method: str) -> None:
    with pytest.raises(ValueError, match="user id must be a non-empty string"):
        await getattr(backend.store, method)(["u1"])


# -- deleting ----------------------------------------------------------------------------------


async def test_deleting_a_group_removes_its_links(backend: Backend) -> None:
    s = backend.store
    await users(backend, "u1", "u2")
    await groups(backend, "g1", "g2")
    for group_id in ("g1", "g2"):
        await s.add_group_member(group_id, "u1")
        await s.add_group_owner(group_id, "u2")
    assignment = {
        "id": "a1", "appRoleId": "r", "principalId": "g1", "principalType": "Group", "resourceId": "app",
    }  # fmt: skip
    assert await s.add_app_role_assignment(assignment)
    assert await s.add_app_role_assignment({**assignment, "id": "a2", "principalId": "g2"})
    assert await s.delete_group("g1") is True
    assert await s.delete_group("g1") is False
    assert await s.get_group("g1") is None
    assert await s.list_groups() == ([group("g2")], None)
    assert await s.list_user_groups("u1") == ["g2"]
    assert await s.list_owned_groups("u2") == ["g2"]
    assert [a["id"] for a in await s.list_app_role_assignments(resource_id="app")] == ["a2"]
    await s.create_group(group("g1"))  # the id again: a new, empty group
    assert await s.list_group_members("g1") == []
    assert await s.list_group_owners("g1") == []
    assert await s.list_app_role_assignments(principal_id="g1") == []
    assert await s.add_app_role_assignment(assignment) is True  # its triple is free again


async def test_deleting_a_user_removes_its_links(backend: Backend) -> None:
    s = backend.store
    await users(backend, "u1", "u2")
    await groups(backend, "g1")
    await s.add_group_member("g1", "u1")
    await s.add_group_member("g1", "u2")
    await s.add_group_owner("g1", "u1")
    await s.add_app_owner("app", "u1")
    role = {"id": "a1", "appRoleId": "r", "principalId": "u1", "principalType": "User", "resourceId": "app"}
    assert await s.add_app_role_assignment(role)
    assert await s.add_app_role_assignment({**role, "id": "a2", "principalId": "u2"})
    assert await s.delete_user("u1") is True
    assert await s.list_group_members("g1") == ["u2"]
    assert await s.list_group_owners("g1") == []
    assert await s.list_app_owners("app") == []
    assert [a["id"] for a in await s.list_app_role_assignments(resource_id="app")] == ["a2"]
    assert await s.create_user({"id": "u1"}, [(ISS, "u1")])  # the id again: a new user, no links
    assert await s.list_user_groups("u1") == []
    assert await s.list_owned_groups("u1") == []
    assert await s.list_owned_apps("u1") == []
    assert await s.list_app_role_assignments(principal_id="u1") == []
    assert await s.add_app_role_assignment(role) is True


async def test_a_soft_deleted_user_keeps_its_links_hidden_until_restored(backend: Backend) -> None:
    s = backend.store
    await users(backend, "u1", "u2")
    await groups(backend, "g1")
    await s.add_group_member("g1", "u1")
    await s.add_group_member("g1", "u2")
    await s.add_group_owner("g1", "u1")
    await s.add_app_owner("app", "u1")
    await s.soft_delete_user("u1", T0)
    assert await s.list_group_members("g1") == ["u2"]
    assert await s.list_group_owners("g1") == []
    assert await s.list_user_groups("u1") == []
    assert await s.list_owned_groups("u1") == []
    assert await s.list_app_owners("app") == []
    assert await s.list_owned_apps("u1") == []
    assert await s.restore_user("u1") is not None
    assert await s.list_group_members("g1") == ["u1", "u2"]
    assert await s.list_group_owners("g1") == ["u1"]
    assert await s.list_user_groups("u1") == ["g1"]
    assert await s.list_owned_apps("u1") == ["app"]

    await s.soft_delete_user("u1", T0)
    assert await s.purge_deleted_users(T0 + 1) == 1  # purged: links gone for good
    assert await s.list_group_members("g1") == ["u2"]
    assert await s.create_user({"id": "u1"}, [(ISS, "again")])
    assert await s.list_user_groups("u1") == []
    assert await s.list_owned_apps("u1") == []
