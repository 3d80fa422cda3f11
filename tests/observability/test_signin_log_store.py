"""Contract of the sign-in log store methods (``gateway.store.signin_log``) on SQLite and Redis."""

from __future__ import annotations

import time
from typing import Any

import pytest

from gateway.store.signin_log import SignInEntry, SignInQuery
from tests.store.conftest import Backend, FakeClock


def _now(backend: Backend, clock: FakeClock) -> float:
    return clock.now if backend.name == "sqlite" else time.time()


def entry(
    n: int, at: float, *, user: str | None = "u1", app: str | None = "demo", code: int = 0
) -> SignInEntry:
    return SignInEntry(f"id-{n:03d}", at, user, app, code, {"id": f"id-{n:03d}", "n": n})


async def test_newest_first_paged_with_cursors(backend: Backend, clock: FakeClock) -> None:
    now = _now(backend, clock)
    await backend.store.append_signins([entry(n, now - 100 + n) for n in range(7)], 3600)
    seen: list[Any] = []
    after = None
    while True:
        page, after = await backend.store.list_signins(SignInQuery(), limit=3, after=after)
        seen.extend(doc["n"] for doc in page)
        if after is None:
            break
    assert seen == [6, 5, 4, 3, 2, 1, 0]


async def test_filters_combine(backend: Backend, clock: FakeClock) -> None:
    now = _now(backend, clock)
    await backend.store.append_signins(
        [
            entry(1, now - 50, user="a", app="x"),
            entry(2, now - 40, user="a", app="y", code=123),
            entry(3, now - 30, user="b", app="x"),
            entry(4, now - 20, user=None, app=None, code=5),
        ],
        3600,
    )

    async def ns(query: SignInQuery) -> list[int]:
        page, cursor = await backend.store.list_signins(query, limit=10)
        assert cursor is None
        return [doc["n"] for doc in page]

    assert await ns(SignInQuery(user_id="a")) == [2, 1]
    assert await ns(SignInQuery(app_id="x")) == [3, 1]
    assert await ns(SignInQuery(user_id="a", succeeded=True)) == [1]
    assert await ns(SignInQuery(succeeded=False)) == [4, 2]
    assert await ns(SignInQuery(since=now - 35)) == [4, 3]
    assert await ns(SignInQuery(user_id="nobody")) == []


async def test_old_entries_are_purged_on_append(backend: Backend, clock: FakeClock) -> None:
    now = _now(backend, clock)
    await backend.store.append_signins([entry(1, now - 7200), entry(2, now - 10)], 3600)
    page, _ = await backend.store.list_signins(SignInQuery(), limit=10)
    assert [doc["n"] for doc in page] == [2]


async def test_an_append_told_not_to_purge_keeps_old_entries(backend: Backend, clock: FakeClock) -> None:
    now = _now(backend, clock)
    await backend.store.append_signins([entry(1, now - 7200)], 3600, purge=False)
    await backend.store.append_signins([entry(2, now - 10)], 3600, purge=False)
    page, _ = await backend.store.list_signins(SignInQuery(), limit=10)
    assert [doc["n"] for doc in page] == [2, 1]
    await backend.store.append_signins([], 3600)
    page, _ = await backend.store.list_signins(SignInQuery(), limit=10)
    assert [doc["n"] for doc in page] == [2]


async def test_same_entry_twice_is_kept_once(backend: Backend, clock: FakeClock) -> None:
    now = _now(backend, clock)
    await backend.store.append_signins([entry(1, now)], 3600)
    await backend.store.append_signins([SignInEntry("id-001", now, "u1", "demo", 0, {"n": 99})], 3600)
    page, _ = await backend.store.list_signins(SignInQuery(), limit=10)
    assert [doc["n"] for doc in page] == [99]


@pytest.mark.parametrize(
    "bad",
    [
        SignInEntry("has space", 1.0, None, None, 0, {}),
        SignInEntry("ok", -1.0, None, None, 0, {}),
        SignInEntry("ok", 1.0, "", None, 0, {}),
        SignInEntry("ok", 1.0, None, None, 0, {"x": float("nan")}),
    ],
)
async def test_a_bad_entry_writes_nothing(backend: Backend, clock: FakeClock, bad: SignInEntry) -> None:
    now = _now(backend, clock)
    with pytest.raises(ValueError):
        await backend.store.append_signins([entry(1, now), bad], 3600)
    assert await backend.store.list_signins(SignInQuery(), limit=10) == ([], None)


async def test_bad_page_arguments(backend: Backend) -> None:
    with pytest.raises(ValueError, match="limit"):
        await backend.store.list_signins(SignInQuery(), limit=0)
    with pytest.raises(ValueError, match="cursor"):
        await backend.store.list_signins(SignInQuery(), after="nope")
    with pytest.raises(ValueError, match="keep_seconds"):
        await backend.store.append_signins([], 0)
