"""SQLite-specific behaviour: connection settings, the worker thread, purging, schema guard,
and exactly-once semantics across two OS processes sharing one file."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

import gateway.store.sqlite as sqlite_module
from gateway.store.sqlite import SQLiteStore
from tests.store.conftest import FakeClock

REPO = Path(__file__).resolve().parents[2]


def raw_count(path: str, table: str) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


async def test_connection_uses_wal_normal_sync_and_busy_timeout(sqlite_store: SQLiteStore) -> None:
    def pragmas(conn: sqlite3.Connection, now: float) -> tuple[str, int, int, int]:
        return (
            conn.execute("PRAGMA journal_mode").fetchone()[0],
            conn.execute("PRAGMA synchronous").fetchone()[0],
            conn.execute("PRAGMA busy_timeout").fetchone()[0],
            conn.execute("PRAGMA foreign_keys").fetchone()[0],
        )

    assert await sqlite_store._read(pragmas) == ("wal", 1, 5000, 1)  # synchronous 1 = NORMAL


async def test_all_work_runs_on_one_dedicated_thread(sqlite_store: SQLiteStore) -> None:
    def thread(conn: sqlite3.Connection, now: float) -> tuple[int, str]:
        return threading.get_ident(), threading.current_thread().name

    seen = {await sqlite_store._read(thread) for _ in range(5)} | {await sqlite_store._write(thread)}
    assert len(seen) == 1
    ident, name = seen.pop()
    assert ident != threading.get_ident()
    assert name.startswith("gateway-sqlite")


async def test_expired_rows_are_purged_at_most_once_a_minute(
    sqlite_store: SQLiteStore, clock: FakeClock
) -> None:
    path = sqlite_store.path
    await sqlite_store.put("code", "old", {}, 1)  # first write: purge ran, next one due in 60 s
    await sqlite_store.incr("hits", "old", 1)
    clock.now += 5
    await sqlite_store.put("code", "new", {}, 600)
    assert await sqlite_store.get("code", "old") is None  # already invisible...
    assert raw_count(path, "artefacts") == 2  # ...but not yet deleted
    assert raw_count(path, "counters") == 1
    clock.now += 60
    await sqlite_store.put("code", "newer", {}, 600)
    assert raw_count(path, "artefacts") == 2
    assert raw_count(path, "counters") == 0
    assert await sqlite_store.get("code", "new") == {}


async def test_purge_works_in_bounded_batches(
    sqlite_store: SQLiteStore, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_module, "PURGE_BATCH", 2)
    for n in range(5):
        await sqlite_store.put("code", f"c{n}", {}, 1)
    clock.now += 120
    await sqlite_store.put("code", "live", {}, 600)
    assert raw_count(sqlite_store.path, "artefacts") == 4  # 2 of 5 purged, backlog left
    await sqlite_store.put("code", "live", {}, 600)
    await sqlite_store.put("code", "live", {}, 600)
    assert raw_count(sqlite_store.path, "artefacts") == 1


async def test_migrate_refuses_a_newer_schema_and_changes_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "newer.db")
    store = SQLiteStore(path)
    await store.migrate()
    await store.close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE name = 'schema_version'")
        conn.execute("DROP INDEX artefacts_expiry")
    store = SQLiteStore(path)
    with pytest.raises(RuntimeError, match="schema_version 99 is newer"):
        await store.migrate()
    await store.close()
    with sqlite3.connect(path) as conn:
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        assert conn.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone() == ("99",)
    assert "artefacts_expiry" not in names


async def test_a_closed_store_refuses_work(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "closed.db")
    await store.migrate()
    await store.close()
    await store.close()
    with pytest.raises(RuntimeError, match="closed"):
        await store.get("code", "x")
    with pytest.raises(RuntimeError, match="closed"):
        await store.migrate()


def run_workers(path: str, codes: int) -> list[dict[str, Any]]:
    """Start two hammer processes, release them together, return their JSON reports."""
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.store.sqlite_hammer", path, str(codes)],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        for worker in workers:
            assert worker.stdout is not None and worker.stdout.readline().strip() == "ready"
        for worker in workers:  # start both at once, then collect
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
        reports = []
        for worker in workers:
            out, _ = worker.communicate(timeout=120)
            assert worker.returncode == 0
            reports.append(json.loads(out))
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    return reports


async def test_two_processes_share_one_file_exactly_once(tmp_path: Path) -> None:
    codes = 150
    path = str(tmp_path / "shared.db")
    store = SQLiteStore(path)
    await store.migrate()
    for n in range(codes):
        await store.put("code", f"c{n}", {"n": n}, 600)
    await store.close()

    reports = await asyncio.to_thread(run_workers, path, codes)

    consumers = 2 * 2  # processes x stores per process
    firsts = sorted(n for report in reports for n in report["firsts"])
    assert firsts == list(range(codes))  # every code consumed first exactly once
    assert sum(report["seen"] for report in reports) == consumers * codes  # the rest saw first=False
    values = sorted(v for report in reports for v in report["values"])
    assert values == list(range(1, consumers * codes + 1))  # no lost or doubled increment
    a, b = (report["values"] for report in reports)
    assert min(a) < max(b) and min(b) < max(a)  # the processes really ran at the same time
