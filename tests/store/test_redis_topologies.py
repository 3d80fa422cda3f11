"""Sentinel and Cluster store URLs: parsing, settings validation, and the store on a real Sentinel
and a real three-primary Cluster, where every script's keys must share one hash slot."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import redis
from pydantic import ValidationError
from redis.crc import key_slot

from gateway.store.base import Delete, Put, Store
from gateway.store.factory import open_store
from gateway.store.redis import RedisStore
from gateway.store.redis_keys import Script
from gateway.store.redis_urls import RedisTarget, parse_target
from tests.support.gateway_app import make_settings

pytest_plugins = ["tests.store.redis_topologies"]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "redis+sentinel://s1:26379,s2:26380/mymaster/2",
            RedisTarget("sentinel", False, (("s1", 26379), ("s2", 26380)), None, None, "mymaster", 2),
        ),
        (
            "rediss+sentinel://:p%40ss@s1,[::1]:26381/mymaster?sentinel_password=sp",
            RedisTarget(
                "sentinel", True, (("s1", 26379), ("::1", 26381)), None, "p@ss", "mymaster", 0, None, "sp"
            ),
        ),
        (
            "redis+cluster://app:secret@n1:7000,n2:7001",
            RedisTarget("cluster", False, (("n1", 7000), ("n2", 7001)), "app", "secret"),
        ),
        ("rediss+cluster://n1/0", RedisTarget("cluster", True, (("n1", 6379),), None, None)),
    ],
)
def test_sentinel_and_cluster_urls_parse(url: str, expected: RedisTarget) -> None:
    assert parse_target(url) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis+sentinel://s1:26379", "name the master after the hosts"),
        ("redis+sentinel://s1:26379/", "name the master after the hosts"),
        ("redis+sentinel://s1:26379/my master", "master name 'my master' is not valid"),
        ("redis+sentinel://s1:26379/mymaster/16", "not a number from 0 to 15"),
        ("redis+sentinel://s1:26379/mymaster/0/x", r"the path is /service_name\[/db\]"),
        ("redis+sentinel:///mymaster", "name at least one host"),
        ("redis+sentinel://s1:99999/mymaster", "port 99999"),
        ("redis+sentinel://s1,s1/mymaster", "listed twice"),
        ("redis+sentinel://s1/mymaster?timeout=3", r"unknown option\(s\) \['timeout'\]"),
        ("redis+cluster://n1:7000/1", "database 0 only"),
        ("redis+cluster://n1:7000?sentinel_password=x", "allowed: none"),
        ("redis+cluster://n1:7000#frag", "no fragment"),
        ("redis+cluster://n1:abc", "is not host\\[:port\\]"),
    ],
)
def test_bad_sentinel_and_cluster_urls_fail_clearly(url: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=message):
        parse_target(url)
    with pytest.raises(ValueError, match=message):
        open_store(url)
    with pytest.raises(ValidationError, match=message):
        make_settings(tmp_path, store=url)
    assert list(tmp_path.iterdir()) == []


def test_passwords_never_appear_in_errors() -> None:
    with pytest.raises(ValueError) as caught:
        parse_target("redis+sentinel://:hunter2@s1/mymaster/99?sentinel_password=swordfish")
    assert "hunter2" not in str(caught.value) and "swordfish" not in str(caught.value)


def test_settings_accept_every_store_form(tmp_path: Path) -> None:
    for url in (
        "redis+sentinel://s1:26379,s2:26379/mymaster/0",
        "rediss+sentinel://:pw@s1/mymaster",
        "redis+cluster://n1:7000,n2:7001",
        "rediss+cluster://n1:7000",
        "redis://127.0.0.1:6379/0",
    ):
        assert make_settings(tmp_path, store=url).store == url
    with pytest.raises(ValidationError, match="redis\\+sentinel://host1:26379"):
        make_settings(tmp_path, store="memcached://x")


class SlotChecked(RedisStore):
    """A store that checks, before each script runs, that all its keys share one hash slot."""

    scripts: set[str]

    async def _eval(self, script: Script, keys: Sequence[str], args: Sequence[str | int]) -> Any:
        slots = {key_slot(key.encode()) for key in keys}
        assert len(slots) <= 1, f"script keys span slots {slots}: {keys}"
        self.scripts.add(script.sha)
        return await super()._eval(script, keys, args)


async def _workload(store: Store) -> None:
    """Every store operation once (artefacts, grants, counters, the directory, keys, meta)."""
    await store.migrate()
    await store.put("code", "c1", {"n": 1}, 60, grant_id="g1")
    assert await store.add("code", "c2", {"n": 2}, 60, grant_id="g1")
    assert not await store.add("code", "c2", {"n": 3}, 60)
    assert (await store.consume("code", "c1")) is not None
    assert await store.get("code", "c2") == {"n": 2}
    assert await store.ttl("code", "c2") in (59, 60)
    assert (await store.incr("limit", "ip", 60)).value == 1
    await store.apply([Put("session", "s", {"u": "x"}, 60), Delete("code", "c1")])
    assert await store.revoke_grant("g1") == 1
    await store.delete("session", "s")
    assert await store.create_user({"id": "u1", "mail": "A@x.example"}, [("iss", "sub1")])
    assert await store.create_user({"id": "u2"}, [("iss", "sub2")])
    await store.update_user({"id": "u1", "mail": "b@x.example", "otherMails": ["c@x.example"]})
    identity = {"signInType": "federated", "issuer": "iss2", "issuerAssignedId": "z"}
    assert await store.add_identity("u1", "iss2", "z", identity)
    assert (await store.find_user_by_identity("iss2", "z") or {})["id"] == "u1"
    assert [u["id"] for u in await store.find_users_by_mail("C@x.example")] == ["u1"]
    assert len((await store.list_users(limit=1))[0]) == 1
    group = {"id": "g", "displayName": "G", "mailNickname": "g", "securityEnabled": True}
    await store.create_group(group)
    await store.update_group({**group, "displayName": "G2"})
    assert await store.add_group_member("g", "u1") and await store.add_group_owner("g", "u2")
    assert await store.list_group_members("g") == ["u1"] and await store.list_user_groups("u1") == ["g"]
    assert await store.add_app_owner("demo", "u1") and await store.list_owned_apps("u1") == ["demo"]
    assignment = {
        "id": "a1",
        "appRoleId": "r",
        "principalId": "u1",
        "principalType": "User",
        "resourceId": "demo",
    }
    assert await store.add_app_role_assignment(assignment)
    assert len(await store.list_app_role_assignments(resource_id="demo")) == 1
    assert await store.soft_delete_user("u2", 1_700_000_000) is not None
    assert [u["id"] for u in (await store.list_users(deleted=True))[0]] == ["u2"]
    assert await store.restore_user("u2") is not None
    assert await store.soft_delete_user("u2", 1_700_000_000) is not None
    assert await store.purge_deleted_users(1_800_000_000) == 1
    assert await store.remove_group_member("g", "u1") and await store.delete_group("g")
    assert await store.remove_app_role_assignment("a1")
    await store.save_signing_key({"kid": "k1", "alg": "ES256"})
    assert [k["kid"] for k in await store.list_signing_keys()] == ["k1"]
    assert await store.set_meta_if_absent("pairwise_salt", "s") == "s"
    assert await store.delete_user("u1")


def _flush_cluster(url: str) -> None:
    client = redis.RedisCluster.from_url(url.replace("redis+cluster://", "redis://").split(",")[0])
    try:
        client.flushall(target_nodes=redis.RedisCluster.PRIMARIES)
    finally:
        client.close()


@pytest.mark.redis
async def test_the_store_runs_on_a_real_cluster_with_one_slot_per_script(redis_cluster_url: str) -> None:
    _flush_cluster(redis_cluster_url)
    store = open_store(redis_cluster_url)
    assert isinstance(store, RedisStore)
    checked = SlotChecked(store._redis, cluster=True)
    checked.scripts = set()
    try:
        await _workload(checked)
    finally:
        await checked.close()
    assert len(checked.scripts) >= 25  # most scripts ran, each with its keys in one slot


@pytest.mark.redis
async def test_the_store_follows_the_sentinel_to_its_master(redis_sentinel_url: str) -> None:
    store = open_store(redis_sentinel_url)
    assert isinstance(store, RedisStore)
    try:
        master = await store._redis.execute_command("ROLE")  # type: ignore[attr-defined]
        assert master[0] == "master"
        await store._redis.flushdb()  # type: ignore[attr-defined]
        await _workload(store)
    finally:
        await store.close()


@pytest.mark.redis
async def test_an_unreachable_sentinel_fails_clearly_and_writes_nothing(tmp_path: Path) -> None:
    from tests.support.redis_server import _free_port

    store = open_store(f"redis+sentinel://127.0.0.1:{_free_port()}/mymaster/0")
    try:
        with pytest.raises(redis.RedisError):
            await store.migrate()
    finally:
        await store.close()
