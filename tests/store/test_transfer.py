"""``gateway store migrate|backup|restore``: a full copy SQLite -> Redis -> file -> SQLite keeps
everything the store holds; bad files, non-empty and conflicting targets are refused with nothing
written."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
import redis

from gateway.cli import main
from gateway.store.factory import open_store
from gateway.store.transfer import Dump, read_store

pytestmark = pytest.mark.redis


async def cli(*argv: str) -> int:
    """``gateway ARGV`` (the CLI runs its own event loop: in a thread)."""
    return await asyncio.to_thread(main, list(argv))


async def _fill(url: str) -> None:
    store = open_store(url)
    try:
        await store.migrate()
        await store.set_meta_if_absent("pairwise_salt", "salt")
        await store.save_signing_key({"kid": "k1", "alg": "ES256", "private": "sealed"})
        await store.save_signing_key({"kid": "k2", "alg": "ES256", "private": "sealed"})
        await store.create_user({"id": "u1", "mail": "a@x.example"}, [("iss", "s1"), ("iss", "s1b")])
        await store.create_user({"id": "u2", "mail": "b@x.example"}, [("iss", "s2")])
        group = {"id": "g", "displayName": "G", "mailNickname": "g", "securityEnabled": True}
        await store.create_group(group)
        await store.add_group_member("g", "u1")
        await store.add_group_member("g", "u2")
        await store.add_group_owner("g", "u1")
        await store.add_app_owner("demo", "u2")
        await store.add_app_role_assignment(
            {"id": "a1", "appRoleId": "r", "principalId": "u2", "principalType": "User", "resourceId": "demo"}
        )
        await store.soft_delete_user("u2", 1_700_000_000)
        await store.put("session", "s1", {"u": "u1"}, 3600, grant_id="gr")
        await store.put("code", "c1", {"u": "u1"}, 600, grant_id="gr")
        await store.consume("code", "c1")
        await store.incr("passcode-attempts", "ch", 600)
        await store.incr("passcode-attempts", "ch", 600)
    finally:
        await store.close()


async def _content(url: str) -> Dump:
    store = open_store(url)
    try:
        return await read_store(store, time.time())
    finally:
        await store.close()


def _comparable(dump: Dump) -> dict[str, object]:
    data = {name: value for name, value in vars(dump).items() if name not in ("artefacts", "counters")}
    data["artefacts"] = [{k: v for k, v in a.items() if k != "expires_at"} for a in dump.artefacts]
    data["counters"] = [{k: v for k, v in c.items() if k != "expires_at"} for c in dump.counters]
    data["users"] = sorted(data["users"], key=lambda u: u["user"]["id"])
    return data


async def test_sqlite_to_redis_to_file_to_sqlite_keeps_everything(
    tmp_path: Path, fresh_redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    source = f"sqlite:///{tmp_path}/a.db"
    await _fill(source)
    assert await cli("store", "migrate", "--from", source, "--to", fresh_redis_url) == 0
    assert "2 user" in capsys.readouterr().out
    before, moved = await _content(source), await _content(fresh_redis_url)
    assert _comparable(moved) == _comparable(before)
    assert moved.users[1]["deleted_at"] == 1_700_000_000 and moved.artefacts[0]["uses"] == 1
    assert moved.counters[0]["value"] == 2

    store = open_store(fresh_redis_url)
    try:  # the copy behaves: the consumed code is not first any more, the grant revokes both
        assert (await store.consume("code", "c1") or pytest.fail()).first is False
        assert (await store.find_user_by_identity("iss", "s1b") or {})["id"] == "u1"
        assert await store.find_user_by_identity("iss", "s2") is None  # soft-deleted
        assert await store.revoke_grant("gr") == 2
    finally:
        await store.close()

    backup = tmp_path / "backup.jsonl"
    assert await cli("store", "backup", str(backup), "--store", source) == 0
    assert backup.stat().st_mode & 0o777 == 0o600
    lines = backup.read_text().splitlines()
    assert json.loads(lines[0])["schema_version"] == 3 and json.loads(lines[-1])["record"] == "end"
    target = f"sqlite:///{tmp_path}/b.db"
    assert await cli("store", "restore", str(backup), "--store", target) == 0
    assert _comparable(await _content(target)) == _comparable(before)
    # idempotent: again with --force changes nothing; without it, the non-empty target is refused
    assert await cli("store", "restore", str(backup), "--store", target) == 1
    assert "is not empty; pass --force" in capsys.readouterr().err
    assert await cli("store", "restore", str(backup), "--store", target, "--force") == 0
    assert _comparable(await _content(target)) == _comparable(before)


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda lines: lines[:-1], "no 'end' record: the file is truncated"),
        (lambda lines: ["{}", *lines[1:]], "not a gateway store dump"),
        (lambda lines: [lines[0].replace('"schema_version":3', '"schema_version":4'), *lines[1:]], "newer"),
        (lambda lines: [*lines[:2], "not json", *lines[2:]], ":3: not JSON"),
        (lambda lines: [*lines[:2], '{"record":"user","user":{}}', *lines[2:]], "'id' must be a non-empty"),
        (lambda lines: [*lines[:2], '{"record":"gadget"}', *lines[2:]], "unknown record type 'gadget'"),
        (lambda lines: [*lines[:-1], lines[-2], lines[-1]], "counts"),
    ],
)
async def test_a_bad_dump_is_refused_and_nothing_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], mangle: object, message: str
) -> None:
    source = f"sqlite:///{tmp_path}/a.db"
    await _fill(source)
    backup = tmp_path / "backup.jsonl"
    assert await cli("store", "backup", str(backup), "--store", source) == 0
    assert callable(mangle)
    backup.write_text("\n".join(mangle(backup.read_text().splitlines())) + "\n")
    capsys.readouterr()
    target = tmp_path / "b.db"
    assert await cli("store", "restore", str(backup), "--store", f"sqlite:///{target}") == 1
    assert message in capsys.readouterr().err
    assert not target.exists()


async def test_a_target_started_on_its_own_is_refused(
    tmp_path: Path, fresh_redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    source = f"sqlite:///{tmp_path}/a.db"
    await _fill(source)
    client = redis.Redis.from_url(fresh_redis_url)
    client.hset("gw:{dir}:meta", "pairwise_salt", "another")
    client.close()
    assert await cli("store", "migrate", "--from", source, "--to", fresh_redis_url, "--force") == 1
    assert "different 'pairwise_salt'" in capsys.readouterr().err
    assert (await _content(fresh_redis_url)).users == []


def test_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = f"sqlite:///{tmp_path}/missing.db"
    assert main(["store", "migrate", "--from", missing, "--to", "redis://127.0.0.1:1/0"]) == 1
    assert "no such SQLite file" in capsys.readouterr().err
    assert main(["store", "migrate", "--from", missing, "--to", "redis+cluster://n1/3"]) == 1
    assert "database 0 only" in capsys.readouterr().err
    assert main(["store", "migrate", "--from", missing, "--to", missing]) == 1
    assert main(["store", "migrate", "--from", missing]) == 2
    assert list(tmp_path.iterdir()) == []
