"""The sign-in log's storage shape, shared by both backends (``signin_log_sqlite``, ``signin_log_redis``).

An append-only log of Graph ``signIn`` documents, newest first, each kept ``keep_seconds`` after
its time. ``SignInEntry`` carries a document with the fields the backends filter on;
``SignInQuery`` is the filter (every given field must match: AND). Paging is by an opaque cursor,
``key(entry)``: the entry's time in milliseconds (15 digits) and its id, so keys order entries by
time and then id, and a cursor stays valid while entries are appended and purged.

A page may hold fewer than ``limit`` entries while more remain: a backend that filters outside
an index examines at most ``SCAN_LIMIT`` entries per call, then returns what it found and the
cursor of the last entry it examined.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.jsontext import strict_text

MAX_ID = 64
MAX_LIMIT = 999
SCAN_LIMIT = 5000
_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")
JSON = dict[str, Any]  # as gateway.store.base, which imports this module (so nothing of the store here)
MAX_FIELD = 1024
CURSOR = re.compile(r"^[0-9]{15}\.[A-Za-z0-9-]{1,64}$")


@dataclass(frozen=True, slots=True)
class SignInEntry:
    """One sign-in: ``id`` (letters, digits, ``-``), ``time`` (epoch seconds), the filtered fields
    (``user_id``, ``app_id``: None or a string; ``error_code``: 0 for success) and the document."""

    id: str
    time: float
    user_id: str | None
    app_id: str | None
    error_code: int
    doc: JSON


@dataclass(frozen=True, slots=True)
class SignInQuery:
    """Entries whose ``user_id`` / ``app_id`` equal these (None: any), at or after ``since``
    (epoch seconds), and succeeded (``error_code`` 0) or failed when ``succeeded`` is given."""

    user_id: str | None = None
    app_id: str | None = None
    since: float | None = None
    succeeded: bool | None = None

    def matches(self, user_id: str | None, app_id: str | None, error_code: int) -> bool:
        if self.user_id is not None and user_id != self.user_id:
            return False
        if self.app_id is not None and app_id != self.app_id:
            return False
        return self.succeeded is None or (error_code == 0) == self.succeeded


def _check_field(name: str, value: str | None) -> None:
    if value is not None and (not isinstance(value, str) or not value or len(value) > MAX_FIELD):
        raise ValueError(f"{name} must be None or a non-empty string of at most {MAX_FIELD} characters")


def millis(time: float) -> int:
    return math.floor(time * 1000)


def key(entry: SignInEntry) -> str:
    return f"{millis(entry.time):015d}.{entry.id}"


def check_entry(entry: SignInEntry) -> str:
    """The entry's document as JSON text; ValueError/TypeError for a bad field."""
    if not isinstance(entry, SignInEntry):
        raise TypeError(f"a sign-in log entry is a SignInEntry, got {type(entry).__name__}")
    if not isinstance(entry.id, str) or _ID.match(entry.id) is None:
        raise ValueError(f"sign-in id must be 1-{MAX_ID} letters, digits or '-', got {entry.id!r}")
    if isinstance(entry.time, bool) or not isinstance(entry.time, int | float) or not 0 <= entry.time < 1e12:
        raise ValueError(f"sign-in time must be epoch seconds, got {entry.time!r}")
    _check_field("user_id", entry.user_id)
    _check_field("app_id", entry.app_id)
    if isinstance(entry.error_code, bool) or not isinstance(entry.error_code, int):
        raise TypeError(f"error_code must be an int, got {type(entry.error_code).__name__}")
    if not isinstance(entry.doc, dict):
        raise TypeError(f"the sign-in document must be a JSON object, got {type(entry.doc).__name__}")
    try:
        return strict_text(entry.doc)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"the sign-in document is not JSON-serialisable: {exc}") from exc


def check_retention(keep_seconds: int) -> None:
    if isinstance(keep_seconds, bool) or not isinstance(keep_seconds, int) or keep_seconds < 1:
        raise ValueError(f"keep_seconds must be a whole number of seconds >= 1, got {keep_seconds!r}")


def check_page(query: SignInQuery, limit: int, after: str | None) -> None:
    if not isinstance(query, SignInQuery):
        raise TypeError(f"query must be a SignInQuery, got {type(query).__name__}")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be 1..{MAX_LIMIT}, got {limit!r}")
    if after is not None and (not isinstance(after, str) or CURSOR.match(after) is None):
        raise ValueError("after must be a cursor list_signins returned")
    _check_field("user_id", query.user_id)
    _check_field("app_id", query.app_id)


class SignInLogStore(Protocol):
    """The sign-in log (see the module docstring)."""

    async def append_signins(
        self, entries: list[SignInEntry], keep_seconds: int, *, purge: bool = True
    ) -> None:
        """Add ``entries`` (each checked first: a bad one raises and nothing is written) and, with
        ``purge``, drop entries older than ``keep_seconds`` from the store's clock (a backend may
        drop only a batch of them a call). An id already logged at the same time is replaced."""

    async def list_signins(
        self, query: SignInQuery, *, limit: int = 100, after: str | None = None
    ) -> tuple[list[JSON], str | None]:
        """Up to ``limit`` matching documents, newest first (entries past their retention may
        linger until an append purges them: readers bound ``since``), and the cursor of the next
        page (None when there is no more); ``after`` is a cursor a previous call returned."""
