"""Redis-specific behaviour: the documented key scheme, hash-tag slots, TTL bookkeeping,
script reloading and the schema guard."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import pytest
import redis.asyncio as aioredis
from redis.crc import key_slot

import gateway.store.redis as redis_module
from gateway.store.base import Delete, Put
from gateway.store.redis import Client, RedisStore, artefact_key, counter_key, grant_key
from gateway.store.redis_keys import (
    DIR_KEYS,
    IDENTITIES,
    META,
    SIGNING_KEY_ORDER,
    SIGNING_KEY_SEQ,
    SIGNING_KEYS,
    USER_IDENTITIES,
    USER_MAILS,
    USERS,
    mail_key,
)

pytestmark = pytest.mark.redis


@pytest.fixture
async def raw(fresh_redis_url: str) -> AsyncIterator[Any]:
    client: Any = aioredis.Redis.from_url(fresh_redis_url, decode_responses=True)
    yield client
    await client.aclose()


async def test_keys_follow_the_documented_scheme(redis_store: RedisStore, raw: Any) -> None:
    await redis_store.put("code", "c1", {"v": 1}, 60, grant_id="g1")
    await redis_store.incr("hits", "ip", 60)
    await redis_store.create_user({"id": "u1", "mail": "U1@X.example"}, [("https://iss.example", "s1")])
    await redis_store.save_signing_key({"kid": "k1"})
    assert set(await raw.keys("*")) == {
        "gw:a:{code:c1}",
        "gw:n:{hits:ip}",
        "gw:g:{g1}",
        "gw:{dir}:users",
        "gw:{dir}:identities",
        "gw:{dir}:user-identities",
        "gw:{dir}:user-mails",
        "gw:{dir}:mail:u1@x.example",
        "gw:{dir}:user-ids",
        "gw:{dir}:signing-keys",
        "gw:{dir}:signing-key-order",
        "gw:{dir}:signing-key-seq",
        "gw:{dir}:meta",
    }
    assert await raw.hgetall("gw:a:{code:c1}") == {"payload": '{"v":1}', "grant": "g1", "uses": "0"}
    assert await raw.smembers("gw:g:{g1}") == {"gw:a:{code:c1}"}
    assert await raw.hgetall("gw:{dir}:identities") == {'["https://iss.example","s1"]': "u1"}
    assert await raw.hgetall("gw:{dir}:user-identities") == {"u1": '[["https://iss.example","s1"]]'}
    assert await raw.hgetall("gw:{dir}:user-mails") == {"u1": '["u1@x.example"]'}
    assert await raw.smembers("gw:{dir}:mail:u1@x.example") == {"u1"}
    assert await raw.zrange("gw:{dir}:user-ids", 0, -1, withscores=True) == [("u1", 0.0)]


def test_keys_that_change_together_share_a_slot() -> None:
    directory = {
        key_slot(k.encode())
        for k in (
            USERS, IDENTITIES, USER_IDENTITIES, USER_MAILS, mail_key("a{b}c@x.example"), mail_key("z@y"),
            SIGNING_KEYS, SIGNING_KEY_ORDER, SIGNING_KEY_SEQ, META, *DIR_KEYS,
        )
    }  # fmt: skip
    assert len(directory) == 1
    for kind, id in (("code", "abc"), ("hits", "10.0.0.1"), ("code", "x}y")):
        assert key_slot(artefact_key(kind, id).encode()) == key_slot(counter_key(kind, id).encode())
    assert key_slot(grant_key("user:1").encode()) == key_slot(b"user:1")


async def test_every_artefact_key_expires(redis_store: RedisStore, raw: Any) -> None:
    await redis_store.put("code", "c", {}, 60)
    assert await redis_store.add("replay", "r", {}, 30) is True
    await redis_store.incr("hits", "h", 90)
    await redis_store.consume("code", "c")
    assert 59_000 < await raw.pttl("gw:a:{code:c}") <= 60_000
    assert 29_000 < await raw.pttl("gw:a:{replay:r}") <= 30_000
    assert 89_000 < await raw.pttl("gw:n:{hits:h}") <= 90_000


async def test_grant_index_lives_as_long_as_its_longest_member(redis_store: RedisStore, raw: Any) -> None:
    await redis_store.put("access", "a", {}, 100, grant_id="g")
    await redis_store.put("code", "c", {}, 50, grant_id="g")
    assert 99_000 < await raw.pttl("gw:g:{g}") <= 100_000
    assert await redis_store.add("refresh", "r", {}, 300, grant_id="g") is True
    assert 299_000 < await raw.pttl("gw:g:{g}") <= 300_000
    assert await redis_store.revoke_grant("g") == 3
    assert await raw.exists("gw:g:{g}") == 0


async def test_revoke_skips_members_rebound_to_another_grant(redis_store: RedisStore, raw: Any) -> None:
    await redis_store.put("session", "s", {"v": 1}, 60, grant_id="user:1")
    await redis_store.put("session", "s", {"v": 2}, 60, grant_id="user:2")
    assert await raw.smembers("gw:g:{user:1}") == {"gw:a:{session:s}"}  # stale member
    assert await redis_store.revoke_grant("user:1") == 0
    assert await redis_store.get("session", "s") == {"v": 2}


async def test_scripts_are_reloaded_when_the_server_lost_them(redis_store: RedisStore, raw: Any) -> None:
    await raw.script_flush()
    await redis_store.put("code", "c", {"v": 1}, 60, grant_id="g")  # pipelined path
    await raw.script_flush()
    consumed = await redis_store.consume("code", "c")  # single-call path
    assert consumed is not None and consumed.first
    await raw.script_flush()
    assert await redis_store.revoke_grant("g") == 1


async def test_migrate_refuses_a_newer_schema(redis_store: RedisStore, raw: Any) -> None:
    await raw.hset("gw:{dir}:meta", "schema_version", "99")
    with pytest.raises(RuntimeError, match="schema_version 99 is newer"):
        await redis_store.migrate()
    assert await raw.hget("gw:{dir}:meta", "schema_version") == "99"


async def test_create_user_leaves_no_partial_index(redis_store: RedisStore, raw: Any) -> None:
    assert await redis_store.create_user({"id": "u1"}, [("iss", "a")])
    assert not await redis_store.create_user(
        {"id": "u2", "mail": "u2@x.example"}, [("iss", "b"), ("iss", "a")]
    )
    assert await raw.hgetall("gw:{dir}:identities") == {'["iss","a"]': "u1"}
    assert await raw.hkeys("gw:{dir}:users") == ["u1"]
    assert await raw.hkeys("gw:{dir}:user-identities") == ["u1"]
    assert await raw.hkeys("gw:{dir}:user-mails") == ["u1"]
    assert await raw.keys("gw:{dir}:mail:*") == []


async def test_delete_user_leaves_no_directory_key_behind(redis_store: RedisStore, raw: Any) -> None:
    user = {"id": "u1", "mail": "a@x.example", "otherMails": ["b@x.example"]}
    assert await redis_store.create_user(user, [("iss", "a"), ("iss", "b")])
    await redis_store.update_user({**user, "otherMails": ["c@x.example"]})
    assert set(await raw.keys("gw:{dir}:mail:*")) == {mail_key("a@x.example"), mail_key("c@x.example")}
    assert await redis_store.delete_user("u1") is True
    assert await raw.keys("gw:{dir}:*") == [META]


class Interfering:
    """A client that runs ``interfere`` once, right after the store read a user's index entries
    (``hget`` of ``user-mails`` or a pipelined read), to force a compare-and-set conflict."""

    def __init__(self, client: Any, interfere: Callable[[], Awaitable[None]]) -> None:
        self._client = client
        self._interfere: Callable[[], Awaitable[None]] | None = interfere
        self.conflicts = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    async def _after_read(self) -> None:
        if self._interfere is not None:
            interfere, self._interfere = self._interfere, None
            await interfere()

    async def hget(self, name: str, key: str) -> Any:
        value = await self._client.hget(name, key)
        if name == USER_MAILS:
            await self._after_read()
        return value

    def pipeline(self, transaction: bool = True) -> Any:
        pipe = self._client.pipeline(transaction=transaction)
        execute = pipe.execute

        async def execute_then_interfere() -> list[Any]:
            results = await execute()
            await self._after_read()
            return cast(list[Any], results)

        pipe.execute = execute_then_interfere
        return pipe

    async def evalsha(self, sha: str, numkeys: int, *keys_and_args: str | int) -> Any:
        result = await self._client.evalsha(sha, numkeys, *keys_and_args)
        if result == -1:
            self.conflicts += 1
        return result


async def test_update_user_retries_when_the_index_changed_under_it(
    redis_store: RedisStore, fresh_redis_url: str
) -> None:
    assert await redis_store.create_user({"id": "u1", "mail": "start@x.example"}, [("iss", "a")])
    client = Interfering(
        aioredis.Redis.from_url(fresh_redis_url, decode_responses=True),
        lambda: redis_store.update_user({"id": "u1", "mail": "other@x.example"}),
    )
    racer = RedisStore(cast(Client, client))
    try:
        await racer.update_user({"id": "u1", "mail": "mine@x.example"})
    finally:
        await racer.close()
    assert client.conflicts == 1
    assert [u["id"] for u in await redis_store.find_users_by_mail("mine@x.example")] == ["u1"]
    assert await redis_store.find_users_by_mail("other@x.example") == []
    assert await redis_store.find_users_by_mail("start@x.example") == []


async def test_delete_user_retries_when_the_index_changed_under_it(
    redis_store: RedisStore, fresh_redis_url: str, raw: Any
) -> None:
    assert await redis_store.create_user({"id": "u1", "mail": "start@x.example"}, [("iss", "a")])
    client = Interfering(
        aioredis.Redis.from_url(fresh_redis_url, decode_responses=True),
        lambda: redis_store.update_user({"id": "u1", "mail": "moved@x.example"}),
    )
    racer = RedisStore(cast(Client, client))
    try:
        assert await racer.delete_user("u1") is True
    finally:
        await racer.close()
    assert client.conflicts == 1
    assert await raw.keys("gw:{dir}:*") == [META]


async def test_add_identity_keeps_the_per_user_bookkeeping(redis_store: RedisStore, raw: Any) -> None:
    link = {"signInType": "federated", "issuer": "google.com", "issuerAssignedId": "g"}
    assert await redis_store.create_user({"id": "u1", "mail": "a@x.example"}, [("iss", "a")])
    assert await redis_store.add_identity("u1", "google.com", "g", link) is True
    assert await raw.hgetall(IDENTITIES) == {'["iss","a"]': "u1", '["google.com","g"]': "u1"}
    assert await raw.hgetall(USER_IDENTITIES) == {"u1": '[["iss","a"],["google.com","g"]]'}
    assert json.loads(await raw.hget(USERS, "u1"))["identities"] == [link]
    assert await redis_store.add_identity("u1", "google.com", "g", link) is False
    assert await raw.hgetall(USER_IDENTITIES) == {"u1": '[["iss","a"],["google.com","g"]]'}
    assert await redis_store.delete_user("u1") is True
    assert await raw.keys("gw:{dir}:*") == [META]


async def racing_add_identity(url: str, interfere: Callable[[], Awaitable[Any]]) -> tuple[bool, int]:
    """``add_identity("u1", "google.com", "g")`` on a client that runs ``interfere`` right after
    the store read the user; its result and how many compare-and-set conflicts it met."""
    client = Interfering(aioredis.Redis.from_url(url, decode_responses=True), interfere)
    racer = RedisStore(cast(Client, client))
    link = {"signInType": "federated", "issuer": "google.com", "issuerAssignedId": "g"}
    try:
        return await racer.add_identity("u1", "google.com", "g", link), client.conflicts
    finally:
        await racer.close()


async def test_add_identity_retries_when_the_user_changed_under_it(
    redis_store: RedisStore, fresh_redis_url: str, raw: Any
) -> None:
    assert await redis_store.create_user({"id": "u1"}, [("iss", "a")])
    other = {"signInType": "federated", "issuer": "iss", "issuerAssignedId": "b"}

    async def update_then_link() -> None:
        await redis_store.update_user({"id": "u1", "displayName": "Renamed"})
        assert await redis_store.add_identity("u1", "iss", "b", other)

    assert await racing_add_identity(fresh_redis_url, update_then_link) == (True, 1)
    assert await redis_store.get_user("u1") == {
        "id": "u1",
        "displayName": "Renamed",
        "identities": [other, {"signInType": "federated", "issuer": "google.com", "issuerAssignedId": "g"}],
    }
    assert await raw.hget(USER_IDENTITIES, "u1") == '[["iss","a"],["iss","b"],["google.com","g"]]'


async def test_add_identity_to_a_user_deleted_under_it_claims_nothing(
    redis_store: RedisStore, fresh_redis_url: str, raw: Any
) -> None:
    assert await redis_store.create_user({"id": "u1"}, [("iss", "a")])
    with pytest.raises(KeyError, match="u1"):
        await racing_add_identity(fresh_redis_url, lambda: redis_store.delete_user("u1"))
    assert await raw.keys("gw:{dir}:*") == [META]


# -- schema 1 -> 2 -------------------------------------------------------------------------

V1_USERS = [
    {
        "id": f"u{n}",
        "mail": f"User{n}@Partner.Example",
        "otherMails": [f"shared@{'X' if n % 2 else 'x'}.example"],
    }
    for n in range(5)
] + [{"id": "u-nomail", "mail": None}]


async def write_v1(raw: Any, users: list[dict[str, Any]]) -> None:
    """The layout the first release wrote: users and identities, no ``user-*`` hashes or mail sets."""
    await raw.flushdb()
    await raw.hset(META, "schema_version", "1")
    for user in users:
        await raw.hset(USERS, user["id"], json.dumps(user))
        await raw.hset(
            IDENTITIES, json.dumps(["iss", f"sub-{user['id']}"], separators=(",", ":")), user["id"]
        )


async def test_migrate_upgrades_a_version_1_directory(
    redis_store: RedisStore, raw: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_module, "SCAN_COUNT", 2)  # several batches
    await write_v1(raw, V1_USERS)
    await redis_store.migrate()
    assert await raw.hget(META, "schema_version") == "3"
    assert await raw.hgetall(USER_MAILS) == {
        **{f"u{n}": f'["shared@x.example","user{n}@partner.example"]' for n in range(5)},
        "u-nomail": "[]",
    }
    assert await raw.hget(USER_IDENTITIES, "u3") == '[["iss","sub-u3"]]'
    assert [u["id"] for u in await redis_store.find_users_by_mail("SHARED@x.example")] == [
        f"u{n}" for n in range(5)
    ]
    assert await redis_store.find_users_by_mail("user2@partner.example") == [V1_USERS[2]]

    await raw.hset(META, "schema_version", "1")  # an interrupted upgrade runs again harmlessly
    await redis_store.migrate()
    assert await raw.scard(mail_key("shared@x.example")) == 5

    assert await redis_store.delete_user("u3") is True
    assert await redis_store.create_user({"id": "u-new"}, [("iss", "sub-u3")]) is True
    assert await redis_store.find_users_by_mail("user3@partner.example") == []


async def test_migrate_refuses_a_version_1_user_with_bad_mails(redis_store: RedisStore, raw: Any) -> None:
    bad = {"id": "u-bad", "mail": 7}
    await write_v1(raw, [bad])
    with pytest.raises(RuntimeError, match=r"user 'u-bad': user\['mail'\] must be a non-empty string"):
        await redis_store.migrate()
    assert await raw.hget(META, "schema_version") == "1"
    assert await raw.keys("gw:{dir}:mail:*") == []
    await raw.hset(USERS, "u-bad", json.dumps({"id": "u-bad", "mail": "Fixed@x.example"}))
    await redis_store.migrate()
    assert await raw.hget(META, "schema_version") == "3"
    assert [u["id"] for u in await redis_store.find_users_by_mail("fixed@x.example")] == ["u-bad"]


async def test_upgrade_indexes_what_is_stored_when_a_user_changed_since_the_scan(
    redis_store: RedisStore, raw: Any
) -> None:
    await write_v1(raw, [{"id": "u1", "mail": "now@x.example"}])
    scanned = [("u1", json.dumps({"id": "u1", "mail": "then@x.example"})), ("u-gone", '{"id": "u-gone"}')]
    await redis_store._index_users(scanned, {"u1": [["iss", "sub-u1"]]})
    assert await raw.hgetall(USER_MAILS) == {"u1": '["now@x.example"]'}
    assert await raw.keys("gw:{dir}:mail:*") == [mail_key("now@x.example")]
    assert await raw.hgetall(USER_IDENTITIES) == {"u1": '[["iss","sub-u1"]]'}


async def test_a_block_pipelines_its_writes_in_one_round_trip(
    redis_store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = redis_store._eval_many
    batches: list[int] = []

    async def counting(calls: Any) -> list[Any]:
        batches.append(len(calls))
        return await real(calls)

    monkeypatch.setattr(redis_store, "_eval_many", counting)
    async with redis_store.batch():
        await redis_store.put("session", "s", {"v": 1}, 60, grant_id="g")  # artefact + grant index
        await redis_store.delete("signin", "t")
        await redis_store.put("code", "c", {"v": 2}, 60)
        assert batches == []
    assert batches == [4]
    await redis_store.apply([Put("code", "a", {"v": 1}, 60), Delete("code", "c")])
    assert batches == [4, 2]
    assert await redis_store.get("session", "s") == {"v": 1}
    assert await redis_store.get("code", "c") is None


async def test_queued_writes_go_back_to_the_block_when_their_pipeline_fails(
    redis_store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = redis_store._eval_many
    failures = [ConnectionError("connection reset")]

    async def failing_once(calls: Any) -> list[Any]:
        if failures:
            raise failures.pop()
        return await real(calls)

    monkeypatch.setattr(redis_store, "_eval_many", failing_once)
    async with redis_store.batch():
        await redis_store.put("session", "s", {"v": 1}, 60)
        with pytest.raises(ConnectionError, match="reset"):
            await redis_store.get("session", "s")
    assert await redis_store.get("session", "s") == {"v": 1}  # made when the block ended
