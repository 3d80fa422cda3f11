"""SQLite backend: the embedded default for a single node (any number of worker processes).

Each store instance has two connections to the file, both in WAL mode with
``synchronous=NORMAL`` (a commit appends to the log and does not fsync) and ``foreign_keys``:

- the *loop connection*, opened on the event loop's thread on first use, with
  ``busy_timeout = 0`` and ``wal_autocheckpoint = 0``. Every lookup and every write runs on
  it, synchronously, in a few tens of µs: a WAL read never waits for a writer, and a write
  either gets the write lock at once (``BEGIN IMMEDIATE``) or fails with ``SQLITE_BUSY``
  without waiting. No checkpoint and no purge ever runs on it, so it never fsyncs.
- the *worker connection*, on one dedicated thread (``worker.WorkerThread``) with a 5 s busy
  timeout and ``wal_autocheckpoint = 0`` too. It does whatever may wait or take long: an
  operation that met ``SQLITE_BUSY`` on the loop (another process held the write lock; a write
  first tries again on the loop after sleeps of 0, 1 and 2 ms, which let the loop run on) is
  redone there from the start; a write that falls due for maintenance (the purge of expired
  rows, at most once a minute; a ``PASSIVE`` checkpoint every ``CHECKPOINT_EVERY`` commits of
  this store, on either connection) runs there with it; and ``migrate``. Before the loop
  connection exists (or when it cannot be opened), everything runs there, as it always did.
  Checkpoints run only on that schedule: with SQLite's default automatic checkpoint, every
  write redone there (frequent with several worker processes) paid a checkpoint and its fsyncs.
  With several processes reading and writing all the time, a ``PASSIVE`` checkpoint seldom finds
  the log unused, so the log would never start over and grow without end; when it still holds
  ``RESTART_FRAMES`` frames after one, a ``RESTART`` checkpoint follows, which waits (busy
  timeout) for the readers and holds writers back until the next write starts the log over.

Why: the thread hop cost ~60-100 µs of CPU per operation, more than the SQLite work
(docs/adr/0004-sqlite-on-the-event-loop-without-waiting.md; checkpoints: docs/adr/0008). Every
write is still one ``BEGIN IMMEDIATE`` transaction, so several processes (``uvicorn --workers N``)
can share the file, and each lookup steps its statement to the end, so no read transaction
outlives a call.

Blind writes (``put``, ``delete``) queued by a write-behind block (``batch``,
``gateway.store.write_behind``) or given to ``apply`` run in the transaction of the next artefact
operation (a lookup then runs in a write transaction), so several writes share one
``BEGIN IMMEDIATE … COMMIT``.

``consume`` and ``incr`` are single atomic statements (``UPDATE … RETURNING`` / upsert
``RETURNING``, SQLite >= 3.35); ``consume_counted`` runs both in one transaction. SQL text is
constant, so each connection's statement cache prepares each statement once.

Rows carry ``expires_at`` (epoch seconds from the injectable ``clock``); reads treat expired
rows as absent, and writes purge expired rows in small batches at most once a minute.

Tables: ``artefacts`` (kind, id, payload, grant_id, uses, expires_at; a rowid table with a unique
``(kind, id)``: ``sqlite_layout`` says why and rebuilds older files), ``counters`` (kind, id,
value, expires_at), ``users`` (id, JSON doc), ``identities`` (PRIMARY KEY (issuer,
issuer_assigned_id) -> user_id), ``user_mails`` (PRIMARY KEY (mail, user_id): each user's
lower-cased ``mail`` and ``otherMails``), ``signing_keys`` (insertion seq, kid, JSON record)
and ``meta`` (name, value; holds ``schema_version``).

Schema versions: 1 had no ``user_mails``; ``migrate`` upgrades a version 1 file in place, in
the same transaction that creates the table, by indexing every stored user. 2 had none of the
tables of ``sqlite_directory`` (soft delete, groups, app links), which ``migrate`` creates;
lookups of users skip soft-deleted ones (``deleted_users``).
"""

