"""``SignInLogWriter``: sign-in log entries written by a background task, off the sign-in's path.

``submit`` only appends to a bounded in-memory queue and wakes the task. The task waits
``LINGER_SECONDS`` for more entries (a busy gateway then commits the log's pages once for many
sign-ins, not once each), fills in ``userPrincipalName``/``userDisplayName`` from the directory
(one ``get_users`` call a batch) and writes what is queued with one ``append_signins`` call (one
transaction / one Redis
``MULTI``). Expired entries are purged with an append at most every ``PURGE_SECONDS``, or after
``PURGE_AFTER_ENTRIES`` appended entries, not with every append (it finds nothing to drop almost
every time). A full queue (the store is down or slower than sign-ins arrive) drops the
newest entries and counts them (``gateway_signin_log_dropped_total``) rather than growing without
bound; a failed write is logged, counted and dropped. ``stop`` writes what is still queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from time import monotonic

from prometheus_client import Counter

from gateway.store.base import Store
from gateway.store.signin_log import SignInEntry

logger = logging.getLogger("gateway.observability")
MAX_QUEUE = 10_000
MAX_BATCH = 500
STOP_SECONDS = 10.0
LINGER_SECONDS = 1.0
PURGE_SECONDS = 60.0
PURGE_AFTER_ENTRIES = 500
"""Half the SQLite purge's batch (``signin_log_sqlite.PURGE_BATCH``, 1000 a call): entries expire
at the rate they were appended ``keep`` days before, so under steady traffic a purge every 500
appended entries keeps up with twice that rate. A backlog (a burst ``keep`` days ago, or a lowered
``signin_log_days``) drains 1000 entries a purge: a minute each when idle. Expired entries are never
served meanwhile (readers bound ``since``); they only take room."""


class SignInLogWriter:
    def __init__(self, store: Store, keep_seconds: int, dropped: Counter) -> None:
        self._store = store
        self._keep = keep_seconds
        self._dropped = dropped
        self._queue: list[SignInEntry] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._stop = asyncio.Event()
        self._next_purge = 0.0  # monotonic time: the first write purges
        self._since_purge = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="gateway-signin-log")

    def submit(self, entry: SignInEntry) -> None:
        if len(self._queue) >= MAX_QUEUE or self._stopping:
            self._dropped.inc()
            return
        self._queue.append(entry)
        self._wake.set()

    async def flush(self) -> None:
        """Write everything queued now (tests, and ``stop``)."""
        while self._queue:
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            await self._write(batch)

    async def _run(self) -> None:
        while not self._stopping:
            await self._wake.wait()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):  # ``stop`` ends the wait at once
                await asyncio.wait_for(self._stop.wait(), LINGER_SECONDS)
            await self.flush()

    async def _write(self, batch: list[SignInEntry]) -> None:
        try:
            user_ids = [entry.user_id for entry in batch if entry.user_id is not None]
            users = await self._store.get_users(user_ids) if user_ids else {}
            for entry in batch:
                user = users.get(entry.user_id) if entry.user_id is not None else None
                if user is not None:
                    entry.doc["userPrincipalName"] = user.get("userPrincipalName")
                    entry.doc["userDisplayName"] = user.get("displayName")
            self._since_purge += len(batch)
            purge = self._purge_due()
            await self._store.append_signins(batch, self._keep, purge=purge)
            if purge:  # only a purge that ran puts the next one off
                self._next_purge, self._since_purge = monotonic() + PURGE_SECONDS, 0
        except Exception:
            self._dropped.inc(len(batch))
            logger.exception("could not write %d sign-in log entries", len(batch))

    def _purge_due(self) -> bool:
        return monotonic() >= self._next_purge or self._since_purge >= PURGE_AFTER_ENTRIES

    async def stop(self, wait_seconds: float = STOP_SECONDS) -> None:
        """Write what is queued (waiting at most ``wait_seconds`` for a slow store), then end the task."""
        self._stopping = True
        self._stop.set()
        self._wake.set()
        task, self._task = self._task, None
        if task is not None:
            try:
                await asyncio.wait_for(task, wait_seconds)
            except TimeoutError:
                logger.error("sign-in log: %d entries not written at shutdown", len(self._queue))
            with contextlib.suppress(asyncio.CancelledError):
                await task
        else:
            await self.flush()
