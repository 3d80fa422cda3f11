"""The mail relay process: ``python -m gateway.mail.relay_process``, started by ``relay.RelayOutbox``.

It reads its standard input: first one JSON line of settings (so the SMTP password is in no
command line and no environment), then one JSON line per message (``[to, subject, text, html,
reply_to, request_id]``). It delivers each in turn (``delivery.deliver``: compose, up to three
attempts) over one SMTP session kept open between messages and closed (``QUIT``) after
``idle_seconds`` without mail; on end of input it delivers what it has read, says ``QUIT`` and
exits 0.

What it would log on ``gateway.mail`` it writes to its standard output instead: once a message
is done with, one JSON line ``{"records": [{"level", "msg", "args", "extra"}, ...], "request_id"}``
(one ``write`` a message; the id the message came with), and the gateway logs the records as its
own. It imports no more than the SMTP code (no pydantic, no settings models), so it starts in tens
of milliseconds. SIGINT is ignored: a Ctrl-C in the terminal reaches the whole process group, and
the gateway ends the relay itself.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import sys
import time
import traceback
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.mail.client import SmtpClient
from gateway.mail.delivery import deliver
from gateway.mail.smtp import Composer, mask_address

STDIN, STDOUT = 0, 1
READ_SIZE = 1 << 16
_RECORD_FIELDS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


@dataclass(frozen=True, slots=True)
class Transport:
    """``mail.smtp`` as the relay receives it (``smtp.Transport``)."""

    host: str
    port: int
    starttls: bool
    ssl: bool
    username: str | None
    password: str | None
    timeout_seconds: float


@dataclass(frozen=True, slots=True)
class Message:
    """A ``MailMessage`` as the relay receives it."""

    to: str
    subject: str
    text: str
    html: str | None
    reply_to: str | None


def _write(event: dict[str, Any]) -> None:
    data = orjson.dumps(event, default=str) + b"\n"
    while data:
        data = data[os.write(STDOUT, data) :]


class _Collect(logging.Handler):
    """Keeps each record as the gateway will log it, until the message is settled."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        event: dict[str, Any] = {
            "level": record.levelno,
            "msg": str(record.msg),
            "args": [a if isinstance(a, int | float | str) else str(a) for a in (record.args or ())],
            "extra": {k: v for k, v in record.__dict__.items() if k not in _RECORD_FIELDS},
        }
        if record.exc_info:
            event["exc"] = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        self.records.append(event)

    def settle(self, request_id: str | None) -> None:
        """One line for the gateway: the message is done with, and what was logged meanwhile."""
        records, self.records = self.records, []
        _write({"records": records, "request_id": request_id})


class _Lines:
    """Lines of a file descriptor, read in large chunks; ``next`` waits at most ``timeout``."""

    IDLE = b""  # returned when ``timeout`` ran out without a line

    def __init__(self, fd: int) -> None:
        self._fd, self._buffer = fd, bytearray()

    def next(self, timeout: float | None) -> bytes | None:
        """The next line, ``IDLE`` after ``timeout`` seconds without one, None at end of input."""
        while (end := self._buffer.find(b"\n")) < 0:
            if timeout is not None and not select.select([self._fd], [], [], timeout)[0]:
                return self.IDLE
            chunk = os.read(self._fd, READ_SIZE)
            if not chunk:
                return None  # a line cut short by the gateway's end is not a message
            self._buffer += chunk
        line = bytes(self._buffer[: end + 1])
        del self._buffer[: end + 1]
        return line


def serve(lines: _Lines, report: _Collect) -> None:
    """Deliver the messages of ``lines`` (after its settings line) until end of input."""
    first = lines.next(None)
    if first is None:
        return
    config = orjson.loads(first)
    composer = Composer(config["from"])
    client = SmtpClient(Transport(**config["smtp"]), idle_seconds=config["idle_seconds"])
    retry_delays = tuple(config["retry_delays"])
    logger = logging.getLogger("gateway.mail")

    def wait(seconds: float) -> bool:
        time.sleep(seconds)
        return False

    try:
        while True:
            line = lines.next(config["idle_seconds"] if client.connected else None)
            if line is None:
                break
            if line is _Lines.IDLE:
                client.close()
                continue
            *fields, request_id = orjson.loads(line)
            message = Message(*fields)
            try:
                deliver(message, composer, client, retry_delays, wait)
            except Exception:  # the relay must outlive any one message
                logger.exception("mail to %s not delivered", mask_address(message.to))
            report.settle(request_id)
    finally:
        client.close()


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logger = logging.getLogger("gateway.mail")
    report = _Collect()
    logger.handlers[:] = [report]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        serve(_Lines(STDIN), report)
    except BrokenPipeError:  # the gateway is gone: nobody to report to
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
