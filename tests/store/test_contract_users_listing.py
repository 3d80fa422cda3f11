"""The store contract for ``list_users`` and the soft-delete lifecycle (``soft_delete_user``,
``restore_user``, ``get_deleted_user``, ``purge_deleted_users``): every test runs against SQLite
and against a real Redis (``backend``)."""

from __future__ import annotations

from typing import Any

import pytest

import gateway.store.redis_directory as redis_directory
import gateway.store.sqlite_directory as sqlite_directory
from tests.store.conftest import Backend

ISS = "https://idp.partner.example"
T0 = 1_700_000_000  # 2023-11-14T22:13:20Z
DAY = 86_400


def guest(user_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": user_id, "userType": "Guest", "accountEnabled": True, **fields}


async def make(backend: Backend, *users: dict[str, Any]) -> None:
    for user in users:
        assert await backend.store.create_user(user, [(ISS, f"sub-{user['id']}")])


async def ids(backend: Backend, **query: Any) -> tuple[list[str], str | None]:
    page, cursor = await backend.store.list_users(**query)
    return [user["id"] for user in page], cursor


async def all_ids(backend: Backend, **query: Any) -> list[str]:
    """Every page, following the cursors."""
    found: list[str] = []
    after = None
    while True:
        page, after = await ids(backend, after=after, **query)
        found += page
        if after is None:
            return found


# -- list_users --------------------------------------------------------------------------------


async def test_pages_follow_id_order_and_the_last_page_has_no_cursor(backend: Backend) -> None:
    await make(backend, *(guest(user_id) for user_id in ("u-c", "u-a", "u-é", "u-b", "u-z", "u-B")))
    assert await ids(backend, limit=2) == (["u-B", "u-a"], "u-a")  # byte (code point) order
    assert await ids(backend, limit=2, after="u-a") == (["u-b", "u-c"], "u-c")
    assert await ids(backend, limit=2, after="u-c") == (["u-z", "u-é"], None)  # exactly full: no cursor
    assert await ids(backend, limit=3, after="u-b") == (["u-c", "u-z", "u-é"], None)
    assert await ids(backend, limit=999) == (["u-B", "u-a", "u-b", "u-c", "u-z", "u-é"], None)
    assert await ids(backend, after="u-é") == ([], None)
    assert await ids(backend, after="u-bb") == (["u-c", "u-z", "u-é"], None)  # any string is a cursor
    page, _ = await backend.store.list_users(limit=1)
    assert page == [guest("u-B")]  # whole documents


async def test_an_empty_directory_lists_nothing(backend: Backend) -> None:
    assert await backend.store.list_users() == ([], None)
    assert await backend.store.list_users(deleted=True, mail="a@b.example") == ([], None)


async def test_filters_combine_with_and(backend: Backend) -> None:
    await make(
        backend,
        guest("u1", mail="Shared@X.example", externalUserState="PendingAcceptance"),
        guest("u2", mail="u2@x.example", otherMails=["SHARED@x.example"], externalUserState="Accepted"),
        guest("u3", mail="u3@x.example", externalUserState="PendingAcceptance"),
        {"id": "u4", "userType": "Member", "mail": "shared@x.example", "externalUserState": None},
        guest("u5", otherMails=["shared@x.example"], externalUserState="PendingAcceptance"),
    )
    assert await ids(backend, mail="shared@X.EXAMPLE") == (["u1", "u2", "u4", "u5"], None)
    assert await ids(backend, external_user_state="PendingAcceptance") == (["u1", "u3", "u5"], None)
    assert await ids(backend, user_type="Member") == (["u4"], None)
    assert await ids(backend, user_type="Guest", mail="shared@x.example") == (["u1", "u2", "u5"], None)
    assert await ids(
        backend, mail="shared@x.example", external_user_state="PendingAcceptance", user_type="Guest"
    ) == (["u1", "u5"], None)
    assert await ids(backend, external_user_state="Accepted", user_type="Member") == ([], None)
    assert await ids(backend, external_user_state="pendingacceptance") == ([], None)  # values: exact
    assert await ids(backend, mail="shared@x.example", limit=2) == (["u1", "u2"], "u2")
    assert await ids(backend, mail="shared@x.example", limit=2, after="u2") == (["u4", "u5"], None)
    assert await ids(backend, mail="shared@x.example", after="u1", user_type="Guest") == (["u2", "u5"], None)
    assert await ids(backend, mail="nobody@x.example") == ([], None)


async def test_a_filter_matches_only_its_field_as_a_string(backend: Backend) -> None:
    await make(
        backend,
        {"id": "u1", "userType": 1},
        {"id": "u2", "userType": ["Guest"]},
        {"id": "u3", "externalUserState": {"v": "Accepted"}},
        {"id": "u4", "displayName": "Guest"},
        {"id": "u5", "userType": "1"},
    )
    assert await ids(backend, user_type="1") == (["u5"], None)
    assert await ids(backend, user_type="Guest") == ([], None)
    assert await ids(backend, external_user_state="Accepted") == ([], None)


async def test_sparse_matches_are_found_across_many_scan_batches(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_directory, "SCAN_BATCH", 3)  # Redis scans user-ids in batches
    users = [
        guest(f"u{n:02}", externalUserState="Accepted" if n % 7 == 0 else "PendingAcceptance")
        for n in range(40)
    ]
    await make(backend, *users)
    for n in (3, 4, 5, 30, 31):
        await backend.store.soft_delete_user(f"u{n:02}", T0)
    assert await ids(backend, external_user_state="Accepted", limit=2) == (["u00", "u07"], "u07")
    assert await all_ids(backend, external_user_state="Accepted", limit=2) == [
        "u00", "u07", "u14", "u21", "u28", "u35",
    ]  # fmt: skip
    live = [f"u{n:02}" for n in range(40) if n not in (3, 4, 5, 30, 31)]
    assert await all_ids(backend, limit=4) == live
    assert await all_ids(backend, limit=1, deleted=True) == ["u03", "u04", "u05", "u30", "u31"]
    assert await ids(backend, deleted=True, external_user_state="PendingAcceptance", after="u04") == (
        ["u05", "u30", "u31"],
        None,
    )


@pytest.mark.parametrize(
    ("query", "error", "message"),
    [
        ({"limit": 0}, ValueError, "limit must be between 1 and 999"),
        ({"limit": 1000}, ValueError, "limit must be between 1 and 999"),
        ({"limit": True}, TypeError, "limit must be an int"),
        ({"limit": "10"}, TypeError, "limit must be an int"),
        ({"after": ""}, ValueError, "after"),
        ({"after": 5}, ValueError, "after"),
        ({"after": "x" * 1025}, ValueError, "longer than 1024"),
        ({"mail": ""}, ValueError, "mail must be a non-empty string"),
        ({"mail": ["a@x.example"]}, ValueError, "mail must be a non-empty string"),
        ({"external_user_state": ""}, ValueError, "external_user_state"),
        ({"user_type": 3}, ValueError, "user_type"),
        ({"deleted": 1}, TypeError, "deleted must be a bool"),
        ({"deleted": "yes"}, TypeError, "deleted must be a bool"),
    ],
)
async def test_bad_list_arguments_are_refused(
    backend: Backend, query: dict[str, Any], error: type[Exception], message: str
) -> None:
    await make(backend, guest("u1", mail="a@x.example"))
    with pytest.raises(error, match=message):
        await backend.store.list_users(**query)


# -- soft delete -------------------------------------------------------------------------------


async def test_a_soft_deleted_user_is_invisible_but_kept(backend: Backend) -> None:
    s = backend.store
    alice = guest("u-alice", mail="alice@x.example", otherMails=["a2@x.example"])
    await make(backend, alice, guest("u-bob", mail="Alice@x.example"))
    view = await s.soft_delete_user("u-alice", T0)
    assert view == {**alice, "deletedDateTime": "2023-11-14T22:13:20Z", "accountEnabled": False}
    assert await s.get_deleted_user("u-alice") == view
    assert await s.get_user("u-alice") is None
    assert await s.find_user_by_identity(ISS, "sub-u-alice") is None
    assert [u["id"] for u in await s.find_users_by_mail("alice@x.example")] == ["u-bob"]
    assert await s.find_users_by_mail("a2@x.example") == []
    assert await ids(backend) == (["u-bob"], None)
    assert await s.list_users(deleted=True) == ([view], None)
    assert await ids(backend, deleted=True, mail="A2@x.example") == (["u-alice"], None)
    assert await ids(backend, deleted=False, mail="a2@x.example") == ([], None)
    assert await s.get_deleted_user("u-bob") is None  # live users are not in the deleted view

    # its identity and id stay taken, so a restore always succeeds
    assert await s.create_user(guest("u-new"), [(ISS, "sub-u-alice")]) is False
    with pytest.raises(ValueError, match="already exists"):
        await s.create_user(guest("u-alice"), [(ISS, "fresh")])
    assert await s.find_user_by_identity(ISS, "fresh") is None
    # and it cannot be changed while deleted
    with pytest.raises(KeyError):
        await s.update_user({**alice, "displayName": "changed"})
    link = {"signInType": "federated", "issuer": "google.com", "issuerAssignedId": "g1"}
    with pytest.raises(KeyError):
        await s.add_identity("u-alice", "google.com", "g1", link)
    assert await s.find_user_by_identity("google.com", "g1") is None
    assert await s.get_deleted_user("u-alice") == view


async def test_soft_delete_only_deletes_a_live_user_once(backend: Backend) -> None:
    s = backend.store
    await make(backend, guest("u1"))
    assert await s.soft_delete_user("nobody", T0) is None
    assert await s.soft_delete_user("u1", T0) is not None
    assert await s.soft_delete_user("u1", T0 + 5) is None  # already deleted: the first time stays
    deleted = await s.get_deleted_user("u1")
    assert deleted is not None and deleted["deletedDateTime"] == "2023-11-14T22:13:20Z"


@pytest.mark.parametrize("enabled", [True, False, None, "absent"])
async def test_restore_gives_back_the_user_as_it_was(backend: Backend, enabled: Any) -> None:
    s = backend.store
    user: dict[str, Any] = {"id": "u1", "mail": "u1@x.example", "displayName": "U ✓"}
    if enabled != "absent":
        user["accountEnabled"] = enabled
    await make(backend, user)
    deleted = await s.soft_delete_user("u1", T0)
    assert deleted is not None and deleted["accountEnabled"] is False
    assert await s.restore_user("u1") == user
    assert await s.get_user("u1") == user
    assert await s.find_user_by_identity(ISS, "sub-u1") == user
    assert await s.find_users_by_mail("U1@x.example") == [user]
    assert await s.get_deleted_user("u1") is None
    assert await s.list_users(deleted=True) == ([], None)
    assert await s.restore_user("u1") is None  # not deleted any more
    assert await s.restore_user("nobody") is None
    await s.update_user({**user, "displayName": "changed"})  # writable again
    assert (await s.get_user("u1") or {})["displayName"] == "changed"


async def test_purge_removes_only_users_deleted_before_the_time(backend: Backend) -> None:
    s = backend.store
    await make(backend, *(guest(f"u{n}", mail=f"u{n}@x.example") for n in range(5)))
    await s.soft_delete_user("u0", T0)
    await s.soft_delete_user("u1", T0 + DAY)
    await s.soft_delete_user("u2", T0 + 2 * DAY)
    await s.soft_delete_user("u3", T0)
    assert await s.restore_user("u3") is not None  # restored: never purged
    assert await s.purge_deleted_users(T0) == 0  # strictly before
    assert await s.purge_deleted_users(T0 + DAY + 1) == 2
    assert await s.get_deleted_user("u0") is None and await s.get_deleted_user("u1") is None
    assert await ids(backend, deleted=True) == (["u2"], None)
    assert await ids(backend) == (["u3", "u4"], None)
    # purged for good: the identity, the id and the address are free again
    assert await s.create_user(guest("u-other"), [(ISS, "sub-u0")]) is True
    assert await s.create_user(guest("u1"), [(ISS, "new-u1")]) is True
    assert [u["id"] for u in await s.find_users_by_mail("u1@x.example")] == []
    assert await s.purge_deleted_users(T0 + 30 * DAY) == 1
    assert await s.purge_deleted_users(T0 + 30 * DAY) == 0
    assert await ids(backend, deleted=True) == ([], None)


async def test_purge_handles_more_users_than_one_batch(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_directory, "PURGE_USERS_BATCH", 3)
    s = backend.store
    await make(backend, *(guest(f"u{n}") for n in range(8)))
    for n in range(7):
        await s.soft_delete_user(f"u{n}", T0 + n)
    assert await s.purge_deleted_users(T0 + 100) == 7
    assert await all_ids(backend) == ["u7"]
    assert await all_ids(backend, deleted=True) == []


async def test_hard_delete_removes_a_soft_deleted_user(backend: Backend) -> None:
    s = backend.store
    await make(backend, guest("u1", mail="u1@x.example"))
    await s.soft_delete_user("u1", T0)
    assert await s.delete_user("u1") is True
    assert await s.get_deleted_user("u1") is None
    assert await s.list_users(deleted=True) == ([], None)
    assert await s.restore_user("u1") is None
    assert await s.purge_deleted_users(T0 + DAY) == 0
    assert await s.create_user(guest("u1"), [(ISS, "sub-u1")]) is True  # all freed
    assert await ids(backend) == (["u1"], None)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (("soft_delete_user", "u1", True), TypeError, "now must be an int"),
        (("soft_delete_user", "u1", "1700000000"), TypeError, "now must be an int"),
        (("soft_delete_user", "u1", 1.5), TypeError, "now must be an int"),
        (("soft_delete_user", "u1", -1), ValueError, "now must be between 0 and"),
        (("soft_delete_user", "u1", 10**12), ValueError, "now must be between 0 and"),
        (("soft_delete_user", "", T0), ValueError, "user id must be a non-empty string"),
        (("soft_delete_user", None, T0), ValueError, "user id must be a non-empty string"),
        (("restore_user", ""), ValueError, "user id must be a non-empty string"),
        (("get_deleted_user", 7), ValueError, "user id must be a non-empty string"),
        (("purge_deleted_users", "soon"), TypeError, "older_than must be an int"),
        (("purge_deleted_users", -5), ValueError, "older_than must be between"),
    ],
)
async def test_bad_soft_delete_arguments_are_refused_and_change_nothing(
    backend: Backend, call: tuple[Any, ...], error: type[Exception], message: str
) -> None:
    s = backend.store
    await make(backend, guest("u1"), guest("u2"))
    await s.soft_delete_user("u2", T0)
    name, *args = call
    with pytest.raises(error, match=message):
        await getattr(s, name)(*args)
    assert await s.get_user("u1") == guest("u1")
    assert await ids(backend, deleted=True) == (["u2"], None)


