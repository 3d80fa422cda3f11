"""Outboxes: where ``MailSender.send`` puts a message. Sending never blocks a request.

- ``ConsoleOutbox`` (``mail.console: true``): the dev outbox. Each message goes to the
  ``gateway.mail`` log and is printed as a framed block on stderr, so whoever runs the
  gateway locally sees the passcode in the terminal.
- ``SmtpOutbox`` (``mail.smtp:`` in the CLI; the gateway serves with ``relay.RelayOutbox``,
  ADR 0015): ``send`` puts the message on a bounded in-memory queue and returns; one
  background thread composes each message and delivers it with smtplib over one SMTP session
  kept open between messages (``client.SmtpClient``: closed after ``idle_seconds`` without
  mail, replaced when the server dropped it), retrying temporary failures (3 attempts in all,
  waiting on the thread) and logging what it delivered and what it could not
  (``delivery.deliver``). The event loop only hands each message over (one
  ``SimpleQueue.put``): no task, future or wake-up of the loop per message. Nothing is ever
  raised into request handling. Mail still queued when the process stops is lost after a
  bounded drain, which suits codes that expire in minutes.

``open_outbox(settings.mail)`` picks one: console, else the relay (the thread with ``in_process``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sys
import threading
from collections.abc import Sequence
from typing import Protocol

from gateway.mail import delivery
from gateway.mail.client import IDLE_SECONDS, SmtpClient
from gateway.mail.delivery import deliver
from gateway.mail.smtp import mask_address
from gateway.settings.models import Mail
from idp_connectors.base import MailMessage

logger = logging.getLogger("gateway.mail")


class Outbox(Protocol):
    def send(self, message: MailMessage) -> None: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class ConsoleOutbox:
    """The dev outbox: mail is logged and printed, never sent."""

    def __init__(self, settings: Mail | None = None) -> None:
        self.from_ = settings.from_ if settings is not None else "(gateway)"

    def send(self, message: MailMessage) -> None:
        logger.info(
            "dev outbox: mail to %s, subject %r\n%s",
            message.to,
            message.subject,
            message.text,
            extra={"mail_to": message.to, "mail_subject": message.subject},
        )
        rule = "=" * 72
        block = "\n".join(
            [
                "",
                rule,
                "DEV OUTBOX (mail.console: true) - this mail was NOT sent",
                f"From:    {self.from_}",
                f"To:      {message.to}",
                f"Subject: {message.subject}",
                rule,
                message.text.rstrip("\n"),
                rule,
                "",
            ]
        )
        print(block, file=sys.stderr, flush=True)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


class _Stop:
    """The last item of a queue (``SmtpOutbox.stop``): the thread QUITs and resolves ``done``."""

    __slots__ = ("done", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop, done: asyncio.Future[None]) -> None:
        self.loop, self.done = loop, done


def _resolve(done: asyncio.Future[None]) -> None:
    if not done.done():  # not given up on (``wait_for`` cancels it on time-out)
        done.set_result(None)


def _close(client: SmtpClient) -> None:
    """End the session (QUIT); the thread outlives whatever that raises."""
    try:
        client.close()
    except Exception:
        logger.exception("closing the SMTP session failed")


class SmtpOutbox:
    """Queues mail and delivers it to an SMTP server from a background thread."""

    def __init__(
        self,
        settings: Mail,
        *,
        retry_delays: Sequence[float] | None = None,
        drain_timeout: float | None = None,
        max_queued: int | None = None,
        idle_seconds: float = IDLE_SECONDS,
    ) -> None:
        self._smtp, self._composer = delivery.checked_smtp(settings)
        self._client = SmtpClient(self._smtp, idle_seconds=idle_seconds)
        self._idle_seconds = idle_seconds
        self._retry_delays = tuple(delivery.RETRY_DELAYS_SECONDS if retry_delays is None else retry_delays)
        self._drain_timeout = delivery.DRAIN_TIMEOUT_SECONDS if drain_timeout is None else drain_timeout
        self._max_queued = delivery.MAX_QUEUED if max_queued is None else max_queued
        # What one thread delivers: set anew by each ``stop``, so a later ``start`` gets a thread
        # and a queue of its own while the old thread ends its attempt in flight and QUITs. Both
        # threads use ``_client``: only a ``stop`` that gave up waiting, then a ``start`` of the same
        # outbox (tests; a reload builds a new outbox) could put them on one session at once.
        self._queue: queue.SimpleQueue[MailMessage | _Stop] = queue.SimpleQueue()
        self._abandon = threading.Event()  # set when ``stop`` gave up waiting: drop what is queued
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"SmtpOutbox(host={self._smtp.host!r}, port={self._smtp.port})"

    @property
    def client(self) -> SmtpClient:
        return self._client

    def send(self, message: MailMessage) -> None:
        queued = self._queue.qsize()
        if queued >= self._max_queued:
            logger.error("mail outbox full (%d queued); dropped mail to %s", queued, mask_address(message.to))
            return
        self._queue.put(message)

    async def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._work, args=(self._queue, self._abandon), name="gateway-smtp", daemon=True
            )
            self._thread.start()

    async def stop(self) -> None:
        """Wait (at most the drain timeout) for queued mail to go, then let the thread QUIT and end
        after any attempt still in flight; the loop never waits on the server beyond that time."""
        thread, mail, abandon = self._thread, self._queue, self._abandon
        if thread is None:
            return
        self._thread, self._queue, self._abandon = None, queue.SimpleQueue(), threading.Event()
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        mail.put(_Stop(loop, done))
        try:
            await asyncio.wait_for(done, self._drain_timeout)
        except TimeoutError:
            abandon.set()
            logger.error("mail outbox stopped with %d messages undelivered", max(mail.qsize() - 1, 0))

    def _work(self, mail: queue.SimpleQueue[MailMessage | _Stop], abandon: threading.Event) -> None:
        """The thread: each message in turn; the session closed (QUIT) after ``idle_seconds``
        without mail, and at the end."""
        client = self._client
        while True:
            try:
                item = mail.get(timeout=max(self._idle_seconds, 0.0) if client.connected else None)
            except queue.Empty:
                _close(client)
                continue
            if isinstance(item, _Stop):
                try:
                    _close(client)
                finally:
                    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
                        item.loop.call_soon_threadsafe(_resolve, item.done)
                return
            if abandon.is_set():
                continue
            try:
                self._deliver(item, abandon)
            except Exception:  # the thread must outlive any one message
                logger.exception("mail to %s not delivered", mask_address(item.to))

    def _deliver(self, message: MailMessage, abandon: threading.Event) -> None:
        deliver(message, self._composer, self._client, self._retry_delays, abandon.wait)


def open_outbox(settings: Mail, *, in_process: bool = False) -> Outbox:
    """The outbox ``mail:`` asks for: console when ``console: true``, else SMTP through a relay
    process (``relay.RelayOutbox``), or from a thread of this process when ``in_process`` (the
    CLI, which sends one message and wants its outcome in its own log)."""
    if settings.console:
        return ConsoleOutbox(settings)
    if in_process:
        return SmtpOutbox(settings)
    from gateway.mail.relay import RelayOutbox

    return RelayOutbox(settings)
