"""The store contract: every test runs against SQLite and against a real Redis (``backend``)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.store.base import Consumed, Counter
from gateway.store.validate import SCHEMA_VERSION
from tests.store.conftest import Backend

# -- artefacts -------------------------------------------------------------------------


async def test_put_then_get_round_trips_json(backend: Backend) -> None:
    s = backend.store
    payload = {"sub": "ünïcode ✓", "n": 3, "ok": True, "none": None, "list": [1, {"a": "b"}]}
    await s.put("signin", "t1", payload, 60)
    assert await s.get("signin", "t1") == payload
    assert await s.get("signin", "missing") is None
    assert await s.get("other", "t1") is None


async def test_ids_with_separators_do_not_collide(backend: Backend) -> None:
    s = backend.store
    await s.put("code", "x", {"v": 1}, 60)
    await s.put("code", "x}y", {"v": 2}, 60)
    await s.put("code", "x:y", {"v": 3}, 60)
    await s.put("code.x", "y", {"v": 4}, 60)
    assert [await s.get("code", i) for i in ("x", "x}y", "x:y")] == [{"v": 1}, {"v": 2}, {"v": 3}]
    assert await s.get("code.x", "y") == {"v": 4}


async def test_put_replaces_payload_ttl_consumed_state_and_grant(backend: Backend) -> None:
    s = backend.store
    await s.put("code", "c", {"v": 1}, 60, grant_id="g1")
    first = await s.consume("code", "c")
    assert first is not None and first.first
    await s.put("code", "c", {"v": 2}, 120, grant_id="g2")
    assert await s.get("code", "c") == {"v": 2}
    assert await s.ttl("code", "c") in (119, 120)
    assert await s.revoke_grant("g1") == 0
    assert await s.get("code", "c") == {"v": 2}
    again = await s.consume("code", "c")
    assert again == Consumed(payload={"v": 2}, grant_id="g2", first=True)
    await s.put("code", "c", {"v": 3}, 60)
    assert await s.revoke_grant("g2") == 0
    assert await s.consume("code", "c") == Consumed(payload={"v": 3}, grant_id=None, first=True)


async def test_add_creates_only_when_absent(backend: Backend) -> None:
    s = backend.store
    assert await s.add("replay", "j1", {"v": 1}, 60) is True
    assert await s.add("replay", "j1", {"v": 2}, 60, grant_id="g") is False
    assert await s.get("replay", "j1") == {"v": 1}
    assert await s.revoke_grant("g") == 0
    assert await s.get("replay", "j1") == {"v": 1}
    await s.delete("replay", "j1")
    assert await s.add("replay", "j1", {"v": 3}, 60, grant_id="g") is True
    assert await s.revoke_grant("g") == 1
    assert await s.get("replay", "j1") is None


async def test_concurrent_add_has_one_winner(backend: Backend) -> None:
    s = backend.store
    results = await asyncio.gather(*(s.add("replay", "j", {"n": n}, 60) for n in range(20)))
    assert results.count(True) == 1
    assert await s.get("replay", "j") == {"n": results.index(True)}


async def test_consume_is_first_exactly_once_and_keeps_payload(backend: Backend) -> None:
    s = backend.store
    await s.put("code", "c", {"v": 1}, 60, grant_id="grant-1")
    first = await s.consume("code", "c")
    assert first == Consumed(payload={"v": 1}, grant_id="grant-1", first=True)
    for _ in range(3):
        assert await s.consume("code", "c") == Consumed(payload={"v": 1}, grant_id="grant-1", first=False)
    assert await s.get("code", "c") == {"v": 1}
    assert await s.consume("code", "absent") is None


async def test_concurrent_consumers_get_one_first(backend: Backend) -> None:
    s = backend.store
    await s.put("code", "race", {"v": 1}, 60)
    results = await asyncio.gather(*(s.consume("code", "race") for _ in range(25)))
    assert all(r is not None and r.payload == {"v": 1} for r in results)
    assert sum(1 for r in results if r is not None and r.first) == 1


async def test_consumed_artefact_keeps_its_original_ttl(backend: Backend) -> None:
    s = backend.store
    await s.put("code", "c", {"v": 1}, 60)
    await s.consume("code", "c")
    assert await s.ttl("code", "c") in (59, 60)


async def test_everything_expires(backend: Backend) -> None:
    s = backend.store
    await s.put("code", "short", {"v": 1}, 1, grant_id="g")
    await s.put("code", "consumed", {"v": 1}, 1)
    await s.consume("code", "consumed")
    await s.put("code", "long", {"v": 2}, 60, grant_id="g")
    assert await s.add("replay", "r", {}, 1) is True
    assert (await s.incr("hits", "h", 1)).value == 1
    assert (await s.incr("hits", "h", 1)).value == 2
    assert await s.ttl("code", "short") == 1

    await backend.advance(1.2)

    assert await s.get("code", "short") is None
    assert await s.consume("code", "short") is None
    assert await s.consume("code", "consumed") is None
    assert await s.ttl("code", "short") is None
    assert await s.add("replay", "r", {"v": "new"}, 60) is True
    assert await s.get("replay", "r") == {"v": "new"}
    restarted = await s.incr("hits", "h", 30)  # a new window, started by this increment
    assert restarted.value == 1
    assert restarted.expires_in in (29, 30)
    assert await s.revoke_grant("g") == 1
    assert await s.get("code", "long") is None


async def test_incr_counts_in_a_fixed_window(backend: Backend) -> None:
    s = backend.store
    first = await s.incr("attempts", "x", 300)
    assert (first.value, first.expires_in) in ((1, 300), (1, 299))
    second = await s.incr("attempts", "x", 10)  # the window was fixed by the first increment
    assert second.value == 2
    assert second.expires_in > 10
    assert (await s.incr("attempts", "y", 300)).value == 1
    assert (await s.incr("other", "x", 300)).value == 1
    assert await s.get("attempts", "x") is None  # a counter is not an artefact
    assert await s.ttl("attempts", "x") is None


async def test_concurrent_increments_are_all_counted(backend: Backend) -> None:
    s = backend.store
    results = await asyncio.gather(*(s.incr("hits", "ip", 60) for _ in range(40)))
    assert sorted(r.value for r in results) == list(range(1, 41))


async def test_delete_removes_artefact_and_counter(backend: Backend) -> None:
    s = backend.store
    await s.put("lock", "k", {"v": 1}, 60)
    await s.incr("lock", "k", 60)
    await s.incr("lock", "k", 60)
    await s.delete("lock", "k")
    assert await s.get("lock", "k") is None
    assert (await s.incr("lock", "k", 60)).value == 1
    await s.delete("lock", "never-existed")


async def test_ttl_reports_seconds_left(backend: Backend) -> None:
    s = backend.store
    await s.put("session", "s", {}, 3600)
    assert await s.ttl("session", "s") in (3599, 3600)
    assert await s.ttl("session", "absent") is None
    await s.delete("session", "s")
    assert await s.ttl("session", "s") is None


async def test_consume_counted_counts_then_consumes_within_the_limit(backend: Backend) -> None:
    s = backend.store
    await s.put("passcode", "p", {"v": 1}, 60, grant_id="g")
    counted, consumed = await s.consume_counted("passcode", "p", "attempts", 300, 2)
    assert (counted.value, counted.expires_in) in ((1, 300), (1, 299))
    assert consumed == Consumed(payload={"v": 1}, grant_id="g", first=True)
    counted, consumed = await s.consume_counted("passcode", "p", "attempts", 10, 2)
    assert counted.value == 2 and counted.expires_in > 10  # the same fixed window as ``incr``
    assert consumed == Consumed(payload={"v": 1}, grant_id="g", first=False)
    assert (await s.incr("attempts", "p", 300)).value == 3  # one counter with ``incr``
    assert await s.consume_counted("absent", "p", "attempts", 300, 10) == (
        Counter(4, counted.expires_in),
        None,
    )


async def test_consume_counted_over_the_limit_counts_and_leaves_the_artefact(backend: Backend) -> None:
    s = backend.store
    await s.put("passcode", "p", {"v": 1}, 60)
    await s.incr("attempts", "p", 300)
    counted, consumed = await s.consume_counted("passcode", "p", "attempts", 300, 1)
    assert (counted.value, consumed) == (2, None)
    counted, consumed = await s.consume_counted("passcode", "p", "attempts", 300, 0)
    assert (counted.value, consumed) == (3, None)
    assert await s.consume("passcode", "p") == Consumed(payload={"v": 1}, grant_id=None, first=True)


async def test_concurrent_consume_counted_lets_one_use_through_within_the_limit(backend: Backend) -> None:
    s = backend.store
    await s.put("passcode", "p", {"v": 1}, 60)
    results = await asyncio.gather(
        *(s.consume_counted("passcode", "p", "attempts", 60, 3) for _ in range(12))
    )
    assert sorted(counted.value for counted, _ in results) == list(range(1, 13))
    firsts = [counted.value for counted, found in results if found is not None and found.first]
    assert len(firsts) == 1
    assert all((found is None) == (counted.value > 3) for counted, found in results)


@pytest.mark.parametrize(
    ("kind", "counter", "limit", "error"),
    [
        ("a:b", "attempts", 3, ValueError),
        ("passcode", "", 3, ValueError),
        ("passcode", "attempts", -1, ValueError),
        ("passcode", "attempts", 1.5, TypeError),
        ("passcode", "attempts", True, TypeError),
    ],
)
async def test_consume_counted_checks_its_arguments_first(
    backend: Backend, kind: Any, counter: Any, limit: Any, error: type
) -> None:
    s = backend.store
    await s.put("passcode", "p", {"v": 1}, 60)
    with pytest.raises(error):
        await s.consume_counted(kind, "p", counter, 300, limit)
    with pytest.raises(ValueError, match="window"):
        await s.consume_counted("passcode", "p", "attempts", 0, 3)
    assert (await s.incr("attempts", "p", 300)).value == 1  # nothing was counted
    assert (await s.consume("passcode", "p")) == Consumed(payload={"v": 1}, grant_id=None, first=True)


async def test_ttl_many_reports_each_name_in_order(backend: Backend) -> None:
    s = backend.store
    await s.put("session", "s", {}, 3600)
    await s.put("code", "short", {}, 1)
    await s.incr("session", "counted", 60)  # a counter is not an artefact
    assert await s.ttl_many([]) == []
    names = [
        ("session", "s"),
        ("session", "absent"),
        ("code", "short"),
        ("session", "counted"),
        ("session", "s"),
    ]
    left = await s.ttl_many(names)
    assert len(left) == 5
    assert left[0] in (3599, 3600) and left[4] == left[0]
    assert (left[1], left[2], left[3]) == (None, 1, None)
    await backend.advance(1.2)
    assert (await s.ttl_many(names))[1:4] == [None, None, None]


async def test_ttl_many_checks_every_name_first(backend: Backend) -> None:
    s = backend.store
    with pytest.raises(ValueError, match="kind"):
        await s.ttl_many([("session", "s"), ("a:b", "x")])
    with pytest.raises(ValueError, match="id"):
        await s.ttl_many([("session", "")])


async def test_revoke_grant_removes_every_bound_artefact(backend: Backend) -> None:
    s = backend.store
    await s.put("code", "c1", {"v": 1}, 60, grant_id="g1")
    await s.put("access", "a1", {"v": 2}, 600, grant_id="g1")
    await s.put("refresh", "r1", {"v": 3}, 3600, grant_id="g1")
    await s.put("refresh", "r2", {"v": 4}, 3600, grant_id="g2")
    await s.put("signin", "t", {"v": 5}, 60)
    await s.put("code", "deleted", {"v": 6}, 60, grant_id="g1")
    await s.delete("code", "deleted")
    assert await s.revoke_grant("g1") == 3
    for kind, id in (("code", "c1"), ("access", "a1"), ("refresh", "r1")):
        assert await s.get(kind, id) is None
        assert await s.consume(kind, id) is None
    assert await s.get("refresh", "r2") == {"v": 4}
    assert await s.get("signin", "t") == {"v": 5}
    assert await s.revoke_grant("g1") == 0
    assert await s.revoke_grant("never-used") == 0
    await s.put("access", "a2", {"v": 7}, 60, grant_id="g1")  # a grant id may be bound again
    assert await s.revoke_grant("g1") == 1


async def test_revoke_grant_with_many_members(backend: Backend) -> None:
    s = backend.store
    for n in range(150):
        await s.put("access", f"a{n}", {"n": n}, 60, grant_id="user:1")
    assert await s.revoke_grant("user:1") == 150
    assert await s.get("access", "a7") is None


@pytest.mark.parametrize(
    ("kind", "id", "error"),
    [
        ("", "x", ValueError),
        ("a:b", "x", ValueError),
        ("with space", "x", ValueError),
        ("-lead", "x", ValueError),
        ("k" * 65, "x", ValueError),
        ("code", "", ValueError),
        ("code", "x" * 1025, ValueError),
        ("code", 7, ValueError),
    ],
)
async def test_bad_keys_are_refused_everywhere(backend: Backend, kind: Any, id: Any, error: type) -> None:
    s = backend.store
    with pytest.raises(error, match=r"kind|id"):
        await s.put(kind, id, {"v": 1}, 60)
    with pytest.raises(error):
        await s.add(kind, id, {"v": 1}, 60)
    with pytest.raises(error):
        await s.get(kind, id)
    with pytest.raises(error):
        await s.consume(kind, id)
    with pytest.raises(error):
        await s.incr(kind, id, 60)
    with pytest.raises(error):
        await s.delete(kind, id)
    with pytest.raises(error):
        await s.ttl(kind, id)


@pytest.mark.parametrize(
    ("payload", "ttl", "grant_id", "error", "message"),
    [
        ({"v": 1}, 0, None, ValueError, "ttl must be between"),
        ({"v": 1}, -5, None, ValueError, "ttl must be between"),
        ({"v": 1}, 10**10, None, ValueError, "ttl must be between"),
        ({"v": 1}, 1.5, None, TypeError, "ttl must be an int"),
        ({"v": 1}, True, None, TypeError, "ttl must be an int"),
        ({"v": 1}, 60, "", ValueError, "grant_id"),
        (["not", "an", "object"], 60, None, TypeError, "payload must be a JSON object"),
        ({"v": float("nan")}, 60, None, ValueError, "payload is not JSON-serialisable"),
        ({"v": {1, 2}}, 60, None, TypeError, "payload is not JSON-serialisable"),
    ],
)
async def test_bad_put_arguments_fail_clearly_and_store_nothing(
    backend: Backend, payload: Any, ttl: Any, grant_id: Any, error: type, message: str
) -> None:
    s = backend.store
    with pytest.raises(error, match=message):
        await s.put("code", "bad", payload, ttl, grant_id=grant_id)
    with pytest.raises(error, match=message):
        await s.add("code", "bad", payload, ttl, grant_id=grant_id)
    assert await s.get("code", "bad") is None
    assert await s.ttl("code", "bad") is None


async def test_bad_windows_and_grants_are_refused(backend: Backend) -> None:
    s = backend.store
    with pytest.raises(ValueError, match="window must be between"):
        await s.incr("hits", "x", 0)
    with pytest.raises(TypeError, match="window must be an int"):
        await s.incr("hits", "x", 2.5)  # type: ignore[arg-type]
    assert (await s.incr("hits", "x", 60)).value == 1
    with pytest.raises(ValueError, match="grant_id"):
        await s.revoke_grant("")


# -- directory -------------------------------------------------------------------------

ALICE = {"id": "u-alice", "mail": "alice@partner.example", "userType": "Guest"}
ISS = "https://idp.partner.example"


async def test_create_and_find_user(backend: Backend) -> None:
    s = backend.store
    assert await s.create_user(ALICE, [(ISS, "sub-a"), ("mail", "alice@partner.example")]) is True
    assert await s.get_user("u-alice") == ALICE
    assert await s.find_user_by_identity(ISS, "sub-a") == ALICE
    assert await s.find_user_by_identity("mail", "alice@partner.example") == ALICE
    assert await s.find_user_by_identity(ISS, "SUB-A") is None  # exact matching
    assert await s.find_user_by_identity("https://other.example", "sub-a") is None
    assert await s.get_user("u-nobody") is None


async def test_create_user_with_a_taken_identity_writes_nothing(backend: Backend) -> None:
    s = backend.store
    assert await s.create_user(ALICE, [(ISS, "sub-a")])
    bob = {"id": "u-bob", "mail": "bob@partner.example"}
    assert await s.create_user(bob, [("mail", "bob@partner.example"), (ISS, "sub-a")]) is False
    assert await s.get_user("u-bob") is None
    assert await s.find_user_by_identity("mail", "bob@partner.example") is None
    assert await s.find_user_by_identity(ISS, "sub-a") == ALICE
    assert await s.create_user(bob, [("mail", "bob@partner.example")]) is True


async def test_create_user_refuses_an_existing_id(backend: Backend) -> None:
    s = backend.store
    assert await s.create_user(ALICE, [(ISS, "sub-a")])
    with pytest.raises(ValueError, match="already exists"):
        await s.create_user({"id": "u-alice", "mail": "imposter@x.example"}, [(ISS, "sub-x")])
    assert await s.get_user("u-alice") == ALICE
    assert await s.find_user_by_identity(ISS, "sub-x") is None


async def test_concurrent_create_user_with_same_identity_has_one_winner(backend: Backend) -> None:
    s = backend.store
    results = await asyncio.gather(*(s.create_user({"id": f"u{n}"}, [(ISS, "same-sub")]) for n in range(10)))
    assert results.count(True) == 1
    winner = f"u{results.index(True)}"
    assert await s.find_user_by_identity(ISS, "same-sub") == {"id": winner}
    for n in range(10):
        assert (await s.get_user(f"u{n}") is not None) == (f"u{n}" == winner)


@pytest.mark.parametrize(
    ("user", "identities", "error", "message"),
    [
        ({"mail": "no-id@x.example"}, [(ISS, "s")], ValueError, r"user\['id'\]"),
        ({"id": ""}, [(ISS, "s")], ValueError, r"user\['id'\]"),
        ({"id": 5}, [(ISS, "s")], ValueError, r"user\['id'\]"),
        ({"id": "u1"}, [(ISS, "s"), (ISS, "s")], ValueError, "listed twice"),
        ({"id": "u1"}, [(ISS, "")], ValueError, "issuer_assigned_id"),
        ({"id": "u1"}, [("", "s")], ValueError, "issuer"),
        ({"id": "u1"}, [(ISS,)], ValueError, "pair"),
        ({"id": "u1", "x": float("inf")}, [(ISS, "s")], ValueError, "not JSON-serialisable"),
    ],
)
async def test_bad_users_fail_clearly_and_write_nothing(
    backend: Backend, user: Any, identities: Any, error: type, message: str
) -> None:
    s = backend.store
    with pytest.raises(error, match=message):
        await s.create_user(user, identities)
    assert await s.get_user("u1") is None
    assert await s.find_user_by_identity(ISS, "s") is None


async def test_update_user_replaces_the_document(backend: Backend) -> None:
    s = backend.store
    await s.create_user(ALICE, [(ISS, "sub-a")])
    changed = {**ALICE, "displayName": "Alice A."}
    await s.update_user(changed)
    assert await s.get_user("u-alice") == changed
    assert await s.find_user_by_identity(ISS, "sub-a") == changed


async def test_update_of_an_unknown_user_fails_and_creates_nothing(backend: Backend) -> None:
    s = backend.store
    with pytest.raises(KeyError, match="u-ghost"):
        await s.update_user({"id": "u-ghost"})
    assert await s.get_user("u-ghost") is None
    with pytest.raises(ValueError, match=r"user\['id'\]"):
        await s.update_user({"mail": "x@y.example"})


async def test_signing_keys_are_listed_oldest_first(backend: Backend) -> None:
    s = backend.store
    assert await s.list_signing_keys() == []
    for kid in ("k-b", "k-a", "k-c"):
        await s.save_signing_key({"kid": kid, "created_at": 1, "state": "active"})
    await s.save_signing_key({"kid": "k-b", "created_at": 1, "state": "retired"})
    keys = await s.list_signing_keys()
    assert [k["kid"] for k in keys] == ["k-b", "k-a", "k-c"]
    assert keys[0]["state"] == "retired"


async def test_bad_signing_key_records_are_refused(backend: Backend) -> None:
    s = backend.store
    with pytest.raises(ValueError, match=r"record\['kid'\]"):
        await s.save_signing_key({"alg": "ES256"})
    with pytest.raises(TypeError, match="JSON object"):
        await s.save_signing_key([("kid", "x")])  # type: ignore[arg-type]
    assert await s.list_signing_keys() == []


async def test_meta_first_value_wins(backend: Backend) -> None:
    s = backend.store
    assert await s.get_meta("pairwise_salt") is None
    assert await s.set_meta_if_absent("pairwise_salt", "one") == "one"
    assert await s.set_meta_if_absent("pairwise_salt", "two") == "one"
    assert await s.get_meta("pairwise_salt") == "one"
    results = await asyncio.gather(*(s.set_meta_if_absent("race", f"v{n}") for n in range(10)))
    assert len(set(results)) == 1
    assert await s.get_meta("race") == results[0]
    with pytest.raises(TypeError, match="meta value"):
        await s.set_meta_if_absent("typed", 5)  # type: ignore[arg-type]
    assert await s.get_meta("typed") is None


async def test_migrate_is_idempotent_and_keeps_data(backend: Backend) -> None:
    s = backend.store
    assert await s.get_meta("schema_version") == str(SCHEMA_VERSION) == "3"
    await s.put("session", "s", {"v": 1}, 60)
    await s.create_user(ALICE, [(ISS, "sub-a")])
    await s.migrate()
    await s.migrate()
    assert await s.get("session", "s") == {"v": 1}
    assert await s.find_user_by_identity(ISS, "sub-a") == ALICE
    assert await s.find_users_by_mail("ALICE@partner.example") == [ALICE]
    assert await s.get_meta("schema_version") == "3"


async def test_consume_counted_may_count_under_another_id(backend: Backend) -> None:
    s = backend.store
    await s.put("code", "c", {"v": 1}, 60)
    await s.put("code", "d", {"v": 2}, 60)
    counted, consumed = await s.consume_counted("code", "c", "requests", 60, 1, counter_id="client")
    assert (counted.value, consumed) == (1, Consumed(payload={"v": 1}, grant_id=None, first=True))
    counted, consumed = await s.consume_counted("code", "d", "requests", 60, 1, counter_id="client")
    assert (counted.value, consumed) == (2, None)  # one counter for both codes: over the limit
    assert (await s.incr("requests", "client", 60)).value == 3
    assert (await s.incr("requests", "c", 60)).value == 1  # nothing counted under the artefact's id
    assert await s.get("code", "d") == {"v": 2}


async def test_consume_counted_checks_everything_before_counting(backend: Backend) -> None:
    s = backend.store
    await s.put("code", "c", {"v": 1}, 60)
    with pytest.raises(ValueError):
        await s.consume_counted("code", "c", "requests", 60, 1, counter_id="")
    with pytest.raises(ValueError):
        await s.consume_counted("code", "c", "requests", 60, -1, counter_id="client")
    with pytest.raises(ValueError):
        await s.consume_counted("code", "c", "requests", 0, 1, counter_id="client")
    assert (await s.incr("requests", "client", 60)).value == 1
    assert await s.get("code", "c") == {"v": 1}
