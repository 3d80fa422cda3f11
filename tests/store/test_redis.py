"""Redis-specific behaviour: the documented key scheme, hash-tag slots, TTL bookkeeping,
script reloading and the schema guard."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.crc import key_slot

from gateway.store.redis import (
    IDENTITIES,
    META,
    SIGNING_KEY_ORDER,
    SIGNING_KEY_SEQ,
    SIGNING_KEYS,
    USERS,
    RedisStore,
    artefact_key,
    counter_key,
    grant_key,
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
    await redis_store.create_user({"id": "u1"}, [("https://iss.example", "s1")])
    await redis_store.save_signing_key({"kid": "k1"})
    assert set(await raw.keys("*")) == {
        "gw:a:{code:c1}",
        "gw:n:{hits:ip}",
        "gw:g:{g1}",
        "gw:{dir}:users",
        "gw:{dir}:identities",
        "gw:{dir}:signing-keys",
        "gw:{dir}:signing-key-order",
        "gw:{dir}:signing-key-seq",
        "gw:{dir}:meta",
    }
    assert await raw.hgetall("gw:a:{code:c1}") == {"payload": '{"v":1}', "grant": "g1", "uses": "0"}
    assert await raw.smembers("gw:g:{g1}") == {"gw:a:{code:c1}"}
    assert await raw.hgetall("gw:{dir}:identities") == {'["https://iss.example","s1"]': "u1"}


def test_keys_that_change_together_share_a_slot() -> None:
    directory = {
        key_slot(k.encode())
        for k in (USERS, IDENTITIES, SIGNING_KEYS, SIGNING_KEY_ORDER, SIGNING_KEY_SEQ, META)
    }
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
    assert not await redis_store.create_user({"id": "u2"}, [("iss", "b"), ("iss", "a")])
    assert await raw.hgetall("gw:{dir}:identities") == {'["iss","a"]': "u1"}
    assert await raw.hkeys("gw:{dir}:users") == ["u1"]
