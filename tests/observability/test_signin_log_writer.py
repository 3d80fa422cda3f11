"""``SignInLogWriter``: entries queued within ``LINGER_SECONDS`` go to the store in one call; expired
entries are purged with the first write, then at most every ``PURGE_SECONDS`` or
``PURGE_AFTER_ENTRIES`` entries; ``stop`` writes what is queued without waiting out the linger."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter

from gateway.observability import writer as writer_module
from gateway.observability.writer import SignInLogWriter
from gateway.store.signin_log import SignInEntry


class RecordingStore:
    def __init__(self) -> None:
        self.calls: list[tuple[list[str], bool]] = []
        self.lookups: list[list[str]] = []

    async def get_users(self, user_ids: list[str]) -> dict[str, dict[str, Any]]:
        self.lookups.append(list(user_ids))
        return {
            user_id: {"id": user_id, "userPrincipalName": f"{user_id}@x", "displayName": user_id.upper()}
            for user_id in user_ids
            if user_id != "gone"
        }

    async def append_signins(
        self, entries: list[SignInEntry], keep_seconds: int, *, purge: bool = True
    ) -> None:
        self.calls.append(([entry.id for entry in entries], purge))


def entry(n: int, user: str | None = "u") -> SignInEntry:
    return SignInEntry(f"e{n}", 1.0, user, "demo", 0, {"id": f"e{n}"})


def make_writer(store: RecordingStore) -> SignInLogWriter:
    dropped = Counter("dropped", "dropped entries", registry=CollectorRegistry())
    return SignInLogWriter(store, 3600, dropped)  # type: ignore[arg-type]


async def test_entries_within_the_linger_are_written_together(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writer_module, "LINGER_SECONDS", 0.2)
    store = RecordingStore()
    writer = make_writer(store)
    writer.start()
    writer.submit(entry(1))
    await asyncio.sleep(0.05)
    writer.submit(entry(2, user=None))
    await asyncio.sleep(0.5)
    assert store.calls == [(["e1", "e2"], True)]
    await writer.stop()


async def test_stop_writes_at_once_what_is_queued(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writer_module, "LINGER_SECONDS", 30.0)
    store = RecordingStore()
    writer = make_writer(store)
    writer.start()
    first = entry(1)
    writer.submit(first)
    await asyncio.sleep(0.05)
    started = time.monotonic()
    await writer.stop()
    assert time.monotonic() - started < 5
    assert store.calls == [(["e1"], True)]
    assert first.doc["userPrincipalName"] == "u@x" and first.doc["userDisplayName"] == "U"


async def test_purges_with_the_first_write_then_after_enough_entries_or_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = RecordingStore()
    writer = make_writer(store)
    monkeypatch.setattr(writer_module, "PURGE_AFTER_ENTRIES", 3)
    for n in range(4):
        writer.submit(entry(n, user=None))
        await writer.flush()
    assert [purge for _, purge in store.calls] == [True, False, False, True]
    store.calls.clear()
    clock = [time.monotonic() + writer_module.PURGE_SECONDS + 1]
    monkeypatch.setattr(writer_module, "monotonic", lambda: clock[0])
    writer.submit(entry(9, user=None))
    await writer.flush()
    writer.submit(entry(10, user=None))
    await writer.flush()
    assert [purge for _, purge in store.calls] == [True, False]


async def test_a_write_that_failed_leaves_the_purge_due() -> None:
    class FailingOnce(RecordingStore):
        async def append_signins(
            self, entries: list[SignInEntry], keep_seconds: int, *, purge: bool = True
        ) -> None:
            if not self.calls:
                self.calls.append(([], purge))
                raise ConnectionError("store down")
            await super().append_signins(entries, keep_seconds, purge=purge)

    store = FailingOnce()
    writer = make_writer(store)
    writer.submit(entry(1, user=None))
    await writer.flush()  # fails: logged, counted, dropped
    writer.submit(entry(2, user=None))
    await writer.flush()
    writer.submit(entry(3, user=None))
    await writer.flush()
    assert store.calls == [([], True), (["e2"], True), (["e3"], False)]


async def test_one_directory_lookup_a_batch_fills_in_the_users_names() -> None:
    store = RecordingStore()
    writer = make_writer(store)
    entries = [entry(1, "a"), entry(2, None), entry(3, "gone"), entry(4, "a"), entry(5, "b")]
    for queued in entries:
        writer.submit(queued)
    await writer.flush()
    assert len(store.lookups) == 1 and set(store.lookups[0]) == {"a", "gone", "b"}
    assert [e.doc.get("userPrincipalName") for e in entries] == ["a@x", None, None, "a@x", "b@x"]
    assert entries[4].doc["userDisplayName"] == "B"
    assert "userPrincipalName" not in entries[1].doc and "userPrincipalName" not in entries[2].doc
    writer.submit(entry(6, None))
    await writer.flush()
    assert len(store.lookups) == 1  # no user, no lookup
