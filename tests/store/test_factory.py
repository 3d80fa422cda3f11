"""``open_store``: URL forms, where SQLite files land, and clear errors for everything else."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.store.factory import open_store
from gateway.store.redis import RedisStore
from gateway.store.sqlite import SQLiteStore


async def test_relative_sqlite_path_is_under_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_store("sqlite:///var/data/gateway.db")
    assert isinstance(store, SQLiteStore)
    assert Path(store.path) == tmp_path / "var" / "data" / "gateway.db"
    assert (tmp_path / "var" / "data").is_dir()
    await store.migrate()
    await store.put("code", "c", {"v": 1}, 60)
    await store.close()
    assert (tmp_path / "var" / "data" / "gateway.db").is_file()


async def test_absolute_sqlite_path(tmp_path: Path) -> None:
    target = tmp_path / "abs" / "g.db"
    store = open_store(f"sqlite:///{target}")
    assert isinstance(store, SQLiteStore)
    assert Path(store.path) == target
    await store.close()


@pytest.mark.redis
async def test_redis_urls_open_a_redis_store(fresh_redis_url: str) -> None:
    store = open_store(fresh_redis_url)
    assert isinstance(store, RedisStore)
    await store.migrate()
    await store.put("code", "c", {"v": 1}, 60)
    assert await store.get("code", "c") == {"v": 1}
    await store.close()
    assert isinstance(open_store("rediss://cache.example:6380/1"), RedisStore)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgres://db/gw", "unsupported scheme 'postgres'"),
        ("var/gateway.db", r"unsupported scheme '\(none\)'"),
        ("sqlite://var/gateway.db", "three slashes"),
        ("sqlite:///", "name a database file"),
        ("sqlite:///var/", "name a database file"),
        ("sqlite:///var/x.db?mode=ro", "no query"),
        ("sqlite:///:memory:", "in-memory"),
        ("redis:///0", "names a host"),
    ],
)
def test_bad_urls_fail_clearly_and_create_nothing(
    url: str, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=message) as caught:
        open_store(url)
    assert "sqlite:///" in str(caught.value) or "redis://" in str(caught.value)
    assert list(tmp_path.iterdir()) == []
