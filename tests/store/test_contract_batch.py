"""The contract of ``apply`` and write-behind blocks (``batch``), on SQLite and on a real Redis.

"Another task" below runs in a fresh context (``context=contextvars.Context()``): it is not in
the block, so it sees only what the store has really written.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from gateway.store.base import Consumed, Delete, Put
from tests.store.conftest import Backend

T = TypeVar("T")


async def elsewhere(call: Coroutine[Any, Any, T]) -> T:
    """Run ``call`` in another task that is in no write-behind block."""
    return await asyncio.create_task(call, context=contextvars.Context())


# -- apply ------------------------------------------------------------------------------


async def test_apply_makes_puts_and_deletes_in_order(backend: Backend) -> None:
    s = backend.store
    await s.put("code", "old", {"v": 0}, 60)
    await s.apply(
        [
            Put("code", "a", {"v": 1}, 60),
            Put("code", "b", {"v": 2}, 60, grant_id="g"),
            Delete("code", "a"),
            Delete("code", "old"),
            Put("code", "c", {"v": 3}, 120),
            Put("code", "c", {"v": 4}, 60),
        ]
    )
    assert await s.get("code", "a") is None
    assert await s.get("code", "old") is None
    assert await s.get("code", "b") == {"v": 2}
    assert await s.get("code", "c") == {"v": 4}
    assert await s.ttl("code", "c") in (59, 60)
    assert await s.revoke_grant("g") == 1
    assert await s.get("code", "b") is None


async def test_apply_delete_also_resets_the_counter_of_that_name(backend: Backend) -> None:
    s = backend.store
    await s.incr("attempts", "x", 60)
    await s.apply([Delete("attempts", "x")])
    assert (await s.incr("attempts", "x", 60)).value == 1


async def test_apply_of_nothing_writes_nothing(backend: Backend) -> None:
    s = backend.store
    await s.apply([])
    assert await s.get("code", "a") is None


@pytest.mark.parametrize(
    ("bad", "error", "message"),
    [
        (Put("bad kind", "x", {}, 60), ValueError, "artefact kind"),
        (Put("code", "", {}, 60), ValueError, "artefact id"),
        (Put("code", "x", {}, 0), ValueError, "ttl must be between"),
        (Put("code", "x", {}, 1.5), TypeError, "ttl must be an int"),  # type: ignore[arg-type]
        (Put("code", "x", {"n": float("nan")}, 60), ValueError, "not JSON-serialisable"),
        (Put("code", "x", [], 60), TypeError, "JSON object"),  # type: ignore[arg-type]
        (Put("code", "x", {}, 60, grant_id=""), ValueError, "grant_id"),
        (Delete("code", ""), ValueError, "artefact id"),
        (("code", "x"), TypeError, "apply takes Put and Delete values"),
    ],
)
async def test_apply_checks_every_write_first_and_writes_nothing_on_a_bad_one(
    backend: Backend, bad: Any, error: type[Exception], message: str
) -> None:
    s = backend.store
    await s.put("code", "kept", {"v": 1}, 60)
    with pytest.raises(error, match=message):
        await s.apply([Put("code", "first", {"v": 1}, 60), Delete("code", "kept"), bad])
    assert await s.get("code", "first") is None
    assert await s.get("code", "kept") == {"v": 1}


# -- write-behind blocks ----------------------------------------------------------------


async def test_a_block_holds_its_writes_back_until_it_ends(backend: Backend) -> None:
    s = backend.store
    await s.put("signin", "gone", {"v": 0}, 60)
    async with s.batch():
        await s.put("signin", "new", {"v": 1}, 60)
        await s.delete("signin", "gone")
        assert await elsewhere(s.get("signin", "new")) is None
        assert await elsewhere(s.get("signin", "gone")) == {"v": 0}
    assert await elsewhere(s.get("signin", "new")) == {"v": 1}
    assert await elsewhere(s.get("signin", "gone")) is None


async def test_the_task_reads_its_own_writes_in_the_block(backend: Backend) -> None:
    s = backend.store
    await s.put("signin", "gone", {"v": 0}, 60)
    async with s.batch():
        await s.put("signin", "new", {"v": 1}, 60)
        await s.delete("signin", "gone")
        assert await s.get("signin", "new") == {"v": 1}
        assert await s.get("signin", "gone") is None
        assert await s.ttl("signin", "new") in (59, 60)
        await s.put("signin", "newer", {"v": 2}, 30)
        assert await s.ttl_many([("signin", "newer"), ("signin", "gone")]) in ([30, None], [29, None])
        # what a read applied is there for everyone, still inside the block
        assert await elsewhere(s.get("signin", "new")) == {"v": 1}


async def test_every_artefact_operation_comes_after_the_queued_writes(backend: Backend) -> None:
    s = backend.store
    await s.put("replay", "r", {"v": 0}, 60)
    await s.incr("hits", "h", 60)
    async with s.batch():
        await s.put("code", "c", {"v": 1}, 60, grant_id="g1")
        assert await s.consume("code", "c") == Consumed(payload={"v": 1}, grant_id="g1", first=True)
        await s.put("code", "d", {"v": 2}, 60, grant_id="g2")
        assert await s.revoke_grant("g2") == 1
        await s.delete("replay", "r")
        assert await s.add("replay", "r", {"v": 3}, 60) is True
        await s.delete("hits", "h")
        assert (await s.incr("hits", "h", 60)).value == 1
        await s.put("passcode", "p", {"v": 4}, 60)
        counted, consumed = await s.consume_counted("passcode", "p", "hits", 60, 5)
        assert (counted.value, consumed) == (1, Consumed(payload={"v": 4}, grant_id=None, first=True))
        await s.put("code", "e", {"v": 5}, 60)
        await s.apply([Put("code", "f", {"v": 6}, 60)])
        assert await elsewhere(s.get("code", "e")) == {"v": 5}
        assert await elsewhere(s.get("code", "f")) == {"v": 6}
    assert await s.get("code", "d") is None
    assert await s.get("replay", "r") == {"v": 3}


async def test_writes_queued_before_an_exception_are_still_made(backend: Backend) -> None:
    s = backend.store
    with pytest.raises(RuntimeError, match="boom"):
        async with s.batch():
            await s.put("session", "s", {"v": 1}, 60)
            raise RuntimeError("boom")
    assert await elsewhere(s.get("session", "s")) == {"v": 1}


async def test_a_bad_write_in_a_block_raises_at_the_call_and_queues_nothing(backend: Backend) -> None:
    s = backend.store
    async with s.batch():
        await s.put("code", "good", {"v": 1}, 60)
        with pytest.raises(ValueError, match="artefact kind"):
            await s.put("bad kind", "x", {"v": 2}, 60)
        with pytest.raises(TypeError, match="JSON object"):
            await s.put("code", "bad", ["not", "an", "object"], 60)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="artefact id"):
            await s.delete("code", "")
    assert await s.get("code", "good") == {"v": 1}
    assert await s.get("code", "bad") is None


async def test_nested_blocks_join_the_outer_one(backend: Backend) -> None:
    s = backend.store
    async with s.batch():
        async with s.batch():
            await s.put("code", "inner", {"v": 1}, 60)
        assert await elsewhere(s.get("code", "inner")) is None
        await s.put("code", "outer", {"v": 2}, 60)
    assert await elsewhere(s.get("code", "inner")) == {"v": 1}
    assert await elsewhere(s.get("code", "outer")) == {"v": 2}


async def test_directory_operations_neither_see_nor_apply_the_queue(backend: Backend) -> None:
    s = backend.store
    async with s.batch():
        await s.put("code", "c", {"v": 1}, 60)
        assert await s.create_user({"id": "u-1", "mail": "a@fabrikam.example"}, [("mail", "a@x")]) is True
        assert await s.get_user("u-1") is not None
        assert await elsewhere(s.get("code", "c")) is None
    assert await elsewhere(s.get("code", "c")) == {"v": 1}


async def test_a_write_from_a_child_task_after_the_block_ended_is_made_at_once(backend: Backend) -> None:
    s = backend.store
    go = asyncio.Event()

    async def later() -> None:
        await go.wait()
        await s.put("code", "late", {"v": 1}, 60)

    async with s.batch():
        child = asyncio.create_task(later())  # inherits the block's context
        await s.put("code", "early", {"v": 0}, 60)
    go.set()
    await child
    assert await elsewhere(s.get("code", "late")) == {"v": 1}
    assert await elsewhere(s.get("code", "early")) == {"v": 0}


async def test_other_tasks_are_not_in_the_block(backend: Backend) -> None:
    s = backend.store
    async with s.batch():
        await elsewhere(s.put("code", "theirs", {"v": 1}, 60))  # written at once
        assert await elsewhere(s.get("code", "theirs")) == {"v": 1}
