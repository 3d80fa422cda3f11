"""Read-only views of a gateway's SQLite store, for tests that assert what was (not) persisted.

The file is opened read-only (``mode=ro``) with ``sqlite3``, never through the gateway's own
store, so a bug in the store cannot hide a bug in the code under test. Schema: see
``gateway/store/sqlite.py`` (``artefacts``, ``counters``, ``users``, ``identities``).

- ``store_file(settings_or_app)``: the database file behind ``store: sqlite:///...``.
- ``snapshot(x)``: a ``Snapshot`` of live artefacts and counters by kind and of users.
- ``users(x)``: every user object (Graph-shaped JSON), oldest insert first is not guaranteed.
- ``MINTED``: the artefact kinds that mean "something was handed out" (code, tokens, session).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.settings.models import Settings
from gateway.store.factory import sqlite_path

MINTED = ("code", "access", "refresh", "session")
LIVE_BY_KIND = "SELECT kind, COUNT(*) FROM {table} WHERE expires_at > ? GROUP BY kind"


def store_file(source: Any) -> Path:
    """The SQLite file of a ``Settings``, an app (``app.state.runtime``) or a path."""
    if isinstance(source, Path):
        return source
    settings = source if isinstance(source, Settings) else source.state.runtime.settings
    return sqlite_path(settings.store)


@contextmanager
def _read_only(source: Any) -> Iterator[sqlite3.Connection]:
    path = store_file(source)
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        yield conn


@dataclass(frozen=True)
class Snapshot:
    """Live (unexpired) artefacts and counters by kind, and the users, at one moment."""

    artefacts: dict[str, int] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    user_count: int = 0

    def count(self, kind: str) -> int:
        return self.artefacts.get(kind, 0)

    def minted(self) -> dict[str, int]:
        """How many codes, access/refresh tokens and sessions exist (zeros included)."""
        return {kind: self.count(kind) for kind in MINTED}


def snapshot(source: Any, now: float | None = None) -> Snapshot:
    """Counts as of ``now`` (default: the wall clock, which is the SQLite store's clock)."""
    at = time.time() if now is None else now
    with _read_only(source) as conn:
        artefacts = dict(conn.execute(LIVE_BY_KIND.format(table="artefacts"), (at,)).fetchall())
        counters = dict(conn.execute(LIVE_BY_KIND.format(table="counters"), (at,)).fetchall())
        (user_count,) = conn.execute("SELECT COUNT(*) FROM users").fetchone()
    return Snapshot(artefacts=artefacts, counters=counters, user_count=int(user_count))


def counter_value(source: Any, kind: str, id: str) -> int | None:
    """A counter's current value, or None when it does not exist."""
    with _read_only(source) as conn:
        row = conn.execute(
            "SELECT value FROM counters WHERE kind = ? AND id = ? AND expires_at > ?", (kind, id, time.time())
        ).fetchone()
    return None if row is None else int(row[0])


def users(source: Any) -> list[dict[str, Any]]:
    with _read_only(source) as conn:
        return [json.loads(doc) for (doc,) in conn.execute("SELECT doc FROM users")]


def identities(source: Any) -> list[tuple[str, str, str]]:
    """Every ``(issuer, issuer_assigned_id, user_id)`` row of the identities index."""
    with _read_only(source) as conn:
        return [
            (str(a), str(b), str(c))
            for a, b, c in conn.execute("SELECT issuer, issuer_assigned_id, user_id FROM identities")
        ]
