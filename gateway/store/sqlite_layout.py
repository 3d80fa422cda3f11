"""The ``artefacts`` table's layout in the SQLite file, and the upgrade of files laid out before it.

``artefacts`` is a rowid table with a unique index on ``(kind, id)``. It was a ``WITHOUT ROWID``
table keyed on ``(kind, id)``, which keeps whole rows in the key's B-tree. Its rows are JSON
documents of 100 to 800 bytes under random ids, so each insert landed on a random leaf holding a
handful of rows, split leaves often and rebalanced their neighbours, and each commit wrote
several such pages to the log (a passcode sign-in: ~54 log frames, up to 15 in one commit). A
rowid table appends rows to its last leaf and keeps the random keys in a small index (~60-byte
entries): the same sign-in makes 9 % fewer ``pwrite`` and 47 % fewer ``pread`` calls (the log and
its checkpoints together), and runs 1.4 % fewer instructions (bench/README.md, sixth round).
SQLite's own advice is the same: ``WITHOUT ROWID`` suits rows well under a twentieth of a page.

This is the file's physical layout, not the stored data's shape, so it has no ``schema_version``
of its own: ``migrate`` rebuilds a table still laid out the old way, whatever the version.
"""

from __future__ import annotations

import re
import sqlite3

ARTEFACTS_TABLE = """CREATE TABLE IF NOT EXISTS artefacts (
        kind TEXT NOT NULL, id TEXT NOT NULL, payload TEXT NOT NULL, grant_id TEXT,
        uses INTEGER NOT NULL DEFAULT 0, expires_at REAL NOT NULL,
        UNIQUE (kind, id))"""

_WITHOUT_ROWID = re.compile(r"\bWITHOUT\s+ROWID\b", re.IGNORECASE)
TABLE_SQL = "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'artefacts'"
REBUILD = (
    "ALTER TABLE artefacts RENAME TO artefacts_without_rowid",
    ARTEFACTS_TABLE,
    """INSERT INTO artefacts (kind, id, payload, grant_id, uses, expires_at)
    SELECT kind, id, payload, grant_id, uses, expires_at FROM artefacts_without_rowid""",
    "DROP TABLE artefacts_without_rowid",
)


def upgrade_artefacts(conn: sqlite3.Connection) -> bool:
    """Rebuild a ``WITHOUT ROWID`` ``artefacts`` table as a rowid table with the same rows, in the
    caller's transaction; True if it did. Its indexes go with the old table: the schema's
    ``CREATE INDEX IF NOT EXISTS`` statements, run after this, build them on the new one."""
    row = conn.execute(TABLE_SQL).fetchone()
    if row is None or not _WITHOUT_ROWID.search(str(row[0])):
        return False
    for statement in REBUILD:
        conn.execute(statement)
    return True
