"""The store contract for ``add_identity`` (account linking): every test runs against SQLite and
against a real Redis (``backend``)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.store.conftest import Backend

ISS = "https://idp.partner.example"
GOOGLE = "google.com"


def federated(issuer: str, subject: str) -> dict[str, str]:
    return {"signInType": "federated", "issuer": issuer, "issuerAssignedId": subject}


ALICE = {
    "id": "u-alice",
    "mail": "alice@partner.example",
    "displayName": "Alice ✓",
    "identities": [federated(ISS, "sub-a")],
}
BOB = {"id": "u-bob", "mail": "bob@partner.example", "identities": [federated(ISS, "sub-b")]}


async def owner(backend: Backend, issuer: str, subject: str) -> str | None:
    found = await backend.store.find_user_by_identity(issuer, subject)
    return None if found is None else str(found["id"])


async def test_added_identity_finds_the_user_and_is_in_its_document(backend: Backend) -> None:
    s = backend.store
    assert await s.create_user(ALICE, [(ISS, "sub-a")])
    link = federated(GOOGLE, "g-123")
    assert await s.add_identity("u-alice", GOOGLE, "g-123", link) is True
    linked = {**ALICE, "identities": [federated(ISS, "sub-a"), link]}
    assert await s.get_user("u-alice") == linked
    assert await s.find_user_by_identity(GOOGLE, "g-123") == linked
    assert await s.find_user_by_identity(ISS, "sub-a") == linked  # the first identity still finds it
    assert await s.find_users_by_mail("alice@partner.example") == [linked]  # mail index follows
    assert await s.find_user_by_identity(GOOGLE, "g-1234") is None  # matching stays exact


async def test_a_user_without_identities_gets_a_list(backend: Backend) -> None:
    s = backend.store
    for user_id, extra in (("u1", {}), ("u2", {"identities": None})):
        assert await s.create_user({"id": user_id, **extra}, [(ISS, user_id)])
        assert await s.add_identity(user_id, GOOGLE, user_id, federated(GOOGLE, user_id))
        assert await s.get_user(user_id) == {"id": user_id, "identities": [federated(GOOGLE, user_id)]}


async def test_identity_objects_keep_their_extra_fields(backend: Backend) -> None:
    s = backend.store
    assert await s.create_user(BOB, [(ISS, "sub-b")])
    link = {"signInType": "emailAddress", "issuer": "mail", "issuerAssignedId": "Bob@X.example", "n": [1]}
    assert await s.add_identity("u-bob", "mail", "Bob@X.example", link)
    stored = await s.get_user("u-bob")
    assert stored is not None and stored["identities"][-1] == link


async def test_a_pair_taken_by_another_user_is_false_and_changes_nothing(backend: Backend) -> None:
    s = backend.store
    assert await s.create_user(ALICE, [(ISS, "sub-a")])
    assert await s.create_user(BOB, [(ISS, "sub-b")])
    assert await s.add_identity("u-alice", GOOGLE, "g-a", federated(GOOGLE, "g-a"))
    alice = await s.get_user("u-alice")
    for issuer, subject in ((ISS, "sub-a"), (GOOGLE, "g-a")):  # from create_user, from add_identity
        assert await s.add_identity("u-bob", issuer, subject, federated(issuer, subject)) is False
        assert await owner(backend, issuer, subject) == "u-alice"
    assert await s.get_user("u-bob") == BOB
    assert await s.get_user("u-alice") == alice


async def test_a_pair_the_user_already_holds_is_false_and_not_duplicated(backend: Backend) -> None:
    s = backend.store
    assert await s.create_user(ALICE, [(ISS, "sub-a")])
    assert await s.add_identity("u-alice", ISS, "sub-a", federated(ISS, "sub-a")) is False
    assert await s.get_user("u-alice") == ALICE
    assert await s.add_identity("u-alice", GOOGLE, "g-a", federated(GOOGLE, "g-a")) is True
    linked = await s.get_user("u-alice")
    assert await s.add_identity("u-alice", GOOGLE, "g-a", federated(GOOGLE, "g-a")) is False
    assert await s.get_user("u-alice") == linked
    assert linked is not None and len(linked["identities"]) == 2


async def test_an_unknown_user_raises_and_claims_nothing(backend: Backend) -> None:
    s = backend.store
    with pytest.raises(KeyError, match="u-ghost"):
        await s.add_identity("u-ghost", GOOGLE, "g-1", federated(GOOGLE, "g-1"))
    assert await s.find_user_by_identity(GOOGLE, "g-1") is None
    assert await s.get_user("u-ghost") is None
    assert await s.create_user(BOB, [(GOOGLE, "g-1")]) is True  # the pair is still free
    assert await owner(backend, GOOGLE, "g-1") == "u-bob"


async def test_a_deleted_user_raises_and_claims_nothing(backend: Backend) -> None:
    s = backend.store
    assert await s.create_user(ALICE, [(ISS, "sub-a")])
    assert await s.delete_user("u-alice")
    with pytest.raises(KeyError, match="u-alice"):
        await s.add_identity("u-alice", GOOGLE, "g-a", federated(GOOGLE, "g-a"))
    assert await s.find_user_by_identity(GOOGLE, "g-a") is None
    assert await s.get_user("u-alice") is None


async def test_concurrent_links_of_one_pair_have_one_winner(backend: Backend) -> None:
    s = backend.store
    users: list[dict[str, Any]] = [{"id": f"u{n}", "identities": [federated(ISS, f"s{n}")]} for n in range(6)]
    for n, user in enumerate(users):
        assert await s.create_user(user, [(ISS, f"s{n}")])
    for subject, contenders in (("two", users[:2]), ("four", users[2:])):
        link = federated(GOOGLE, subject)
        results = await asyncio.gather(*(s.add_identity(u["id"], GOOGLE, subject, link) for u in contenders))
        assert results.count(True) == 1
        winner = contenders[results.index(True)]
        assert await owner(backend, GOOGLE, subject) == winner["id"]
        for user, won in zip(contenders, results, strict=True):
            stored = await s.get_user(user["id"])
            assert stored is not None
            assert stored["identities"] == user["identities"] + ([link] if won else [])


async def test_concurrent_links_to_one_user_all_land(backend: Backend) -> None:
    s = backend.store
    assert await s.create_user(ALICE, [(ISS, "sub-a")])
    subjects = [f"g-{n}" for n in range(10)]
    results = await asyncio.gather(
        *(s.add_identity("u-alice", GOOGLE, g, federated(GOOGLE, g)) for g in subjects)
    )
    assert results == [True] * len(subjects)
    stored = await s.get_user("u-alice")
    assert stored is not None
    assert stored["identities"][0] == federated(ISS, "sub-a")
    assert sorted(i["issuerAssignedId"] for i in stored["identities"][1:]) == sorted(subjects)
    for g in subjects:
        assert await s.find_user_by_identity(GOOGLE, g) == stored


async def test_delete_user_frees_linked_identities(backend: Backend) -> None:
    s = backend.store
    assert await s.create_user(ALICE, [(ISS, "sub-a")])
    assert await s.add_identity("u-alice", GOOGLE, "g-a", federated(GOOGLE, "g-a"))
    assert await s.add_identity(
        "u-alice", "mail", "alice@partner.example", federated("mail", "alice@partner.example")
    )
    assert await s.delete_user("u-alice") is True
    for issuer, subject in ((ISS, "sub-a"), (GOOGLE, "g-a"), ("mail", "alice@partner.example")):
        assert await s.find_user_by_identity(issuer, subject) is None
    assert await s.create_user(BOB, [(GOOGLE, "g-a")]) is True  # free for create_user
    assert await s.add_identity(
        "u-bob", "mail", "alice@partner.example", federated("mail", "alice@partner.example")
    )
    assert await s.add_identity("u-bob", ISS, "sub-a", federated(ISS, "sub-a"))  # and for add_identity
    for issuer, subject in ((ISS, "sub-a"), (GOOGLE, "g-a"), ("mail", "alice@partner.example")):
        assert await owner(backend, issuer, subject) == "u-bob"
    assert await s.delete_user("u-bob") is True
    assert await s.find_user_by_identity(ISS, "sub-a") is None
    assert await s.find_user_by_identity("mail", "alice@partner.example") is None


BAD_LINKS: list[tuple[Any, Any, Any, Any, type, str]] = [
    ("", GOOGLE, "g", federated(GOOGLE, "g"), ValueError, "user id must be"),
    (5, GOOGLE, "g", federated(GOOGLE, "g"), ValueError, "user id must be"),
    ("u1", "", "g", federated("", "g"), ValueError, "identity issuer must be"),
    ("u1", GOOGLE, None, federated(GOOGLE, "g"), ValueError, "identity issuer_assigned_id must be"),
    ("u1", GOOGLE, "g" * 1025, federated(GOOGLE, "g" * 1025), ValueError, "longer than"),
    ("u1", GOOGLE, "g", [GOOGLE, "g"], TypeError, "identity must be a JSON object"),
    ("u1", GOOGLE, "g", {**federated(GOOGLE, "g"), "x": float("nan")}, ValueError, "not JSON-serialisable"),
    ("u1", GOOGLE, "g", {**federated(GOOGLE, "g"), "x": {1, 2}}, TypeError, "not JSON-serialisable"),
    ("u1", GOOGLE, "g", {"issuer": GOOGLE, "issuerAssignedId": "g"}, ValueError, r"\['signInType'\]"),
    ("u1", GOOGLE, "g", {**federated(GOOGLE, "g"), "signInType": ""}, ValueError, r"\['signInType'\]"),
    ("u1", GOOGLE, "g", federated("facebook.com", "g"), ValueError, "does not name the pair"),
    ("u1", GOOGLE, "g", federated(GOOGLE, "G"), ValueError, "does not name the pair"),
    ("u1", GOOGLE, "g", {"signInType": "federated", "issuer": GOOGLE}, ValueError, "does not name the pair"),
]


@pytest.mark.parametrize(("user_id", "issuer", "subject", "identity", "error", "message"), BAD_LINKS)
async def test_bad_arguments_fail_clearly_and_write_nothing(
    backend: Backend, user_id: Any, issuer: Any, subject: Any, identity: Any, error: type, message: str
) -> None:
    s = backend.store
    user = {"id": "u1", "identities": [federated(ISS, "s1")]}
    assert await s.create_user(user, [(ISS, "s1")])
    with pytest.raises(error, match=message):
        await s.add_identity(user_id, issuer, subject, identity)
    assert await s.get_user("u1") == user
    assert await s.find_user_by_identity(GOOGLE, "g") is None
    assert await s.find_user_by_identity(GOOGLE, "G") is None
    assert await s.add_identity("u1", GOOGLE, "g", federated(GOOGLE, "g")) is True  # still free


async def test_a_stored_identities_field_that_is_not_a_list_is_refused(backend: Backend) -> None:
    s = backend.store
    broken = {"id": "u1", "identities": {"issuer": ISS}}
    assert await s.create_user(broken, [(ISS, "s1")])
    with pytest.raises(TypeError, match="'u1' has an 'identities' field that is not a list"):
        await s.add_identity("u1", GOOGLE, "g", federated(GOOGLE, "g"))
    assert await s.get_user("u1") == broken
    assert await s.find_user_by_identity(GOOGLE, "g") is None


async def test_the_caller_mutating_its_identity_afterwards_changes_nothing(backend: Backend) -> None:
    s = backend.store
    assert await s.create_user(BOB, [(ISS, "sub-b")])
    link = federated(GOOGLE, "g-b")
    pending = asyncio.ensure_future(s.add_identity("u-bob", GOOGLE, "g-b", link))
    await asyncio.sleep(0)  # the call has checked its arguments and is waiting on storage
    link["issuerAssignedId"] = "changed"
    assert await pending is True
    stored = await s.get_user("u-bob")
    assert stored is not None and stored["identities"][-1] == federated(GOOGLE, "g-b")
