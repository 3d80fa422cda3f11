"""SQLite-specific behaviour: connection settings, what runs on the loop and what on the worker
thread, purging, checkpoints, schema guard, and exactly-once semantics across two OS processes
sharing one file."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import threading
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

import gateway.store.sqlite as sqlite_module
from gateway.store.base import Delete, Put
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


async def test_the_loop_connection_never_waits_and_never_checkpoints(sqlite_store: SQLiteStore) -> None:
    def pragmas(conn: sqlite3.Connection, now: float) -> tuple[str, int, int, int, int]:
        return (
            conn.execute("PRAGMA journal_mode").fetchone()[0],
            conn.execute("PRAGMA synchronous").fetchone()[0],
            conn.execute("PRAGMA busy_timeout").fetchone()[0],
            conn.execute("PRAGMA foreign_keys").fetchone()[0],
            conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0],
        )

    assert await sqlite_store._lookup(pragmas) == ("wal", 1, 0, 1, 0)


async def test_worker_work_runs_on_one_dedicated_thread(sqlite_store: SQLiteStore) -> None:
    def thread(conn: sqlite3.Connection, now: float) -> tuple[int, str]:
        return threading.get_ident(), threading.current_thread().name

    seen = {await sqlite_store._read(thread) for _ in range(5)}
    seen.add(await sqlite_store._submit(sqlite_store._write_now, thread))
    assert len(seen) == 1
    ident, name = seen.pop()
    assert ident != threading.get_ident()
    assert name.startswith("gateway-sqlite")


async def test_lookups_and_writes_run_on_the_loop_without_the_worker(sqlite_store: SQLiteStore) -> None:
    await sqlite_store.put("code", "first", {}, 600)  # the first write also purges: on the worker
    release = threading.Event()
    blocked = asyncio.ensure_future(sqlite_store._worker.run(release.wait, 10))
    try:
        await sqlite_store.put("code", "a", {"n": 1}, 600, grant_id="g")
        assert await sqlite_store.get("code", "a") == {"n": 1}
        assert (await sqlite_store.incr("hits", "a", 60)).value == 1
        consumed = await sqlite_store.consume("code", "a")
        assert consumed is not None and consumed.first
        assert await sqlite_store.create_user({"id": "u1", "mail": "a@b.example"}, [("mail", "a@b.example")])
        assert (await sqlite_store.find_user_by_identity("mail", "a@b.example") or {}).get("id") == "u1"
        assert await sqlite_store.revoke_grant("g") == 1
        await sqlite_store.delete("hits", "a")
        assert not blocked.done()  # all of it ran while the worker thread was stuck
    finally:
        release.set()
        await blocked
    assert sqlite_store.busy_fallbacks == 0


async def test_a_write_that_meets_a_held_write_lock_waits_on_the_worker_not_the_loop(
    sqlite_store: SQLiteStore,
) -> None:
    await sqlite_store.put("code", "first", {}, 600)
    other = sqlite3.connect(sqlite_store.path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process's writer holds the lock
        ticks = 0

        async def loop_is_free() -> None:
            nonlocal ticks
            for _ in range(10):
                await asyncio.sleep(0.02)
                ticks += 1
            other.execute("COMMIT")

        freer = asyncio.ensure_future(loop_is_free())
        await sqlite_store.put("code", "waited", {"ok": True}, 600)
        assert ticks == 10  # the loop kept running while the write waited for the lock
        await freer
    finally:
        other.close()
    assert sqlite_store.busy_retries == len(sqlite_module.LOOP_RETRY_DELAYS)
    assert sqlite_store.busy_fallbacks == 1
    assert await sqlite_store.get("code", "waited") == {"ok": True}


async def test_a_write_lock_released_soon_is_retried_on_the_loop(sqlite_store: SQLiteStore) -> None:
    await sqlite_store.put("code", "first", {}, 600)
    other = sqlite3.connect(sqlite_store.path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process's short write
        asyncio.get_running_loop().call_soon(other.execute, "COMMIT")
        await sqlite_store.put("code", "retried", {"ok": True}, 600)
    finally:
        other.close()
    assert sqlite_store.busy_retries >= 1
    assert sqlite_store.busy_fallbacks == 0  # done on the loop, no hop to the worker
    assert await sqlite_store.get("code", "retried") == {"ok": True}


async def test_a_lookup_that_meets_busy_is_redone_on_the_worker(sqlite_store: SQLiteStore) -> None:
    loop_thread = threading.get_ident()

    def work(conn: sqlite3.Connection, now: float) -> str:
        if threading.get_ident() == loop_thread:
            busy = sqlite3.OperationalError("database is locked")
            busy.sqlite_errorcode = sqlite3.SQLITE_BUSY
            raise busy
        return threading.current_thread().name

    assert (await sqlite_store._lookup(work)).startswith("gateway-sqlite")
    assert sqlite_store.busy_fallbacks == 1


async def test_other_errors_on_the_loop_are_raised_not_retried(sqlite_store: SQLiteStore) -> None:
    def work(conn: sqlite3.Connection, now: float) -> None:
        conn.execute("SELECT * FROM no_such_table")

    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        await sqlite_store._lookup(work)
    await sqlite_store.put("code", "first", {}, 600)
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        await sqlite_store._write(work)
    assert sqlite_store.busy_fallbacks == 0


async def test_the_worker_connection_never_checkpoints_by_itself(sqlite_store: SQLiteStore) -> None:
    def autocheckpoint(conn: sqlite3.Connection, now: float) -> int:
        return int(conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0])

    assert await sqlite_store._read(autocheckpoint) == 0


async def test_commits_on_the_worker_count_towards_the_checkpoint_schedule(tmp_path: Path) -> None:
    """Writes redone on the worker (busy fallbacks) neither checkpoint on every commit (SQLite's
    automatic checkpoint, with its fsyncs) nor escape the schedule."""

    def put(n: int) -> Any:
        def work(conn: sqlite3.Connection, now: float) -> None:
            conn.execute(sqlite_module.PUT, {"kind": "blob", "id": f"b{n}", "payload": "x" * 3000,
                                             "grant": None, "expires": now + 600})  # fmt: skip

        return work

    async def frames_in_log(store: SQLiteStore) -> int:
        """Commits 600 writes on the worker; the frames the log holds since it last started over."""
        await store.migrate()
        for n in range(600):
            await store._submit(store._write_now, put(n))
        with closing(sqlite3.connect(store.path)) as raw:
            frames = int(raw.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1])
        await store.close()
        return frames

    unchecked = await frames_in_log(SQLiteStore(tmp_path / "unchecked.db", checkpoint_every=10**9))
    checked = await frames_in_log(SQLiteStore(tmp_path / "checked.db", checkpoint_every=50))
    assert unchecked > 1500  # no automatic checkpoint (at 1000 frames by default) on the worker
    assert checked < 500  # its commits are counted: the schedule checkpoints them


async def test_a_log_kept_in_use_by_readers_is_made_to_start_over(tmp_path: Path) -> None:
    """A reader of another process keeps the log in use during the PASSIVE checkpoint, so the log
    cannot start over; once it is ``restart_frames`` long, a RESTART checkpoint waits for the
    reader (here: up to 1 s) and the log starts over at the next write."""

    def frames_in_log(path: str) -> int:
        with closing(sqlite3.connect(path)) as raw:
            return int(raw.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1])

    async def write_past_a_reader(store: SQLiteStore) -> int:
        await store.migrate()
        await store.put("blob", "first", {"data": "x"}, 600)  # the first write goes to the worker
        reader = sqlite3.connect(store.path, check_same_thread=False)
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM artefacts").fetchall()  # holds its snapshot of the log
        timer = threading.Timer(1.0, reader.rollback)
        timer.start()
        try:
            for n in range(50):  # the last one checkpoints (on the worker) while the reader holds on
                await store.put("blob", f"b{n}", {"data": "x" * 2000}, 600)
            await asyncio.to_thread(timer.join)
            await store.put("blob", "after", {"data": "x"}, 600)
        finally:
            timer.join()
            reader.close()
        frames = frames_in_log(store.path)
        await store.close()
        return frames

    kept = await write_past_a_reader(
        SQLiteStore(tmp_path / "kept.db", checkpoint_every=50, restart_frames=10**9)
    )
    restarted = await write_past_a_reader(
        SQLiteStore(tmp_path / "restarted.db", checkpoint_every=50, restart_frames=20)
    )
    assert kept > 60  # every commit is still in the log
    assert restarted < 10  # only the last write: the log started over after the RESTART checkpoint


async def test_loop_commits_are_checkpointed_on_the_worker(tmp_path: Path) -> None:
    def wal_bytes(store: SQLiteStore) -> int:
        return os.path.getsize(store.path + "-wal")

    async def fill(store: SQLiteStore) -> int:
        await store.migrate()
        for n in range(300):
            await store.put("blob", f"b{n}", {"data": "x" * 2000}, 600)
        size = wal_bytes(store)
        await store.close()
        return size

    unchecked = await fill(SQLiteStore(tmp_path / "unchecked.db", checkpoint_every=10**9))
    checked = await fill(SQLiteStore(tmp_path / "checked.db", checkpoint_every=20))
    assert unchecked > 2_000_000  # no checkpoint: every commit stays in the log
    assert checked < unchecked / 5  # checkpoints let the log start over


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
    codes = 400
    consumers = 2 * 2  # processes x stores per process
    for attempt in range(3):  # a loaded machine may run the two processes one after the other
        path = str(tmp_path / f"shared-{attempt}.db")
        store = SQLiteStore(path)
        await store.migrate()
        for n in range(codes):
            await store.put("code", f"c{n}", {"n": n}, 600)
        await store.close()

        reports = await asyncio.to_thread(run_workers, path, codes)

        firsts = sorted(n for report in reports for n in report["firsts"])
        assert firsts == list(range(codes))  # every code consumed first exactly once
        assert sum(report["seen"] for report in reports) == consumers * codes  # the rest saw first=False
        values = sorted(v for report in reports for v in report["values"])
        assert values == list(range(1, consumers * codes + 1))  # no lost or doubled increment
        a, b = (report["values"] for report in reports)
        if min(a) < max(b) and min(b) < max(a):  # the processes really ran at the same time
            return
    pytest.fail(f"the two processes never overlapped in 3 attempts: {reports}")


# -- schema 1 -> 2: the mail index -------------------------------------------------------

V1_SCHEMA = """
CREATE TABLE artefacts (
    kind TEXT NOT NULL, id TEXT NOT NULL, payload TEXT NOT NULL, grant_id TEXT,
    uses INTEGER NOT NULL DEFAULT 0, expires_at REAL NOT NULL,
    PRIMARY KEY (kind, id)) WITHOUT ROWID;