from __future__ import annotations

import asyncio
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, TypeVar

from gateway.store import write_behind
from gateway.store.base import JSON, Consumed, Counter, Delete, Put, Write
from gateway.store.signin_log_sqlite import SIGNIN_LOG_SCHEMA, SQLiteSignInLogMixin
from gateway.store.sqlite_directory import DIRECTORY_SCHEMA, SQLiteDirectoryMixin, delete_user_rows
from gateway.store.sqlite_layout import ARTEFACTS_TABLE, upgrade_artefacts
from gateway.store.validate import (
    SCHEMA_VERSION,
    append_identity,
    check_counted,
    check_grant,
    check_identities,
    check_identity,
    check_key,
    check_mail,
    check_meta_value,
    check_schema_version,
    check_seconds,
    check_signing_key,
    check_text,
    check_user,
    decode,
    encode,
    user_mails,
)
from gateway.store.worker import WorkerThread

T = TypeVar("T")
Work = Callable[[sqlite3.Connection, float], T]

BUSY_TIMEOUT_SECONDS = 5.0
PURGE_INTERVAL_SECONDS = 60.0
CHECKPOINT_EVERY = 1000  # commits between checkpoints: a log of some 5000 pages (~20 MB) at most
# A log still this long after a PASSIVE checkpoint (~80 MB) did not start over for several rounds:
# readers of other processes kept it in use. A RESTART checkpoint then waits for them.
RESTART_FRAMES = 20_000
PURGE_BATCH = 500
MIN_SQLITE = (3, 35, 0)
BUSY_CODES = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)  # primary result codes: try the worker
# Sleeps between tries of a loop write that found the write lock taken (another process's write
# holds it for tens of µs); then the worker takes over and waits up to the busy timeout.
LOOP_RETRY_DELAYS = (0.0, 0.001, 0.002)

