"""The ``backend`` fixture: every contract test runs once on SQLite and once on a real Redis.

SQLite gets an injected clock, so its ``advance`` is instant; Redis expires keys in real
time, so its ``advance`` sleeps (tests use 1 s TTLs and advance as rarely as they can).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.store.base import Store
from gateway.store.redis import RedisStore
from gateway.store.sqlite import SQLiteStore


class FakeClock:
    """A settable clock for ``SQLiteStore(clock=...)``."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Backend:
    name: str
    store: Store
    advance: Callable[[float], Awaitable[None]]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def sqlite_store(tmp_path: Path, clock: FakeClock) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(tmp_path / "store.db", clock=clock)
    await store.migrate()
    yield store
    await store.close()


@pytest.fixture
async def redis_store(fresh_redis_url: str) -> AsyncIterator[RedisStore]:
    store = RedisStore.from_url(fresh_redis_url)
    await store.migrate()
    yield store
    await store.close()


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def backend(request: pytest.FixtureRequest, clock: FakeClock) -> Backend:
    if request.param == "sqlite":
        store: Store = request.getfixturevalue("sqlite_store")

        async def advance(seconds: float) -> None:
            clock.now += seconds

    else:
        store = request.getfixturevalue("redis_store")

        async def advance(seconds: float) -> None:
            await asyncio.sleep(seconds)

    return Backend(request.param, store, advance)
