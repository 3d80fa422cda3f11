"""Redis-specific behaviour of schema 3 (``redis_directory``): the documented keys, the upgrade
from schema 2, and purges that race a restore."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

import gateway.store.redis as redis_module
from gateway.store.redis import INDEX_USER_IDS, RedisStore
from gateway.store.redis_keys import META, USER_IDS, USERS

pytestmark = pytest.mark.redis

ISS = "https://iss.example"
T0 = 1_700_000_000


@pytest.fixture
async def raw(fresh_redis_url: str) -> AsyncIterator[Any]:
    client: Any = aioredis.Redis.from_url(fresh_redis_url, decode_responses=True)
    yield client
    await client.aclose()


async def zset(raw: Any, key: str) -> list[tuple[str, float]]:
    return [(member, score) for member, score in await raw.zrange(key, 0, -1, withscores=True)]


async def test_directory_keys_follow_the_documented_scheme(redis_store: RedisStore, raw: Any) -> None:
    s = redis_store
    for user_id in ("u1", "u-é"):
        assert await s.create_user({"id": user_id}, [(ISS, user_id)])
    await s.create_group({"id": "g1", "displayName": "G"})
    await s.add_group_member("g1", "u-é")
    await s.add_group_owner("g1", "u1")
    await s.add_app_owner("app", "u1")
    role = {"id": "a1", "appRoleId": "r", "principalId": "u1", "principalType": "User", "resourceId": "app"}
    assert await s.add_app_role_assignment(role)
    await s.soft_delete_user("u1", T0)
    assert await zset(raw, "gw:{dir}:user-ids") == [("u-é", 0.0), ("u1", 0.0)]
    assert await zset(raw, "gw:{dir}:deleted") == [("u1", float(T0))]
    assert await zset(raw, "gw:{dir}:deleted-ids") == [("u1", 0.0)]
    assert json.loads(await raw.hget("gw:{dir}:users", "u1")) == {"id": "u1"}  # document untouched
    assert await raw.hgetall("gw:{dir}:groups") == {"g1": '{"id":"g1","displayName":"G"}'}
    assert await zset(raw, "gw:{dir}:group-ids") == [("g1", 0.0)]
    assert await zset(raw, "gw:{dir}:members") == [("2:g1u-é", 0.0)]
    assert await zset(raw, "gw:{dir}:member-of") == [("4:u-ég1", 0.0)]  # byte length: é is 2 bytes
    assert await zset(raw, "gw:{dir}:owners") == [("2:g1u1", 0.0)]
    assert await zset(raw, "gw:{dir}:owner-of") == [("2:u1g1", 0.0)]
    assert await zset(raw, "gw:{dir}:app-owners") == [("3:appu1", 0.0)]
    assert await zset(raw, "gw:{dir}:owned-apps") == [("2:u1app", 0.0)]
    assert json.loads(await raw.hget("gw:{dir}:assignments", "a1")) == role
    assert await raw.hgetall("gw:{dir}:assignment-triples") == {"2:u13:appr": "a1"}
    assert await zset(raw, "gw:{dir}:assignments-by-principal") == [("2:u1a1", 0.0)]
    assert await zset(raw, "gw:{dir}:assignments-by-resource") == [("3:appa1", 0.0)]

    assert await s.delete_user("u1") and await s.delete_user("u-é") and await s.delete_group("g1")
    assert await raw.keys("gw:{dir}:*") == [META]  # nothing left behind


async def test_migrate_files_every_user_of_a_version_2_directory(
    redis_store: RedisStore, raw: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_module, "SCAN_COUNT", 2)  # several batches
    for n in range(5):
        assert await redis_store.create_user({"id": f"u{n}", "userType": "Guest"}, [(ISS, f"s{n}")])
    await raw.delete(USER_IDS)  # the layout schema 2 wrote
    await raw.hset(META, "schema_version", "2")
    assert await redis_store.list_users() == ([], None)
    await redis_store.migrate()
    assert await raw.hget(META, "schema_version") == "3"
    page, cursor = await redis_store.list_users(limit=3)
    assert ([u["id"] for u in page], cursor) == (["u0", "u1", "u2"], "u2")
    await raw.hset(META, "schema_version", "2")  # an interrupted upgrade runs again harmlessly
    await redis_store.migrate()
    assert await raw.zcard(USER_IDS) == 5


async def test_the_upgrade_skips_a_user_deleted_since_the_scan(redis_store: RedisStore, raw: Any) -> None:
    assert await redis_store.create_user({"id": "u1"}, [(ISS, "s1")])
    await raw.delete(USER_IDS)
    await redis_store._eval(INDEX_USER_IDS, [USERS, USER_IDS], ["u1", "u-gone"])
    assert await zset(raw, USER_IDS) == [("u1", 0.0)]


async def test_purge_spares_a_user_restored_after_it_was_found_due(redis_store: RedisStore) -> None:
    s = redis_store
    assert await s.create_user({"id": "u1"}, [(ISS, "s1")])
    assert await s.create_user({"id": "u2"}, [(ISS, "s2")])
    await s.soft_delete_user("u1", T0)
    await s.soft_delete_user("u2", T0 + 10)
    await s.restore_user("u1")  # as if restored between the purge's read and its delete
    assert await s._delete_user("u1", T0 + 100) is False
    assert await s._delete_user("u2", T0 + 5) is False  # deleted too recently
    assert await s.get_user("u1") == {"id": "u1"}
    assert await s.get_deleted_user("u2") is not None
    assert await s._delete_user("u2", T0 + 11) is True
