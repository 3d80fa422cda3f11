"""Redis side of the sign-in log (``gateway.store.signin_log``): one sorted set, read by lex range.

``gw:{signins}:log`` is a ZSET whose members all score 0 and read ``<key>,<json>``: the entry's
cursor key (15-digit milliseconds, ``.``, id), a comma (below every id character, so members
order as their keys do) and compact JSON ``{"u": user_id, "a": app_id,
"e": error_code, "d": document}``. Equal scores order members lexicographically, so
``ZREVRANGEBYLEX`` lists newest first and resumes strictly below a cursor (``(<key>`` excludes
the cursor's own member, which is longer), ``[<ms>`` bounds ``since``, and ``ZREMRANGEBYLEX - (<ms>``
drops expired entries. One key, one hash slot: ready for Redis Cluster. ``append_signins`` is one
``MULTI`` (the ``ZADD`` of every entry and, unless told not to, the purge); an entry replaced
under the same key is removed first, in the same transaction. Filters are applied here, examining at most
``SCAN_LIMIT`` members per call (``CHUNK`` a round trip).
"""

from __future__ import annotations

import time
from typing import Any, Protocol, cast

from gateway.jsontext import ascii_bytes
from gateway.store.base import JSON
from gateway.store.signin_log import (
    SCAN_LIMIT,
    SignInEntry,
    SignInQuery,
    check_entry,
    check_page,
    check_retention,
    key,
    millis,
)
from gateway.store.validate import decode

LOG_KEY = "gw:{signins}:log"
CHUNK = 500


class _Pipeline(Protocol):
    def zremrangebylex(self, name: str, min: str, max: str) -> Any: ...

    def zadd(self, name: str, mapping: dict[str, float]) -> Any: ...

    async def execute(self) -> list[Any]: ...


class _Client(Protocol):
    async def zrevrangebylex(
        self, name: str, max: str, min: str, start: int | None = None, num: int | None = None
    ) -> list[str]: ...

    def pipeline(self, transaction: bool = True) -> _Pipeline: ...


class _Host(Protocol):
    """What the mixin uses of ``RedisStore``."""

    @property
    def _redis(self) -> Any: ...


def _member(entry: SignInEntry, doc_text: str) -> str:
    head = ascii_bytes({"u": entry.user_id, "a": entry.app_id, "e": entry.error_code}).decode()
    return f'{key(entry)},{head[:-1]},"d":{doc_text}}}'


class RedisSignInLogMixin:
    """``SignInLogStore`` for ``RedisStore``."""

    async def append_signins(
        self: _Host, entries: list[SignInEntry], keep_seconds: int, *, purge: bool = True
    ) -> None:
        check_retention(keep_seconds)
        members = [(key(e), _member(e, check_entry(e))) for e in list(entries)]
        client = cast(_Client, self._redis)
        pipe = client.pipeline(transaction=True)
        for entry_key, _ in members:  # the same id at the same time: replaced, not doubled
            pipe.zremrangebylex(LOG_KEY, f"[{entry_key},", f"[{entry_key},\xff")
        if members:
            pipe.zadd(LOG_KEY, {member: 0 for _, member in members})
        if purge:
            pipe.zremrangebylex(LOG_KEY, "-", f"({millis(time.time() - keep_seconds):015d}")
        await pipe.execute()

    async def list_signins(
        self: _Host, query: SignInQuery, *, limit: int = 100, after: str | None = None
    ) -> tuple[list[JSON], str | None]:
        check_page(query, limit, after)
        client = cast(_Client, self._redis)
        upper = "+" if after is None else f"({after}"
        lower = "-" if query.since is None else f"[{millis(query.since):015d}"
        found: list[JSON] = []
        examined = 0
        while True:
            chunk = await client.zrevrangebylex(LOG_KEY, upper, lower, start=0, num=CHUNK)
            for member in chunk:
                examined += 1
                entry_key, _, text = member.partition(",")
                stored = decode(text)
                if query.matches(stored.get("u"), stored.get("a"), int(stored.get("e", 0))):
                    if len(found) == limit:  # one more exists: the page ends at the previous entry
                        return found, upper[1:]
                    found.append(stored["d"])
                upper = f"({entry_key}"
                if examined >= SCAN_LIMIT:  # enough for one call: the next resumes below this one
                    return found, entry_key
            if len(chunk) < CHUNK:
                return found, None
