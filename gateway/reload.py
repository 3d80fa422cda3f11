"""Hot reload of ``gateway.yaml`` in one worker process: the file watch, SIGHUP, and the swap.

``Reloader(runtime, path)`` runs one task per process. Every ``reload.interval_seconds`` (when
``reload.watch`` is true) it looks at the file's inode, size and change times, and only when one of
them moved reads it and compares its SHA-256 with the last content it examined; ``SIGHUP`` (this
process's own handler, installed on the event loop; uvicorn's supervisor passes the signal on,
``gateway.supervisor``) reloads whatever the content, so files the YAML names (certificates) are
read again too.

A reload reads and validates the file (``load_settings``) and builds the next
:class:`~gateway.runtime.Configured` generation in a thread, off the event loop, then installs it
with one assignment; the generation it replaces keeps serving the requests that began with it
(``RequestMiddleware`` pins each request to the generation it started with) and its API connector
clients and outbox are closed after ``GRACE_SECONDS``. Nothing changes when:

- the file is invalid: each problem is logged as ``FILE:LINE:COL: key.path: message``;
- a key in ``RESTART_ONLY`` changed (the store, the secrets, the issuer, ``tenant.id``): each
  such key is logged by name (never its value);
- the next generation cannot be built (e.g. a certificate file is unreadable).

Each outcome is one log record under ``gateway.reload``: applied (with the generation number and
the content's SHA-256) or refused (with every reason), and the old generation keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import signal
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path
from typing import Literal

from gateway.mail.outbox import open_outbox
from gateway.runtime import Configured, Runtime, configure
from gateway.settings.loader import ConfigError, load_settings
from gateway.settings.models import Settings

logger = logging.getLogger("gateway.reload")

RESTART_ONLY: tuple[str, ...] = ("issuer", "tenant.id", "secrets", "store")
"""Keys a running process cannot take on: the store it is connected to, the secrets its sealed data
and keys are encrypted with, the issuer its tokens, cookies and sessions carry, the tenant id in
every token. A file that changes one of them is refused; a restart applies it."""

GRACE_SECONDS = 60.0
"""How long a replaced generation's API connector clients and outbox stay open for the requests
that began with it (an API connector call takes at most its timeout times its tries)."""

Signature = tuple[int, int, int, int]


def digest_of(data: bytes) -> str:
    """The SHA-256 (hex) that identifies a configuration's content in the logs."""
    return hashlib.sha256(data).hexdigest()


