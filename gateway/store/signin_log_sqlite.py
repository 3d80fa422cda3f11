"""SQLite side of the sign-in log (``gateway.store.signin_log``): one table, ordered by its key.

``signin_log`` (ms, id, user_id, app_id, error_code, doc) has the PRIMARY KEY (ms, id), so the
newest-first listing walks the key backwards and the purge of old entries deletes a range at
its start; ``user_id`` and ``app_id`` have their own indexes (``(user_id, ms)``, ``(app_id, ms)``)
so a filtered listing does not walk the whole log. ``append_signins`` writes its entries and
drops the expired ones (at most ``PURGE_BATCH`` a call; unless told not to purge) in one
``BEGIN IMMEDIATE`` transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from gateway.store.base import JSON
from gateway.store.signin_log import (
    SignInEntry,
    SignInQuery,
    check_entry,
    check_page,
    check_retention,
    millis,
)
from gateway.store.validate import decode

T = TypeVar("T")
Work = Callable[[sqlite3.Connection, float], T]

PURGE_BATCH = 1000

SIGNIN_LOG_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS signin_log (
        ms INTEGER NOT NULL, id TEXT NOT NULL, user_id TEXT, app_id TEXT,
        error_code INTEGER NOT NULL, doc TEXT NOT NULL,
        PRIMARY KEY (ms, id)) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS signin_log_user ON signin_log (user_id, ms) WHERE user_id IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS signin_log_app ON signin_log (app_id, ms) WHERE app_id IS NOT NULL",
)

INSERT = """INSERT INTO signin_log (ms, id, user_id, app_id, error_code, doc) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (ms, id) DO UPDATE SET user_id = excluded.user_id, app_id = excluded.app_id,
    error_code = excluded.error_code, doc = excluded.doc"""
PURGE = """DELETE FROM signin_log WHERE (ms, id) IN
    (SELECT ms, id FROM signin_log WHERE ms < ? ORDER BY ms LIMIT ?)"""
# Constant text per filter combination (each prepared once per connection).
SELECT = "SELECT ms, id, doc FROM signin_log WHERE (ms, id) < (:ms, :id) AND ms >= :since"
AND_USER = " AND user_id = :user_id"
AND_APP = " AND app_id = :app_id"
AND_SUCCEEDED = " AND error_code = 0"
AND_FAILED = " AND error_code <> 0"
ORDER = " ORDER BY ms DESC, id DESC LIMIT :fetch"
UNBOUNDED = 10**15  # above every 15-digit millisecond time


class _Host(Protocol):
    """What the mixin uses of ``SQLiteStore``."""

    async def _lookup(self, work: Work[T]) -> T: ...

    async def _write(self, work: Work[T]) -> T: ...


def _statement(query: SignInQuery) -> str:
    sql = SELECT
    if query.user_id is not None:
        sql += AND_USER
    if query.app_id is not None:
        sql += AND_APP
    if query.succeeded is not None:
        sql += AND_SUCCEEDED if query.succeeded else AND_FAILED
    return sql + ORDER


def _cursor_parts(after: str | None) -> tuple[int, str]:
    if after is None:
        return UNBOUNDED, ""
    ms, _, entry_id = after.partition(".")
    return int(ms), entry_id


class SQLiteSignInLogMixin:
    """``SignInLogStore`` for ``SQLiteStore``."""

    async def append_signins(
        self: _Host, entries: list[SignInEntry], keep_seconds: int, *, purge: bool = True
    ) -> None:
        check_retention(keep_seconds)
        rows = [
            (millis(e.time), e.id, e.user_id, e.app_id, e.error_code, check_entry(e)) for e in list(entries)
        ]

        def work(conn: sqlite3.Connection, now: float) -> None:
            conn.executemany(INSERT, rows)
            if purge:
                conn.execute(PURGE, (millis(now - keep_seconds), PURGE_BATCH))

        await self._write(work)

    async def list_signins(
        self: _Host, query: SignInQuery, *, limit: int = 100, after: str | None = None
    ) -> tuple[list[JSON], str | None]:
        check_page(query, limit, after)
        ms, entry_id = _cursor_parts(after)
        params: dict[str, Any] = {
            "ms": ms,
            "id": entry_id,
            "since": -1 if query.since is None else millis(query.since),
            "user_id": query.user_id,
            "app_id": query.app_id,
            "fetch": limit + 1,
        }
        sql = _statement(query)

        def work(conn: sqlite3.Connection, now: float) -> list[tuple[int, str, str]]:
            return conn.execute(sql, {k: v for k, v in params.items() if f":{k}" in sql}).fetchall()

        rows = await self._lookup(work)
        page = rows[:limit]
        cursor = f"{page[-1][0]:015d}.{page[-1][1]}" if len(rows) > limit else None
        return [decode(doc) for _, _, doc in page], cursor
