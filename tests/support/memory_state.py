"""An in-memory ``ConnectorState`` for connector unit tests, with an injectable clock.

Semantics follow ``gateway.store.base.ArtefactStore``: ``put`` replaces, ``add`` creates
only if absent, ``consume`` marks used and tells the first caller apart from later ones
(``get`` no longer sees a consumed artefact; it stays until its TTL for late consumers),
``incr`` counts in a fixed window that starts on the first increment, ``consume_counted`` is
``incr`` then ``consume`` within the limit, in one step. Counters live in
their own namespace. Every operation yields to the event loop once before it runs (and
then runs without yielding), so ``asyncio.gather`` really interleaves concurrent callers
while each operation stays atomic, as it is in the real backends.
"""

from __future__ import annotations

import asyncio
import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from idp_connectors.base import JSON, Consumed, Counter


class ManualClock:
    """A clock tests move by hand: ``clock.advance(60)``."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class _Entry:
    payload: JSON
    expires_at: float
    grant_id: str | None
    used: bool = False


@dataclass
class _Count:
    value: int
    expires_at: float


class MemoryState:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.entries: dict[tuple[str, str], _Entry] = {}
        self.counters: dict[tuple[str, str], _Count] = {}

    def _live(self, kind: str, id: str) -> _Entry | None:
        entry = self.entries.get((kind, id))
        if entry is not None and entry.expires_at <= self.clock():
            del self.entries[(kind, id)]
            return None
        return entry

    async def put(self, kind: str, id: str, payload: JSON, ttl: int, *, grant_id: str | None = None) -> None:
        await asyncio.sleep(0)
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        self.entries[(kind, id)] = _Entry(copy.deepcopy(payload), self.clock() + ttl, grant_id)

    async def add(self, kind: str, id: str, payload: JSON, ttl: int, *, grant_id: str | None = None) -> bool:
        await asyncio.sleep(0)
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        if self._live(kind, id) is not None:
            return False
        self.entries[(kind, id)] = _Entry(copy.deepcopy(payload), self.clock() + ttl, grant_id)
        return True

    async def get(self, kind: str, id: str) -> JSON | None:
        await asyncio.sleep(0)
        entry = self._live(kind, id)
        return None if entry is None or entry.used else copy.deepcopy(entry.payload)

    async def consume(self, kind: str, id: str) -> Consumed | None:
        await asyncio.sleep(0)
        return self._consume(kind, id)

    def _consume(self, kind: str, id: str) -> Consumed | None:
        entry = self._live(kind, id)
        if entry is None:
            return None
        first = not entry.used
        entry.used = True
        return Consumed(payload=copy.deepcopy(entry.payload), grant_id=entry.grant_id, first=first)

    async def delete(self, kind: str, id: str) -> None:
        await asyncio.sleep(0)
        self.entries.pop((kind, id), None)

    async def revoke_grant(self, grant_id: str) -> int:
        await asyncio.sleep(0)
        doomed = [key for key, entry in self.entries.items() if entry.grant_id == grant_id]
        for key in doomed:
            del self.entries[key]
        return len(doomed)

    async def incr(self, kind: str, id: str, window: int) -> Counter:
        await asyncio.sleep(0)
        return self._count(kind, id, window)

    def _count(self, kind: str, id: str, window: int) -> Counter:
        if window <= 0:
            raise ValueError("window must be positive")
        now = self.clock()
        count = self.counters.get((kind, id))
        if count is None or count.expires_at <= now:
            count = self.counters[(kind, id)] = _Count(0, now + window)
        count.value += 1
        return Counter(value=count.value, expires_in=math.ceil(count.expires_at - now))

    async def consume_counted(
        self, kind: str, id: str, counter: str, window: int, limit: int, *, counter_id: str | None = None
    ) -> tuple[Counter, Consumed | None]:
        await asyncio.sleep(0)
        counted = self._count(counter, id if counter_id is None else counter_id, window)
        if counted.value > limit:
            return counted, None
        return counted, self._consume(kind, id)

    async def ttl(self, kind: str, id: str) -> int | None:
        await asyncio.sleep(0)
        entry = self._live(kind, id)
        return None if entry is None else math.ceil(entry.expires_at - self.clock())

    def live(self, kind: str) -> dict[str, JSON]:
        """Test helper: the live (unexpired) artefacts of one kind, by id."""
        now = self.clock()
        return {
            id: entry.payload
            for (k, id), entry in self.entries.items()
            if k == kind and entry.expires_at > now
        }
