"""``gateway.store.sqlite_layout``: ``artefacts`` is a rowid table, and ``migrate`` rebuilds a file's
``WITHOUT ROWID`` table of earlier releases with every row and column kept."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from gateway.store.sqlite import SQLiteStore
from gateway.store.sqlite_layout import TABLE_SQL
from tests.store.test_sqlite import V1_USERS, make_v1_database

ROWS = [  # as an earlier release stored them: a grant's tokens, a used code, an expired row
    ("access", "a-1", '{"sub":"s1"}', "grant-1", 0, 4e9),
    ("refresh", "r-1", '{"sub":"s1","n":2}', "grant-1", 0, 4e9),
    ("code", "c-1", '{"c":1}', "grant-2", 1, 4e9),
    ("signin", "gone", '{"old":true}', None, 0, 1.0),
]


INDEXES = "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'artefacts'"


def layout(path: str) -> tuple[str, set[str], list[tuple[object, ...]]]:
    """The table's SQL, the names of its indexes and its rows (by kind and id)."""
    with closing(sqlite3.connect(path)) as conn:
        sql = conn.execute(TABLE_SQL).fetchone()
        indexes = {row[0] for row in conn.execute(INDEXES)}
        rows = conn.execute(
            "SELECT kind, id, payload, grant_id, uses, expires_at FROM artefacts ORDER BY kind, id"
        ).fetchall()
    return str(sql[0]), indexes, rows


def old_file(path: str) -> None:
    make_v1_database(path, V1_USERS)  # its artefacts table is WITHOUT ROWID
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.executemany("INSERT INTO artefacts VALUES (?, ?, ?, ?, ?, ?)", ROWS)


async def test_a_new_store_keeps_artefacts_in_a_rowid_table(tmp_path: Path) -> None:
    path = str(tmp_path / "new.db")
    store = SQLiteStore(path)
    try:
        await store.migrate()
    finally:
        await store.close()
    sql, indexes, _ = layout(path)
    assert "WITHOUT ROWID" not in sql.upper() and "UNIQUE (kind, id)" in sql
    assert {"artefacts_grant", "artefacts_expiry"} <= indexes


async def test_migrate_rebuilds_a_without_rowid_table_with_every_row(tmp_path: Path) -> None:
    path = str(tmp_path / "old.db")
    old_file(path)
    sql, _, before = layout(path)
    assert "WITHOUT ROWID" in sql
    store = SQLiteStore(path)
    try:
        await store.migrate()
        sql, indexes, after = layout(path)
        assert "WITHOUT ROWID" not in sql.upper()
        assert after == before  # every row, every column, the expired one too (the purge takes it)
        assert {"artefacts_grant", "artefacts_expiry"} <= indexes
        assert not any("without_rowid" in name for name in indexes)
        assert await store.get("refresh", "r-1") == {"sub": "s1", "n": 2}
        assert await store.get("signin", "gone") is None
        consumed = await store.consume("code", "c-1")
        assert consumed is not None and consumed.first is False  # its use count came along
        assert await store.revoke_grant("grant-1") == 2  # the grant index works on the new table
        assert await store.get("access", "a-1") is None
        await store.put("session", "s-new", {"v": 2}, 60)  # upserts on (kind, id) still work
        await store.put("session", "s-new", {"v": 3}, 60)
        assert await store.get("session", "s-new") == {"v": 3}
    finally:
        await store.close()


async def test_migrating_a_rebuilt_file_again_changes_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "again.db")
    old_file(path)
    store = SQLiteStore(path)
    try:
        await store.migrate()
        first = layout(path)
        await store.migrate()
        assert layout(path) == first
    finally:
        await store.close()
