"""``WorkerThread``: results and exceptions come back to the loop, calls run in order on one
named thread, a call cancelled before it started is skipped, stop lets queued calls finish."""

from __future__ import annotations

import asyncio
import threading

import pytest

from gateway.store.worker import WorkerThread


async def test_results_and_exceptions_come_back_from_one_named_thread() -> None:
    worker = WorkerThread("test-worker")
    try:
        names = {await worker.run(lambda: threading.current_thread().name) for _ in range(3)}
        assert names == {"test-worker"}
        assert await worker.run(divmod, 7, 2) == (3, 1)
        with pytest.raises(ZeroDivisionError):
            await worker.run(divmod, 1, 0)
        assert await worker.run(int, "5") == 5  # still serving after an exception
    finally:
        worker.stop()


async def test_calls_run_in_submission_order() -> None:
    worker = WorkerThread("test-order")
    seen: list[int] = []
    try:
        await asyncio.gather(*(worker.run(seen.append, n) for n in range(50)))
        assert seen == list(range(50))
    finally:
        worker.stop()


async def test_a_call_cancelled_before_it_started_is_skipped() -> None:
    worker = WorkerThread("test-cancel")
    release = threading.Event()
    ran: list[str] = []
    try:
        blocker = asyncio.ensure_future(worker.run(release.wait, 5))
        await asyncio.sleep(0.01)
        queued = asyncio.ensure_future(worker.run(ran.append, "queued"))
        await asyncio.sleep(0.01)
        queued.cancel()
        release.set()
        assert await blocker is True
        await worker.run(ran.append, "after")
        assert ran == ["after"]
    finally:
        worker.stop()


async def test_stop_lets_queued_calls_finish_then_ends_the_thread() -> None:
    worker = WorkerThread("test-stop")
    seen: list[int] = []
    await worker.run(seen.append, 1)
    pending = asyncio.ensure_future(worker.run(seen.append, 2))
    await asyncio.sleep(0)  # queued before stop
    worker.stop()
    await pending
    thread = worker._thread
    assert thread is not None
    await asyncio.to_thread(thread.join, 5)
    assert not thread.is_alive()
    assert seen == [1, 2]


async def test_posted_calls_run_in_order_and_their_errors_do_not_stop_the_thread() -> None:
    worker = WorkerThread("test-post")
    done = threading.Event()
    seen: list[str] = []

    def fail() -> None:
        raise RuntimeError("dropped on purpose")

    try:
        worker.post(seen.append, "a")
        worker.post(fail)
        worker.post(seen.append, "b")
        worker.post(done.set)
        assert await asyncio.to_thread(done.wait, 5)
        assert seen == ["a", "b"]
        assert await worker.run(len, seen) == 2
    finally:
        worker.stop()
