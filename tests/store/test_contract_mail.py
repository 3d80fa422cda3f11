"""The store contract for the mail index and ``delete_user``: every test runs against SQLite and
against a real Redis (``backend``)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.store.validate import MAX_USER_MAILS
from tests.store.conftest import Backend

ISS = "https://idp.partner.example"
ALICE = {
    "id": "u-alice",
    "mail": "Alice@Partner.Example",
    "otherMails": ["alice.private@Home.Example", "ALIAS@partner.example"],
    "userType": "Guest",
}


async def ids(backend: Backend, mail: str) -> list[str]:
    return [user["id"] for user in await backend.store.find_users_by_mail(mail)]


async def test_find_by_mail_and_other_mails_ignoring_case(backend: Backend) -> None:
    s = backend.store
    assert await s.create_user(ALICE, [(ISS, "sub-a")])
    for address in (
        "alice@partner.example",
        "ALICE@PARTNER.EXAMPLE",
        "Alice@Partner.Example",
        "alice.private@home.example",
        "Alias@Partner.Example",
    ):
        assert await s.find_users_by_mail(address) == [ALICE]  # the document keeps its spelling
    assert await s.find_users_by_mail("nobody@partner.example") == []
    assert await s.find_users_by_mail("alice@partner.example ") == []  # nothing but case is normalised
    assert await s.find_users_by_mail("partner.example") == []


async def test_users_sharing_an_address_come_back_ordered_by_id(backend: Backend) -> None:
    s = backend.store
    for user_id, user in (
        ("u-z", {"mail": "shared@x.example"}),
        ("u-é", {"otherMails": ["SHARED@x.example"]}),
        ("u-a", {"mail": "Shared@X.example", "otherMails": ["shared@x.example"]}),
        ("u-m", {"mail": "m@x.example", "otherMails": ["other@x.example", "shared@X.EXAMPLE"]}),
        ("u-b", {"mail": "b@x.example"}),
    ):
        assert await s.create_user({"id": user_id, **user}, [(ISS, user_id)])
    assert await ids(backend, "shared@x.example") == ["u-a", "u-m", "u-z", "u-é"]  # each once
    assert await ids(backend, "b@x.example") == ["u-b"]


async def test_users_without_mails_are_not_indexed(backend: Backend) -> None:
    s = backend.store
    assert await s.create_user({"id": "u1", "mail": None, "otherMails": None}, [(ISS, "s1")])
    assert await s.create_user({"id": "u2", "otherMails": []}, [(ISS, "s2")])
    assert await s.find_users_by_mail("none") == []
    assert await s.get_user("u1") == {"id": "u1", "mail": None, "otherMails": None}


async def test_update_moves_the_index_entries(backend: Backend) -> None:
    s = backend.store
    user = {"id": "u1", "mail": "old@x.example", "otherMails": ["keep@x.example", "drop@x.example"]}
    assert await s.create_user(user, [(ISS, "s1")])
    moved = {"id": "u1", "mail": "New@x.example", "otherMails": ["KEEP@x.example"], "displayName": "U"}
    await s.update_user(moved)
    assert await s.find_users_by_mail("old@x.example") == []
    assert await s.find_users_by_mail("drop@x.example") == []
    assert await s.find_users_by_mail("new@x.example") == [moved]
    assert await s.find_users_by_mail("keep@x.example") == [moved]
    assert await s.find_user_by_identity(ISS, "s1") == moved  # identities are left as they are

    await s.update_user({"id": "u1", "displayName": "no mail any more"})
    for address in ("old@x.example", "new@x.example", "keep@x.example"):
        assert await s.find_users_by_mail(address) == []
    await s.update_user({"id": "u1", "mail": "back@x.example"})
    assert await ids(backend, "back@x.example") == ["u1"]


async def test_update_leaves_other_users_of_an_address_alone(backend: Backend) -> None:
    s = backend.store
    assert await s.create_user({"id": "u1", "mail": "team@x.example"}, [(ISS, "s1")])
    assert await s.create_user({"id": "u2", "otherMails": ["team@x.example"]}, [(ISS, "s2")])
    await s.update_user({"id": "u1", "mail": "solo@x.example"})
    assert await ids(backend, "team@x.example") == ["u2"]
    assert await ids(backend, "solo@x.example") == ["u1"]


async def test_concurrent_updates_leave_the_index_matching_the_last_document(backend: Backend) -> None:
    s = backend.store
    assert await s.create_user({"id": "u1", "mail": "start@x.example"}, [(ISS, "s1")])
    await asyncio.gather(
        *(
            s.update_user({"id": "u1", "mail": f"m{n}@x.example", "otherMails": [f"o{n}@x.example"]})
            for n in range(12)
        )
    )
    final = await s.get_user("u1")
    assert final is not None
    found = {
        address: await ids(backend, address)
        for address in ["start@x.example"] + [f"{p}{n}@x.example" for p in "mo" for n in range(12)]
    }
    indexed = {address for address, users in found.items() if users}
    assert indexed == {final["mail"], *final["otherMails"]}
    assert all(users == ["u1"] for users in found.values() if users)


async def test_update_of_an_unknown_user_indexes_nothing(backend: Backend) -> None:
    s = backend.store
    with pytest.raises(KeyError, match="u-ghost"):
        await s.update_user({"id": "u-ghost", "mail": "ghost@x.example"})
    assert await s.find_users_by_mail("ghost@x.example") == []


async def test_delete_removes_the_user_its_identities_and_its_mails(backend: Backend) -> None:
    s = backend.store
    identities = [(ISS, "sub-a"), ("mail", "alice@partner.example")]
    assert await s.create_user(ALICE, identities)
    bystander = {"id": "u-bob", "mail": "bob@partner.example", "otherMails": ["alias@partner.example"]}
    assert await s.create_user(bystander, [(ISS, "sub-b")])

    assert await s.delete_user("u-alice") is True
    assert await s.get_user("u-alice") is None
    assert await s.find_user_by_identity(ISS, "sub-a") is None
    assert await s.find_user_by_identity("mail", "alice@partner.example") is None
    assert await s.find_users_by_mail("alice@partner.example") == []
    assert await s.find_users_by_mail("alice.private@home.example") == []
    assert await s.find_users_by_mail("alias@partner.example") == [bystander]
    assert await s.find_user_by_identity(ISS, "sub-b") == bystander
    assert await s.delete_user("u-alice") is False

    taker = {"id": "u-new", "mail": "someone@else.example"}
    assert await s.create_user(taker, identities) is True  # the identities are free again
    assert await s.find_user_by_identity(ISS, "sub-a") == taker
    assert await s.find_users_by_mail("alice@partner.example") == []
    assert await s.create_user(ALICE, [(ISS, "sub-a2")]) is True  # and so is the id
    assert await s.find_users_by_mail("alice@partner.example") == [ALICE]


async def test_delete_of_an_unknown_user_is_false_and_changes_nothing(backend: Backend) -> None:
    s = backend.store
    assert await s.create_user(ALICE, [(ISS, "sub-a")])
    assert await s.delete_user("u-nobody") is False
    assert await s.get_user("u-alice") == ALICE
    assert await s.find_users_by_mail("alice@partner.example") == [ALICE]
    with pytest.raises(ValueError, match="user id"):
        await s.delete_user("")
    with pytest.raises(ValueError, match="user id"):
        await s.delete_user(5)  # type: ignore[arg-type]


async def test_concurrent_deletes_have_one_winner(backend: Backend) -> None:
    s = backend.store
    assert await s.create_user(ALICE, [(ISS, "sub-a")])
    results = await asyncio.gather(*(s.delete_user("u-alice") for _ in range(10)))
    assert results.count(True) == 1
    assert await s.find_users_by_mail("alice@partner.example") == []


async def test_create_with_a_taken_identity_leaves_the_mail_index_untouched(backend: Backend) -> None:
    s = backend.store
    assert await s.create_user(ALICE, [(ISS, "sub-a")])
    bob = {"id": "u-bob", "mail": "bob@partner.example", "otherMails": ["alice@partner.example"]}
    assert await s.create_user(bob, [("mail", "bob@partner.example"), (ISS, "sub-a")]) is False
    assert await s.find_users_by_mail("bob@partner.example") == []
    assert await s.find_users_by_mail("alice@partner.example") == [ALICE]
    assert await s.find_user_by_identity("mail", "bob@partner.example") is None


async def test_create_with_an_existing_id_leaves_the_mail_index_untouched(backend: Backend) -> None:
    s = backend.store
    assert await s.create_user(ALICE, [(ISS, "sub-a")])
    imposter = {"id": "u-alice", "mail": "imposter@x.example", "otherMails": ["alias@partner.example"]}
    with pytest.raises(ValueError, match="already exists"):
        await s.create_user(imposter, [(ISS, "sub-x")])
    assert await s.find_users_by_mail("imposter@x.example") == []
    assert await s.find_users_by_mail("alias@partner.example") == [ALICE]


BAD_MAILS: list[tuple[dict[str, Any], type, str]] = [
    ({"mail": 5}, ValueError, r"user\['mail'\] must be a non-empty string"),
    ({"mail": ""}, ValueError, r"user\['mail'\] must be a non-empty string"),
    ({"mail": ["a@x.example"]}, ValueError, r"user\['mail'\]"),
    ({"mail": "a" * 1025}, ValueError, r"user\['mail'\] is longer than"),
    ({"otherMails": "bad@x.example"}, TypeError, r"user\['otherMails'\] must be a list of strings"),
    ({"otherMails": {"bad@x.example": 1}}, TypeError, r"user\['otherMails'\] must be a list"),
    ({"otherMails": ["bad@x.example", None]}, ValueError, r"user\['otherMails'\]\[1\] must be"),
    ({"otherMails": [""]}, ValueError, r"user\['otherMails'\]\[0\] must be"),
    (
        {"otherMails": [f"bad{n}@x.example" for n in range(MAX_USER_MAILS + 1)]},
        ValueError,
        rf"more than {MAX_USER_MAILS} addresses",
    ),
]


@pytest.mark.parametrize(("fields", "error", "message"), BAD_MAILS)
async def test_bad_mails_on_create_fail_clearly_and_write_nothing(
    backend: Backend, fields: dict[str, Any], error: type, message: str
) -> None:
    s = backend.store
    with pytest.raises(error, match=message):
        await s.create_user({"id": "u1", **fields}, [(ISS, "s1")])
    assert await s.get_user("u1") is None
    assert await s.find_user_by_identity(ISS, "s1") is None
    assert await s.find_users_by_mail("bad@x.example") == []
    assert await s.find_users_by_mail("bad0@x.example") == []


@pytest.mark.parametrize(("fields", "error", "message"), BAD_MAILS)
async def test_bad_mails_on_update_fail_clearly_and_write_nothing(
    backend: Backend, fields: dict[str, Any], error: type, message: str
) -> None:
    s = backend.store
    user = {"id": "u1", "mail": "good@x.example"}
    assert await s.create_user(user, [(ISS, "s1")])
    with pytest.raises(error, match=message):
        await s.update_user({"id": "u1", **fields})
    assert await s.get_user("u1") == user
    assert await s.find_users_by_mail("good@x.example") == [user]
    assert await s.find_users_by_mail("bad@x.example") == []


async def test_a_user_may_have_the_maximum_number_of_addresses(backend: Backend) -> None:
    s = backend.store
    others = [f"o{n}@x.example" for n in range(MAX_USER_MAILS)]
    user = {"id": "u1", "mail": "m@x.example", "otherMails": others}
    assert await s.create_user(user, [(ISS, "s1")])
    assert await ids(backend, f"o{MAX_USER_MAILS - 1}@x.example") == ["u1"]
    await s.update_user({**user, "otherMails": list(reversed(others[1:]))})
    assert await ids(backend, "o0@x.example") == []
    assert await ids(backend, "o1@x.example") == ["u1"]


@pytest.mark.parametrize("mail", ["", 5, None, "x" * 1025])
async def test_bad_lookups_are_refused(backend: Backend, mail: Any) -> None:
    with pytest.raises(ValueError, match="mail"):
        await backend.store.find_users_by_mail(mail)