SCHEMA = (
    ARTEFACTS_TABLE,
    "CREATE INDEX IF NOT EXISTS artefacts_grant ON artefacts (grant_id) WHERE grant_id IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS artefacts_expiry ON artefacts (expires_at)",
    """CREATE TABLE IF NOT EXISTS counters (
        kind TEXT NOT NULL, id TEXT NOT NULL, value INTEGER NOT NULL, expires_at REAL NOT NULL,
        PRIMARY KEY (kind, id)) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS counters_expiry ON counters (expires_at)",
    "CREATE TABLE IF NOT EXISTS users (id TEXT PRIMARY KEY, doc TEXT NOT NULL) WITHOUT ROWID",
    """CREATE TABLE IF NOT EXISTS identities (
        issuer TEXT NOT NULL, issuer_assigned_id TEXT NOT NULL,
        user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        PRIMARY KEY (issuer, issuer_assigned_id)) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS identities_user ON identities (user_id)",
    """CREATE TABLE IF NOT EXISTS user_mails (
        mail TEXT NOT NULL, user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        PRIMARY KEY (mail, user_id)) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS user_mails_user ON user_mails (user_id)",
    """CREATE TABLE IF NOT EXISTS signing_keys (
        seq INTEGER PRIMARY KEY, kid TEXT NOT NULL UNIQUE, record TEXT NOT NULL)""",
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
)

PUT = """INSERT INTO artefacts (kind, id, payload, grant_id, uses, expires_at)
VALUES (:kind, :id, :payload, :grant, 0, :expires)
ON CONFLICT (kind, id) DO UPDATE SET payload = excluded.payload, grant_id = excluded.grant_id,
    uses = 0, expires_at = excluded.expires_at"""
ADD = PUT + " WHERE artefacts.expires_at <= :now RETURNING 1"
GET = "SELECT payload FROM artefacts WHERE kind = ? AND id = ? AND expires_at > ?"
TTL = "SELECT expires_at FROM artefacts WHERE kind = ? AND id = ? AND expires_at > ?"
CONSUME = """UPDATE artefacts SET uses = uses + 1 WHERE kind = ? AND id = ? AND expires_at > ?
RETURNING payload, grant_id, uses"""
DELETE_ARTEFACT = "DELETE FROM artefacts WHERE kind = ? AND id = ?"
DELETE_COUNTER = "DELETE FROM counters WHERE kind = ? AND id = ?"
REVOKE = "DELETE FROM artefacts WHERE grant_id = ? RETURNING expires_at"
INCR = """INSERT INTO counters (kind, id, value, expires_at) VALUES (:kind, :id, 1, :expires)
ON CONFLICT (kind, id) DO UPDATE SET
    value = CASE WHEN counters.expires_at <= :now THEN 1 ELSE counters.value + 1 END,
    expires_at = CASE WHEN counters.expires_at <= :now THEN excluded.expires_at
                 ELSE counters.expires_at END
RETURNING value, expires_at"""
PURGE_ARTEFACTS = """DELETE FROM artefacts WHERE (kind, id) IN
    (SELECT kind, id FROM artefacts WHERE expires_at <= ? LIMIT ?)"""
PURGE_COUNTERS = """DELETE FROM counters WHERE (kind, id) IN
    (SELECT kind, id FROM counters WHERE expires_at <= ? LIMIT ?)"""

INSERT_NEW_USER = "INSERT INTO users (id, doc) VALUES (?, ?) ON CONFLICT DO NOTHING"
INSERT_NEW_IDENTITY = """INSERT INTO identities (issuer, issuer_assigned_id, user_id) VALUES (?, ?, ?)
ON CONFLICT DO NOTHING"""
GET_USER = """SELECT doc FROM users
WHERE id = ? AND NOT EXISTS (SELECT 1 FROM deleted_users WHERE deleted_users.user_id = users.id)"""
FIND_USER = """SELECT users.doc FROM identities JOIN users ON users.id = identities.user_id
WHERE identities.issuer = ? AND identities.issuer_assigned_id = ?
AND NOT EXISTS (SELECT 1 FROM deleted_users WHERE deleted_users.user_id = users.id)"""
UPDATE_USER = """UPDATE users SET doc = ?
WHERE id = ? AND NOT EXISTS (SELECT 1 FROM deleted_users WHERE deleted_users.user_id = users.id)"""
INSERT_MAIL = "INSERT INTO user_mails (mail, user_id) VALUES (?, ?) ON CONFLICT DO NOTHING"
DELETE_MAILS = "DELETE FROM user_mails WHERE user_id = ?"
FIND_BY_MAIL = """SELECT users.doc FROM user_mails JOIN users ON users.id = user_mails.user_id
WHERE user_mails.mail = ? AND NOT EXISTS (SELECT 1 FROM deleted_users WHERE deleted_users.user_id = users.id)
ORDER BY user_mails.user_id"""
ALL_USERS = "SELECT id, doc FROM users ORDER BY id"
LIST_KEYS = "SELECT record FROM signing_keys ORDER BY seq"
SAVE_KEY = """INSERT INTO signing_keys (kid, record) VALUES (?, ?)
ON CONFLICT (kid) DO UPDATE SET record = excluded.record"""
GET_META = "SELECT value FROM meta WHERE name = ?"
ADD_META = "INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING"
HAS_META_TABLE = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
SET_SCHEMA_VERSION = """INSERT INTO meta (name, value) VALUES ('schema_version', ?)
ON CONFLICT (name) DO UPDATE SET value = excluded.value"""


def _busy(exc: sqlite3.OperationalError) -> bool:
    """SQLITE_BUSY or SQLITE_LOCKED (any extended code): another connection holds a lock."""
    return getattr(exc, "sqlite_errorcode", 0) & 0xFF in BUSY_CODES


def _one(conn: sqlite3.Connection, sql: str, params: tuple[object, ...]) -> Any:
    """The first row of a point query, its statement stepped to the end (no read stays open)."""
    rows = conn.execute(sql, params).fetchall()
    return rows[0] if rows else None


def _seconds_left(expires_at: float, now: float) -> int:
    return max(math.ceil(expires_at - now), 0)


def _put_work(kind: str, id: str, payload: JSON, ttl: int, grant_id: str | None) -> Work[None]:
    """A checked ``put``, ready to run in a transaction."""
    check_key(kind, id)
    check_seconds("ttl", ttl)
    check_grant(grant_id)
    text = encode("payload", payload)

    def work(conn: sqlite3.Connection, now: float) -> None:
        conn.execute(PUT, {"kind": kind, "id": id, "payload": text, "grant": grant_id, "expires": now + ttl})

    return work


def _delete_work(kind: str, id: str) -> Work[None]:
    """A checked ``delete``, ready to run in a transaction."""
    check_key(kind, id)

    def work(conn: sqlite3.Connection, now: float) -> None:
        conn.execute(DELETE_ARTEFACT, (kind, id))
        conn.execute(DELETE_COUNTER, (kind, id))

    return work


def _prepare(write: Write) -> Work[None]:
    if isinstance(write, Put):
        return _put_work(write.kind, write.id, write.payload, write.ttl, write.grant_id)
    if isinstance(write, Delete):
        return _delete_work(write.kind, write.id)
    raise TypeError(f"apply takes Put and Delete values, got {type(write).__name__}")


def _after(writes: list[Work[None]], work: Work[T]) -> Work[T]:
    """``work`` preceded, in the same transaction, by ``writes``."""

    def chained(conn: sqlite3.Connection, now: float) -> T:
        for write in writes:
            write(conn, now)
        return work(conn, now)

    return chained


def _nothing(conn: sqlite3.Connection, now: float) -> None:
    return None


class _IdentityTaken(Exception):
    """Raised in ``create_user``'s transaction, to roll it back: an identity is another user's."""


class SQLiteStore(SQLiteDirectoryMixin, SQLiteSignInLogMixin):
    """``Store`` over one SQLite file; see the module docstring."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        clock: Callable[[], float] = time.time,
        purge_interval: float = PURGE_INTERVAL_SECONDS,
        checkpoint_every: int = CHECKPOINT_EVERY,
        restart_frames: int = RESTART_FRAMES,
    ) -> None:
        if sqlite3.sqlite_version_info < MIN_SQLITE:
            raise RuntimeError(
                f"SQLite {sqlite3.sqlite_version} is too old: the store needs >= 3.35 (UPDATE … RETURNING)"
            )
        self.path = os.fspath(path)
        self._clock = clock
        self._purge_interval = purge_interval
        self._checkpoint_every = checkpoint_every
        self._restart_frames = restart_frames
        self._worker = WorkerThread("gateway-sqlite")
        self._closed = False
        # The worker connection, touched only on the worker thread:
        self._conn: sqlite3.Connection | None = None
        # Set on the worker, read on the loop to route a write that falls due for maintenance
        # (a stale read costs at most one write routed one way rather than the other):
        self._next_purge = float("-inf")
        self._loop_commits = 0  # since the last checkpoint (counted on the loop)
        self._worker_commits = 0  # since the last checkpoint (counted on the worker)
        # The loop connection, touched only on the thread that opened it (the event loop's):
        self._loop_conn: sqlite3.Connection | None = None
        self._loop_thread: int | None = None
        self.busy_fallbacks = 0  # operations that met SQLITE_BUSY on the loop and went to the worker
        self.busy_retries = 0  # loop writes that found the write lock taken and tried again

    # -- worker-thread plumbing --------------------------------------------------------

    def _db(self) -> sqlite3.Connection:
        conn = self._conn
        if conn is None:
            conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, cached_statements=64
            )
            try:
                conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise RuntimeError(f"{self.path}: SQLite refused WAL mode (got {mode!r})")
                conn.execute("PRAGMA synchronous = NORMAL")
                conn.execute("PRAGMA foreign_keys = ON")
                conn.execute("PRAGMA wal_autocheckpoint = 0")
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return conn

    def _read_now(self, work: Work[T]) -> T:
        return work(self._db(), self._clock())

    def _write_now(self, work: Work[T]) -> T:
        conn = self._db()
        conn.execute("BEGIN IMMEDIATE")
        try:
            now = self._clock()
            result = work(conn, now)
            if now >= self._next_purge:
                self._purge(conn, now)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        self._worker_commits += 1
        if self._loop_commits + self._worker_commits >= self._checkpoint_every:
            self._loop_commits = self._worker_commits = 0
            _, frames, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if frames >= self._restart_frames:
                conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()
        return result

    def _purge(self, conn: sqlite3.Connection, now: float) -> None:
        backlog = False
        for statement in (PURGE_ARTEFACTS, PURGE_COUNTERS):
            backlog |= conn.execute(statement, (now, PURGE_BATCH)).rowcount >= PURGE_BATCH
        self._next_purge = now if backlog else now + self._purge_interval

    def _migrate_now(self) -> None:
        conn = self._db()
        conn.execute("BEGIN IMMEDIATE")
        try:
            found = None
            if conn.execute(HAS_META_TABLE).fetchone() is not None:
                row = conn.execute(GET_META, ("schema_version",)).fetchone()
                found = check_schema_version(None if row is None else str(row[0]))
            upgrade_artefacts(conn)  # before the schema: it builds the indexes of the new table
            for statement in (*SCHEMA, *DIRECTORY_SCHEMA, *SIGNIN_LOG_SCHEMA):
                conn.execute(statement)
            if found is None or found < 2:
                self._index_all_mails(conn)
            conn.execute(SET_SCHEMA_VERSION, (str(SCHEMA_VERSION),))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _index_all_mails(self, conn: sqlite3.Connection) -> None:
        """Schema 1 -> 2: index the mail addresses of every stored user."""
        for user_id, doc in conn.execute(ALL_USERS).fetchall():
            try:
                user = decode(doc)
                check_user(user)
                mails = user_mails(user)
            except (TypeError, ValueError) as exc:
                raise RuntimeError(
                    f"{self.path}: cannot upgrade the store to schema_version {SCHEMA_VERSION}: "
                    f"user {user_id!r}: {exc}; fix that user's document, then migrate again"
                ) from exc
            conn.executemany(INSERT_MAIL, [(mail, user_id) for mail in mails])

    def _close_now(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def _submit(self, call: Callable[[Work[T]], T], work: Work[T]) -> T:
        if self._closed:
            raise RuntimeError("the store is closed")
        return await self._worker.run(call, work)

    async def _read(self, work: Work[T]) -> T:
        return await self._submit(self._read_now, work)

    # -- the loop connection ------------------------------------------------------------

    def _open_loop_conn(self) -> sqlite3.Connection | None:
        """This thread's loop connection (opened on first use), or None when it belongs to
        another thread or the file is not ready (absent, not yet in WAL mode): then the worker
        answers."""
        if self._loop_conn is not None:
            return self._loop_conn if self._loop_thread == threading.get_ident() else None
        uri = Path(self.path).absolute().as_uri() + "?mode=rw"  # never creates the file
        try:
            conn = sqlite3.connect(uri, uri=True, timeout=0, isolation_level=None, cached_statements=64)
        except sqlite3.OperationalError:
            return None
        try:
            conn.execute("PRAGMA busy_timeout = 0")
            mode = conn.execute("PRAGMA journal_mode").fetchall()[0][0]
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA wal_autocheckpoint = 0")
        except sqlite3.OperationalError:
            conn.close()
            return None
        if str(mode).lower() != "wal":
            conn.close()
            return None
        self._loop_conn, self._loop_thread = conn, threading.get_ident()
        return conn

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the store is closed")

    async def _lookup(self, work: Work[T]) -> T:
        """Run a read-only ``work`` on the loop connection; on the worker if it is busy."""
        self._check_open()
        conn = self._open_loop_conn()
        if conn is not None:
            try:
                return work(conn, self._clock())
            except sqlite3.OperationalError as exc:
                if not _busy(exc):
                    raise
                self.busy_fallbacks += 1
        return await self._read(work)

    async def _write(self, work: Work[T]) -> T:
        """Run ``work`` in one ``BEGIN IMMEDIATE`` transaction on the loop connection. When the
        write lock is taken (another process is writing), try again on the loop after short
        sleeps (``LOOP_RETRY_DELAYS``), then on the worker, which waits; maintenance that falls
        due also goes to the worker."""
        self._check_open()
        conn = self._open_loop_conn()
        commits = self._loop_commits + self._worker_commits
        if conn is None or self._clock() >= self._next_purge or commits >= self._checkpoint_every:
            return await self._submit(self._write_now, work)
        for delay in (*LOOP_RETRY_DELAYS, None):
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if not _busy(exc):
                    raise
                if delay is None:
                    break
                self.busy_retries += 1  # nothing was written: sleep (the loop runs on), try again
                await asyncio.sleep(delay)
                self._check_open()
                continue
            try:
                result = work(conn, self._clock())
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            self._loop_commits += 1
            return result
        self.busy_fallbacks += 1
        return await self._submit(self._write_now, work)

    # -- Store -------------------------------------------------------------------------

    async def migrate(self) -> None:
        if self._closed:
            raise RuntimeError("the store is closed")
        await self._worker.run(self._migrate_now)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        loop_conn, self._loop_conn = self._loop_conn, None
        if loop_conn is not None and self._loop_thread == threading.get_ident():
            loop_conn.close()
        await self._worker.run(self._close_now)
        self._worker.stop()

    # -- ArtefactStore -----------------------------------------------------------------

    def batch(self) -> AbstractAsyncContextManager[None]:
        return write_behind.block(self, self._apply_now)

    async def apply(self, writes: Sequence[Write]) -> None:
        await self._apply_now([_prepare(write) for write in writes])

    async def _apply_now(self, writes: list[Work[None]]) -> None:
        queued = write_behind.take(self)
        if queued or writes:
            await self._write_queued(queued, _after([*queued, *writes], _nothing))

    async def _artefact_write(self, work: Work[T]) -> T:
        """``_write`` for an artefact operation: this task's queued writes (``batch``) run first,
        in the same transaction."""
        queued = write_behind.take(self)
        if not queued:
            return await self._write(work)
        return await self._write_queued(queued, _after(queued, work))

    async def _artefact_lookup(self, work: Work[T]) -> T:
        """``_lookup`` for an artefact read; with writes queued (``batch``) it runs after them in
        their write transaction, so the task reads its own writes."""
        queued = write_behind.take(self)
        if not queued:
            return await self._lookup(work)
        return await self._write_queued(queued, _after(queued, work))

    async def _write_queued(self, queued: list[Work[None]], work: Work[T]) -> T:
        """Run ``work``, which starts with the ``queued`` writes taken from the block; they go
        back to the queue if the transaction fails."""
        try:
            return await self._write(work)
        except BaseException:
            write_behind.give_back(self, queued)
            raise

    async def put(self, kind: str, id: str, payload: JSON, ttl: int, *, grant_id: str | None = None) -> None:
        work = _put_work(kind, id, payload, ttl, grant_id)
        queue = write_behind.queue_for(self)
        if queue is not None:
            queue.writes.append(work)
            return
        await self._write(work)

    async def add(self, kind: str, id: str, payload: JSON, ttl: int, *, grant_id: str | None = None) -> bool:
        check_key(kind, id)
        check_seconds("ttl", ttl)
        check_grant(grant_id)
        text = encode("payload", payload)

        def work(conn: sqlite3.Connection, now: float) -> bool:
            params = {
                "kind": kind,
                "id": id,
                "payload": text,
                "grant": grant_id,
                "expires": now + ttl,
                "now": now,
            }
            return conn.execute(ADD, params).fetchone() is not None

        return await self._artefact_write(work)

    async def get(self, kind: str, id: str) -> JSON | None:
        check_key(kind, id)

        def work(conn: sqlite3.Connection, now: float) -> JSON | None:
            row = _one(conn, GET, (kind, id, now))
            return None if row is None else decode(row[0])

        return await self._artefact_lookup(work)

    async def consume(self, kind: str, id: str) -> Consumed | None:
        check_key(kind, id)

        def work(conn: sqlite3.Connection, now: float) -> Consumed | None:
            row = conn.execute(CONSUME, (kind, id, now)).fetchone()
            if row is None:
                return None
            return Consumed(payload=decode(row[0]), grant_id=row[1], first=row[2] == 1)

        return await self._artefact_write(work)

    async def delete(self, kind: str, id: str) -> None:
        work = _delete_work(kind, id)
        queue = write_behind.queue_for(self)
        if queue is not None:
            queue.writes.append(work)
            return
        await self._write(work)

    async def revoke_grant(self, grant_id: str) -> int:
        check_text("grant_id", grant_id)

        def work(conn: sqlite3.Connection, now: float) -> int:
            return sum(1 for (expires_at,) in conn.execute(REVOKE, (grant_id,)) if expires_at > now)

        return await self._artefact_write(work)

    async def incr(self, kind: str, id: str, window: int) -> Counter:
        check_key(kind, id)
        check_seconds("window", window)

        def work(conn: sqlite3.Connection, now: float) -> Counter:
            params = {"kind": kind, "id": id, "expires": now + window, "now": now}
            value, expires_at = conn.execute(INCR, params).fetchone()
            return Counter(value=value, expires_in=_seconds_left(expires_at, now))

        return await self._artefact_write(work)

    async def consume_counted(
        self, kind: str, id: str, counter: str, window: int, limit: int, *, counter_id: str | None = None
    ) -> tuple[Counter, Consumed | None]:
        counted_id = check_counted(kind, id, counter, counter_id, window, limit)

        def work(conn: sqlite3.Connection, now: float) -> tuple[Counter, Consumed | None]:
            params = {"kind": counter, "id": counted_id, "expires": now + window, "now": now}
            value, expires_at = conn.execute(INCR, params).fetchone()
            counted = Counter(value=value, expires_in=_seconds_left(expires_at, now))
            if value > limit:
                return counted, None
            row = conn.execute(CONSUME, (kind, id, now)).fetchone()
            if row is None:
                return counted, None
            return counted, Consumed(payload=decode(row[0]), grant_id=row[1], first=row[2] == 1)

        return await self._artefact_write(work)

    async def ttl(self, kind: str, id: str) -> int | None:
        check_key(kind, id)

        def work(conn: sqlite3.Connection, now: float) -> int | None:
            row = _one(conn, TTL, (kind, id, now))
            return None if row is None else _seconds_left(row[0], now)

        return await self._artefact_lookup(work)

    async def ttl_many(self, names: Sequence[tuple[str, str]]) -> list[int | None]:
        for kind, id in names:
            check_key(kind, id)
        keys = list(names)

        def work(conn: sqlite3.Connection, now: float) -> list[int | None]:
            rows = (_one(conn, TTL, (kind, id, now)) for kind, id in keys)
            return [None if row is None else _seconds_left(row[0], now) for row in rows]

        return await self._artefact_lookup(work)

    # -- DirectoryStore ----------------------------------------------------------------

    async def create_user(self, user: JSON, identities: list[tuple[str, str]]) -> bool:
        user_id = check_user(user)
        pairs = check_identities(identities)
        mails = user_mails(user)
        doc = encode("user", user)

        def work(conn: sqlite3.Connection, now: float) -> bool:
            # The inserts tell what exists (no row inserted): no separate lookups first.
            if conn.execute(INSERT_NEW_USER, (user_id, doc)).rowcount == 0:
                raise ValueError(f"a user with id {user_id!r} already exists")
            rows = [(issuer, assigned, user_id) for issuer, assigned in pairs]
            if conn.executemany(INSERT_NEW_IDENTITY, rows).rowcount != len(rows):
                raise _IdentityTaken  # rolls the transaction back: nothing was created
            conn.executemany(INSERT_MAIL, [(mail, user_id) for mail in mails])
            return True

        try:
            return await self._write(work)
        except _IdentityTaken:
            return False

    async def get_user(self, user_id: str) -> JSON | None:
        check_text("user id", user_id)

        def work(conn: sqlite3.Connection, now: float) -> JSON | None:
            row = _one(conn, GET_USER, (user_id,))
            return None if row is None else decode(row[0])

        return await self._lookup(work)

    async def find_user_by_identity(self, issuer: str, issuer_assigned_id: str) -> JSON | None:
        check_text("identity issuer", issuer)
        check_text("identity issuer_assigned_id", issuer_assigned_id)

        def work(conn: sqlite3.Connection, now: float) -> JSON | None:
            row = _one(conn, FIND_USER, (issuer, issuer_assigned_id))
            return None if row is None else decode(row[0])

        return await self._lookup(work)

    async def update_user(self, user: JSON) -> None:
        user_id = check_user(user)
        mails = user_mails(user)
        doc = encode("user", user)

        def work(conn: sqlite3.Connection, now: float) -> None:
            if conn.execute(UPDATE_USER, (doc, user_id)).rowcount != 1:
                raise KeyError(f"no user with id {user_id!r}")
            conn.execute(DELETE_MAILS, (user_id,))
            conn.executemany(INSERT_MAIL, [(mail, user_id) for mail in mails])

        await self._write(work)

    async def add_identity(self, user_id: str, issuer: str, issuer_assigned_id: str, identity: JSON) -> bool:
        check_text("user id", user_id)
        entry = check_identity(issuer, issuer_assigned_id, identity)

        def work(conn: sqlite3.Connection, now: float) -> bool:
            row = conn.execute(GET_USER, (user_id,)).fetchone()
            if row is None:
                raise KeyError(f"no user with id {user_id!r}")
            doc = encode("user", append_identity(decode(row[0]), entry))
            if conn.execute(INSERT_NEW_IDENTITY, (issuer, issuer_assigned_id, user_id)).rowcount == 0:
                return False  # already linked (to this user or another): nothing was written
            conn.execute(UPDATE_USER, (doc, user_id))
            return True

        return await self._write(work)

    async def find_users_by_mail(self, mail: str) -> list[JSON]:
        address = check_mail(mail)

        def work(conn: sqlite3.Connection, now: float) -> list[JSON]:
            return [decode(doc) for (doc,) in conn.execute(FIND_BY_MAIL, (address,)).fetchall()]

        return await self._lookup(work)

    async def delete_user(self, user_id: str) -> bool:
        check_text("user id", user_id)

        def work(conn: sqlite3.Connection, now: float) -> bool:
            return delete_user_rows(conn, user_id)

        return await self._write(work)

    async def list_signing_keys(self) -> list[JSON]:
        def work(conn: sqlite3.Connection, now: float) -> list[JSON]:
            return [decode(record) for (record,) in conn.execute(LIST_KEYS).fetchall()]

        return await self._lookup(work)

    async def save_signing_key(self, record: JSON) -> None:
        kid = check_signing_key(record)
        text = encode("signing-key record", record)

        def work(conn: sqlite3.Connection, now: float) -> None:
            conn.execute(SAVE_KEY, (kid, text))

        await self._write(work)

    async def get_meta(self, name: str) -> str | None:
        check_text("meta name", name)

        def work(conn: sqlite3.Connection, now: float) -> str | None:
            row = _one(conn, GET_META, (name,))
            return None if row is None else str(row[0])

        return await self._lookup(work)

    async def set_meta_if_absent(self, name: str, value: str) -> str:
        check_text("meta name", name)
        check_meta_value(value)

        def work(conn: sqlite3.Connection, now: float) -> str:
            conn.execute(ADD_META, (name, value))
            return str(conn.execute(GET_META, (name,)).fetchone()[0])

        return await self._write(work)
