"""Outboxes: where ``MailSender.send`` puts a message. Sending never blocks a request.

- ``ConsoleOutbox`` (``mail.console: true``): the dev outbox. Each message goes to the
  ``gateway.mail`` log and is printed as a framed block on stderr, so whoever runs the
  gateway locally sees the passcode in the terminal.
- ``SmtpOutbox`` (``mail.smtp:``): ``send`` puts the message on a bounded in-memory
  queue and returns; a background task delivers it with smtplib on its own worker thread
  (``gateway.store.worker.WorkerThread``) over one SMTP session kept open between messages
  (``client.SmtpClient``: closed after ``idle_seconds`` without mail, replaced when the
  server dropped it), retrying temporary failures (3 attempts in all) and logging what it
  could not deliver.
  Nothing is ever raised into request handling. Mail still queued when the process
  stops is lost after a bounded drain, which suits codes that expire in minutes.

``open_outbox(settings.mail)`` picks one. ``send`` must be called on the event loop's
thread (``asyncio.Queue`` is not thread-safe).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Sequence
from typing import Protocol

from gateway.mail.client import IDLE_SECONDS, SmtpClient
from gateway.mail.smtp import Composer, Envelope, check_transport, is_permanent, mask_address
from gateway.observability.logs import log
from gateway.settings.models import Mail, Smtp
from gateway.store.worker import WorkerThread
from idp_connectors.base import MailMessage

logger = logging.getLogger("gateway.mail")

RETRY_DELAYS_SECONDS = (1.0, 4.0)  # waits between the 3 attempts (read when an outbox is built)
DRAIN_TIMEOUT_SECONDS = 10.0
MAX_QUEUED = 1000


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


class SmtpOutbox:
    """Queues mail and delivers it to an SMTP server from a background task."""

    def __init__(
        self,
        settings: Mail,
        *,
        retry_delays: Sequence[float] | None = None,
        drain_timeout: float = DRAIN_TIMEOUT_SECONDS,
        max_queued: int = MAX_QUEUED,
        idle_seconds: float = IDLE_SECONDS,
    ) -> None:
        if settings.smtp is None:
            raise ValueError("mail.smtp is not configured")
        check_transport(settings.smtp)
        try:
            self._composer = Composer(settings.from_)
        except ValueError as exc:
            raise ValueError(f"mail.from: {exc}") from exc
        self._smtp: Smtp = settings.smtp
        self._client = SmtpClient(settings.smtp, idle_seconds=idle_seconds)
        self._idle_seconds = idle_seconds
        self._retry_delays = tuple(RETRY_DELAYS_SECONDS if retry_delays is None else retry_delays)
        self._drain_timeout = drain_timeout
        self._queue: asyncio.Queue[MailMessage] = asyncio.Queue(maxsize=max_queued)
        self._worker: asyncio.Task[None] | None = None
        self._thread = WorkerThread("gateway-smtp")
        self._idle_timer: asyncio.TimerHandle | None = None
        self._delivering = False

    def __repr__(self) -> str:
        return f"SmtpOutbox(host={self._smtp.host!r}, port={self._smtp.port})"

    @property
    def client(self) -> SmtpClient:
        return self._client

    def send(self, message: MailMessage) -> None:
        try:
            self._queue.put_nowait(message)
        except asyncio.QueueFull:
            logger.error(
                "mail outbox full (%d queued); dropped mail to %s",
                self._queue.qsize(),
                mask_address(message.to),
            )

    async def start(self) -> None:
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._run(), name="smtp-outbox")

    async def stop(self) -> None:
        """Wait (at most the drain timeout) for queued mail to go, then stop the worker."""
        worker, self._worker = self._worker, None
        if worker is None:
            return
        try:
            await asyncio.wait_for(self._queue.join(), self._drain_timeout)
        except TimeoutError:
            logger.error("mail outbox stopped with %d messages undelivered", self._queue.qsize())
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        # QUIT after any attempt still in flight; never wait on the server from the loop. A
        # later start() gets a new thread, so two threads never share the session.
        thread, self._thread = self._thread, WorkerThread("gateway-smtp")
        thread.post(self._client.close)
        thread.stop()

    def _close_if_idle(self) -> None:
        """Timer callback: QUIT the SMTP session when no mail came for ``idle_seconds``."""
        if self._queue.empty() and not self._delivering and self._client.connected:
            self._thread.post(self._client.close)

    async def _run(self) -> None:
        while True:
            message = await self._queue.get()
            if self._idle_timer is not None:
                self._idle_timer.cancel()
            self._delivering = True
            try:
                await self._deliver(message)
            except Exception:  # the worker must outlive any one message
                logger.exception("mail to %s not delivered", mask_address(message.to))
            finally:
                self._delivering = False
                self._queue.task_done()
                loop = asyncio.get_running_loop()
                self._idle_timer = loop.call_later(self._idle_seconds, self._close_if_idle)

    async def _deliver(self, message: MailMessage) -> None:
        to = mask_address(message.to)
        try:
            envelope: Envelope = self._composer.compose(message)
        except ValueError as exc:
            logger.error("mail to %s not delivered: cannot build it: %s", to, exc)
            return
        attempts = len(self._retry_delays) + 1
        for attempt in range(1, attempts + 1):
            try:
                await self._thread.run(self._client.send, envelope)
            except Exception as exc:
                reason = f"{type(exc).__name__}: {exc}"
                if is_permanent(exc) or attempt == attempts:
                    logger.error(
                        "mail to %s not delivered after %d attempt(s): %s",
                        to,
                        attempt,
                        reason,
                        extra={"mail_to": to, "message_id": envelope.message_id},
                    )
                    return
                delay = self._retry_delays[attempt - 1]
                logger.warning(
                    "mail to %s: attempt %d of %d failed (%s); retrying in %.1fs",
                    to,
                    attempt,
                    attempts,
                    reason,
                    delay,
                )
                await asyncio.sleep(delay)
            else:
                log(
                    logger,
                    logging.INFO,
                    "mail to %s delivered",
                    to,
                    extra={"mail_to": to, "message_id": envelope.message_id, "attempts": attempt},
                )
                return


def open_outbox(settings: Mail) -> Outbox:
    """The outbox ``mail:`` asks for: console when ``console: true``, else SMTP."""
    if settings.console:
        return ConsoleOutbox(settings)
    return SmtpOutbox(settings)
