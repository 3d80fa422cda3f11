"""A real SMTP server for the tests: aiosmtpd on a free loopback port, recording what it gets.

Pytest plugin (listed in ``tests/conftest.py``). Fixtures:

- ``smtp_server`` (session): a running ``SmtpServer``; ``.host``, ``.port``,
  ``.messages`` (parsed ``EmailMessage`` objects, oldest first), ``.clear()``,
  ``await .wait_for(to=..., timeout=5)``, and fault injection for delivery tests:
  ``.refuse_next(count, reply)`` answers DATA with ``reply`` (``451 ...`` by default),
  ``.refuse_next_recipient(reply)`` answers the next RCPT with ``reply``,
  ``.delay_seconds`` holds every DATA answer back.
- an autouse reset that, only when the server is already running, clears messages and
  fault injection before and after each test, so tests never see each other's mail.

The server offers ``PIPELINING`` (RFC 2920), as mail servers generally do;
``start_smtp_server(pipelining=False, **controller_kwargs)`` starts a private one that does not
(or one that wants AUTH, ...); ``extract_passcode(message)`` pulls the digits out of a passcode email.
"""

from __future__ import annotations

import asyncio
import email
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from typing import Any, cast

import pytest
from aiosmtpd.controller import Controller

_PASSCODE = re.compile(r"(?<![0-9])[0-9]{6,12}(?![0-9])")


@dataclass
class Received:
    message: EmailMessage
    mail_from: str
    rcpt_tos: tuple[str, ...]
    authenticated: bool
    taken: bool = False


class RecordingHandler:
    """aiosmtpd handler: parses each message with the ``email`` package and keeps it."""

    def __init__(self, *, pipelining: bool = True) -> None:
        self.pipelining = pipelining
        self.lock = threading.Lock()
        self.received: list[Received] = []
        self.pending_refusals: list[str] = []
        self.pending_recipient_refusals: list[str] = []
        self.data_commands = 0
        self.data_peers: set[tuple[str, int]] = set()  # the client ends of the sessions that sent DATA
        self.delay_seconds = 0.0

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]] if self.pipelining else responses

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        with self.lock:
            refusal = self.pending_recipient_refusals.pop(0) if self.pending_recipient_refusals else None
        if refusal is not None:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.data_commands += 1
            self.data_peers.add(tuple(session.peer[:2]))
            refusal = self.pending_refusals.pop(0) if self.pending_refusals else None
            delay = self.delay_seconds
        if delay:
            await asyncio.sleep(delay)
        if refusal is not None:
            return refusal
        content = envelope.content if isinstance(envelope.content, bytes) else envelope.content.encode()
        message = email.message_from_bytes(content, policy=policy.default)
        with self.lock:
            self.received.append(
                Received(
                    message,
                    str(envelope.mail_from),
                    tuple(str(r).lower() for r in envelope.rcpt_tos),
                    bool(getattr(session, "authenticated", False)),
                )
            )
        return "250 2.0.0 OK"


class SmtpServer:
    def __init__(self, controller: Controller, handler: RecordingHandler) -> None:
        self.controller = controller
        self.handler = handler
        self.host: str = controller.hostname
        self.port: int = controller.port

    @property
    def messages(self) -> list[EmailMessage]:
        with self.handler.lock:
            return [r.message for r in self.handler.received]

    @property
    def received(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.received)

    @property
    def data_commands(self) -> int:
        """How many DATA commands arrived, refused ones included (counts delivery attempts)."""
        with self.handler.lock:
            return self.handler.data_commands

    @property
    def sessions(self) -> int:
        """How many SMTP sessions (client connections) sent DATA commands."""
        with self.handler.lock:
            return len(self.handler.data_peers)

    @property
    def delay_seconds(self) -> float:
        return self.handler.delay_seconds

    @delay_seconds.setter
    def delay_seconds(self, value: float) -> None:
        with self.handler.lock:
            self.handler.delay_seconds = value

    def refuse_next(self, count: int = 1, reply: str = "451 4.3.0 Try again later") -> None:
        with self.handler.lock:
            self.handler.pending_refusals.extend([reply] * count)

    def refuse_next_recipient(self, reply: str = "550 5.1.1 No such user") -> None:
        with self.handler.lock:
            self.handler.pending_recipient_refusals.append(reply)

    def clear(self) -> None:
        """Forget received mail and any fault injection."""
        with self.handler.lock:
            self.handler.received.clear()
            self.handler.pending_refusals.clear()
            self.handler.pending_recipient_refusals.clear()
            self.handler.data_commands = 0
            self.handler.data_peers.clear()
            self.handler.delay_seconds = 0.0

    async def wait_for(
        self,
        to: str | None = None,
        timeout: float = 5,  # noqa: ASYNC109 - the fixture's documented call shape
    ) -> EmailMessage:
        """The oldest message to ``to`` (any recipient when None) not returned before.

        Each message is handed out once, so ``wait_for`` after a resend gets the new mail.
        """
        wanted = None if to is None else to.lower()
        deadline = time.monotonic() + timeout
        while True:
            with self.handler.lock:
                for item in self.handler.received:
                    if not item.taken and (wanted is None or wanted in item.rcpt_tos):
                        item.taken = True
                        return item.message
                seen = [r.rcpt_tos for r in self.handler.received]
            if time.monotonic() >= deadline:
                raise AssertionError(f"no mail to {to!r} within {timeout}s; received for {seen}")
            await asyncio.sleep(0.01)


def _free_port(host: str) -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


@contextmanager
def start_smtp_server(*, pipelining: bool = True, **controller_kwargs: Any) -> Iterator[SmtpServer]:
    """A running aiosmtpd server on a free 127.0.0.1 port; stopped on exit."""
    host = "127.0.0.1"
    last_error: Exception | None = None
    for _ in range(5):
        handler = RecordingHandler(pipelining=pipelining)
        controller = Controller(handler, hostname=host, port=_free_port(host), **controller_kwargs)
        try:
            controller.start()
        except Exception as exc:  # the port was taken between probe and bind: try another
            last_error = exc
            continue
        try:
            yield SmtpServer(controller, handler)
        finally:
            controller.stop()
        return
    raise RuntimeError(f"could not start the test SMTP server: {last_error}")


def extract_passcode(message: EmailMessage) -> str:
    """The passcode in a passcode email's plain-text body."""
    body = message.get_body(preferencelist=("plain",))
    if body is None:
        raise AssertionError("the message has no text/plain body")
    match = _PASSCODE.search(cast(EmailMessage, body).get_content())
    if match is None:
        raise AssertionError("no passcode in the message body")
    return match.group(0)


_running: SmtpServer | None = None


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[SmtpServer]:
    global _running
    with start_smtp_server() as server:
        _running = server
        try:
            yield server
        finally:
            _running = None


@pytest.fixture(autouse=True)
def _smtp_server_reset() -> Iterator[None]:
    if _running is not None:
        _running.clear()
    yield
    if _running is not None:
        _running.clear()