CREATE INDEX artefacts_grant ON artefacts (grant_id) WHERE grant_id IS NOT NULL;
CREATE INDEX artefacts_expiry ON artefacts (expires_at);
CREATE TABLE counters (
    kind TEXT NOT NULL, id TEXT NOT NULL, value INTEGER NOT NULL, expires_at REAL NOT NULL,
    PRIMARY KEY (kind, id)) WITHOUT ROWID;
CREATE INDEX counters_expiry ON counters (expires_at);
CREATE TABLE users (id TEXT PRIMARY KEY, doc TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE identities (
    issuer TEXT NOT NULL, issuer_assigned_id TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (issuer, issuer_assigned_id)) WITHOUT ROWID;
CREATE INDEX identities_user ON identities (user_id);
CREATE TABLE signing_keys (seq INTEGER PRIMARY KEY, kid TEXT NOT NULL UNIQUE, record TEXT NOT NULL);
CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
INSERT INTO meta (name, value) VALUES ('schema_version', '1');
"""
V1_USERS: list[dict[str, Any]] = [
    {"id": "u-alice", "mail": "Alice@Partner.Example", "otherMails": ["a.home@Home.Example"]},
    {"id": "u-bob", "mail": "bob@partner.example", "otherMails": ["ALICE@partner.example"]},
    {"id": "u-nomail", "mail": None, "otherMails": []},
]


def make_v1_database(path: str, users: list[dict[str, Any]]) -> None:
    """A file as the first release wrote it: schema 1, users and identities, no mail index."""
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.executescript(V1_SCHEMA)
        for user in users:
            conn.execute("INSERT INTO users (id, doc) VALUES (?, ?)", (user["id"], json.dumps(user)))
            conn.execute(
                "INSERT INTO identities (issuer, issuer_assigned_id, user_id) VALUES (?, ?, ?)",
                ("https://iss.example", f"sub-{user['id']}", user["id"]),
            )
        conn.execute("INSERT INTO artefacts VALUES ('session', 's', '{\"v\":1}', NULL, 0, 4e9)")


def schema_state(path: str) -> tuple[str, set[str]]:
    with closing(sqlite3.connect(path)) as conn:
        version = conn.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()[0]
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    return str(version), names


async def test_migrate_upgrades_a_version_1_file_in_place(tmp_path: Path) -> None:
    path = str(tmp_path / "v1.db")
    make_v1_database(path, V1_USERS)
    version, names = schema_state(path)
    assert version == "1" and "user_mails" not in names
    store = SQLiteStore(path)
    try:
        await store.migrate()
        version, names = schema_state(path)
        assert version == "3"
        assert {"user_mails", "user_mails_user"} <= names
        with closing(sqlite3.connect(path)) as conn:
            rows = sorted(conn.execute("SELECT mail, user_id FROM user_mails"))
        assert rows == [
            ("a.home@home.example", "u-alice"),
            ("alice@partner.example", "u-alice"),
            ("alice@partner.example", "u-bob"),
            ("bob@partner.example", "u-bob"),
        ]
        assert [u["id"] for u in await store.find_users_by_mail("ALICE@partner.example")] == [
            "u-alice",
            "u-bob",
        ]
        assert await store.find_users_by_mail("a.home@home.example") == [V1_USERS[0]]
        assert await store.get("session", "s") == {"v": 1}
        assert await store.find_user_by_identity("https://iss.example", "sub-u-nomail") == V1_USERS[2]

        await store.migrate()  # idempotent at version 2
        assert raw_count(path, "user_mails") == 4
        assert await store.delete_user("u-alice") is True
        assert await store.create_user({"id": "u-new"}, [("https://iss.example", "sub-u-alice")]) is True
        assert await store.find_users_by_mail("alice@partner.example") == [V1_USERS[1]]
    finally:
        await store.close()


async def test_migrate_refuses_a_version_1_user_with_bad_mails_and_changes_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "bad.db")
    bad = {"id": "u-bad", "mail": "ok@x.example", "otherMails": ["fine@x.example", 7]}
    make_v1_database(path, [V1_USERS[0], bad])
    store = SQLiteStore(path)
    try:
        with pytest.raises(
            RuntimeError, match=r"user 'u-bad': user\['otherMails'\]\[1\] must be a non-empty"
        ):
            await store.migrate()
        version, names = schema_state(path)
        assert version == "1"
        assert not {name for name in names if name.startswith("user_mails")}  # the DDL was rolled back

        with closing(sqlite3.connect(path)) as conn, conn:
            conn.execute(
                "UPDATE users SET doc = ? WHERE id = 'u-bad'", (json.dumps({**bad, "otherMails": []}),)
            )
        await store.migrate()
        assert schema_state(path)[0] == "3"
        assert [u["id"] for u in await store.find_users_by_mail("OK@x.example")] == ["u-bad"]
    finally:
        await store.close()


async def test_directory_rows_follow_create_update_and_delete(sqlite_store: SQLiteStore) -> None:
    path = sqlite_store.path

    def rows() -> list[tuple[str, str]]:
        with closing(sqlite3.connect(path)) as conn:
            return sorted(conn.execute("SELECT mail, user_id FROM user_mails"))

    user = {"id": "u1", "mail": "Mixed@Case.Example", "otherMails": ["mixed@case.example", "Two@X.example"]}
    assert await sqlite_store.create_user(user, [("iss", "a"), ("iss", "b")])
    assert rows() == [("mixed@case.example", "u1"), ("two@x.example", "u1")]
    await sqlite_store.update_user({"id": "u1", "otherMails": ["three@x.example"]})
    assert rows() == [("three@x.example", "u1")]
    assert await sqlite_store.delete_user("u1")
    assert rows() == []
    assert (raw_count(path, "users"), raw_count(path, "identities")) == (0, 0)


# -- write-behind blocks and apply: one transaction -------------------------------------


@pytest.fixture
async def warm_store(sqlite_store: SQLiteStore) -> SQLiteStore:
    """A store whose first write (the purge that goes to the worker) is behind it: writes commit on
    the loop and are counted in ``_loop_commits``."""
    await sqlite_store.put("warm", "w", {}, 60)
    assert sqlite_store._loop_commits == 0
    await sqlite_store.put("warm", "w", {}, 60)
    assert sqlite_store._loop_commits == 1
    return sqlite_store


async def test_a_block_makes_its_queued_writes_in_one_transaction(warm_store: SQLiteStore) -> None:
    before = warm_store._loop_commits
    async with warm_store.batch():
        await warm_store.put("session", "s", {"v": 1}, 60, grant_id="g")
        await warm_store.delete("signin", "t")
        await warm_store.put("code", "c", {"v": 2}, 60, grant_id="g")
        assert warm_store._loop_commits == before
    assert warm_store._loop_commits == before + 1
    assert raw_count(warm_store.path, "artefacts") == 3


async def test_queued_writes_share_the_next_operations_transaction(warm_store: SQLiteStore) -> None:
    await warm_store.put("code", "c", {"v": 1}, 60)
    before = warm_store._loop_commits
    async with warm_store.batch():
        await warm_store.put("access", "a", {"v": 2}, 60)
        await warm_store.put("access", "b", {"v": 3}, 60)
        found = await warm_store.consume("code", "c")
        assert found is not None and found.first
        assert warm_store._loop_commits == before + 1
        await warm_store.put("access", "c", {"v": 4}, 60)
        assert await warm_store.get("revoked-grant", "g") is None  # a read after a write: one transaction
        assert warm_store._loop_commits == before + 2
    assert warm_store._loop_commits == before + 2  # nothing left to apply


async def test_apply_is_one_transaction(warm_store: SQLiteStore) -> None:
    before = warm_store._loop_commits
    await warm_store.apply(
        [Put("code", "a", {"v": 1}, 60), Put("code", "b", {"v": 2}, 60), Delete("code", "a")]
    )
    assert warm_store._loop_commits == before + 1
    assert raw_count(warm_store.path, "artefacts") == 2


async def test_queued_writes_go_back_to_the_block_when_their_transaction_fails(
    warm_store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = warm_store._write
    failures = [sqlite3.OperationalError("disk I/O error")]

    async def failing_once(work: Any) -> Any:
        if failures:
            raise failures.pop()
        return await real_write(work)

    monkeypatch.setattr(warm_store, "_write", failing_once)
    async with warm_store.batch():
        await warm_store.put("session", "s", {"v": 1}, 60)
        with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
            await warm_store.consume("code", "c")
        assert raw_count(warm_store.path, "artefacts") == 1
    assert raw_count(warm_store.path, "artefacts") == 2  # made when the block ended
    assert await warm_store.get("session", "s") == {"v": 1}


async def test_a_failed_block_end_raises_and_writes_nothing(
    warm_store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def failing(work: Any) -> Any:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(warm_store, "_write", failing)
    with pytest.raises(sqlite3.OperationalError, match="disk is full"):
        async with warm_store.batch():
            await warm_store.put("session", "s", {"v": 1}, 60)
            await warm_store.put("code", "c", {"v": 2}, 60)
    assert raw_count(warm_store.path, "artefacts") == 1
