"""``RelayOutbox``: the gateway's SMTP outbox. A child process delivers; the event loop only writes.

``send`` writes the message as one JSON line to the pipe of a relay process
(``relay_process``, one per gateway worker) and returns: one non-blocking ``write``, no thread,
no task, no wake-up. The relay delivers each message in turn over one SMTP session and writes
back what it would log; a task of the outbox logs those records on ``gateway.mail`` as the
gateway's own, each with the ``request_id`` of the request that sent the message (none for mail
sent outside a request). The outbox's tasks run in a context of their own, not in that of the
request whose mail happened to start the relay. Delivery shares no interpreter with request
handling, so the several blocking socket calls of each SMTP conversation cost the event loop no
hand-over of the GIL (a delivery thread in the worker took 14 context switches and ~0.45 ms of
CPU per message on a busy gateway; the relay takes ~0.3 ms, and the loop thread stops being
preempted).

- The relay starts with the first message (or at ``start`` when mail is waiting), so a gateway
  or a test that sends no mail starts no process. Its settings, password included, go down the
  pipe, never on a command line.
- Mail sent before ``start`` or while the relay starts waits in a list (at most ``max_queued``
  messages) and goes first.
- A relay that exits unasked is logged with how many of its messages it had not reported on
  (lost, or delivered just before), and the next message starts another (at most one start a
  second).
- What the pipe holds is bounded (``max_buffered`` bytes waiting in the loop's buffer, beyond
  the kernel's pipe): past it, mail is dropped and logged, as a full queue was.
- ``stop`` ends the relay's input and waits, at most ``drain_timeout``, for it to deliver what
  it has and say ``QUIT``; then it is killed and what it had not reported on is logged as
  undelivered. The retry delays, drain timeout and queue bound are ``delivery``'s.
  Passcodes expire in minutes, so mail is never kept on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import sys
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

import orjson

from gateway.mail import delivery
from gateway.mail.client import IDLE_SECONDS
from gateway.mail.smtp import mask_address
from gateway.observability.context import request_id
from gateway.settings.models import Mail
from idp_connectors.base import MailMessage

logger = logging.getLogger("gateway.mail")

MAX_BUFFERED_BYTES = 4 << 20  # bytes waiting in the loop's buffer for the pipe to take them
RESTART_SECONDS = 1.0  # at most one relay start a second
READ_LIMIT = 1 << 20  # the longest record line the relay may write
SOURCE_ROOT = str(Path(__file__).resolve().parents[2])  # the relay imports the gateway the worker runs


class RelayOutbox:
    """Hands mail to a relay process that delivers it to an SMTP server."""

    def __init__(
        self,
        settings: Mail,
        *,
        retry_delays: Sequence[float] | None = None,
        drain_timeout: float | None = None,
        max_queued: int | None = None,
        max_buffered: int = MAX_BUFFERED_BYTES,
        idle_seconds: float = IDLE_SECONDS,
    ) -> None:
        smtp, _ = delivery.checked_smtp(settings)  # the relay composes; here only the checks
        self._smtp = smtp
        self._settings = orjson.dumps(
            {
                "from": settings.from_,
                "smtp": smtp.model_dump(),
                "retry_delays": list(delivery.RETRY_DELAYS_SECONDS if retry_delays is None else retry_delays),
                "idle_seconds": idle_seconds,
            }
        )
        self._drain_timeout = delivery.DRAIN_TIMEOUT_SECONDS if drain_timeout is None else drain_timeout
        self._max_pending = delivery.MAX_QUEUED if max_queued is None else max_queued  # before it starts
        self._max_buffered = max_buffered
        self._running = False
        self._pending: list[bytes] = []
        self._process: asyncio.subprocess.Process | None = None
        self._starting: asyncio.Task[None] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._last_start = -RESTART_SECONDS
        self.written = 0  # messages written to a relay, and those it has settled
        self.settled = 0

    def __repr__(self) -> str:
        return f"RelayOutbox(host={self._smtp.host!r}, port={self._smtp.port})"

    @property
    def pid(self) -> int | None:
        """The relay's process id while one runs."""
        return None if self._process is None else self._process.pid

    def send(self, message: MailMessage) -> None:
        fields = [message.to, message.subject, message.text, message.html, message.reply_to, request_id()]
        line = orjson.dumps(fields) + b"\n"
        process = self._process
        if process is not None and process.returncode is None:
            stdin = process.stdin
            assert stdin is not None
            if stdin.transport.get_write_buffer_size() >= self._max_buffered:
                logger.error(
                    "mail outbox full (relay not keeping up); dropped mail to %s", mask_address(message.to)
                )
                return
            stdin.write(line)
            self.written += 1
            return
        if len(self._pending) >= self._max_pending:
            logger.error(
                "mail outbox full (%d waiting); dropped mail to %s",
                self._max_pending,
                mask_address(message.to),
            )
            return
        self._pending.append(line)
        if self._running and self._starting is None:
            self._starting = _detached(self._start_relay())

    async def start(self) -> None:
        self._running = True
        if self._pending and self._starting is None and self._process is None:
            self._starting = _detached(self._start_relay())

    async def stop(self) -> None:
        """Let the relay deliver what it has (at most the drain timeout), then end it."""
        self._running = False
        starting, self._starting = self._starting, None
        if starting is not None:  # mail is waiting for it: let it start (or give it up: cancelled)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(starting, self._drain_timeout)
        process, self._process = self._process, None
        reader, self._reader = self._reader, None
        if process is None:
            return
        assert process.stdin is not None
        process.stdin.close()  # end of input once the buffered mail is written
        try:
            await asyncio.wait_for(process.wait(), self._drain_timeout)
        except TimeoutError:
            process.kill()
            await process.wait()
            logger.error("mail outbox stopped with %d messages undelivered", self.written - self.settled)
        if reader is not None:
            await reader

    async def _start_relay(self) -> None:
        """Start a relay and hand it the mail waiting; a ``stop`` meanwhile waits for this and then
        ends that relay."""
        loop = asyncio.get_running_loop()
        try:
            await asyncio.sleep(max(0.0, self._last_start + RESTART_SECONDS - loop.time()))
            self._last_start = loop.time()
            path = os.environ.get("PYTHONPATH")
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "gateway.mail.relay_process",
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=READ_LIMIT,
                env={**os.environ, "PYTHONPATH": SOURCE_ROOT + (os.pathsep + path if path else "")},
            )  # fmt: skip
        except Exception:
            logger.exception(
                "the mail relay did not start; %d messages wait for the next try", len(self._pending)
            )
            self._done_starting()
            return
        assert process.stdin is not None and process.stdout is not None
        pending, self._pending = self._pending, []
        process.stdin.write(self._settings + b"\n" + b"".join(pending))
        self.written += len(pending)
        self._process = process
        self._reader = _detached(self._read(process))
        self._done_starting()

    def _done_starting(self) -> None:
        if self._starting is asyncio.current_task():  # ``stop`` forgets it first: then it is not ours
            self._starting = None

    async def _read(self, process: asyncio.subprocess.Process) -> None:
        """Log the relay's records until it exits; an exit nobody asked for is an error."""
        assert process.stdout is not None
        while True:
            try:
                line = await process.stdout.readline()
            except ValueError:  # longer than READ_LIMIT: skipped
                logger.error("the mail relay wrote a line longer than %d bytes", READ_LIMIT)
                continue
            if not line:
                break
            try:
                self._handle(orjson.loads(line))
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                logger.error("the mail relay wrote a line that is not a record: %r", line[:200])
        code = await process.wait()
        if process is self._process:
            self._process = None
            lost, self.settled = max(self.written - self.settled, 0), self.written
            logger.error(
                "the mail relay exited with code %s; the outcome of %d messages it had is unknown", code, lost
            )
            if self._pending and self._running and self._starting is None:
                self._starting = _detached(self._start_relay())

    def _handle(self, settled: dict[str, Any]) -> None:
        """A message the relay is done with, and the records it logged for it. A line of another
        shape raises (KeyError, TypeError, ValueError) before anything is counted or logged."""
        events = settled["records"]
        request = settled.get("request_id")
        if request is not None and not isinstance(request, str):
            raise TypeError("a record's request_id is not a string")
        records = [
            logger.makeRecord(
                logger.name,
                int(event["level"]),
                "(relay)",
                0,
                str(event["msg"]),
                tuple(event["args"]),
                None,
                None,
                _extra(event["extra"]),
            )
            for event in events
        ]
        self.settled += 1
        for record, event in zip(records, events, strict=True):
            if logger.isEnabledFor(record.levelno):
                record.exc_text = event.get("exc")  # the relay's traceback, as formatters print it
                record.request_id = request  # the sender's, which the formatter prefers to the context's
                logger.handle(record)


def _detached(work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    """A task of the outbox, in a context of its own: not the request's that happened to start it
    (its id would label every record, and its scope would be kept for the relay's life)."""
    return asyncio.get_running_loop().create_task(work, context=contextvars.Context())


def _extra(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError("a record's extra is not an object")
    return value


__all__ = ["RelayOutbox"]