async def test_deleted_date_time_belongs_to_the_store(backend: Backend) -> None:
    s = backend.store
    stamped = guest("u1", deletedDateTime="2023-11-14T22:13:20Z")
    with pytest.raises(ValueError, match="deletedDateTime"):
        await s.create_user(stamped, [(ISS, "sub-u1")])
    assert await s.find_user_by_identity(ISS, "sub-u1") is None
    assert await s.list_users() == ([], None)
    await make(backend, guest("u1", deletedDateTime=None))  # Graph's null is fine
    with pytest.raises(ValueError, match="deletedDateTime"):
        await s.update_user(stamped)
    assert await s.get_user("u1") == guest("u1", deletedDateTime=None)
    assert await s.get_deleted_user("u1") is None


# -- get_users ---------------------------------------------------------------------------------


async def test_get_users_finds_the_live_users_among_the_ids(backend: Backend) -> None:
    s = backend.store
    await make(backend, guest("u1", displayName="One"), guest("u2"), guest("u3"))
    assert await s.soft_delete_user("u3", T0) is not None
    found = await s.get_users(["u2", "absent", "u1", "u3", "u1"])
    assert found == {"u1": guest("u1", displayName="One"), "u2": guest("u2")}
    assert await s.get_users([]) == {}
    assert await s.restore_user("u3") is not None
    assert set(await s.get_users(["u3"])) == {"u3"}
    found["u1"]["displayName"] = "changed"  # a copy: what is stored does not change
    assert (await s.get_users(["u1"]))["u1"]["displayName"] == "One"


async def test_get_users_checks_its_ids(backend: Backend) -> None:
    s = backend.store
    with pytest.raises(ValueError):
        await s.get_users(["u1", ""])
    with pytest.raises(TypeError):
        await s.get_users("u1")
    with pytest.raises(ValueError):
        await s.get_users([f"u{n}" for n in range(1001)])
    assert await s.get_users(["u1"] * 1001) == {}  # repeats are one id
