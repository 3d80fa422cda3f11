"""Write-behind blocks: a task's blind artefact writes queued, then applied in one round trip.

``async with store.batch():`` opens a block for the calling task (``ArtefactStore.batch``). In
it, the task's ``put`` and ``delete`` calls on that store are checked at once (a bad argument
raises there and nothing is queued) and queued in the backend's prepared form instead of made.
The queue is applied, in order and in one round trip, by the backend:

- before the task's next other artefact operation (``get``, ``add``, ``consume``, ``incr``,
  ``ttl``, ``revoke_grant``, ``apply``): SQLite in the same transaction as that operation,
  Redis in one pipeline before it. The task therefore reads its own writes, and a check made
  after a write (the revocation tombstone that ``gateway.oidc.grants`` looks for after minting)
  still comes after it;
- when the block ends, also when it ends with an exception: everything made before an error
  is kept, as it would have been without the block.

Others (tasks, processes, replicas) see the writes when the block ends at the latest: a request
handler that returns from inside the block has applied them before its response is sent.
Directory operations neither see artefacts nor apply the queue. A nested block joins the outer
one. Child tasks inherit the block (context variables are copied); a write they make after the
block ended is made at once, never queued where nobody would apply it.

If applying the queue fails, the writes are put back at its front, so the block's end tries
them again and the error still reaches whoever waits on the store.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any, Generic, TypeVar

W = TypeVar("W")


class Queue(Generic[W]):
    """The writes one block has queued for one store, in the store's prepared form."""

    __slots__ = ("open", "owner", "writes")

    def __init__(self, owner: object) -> None:
        self.owner = owner
        self.writes: list[W] = []
        self.open = True


_CURRENT: ContextVar[Queue[Any] | None] = ContextVar("gateway_store_write_behind", default=None)


def queue_for(owner: object) -> Queue[Any] | None:
    """The open block's queue for ``owner`` in the calling context, or None (write at once)."""
    queue = _CURRENT.get()
    if queue is None or not queue.open or queue.owner is not owner:
        return None
    return queue


def take(owner: object) -> list[Any]:
    """Empty ``owner``'s queue in the calling context and return what it held ([] outside a block)."""
    queue = _CURRENT.get()
    if queue is None or queue.owner is not owner or not queue.writes:
        return []
    writes, queue.writes = queue.writes, []
    return writes


def give_back(owner: object, writes: list[Any]) -> None:
    """Put ``writes`` (taken, then not applied) back at the front of ``owner``'s queue, if it
    is still open; once the block has ended there is nobody left to apply them later."""
    queue = _CURRENT.get()
    if writes and queue is not None and queue.open and queue.owner is owner:
        queue.writes[:0] = writes


class Block:
    """The block behind ``store.batch()`` (a plain class: ``contextlib.asynccontextmanager`` costs
    several times as much per use); ``apply(writes)`` makes what is queued when it ends."""

    __slots__ = ("_apply", "_owner", "_queue", "_token")

    def __init__(self, owner: object, apply: Callable[[list[Any]], Awaitable[None]]) -> None:
        self._owner = owner
        self._apply = apply
        self._queue: Queue[Any] | None = None
        self._token: Token[Queue[Any] | None] | None = None

    async def __aenter__(self) -> None:
        if queue_for(self._owner) is not None:  # nested: the outer block applies
            return
        self._queue = Queue(self._owner)
        self._token = _CURRENT.set(self._queue)

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        queue, token = self._queue, self._token
        if queue is None or token is None:
            return
        self._queue = self._token = None
        queue.open = False
        _CURRENT.reset(token)
        writes, queue.writes = queue.writes, []
        if writes:
            await self._apply(writes)


def block(owner: object, apply: Callable[[list[Any]], Awaitable[None]]) -> Block:
    """A write-behind block for ``owner`` (see the module docstring)."""
    return Block(owner, apply)