def restart_only_changes(old: Settings, new: Settings) -> list[str]:
    """The ``RESTART_ONLY`` keys whose values differ between ``old`` and ``new``, in that order."""
    return [key for key in RESTART_ONLY if attrgetter(key)(old) != attrgetter(key)(new)]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one reload did: ``applied`` a new generation, found the content ``unchanged``, or
    ``refused`` it (``reasons`` says why, one line each, as logged)."""

    result: Literal["applied", "unchanged", "refused"]
    generation: int
    """The generation serving after this reload."""
    reasons: tuple[str, ...] = ()


def _signature(path: Path) -> Signature:
    found = os.stat(path)  # follows symbolic links: a Kubernetes ConfigMap swaps the link's target
    return (found.st_ino, found.st_size, found.st_mtime_ns, found.st_ctime_ns)


def _read(path: Path) -> tuple[bytes, Signature]:
    signature = _signature(path)
    return path.read_bytes(), signature


class Reloader:
    """Reloads ``path`` into ``runtime`` on change (watch) and on SIGHUP; see the module docstring."""

    def __init__(self, runtime: Runtime, path: str | Path, *, grace_seconds: float = GRACE_SECONDS) -> None:
        self.runtime = runtime
        self.path = Path(path)
        self.grace_seconds = grace_seconds
        self._lock = asyncio.Lock()
        self._signalled = asyncio.Event()
        self._seen_digest: str | None = runtime.latest.digest
        self._seen_signature: Signature | None = None
        self._unreadable = False
        self._task: asyncio.Task[None] | None = None
        self._signal_handler = False

    async def start(self) -> None:
        """Start watching (and listening for SIGHUP, from the main thread); the content served now
        is the baseline, so an unchanged file is never reloaded."""
        if self._seen_digest is None:
            with contextlib.suppress(OSError):
                data, self._seen_signature = await asyncio.to_thread(_read, self.path)
                self._seen_digest = digest_of(data)
        if threading.current_thread() is threading.main_thread():
            # Platforms or loops without signal handlers (NotImplementedError on Windows loops,
            # RuntimeError/ValueError off the main loop) reload on the file watch alone.
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._signalled.set)
                self._signal_handler = True
        self._task = asyncio.create_task(self._run(), name="configuration-reload")

    async def stop(self) -> None:
        if self._signal_handler:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            self._signal_handler = False
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def signal(self) -> None:
        """What SIGHUP does: a forced reload, soon (several signals during one reload make one more)."""
        self._signalled.set()

    async def _run(self) -> None:
        while True:
            options = self.runtime.latest.settings.reload
            try:
                await asyncio.wait_for(self._signalled.wait(), options.interval_seconds)
            except TimeoutError:
                if options.watch:
                    await self._guarded(self.check)
                continue
            self._signalled.clear()
            logger.info("SIGHUP: reloading the configuration from %s", self.path)
            await self._guarded(lambda: self.reload(trigger="SIGHUP", force=True))

    async def _guarded(self, step: Callable[[], Awaitable[object]]) -> None:
        try:
            await step()
        except Exception:  # the watch outlives any one surprise; the old generation keeps serving
            logger.exception(
                "configuration reload failed; still serving generation %d", self.runtime.latest.generation
            )

    async def check(self) -> Outcome | None:
        """One look at the file: reload it if its content changed since the last look (None: it did not)."""
        try:
            signature = await asyncio.to_thread(_signature, self.path)
        except OSError:
            signature = None  # gone for now (an editor's rename, a ConfigMap swap): reload() says so
        if signature is not None and signature == self._seen_signature:
            return None
        return await self.reload(trigger="watch")

    async def reload(self, *, trigger: str = "watch", force: bool = False) -> Outcome:
        """Read, validate and apply the file (see the module docstring). Without ``force``, content
        already examined (applied or refused) is left alone."""
        async with self._lock:
            current = self.runtime.latest
            try:
                data, signature = await asyncio.to_thread(_read, self.path)
            except OSError as exc:
                reason = f"{self.path}: cannot be read ({exc.strerror or type(exc).__name__})"
                if self._unreadable and not force:
                    return Outcome("refused", current.generation, (reason,))  # said so at the first look
                self._unreadable, self._seen_signature = True, None
                return self._refuse(current, [reason])
            digest = digest_of(data)
            self._unreadable, self._seen_signature = False, signature
            if digest == self._seen_digest and not force:
                return Outcome("unchanged", current.generation)
            self._seen_digest = digest
            return await self._apply(current, digest, trigger)

    async def _apply(self, current: Configured, digest: str, trigger: str) -> Outcome:
        try:
            settings = await asyncio.to_thread(load_settings, self.path)
        except ConfigError as exc:
            return self._refuse(current, [str(problem) for problem in exc.problems])
        changed = restart_only_changes(current.settings, settings)
        if changed:
            return self._refuse(
                current, [f"{self.path}: {key}: cannot change without a restart" for key in changed]
            )
        mail_changed = settings.mail != current.settings.mail
        rt = self.runtime
        try:
            outbox = open_outbox(settings.mail) if mail_changed else current.outbox
            config = await asyncio.to_thread(
                configure,
                settings,
                store=rt.store,
                box=rt.box,
                http=rt.http,
                outbox=outbox,
                clock=rt.clock,
                generation=current.generation + 1,
                digest=digest,
            )
        except Exception as exc:  # a connector that cannot open, the XML self-test: fail closed
            return self._refuse(current, [f"{self.path}: {type(exc).__name__}: {exc}"])
        if mail_changed:
            await config.outbox.start()
        replaced = rt.install(config)
        rt.retire(replaced, self.grace_seconds)
        logger.info(
            "configuration generation %d applied from %s (sha256 %s, %s) in process %d",
            config.generation,
            self.path,
            digest,
            trigger,
            os.getpid(),
        )
        return Outcome("applied", config.generation)

    def _refuse(self, current: Configured, reasons: list[str]) -> Outcome:
        logger.error(
            "configuration not reloaded from %s (%d problem%s); still serving generation %d in process %d",
            self.path,
            len(reasons),
            "" if len(reasons) == 1 else "s",
            current.generation,
            os.getpid(),
        )
        for reason in reasons:
            logger.error("configuration not reloaded: %s", reason)
        return Outcome("refused", current.generation, tuple(reasons))
