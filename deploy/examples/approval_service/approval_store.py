"""The approval service's state: one access request per signing-up identity, in a SQLite file.

A request is keyed by who signs up: ``identities[0]`` (issuer, issuerAssignedId) when the gateway sends
it (passcode, Google and Facebook sign-ups), else the lower-cased email. It is ``pending``, ``approved``
or ``denied``. Every call opens its own short connection (WAL journal, busy timeout), so several uvicorn
workers can share the file; filing is one ``INSERT ... ON CONFLICT DO NOTHING``, so two concurrent
sign-ups of one identity file one request. The file is created readable by its owner only: it holds
applicants' email addresses.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

Status = Literal["pending", "approved", "denied"]
STATUSES: tuple[Status, ...] = ("pending", "approved", "denied")
AttributeValue = str | bool | int
LIST_LIMIT = 1000
MAX_ID = 2**63 - 1  # SQLite's largest INTEGER

_SCHEMA = """
CREATE TABLE IF NOT EXISTS access_requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    subject_key TEXT NOT NULL UNIQUE,
    email TEXT NOT NULL,
    issuer TEXT,
    issuer_assigned_id TEXT,
    display_name TEXT,
    attributes TEXT NOT NULL,
    ui_locales TEXT,
    status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied')),
    created_at TEXT NOT NULL,
    decided_at TEXT
)
"""
_INSERT = """
INSERT INTO access_requests
    (subject_key, email, issuer, issuer_assigned_id, display_name, attributes, ui_locales, status, created_at)
VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?)
ON CONFLICT (subject_key) DO NOTHING
"""
_DECIDE = "UPDATE access_requests SET status = ?, decided_at = ? WHERE id = ? RETURNING *"
_LIST_ALL = "SELECT * FROM access_requests ORDER BY status = 'pending' DESC, id DESC LIMIT ?"
_LIST_STATUS = "SELECT * FROM access_requests WHERE status = ? ORDER BY id DESC LIMIT ?"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Applicant:
    """Who signs up, as the gateway's API connector request describes them."""

    email: str
    issuer: str | None = None
    issuer_assigned_id: str | None = None
    display_name: str | None = None
    attributes: Mapping[str, AttributeValue] = field(default_factory=dict)
    ui_locales: str | None = None

    @property
    def key(self) -> str:
        """The identity when the gateway sent one, else the email (case-insensitively)."""
        if self.issuer is not None and self.issuer_assigned_id is not None:
            return json.dumps(["identity", self.issuer, self.issuer_assigned_id])
        return json.dumps(["email", self.email.lower()])


@dataclass(frozen=True)
class AccessRequest:
    """One filed request and the admin's decision."""

    id: int
    status: Status
    email: str
    issuer: str | None
    issuer_assigned_id: str | None
    display_name: str | None
    attributes: dict[str, AttributeValue]
    ui_locales: str | None
    created_at: str
    decided_at: str | None

    def to_json(self) -> dict[str, Any]:
        """The admin API's shape (Graph-style camelCase names)."""
        identity = (
            {"issuer": self.issuer, "issuerAssignedId": self.issuer_assigned_id}
            if self.issuer is not None
            else None
        )
        return {
            "id": self.id,
            "status": self.status,
            "email": self.email,
            "identity": identity,
            "displayName": self.display_name,
            "attributes": dict(self.attributes),
            "uiLocales": self.ui_locales,
            "createdDateTime": self.created_at,
            "decidedDateTime": self.decided_at,
        }


def _request(row: sqlite3.Row) -> AccessRequest:
    status = row["status"]
    if status not in STATUSES:  # the CHECK constraint makes this unreachable short of a hand edit
        raise ValueError(f"access request {row['id']} has an unknown status {status!r}")
    return AccessRequest(
        id=row["id"],
        status=status,
        email=row["email"],
        issuer=row["issuer"],
        issuer_assigned_id=row["issuer_assigned_id"],
        display_name=row["display_name"],
        attributes=json.loads(row["attributes"]),
        ui_locales=row["ui_locales"],
        created_at=row["created_at"],
        decided_at=row["decided_at"],
    )


class ApprovalStore:
    """Access requests in the SQLite file at ``path`` (created, with its table, on construction)."""

    def __init__(self, path: str) -> None:
        self.path = path
        if not os.path.exists(path):
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        with self._connect() as db:
            db.execute("PRAGMA journal_mode = WAL")
            db.execute(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=10, isolation_level=None)) as db:
            db.row_factory = sqlite3.Row
            yield db

    def ping(self) -> None:
        """Raises when the file cannot be read."""
        with self._connect() as db:
            db.execute("SELECT count(*) FROM access_requests").fetchone()

    def find(self, applicant: Applicant) -> AccessRequest | None:
        with self._connect() as db:
            row = db.execute(
                "SELECT * FROM access_requests WHERE subject_key = ?", (applicant.key,)
            ).fetchone()
        return None if row is None else _request(row)

    def file(self, applicant: Applicant) -> tuple[AccessRequest, bool]:
        """The applicant's request, filed as pending unless one exists; True when this call filed it."""
        values = (
            applicant.key,
            applicant.email,
            applicant.issuer,
            applicant.issuer_assigned_id,
            applicant.display_name,
            json.dumps(dict(applicant.attributes), sort_keys=True),
            applicant.ui_locales,
            _now(),
        )
        with self._connect() as db:
            filed = db.execute(_INSERT, values).rowcount == 1
            row = db.execute(
                "SELECT * FROM access_requests WHERE subject_key = ?", (applicant.key,)
            ).fetchone()
        return _request(row), filed

    def get(self, request_id: int) -> AccessRequest | None:
        if not 0 < request_id <= MAX_ID:
            return None
        with self._connect() as db:
            row = db.execute("SELECT * FROM access_requests WHERE id = ?", (request_id,)).fetchone()
        return None if row is None else _request(row)

    def decide(self, request_id: int, status: Status) -> AccessRequest | None:
        """Approve or deny (either may be changed later); None when there is no such request."""
        if status == "pending":
            raise ValueError("a decision is approved or denied")
        if not 0 < request_id <= MAX_ID:
            return None
        with self._connect() as db:
            row = db.execute(_DECIDE, (status, _now(), request_id)).fetchone()
        return None if row is None else _request(row)

    def requests(self, status: Status | None = None) -> list[AccessRequest]:
        """Pending requests first, newest first; at most ``LIST_LIMIT``."""
        with self._connect() as db:
            if status is None:
                rows = db.execute(_LIST_ALL, (LIST_LIMIT,)).fetchall()
            else:
                rows = db.execute(_LIST_STATUS, (status, LIST_LIMIT)).fetchall()
        return [_request(row) for row in rows]
