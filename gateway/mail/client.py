"""``SmtpClient``: the outbox's SMTP client (RFC 5321), on the event loop, one session kept open.

Each ``send`` is one delivery attempt: ``MAIL``, ``RCPT``, ``DATA`` and the dot-stuffed message
(RFC 5321 4.5.2) on a session that stays open between messages. A session is opened with the
greeting, ``EHLO`` (``HELO`` if the server refuses it), ``STARTTLS`` and ``EHLO`` again when
``starttls: true`` (or TLS from the first byte with ``ssl: true``; both verify the server's
certificate and name with the system's CA bundle, loaded once per client), then ``AUTH PLAIN``
(or ``AUTH LOGIN`` when that is all the server offers) when a username is configured. A reused
session that the server has dropped while it was idle is noticed at ``MAIL`` (the connection is
closed, or the ``421`` it sent on the way out is read) and replaced at once: nothing had been sent.
A session is closed (``QUIT``) after ``IDLE_SECONDS`` without mail (``close``) or after
``MAX_MESSAGES`` messages.

Why not ``smtplib`` in a worker thread: each round trip then costs a thread wake-up and a GIL
hand-over, ~0.3 ms of CPU a message in the benchmark; here a round trip is one write and one read
callback on the loop. Failures are raised as ``smtplib``'s exception classes (``SMTPSenderRefused``,
``SMTPRecipientsRefused``, ``SMTPDataError``, ``SMTPAuthenticationError``, ...), so the outbox tells
permanent from temporary failures as before. Every read is bounded by ``timeout_seconds``.
Nothing here logs, so settings (and the password) never reach a log.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import socket
import ssl
import time
from smtplib import (
    SMTPAuthenticationError,
    SMTPConnectError,
    SMTPDataError,
    SMTPException,
    SMTPHeloError,
    SMTPNotSupportedError,
    SMTPRecipientsRefused,
    SMTPResponseException,
    SMTPSenderRefused,
    SMTPServerDisconnected,
)

from gateway.mail.smtp import Envelope, check_transport
from gateway.settings.models import Smtp

IDLE_SECONDS = 30.0  # well under the 5 minutes a server waits (RFC 5321 4.5.3.2.7)
MAX_MESSAGES = 100  # messages per session, then a fresh connection (servers cap this too)
MAX_REPLY_LINE = 8192  # as smtplib: a longer reply line is an error
QUIT_TIMEOUT_SECONDS = 2.0
CRLF = b"\r\n"
_LEADING_DOT = re.compile(rb"^\.", re.MULTILINE)


def _ehlo_name() -> bytes:
    """This host's fully qualified name for EHLO (RFC 5321 4.1.4), else an address literal."""
    name = socket.getfqdn()
    if "." in name:
        with contextlib.suppress(UnicodeError):
            return name.encode("idna")
    try:
        return b"[%s]" % socket.gethostbyname(socket.gethostname()).encode()
    except OSError:
        return b"[127.0.0.1]"


class _Session:
    """One open connection: its streams and the extensions ``EHLO`` announced."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.features: dict[str, str] = {}
        self.sent = 0
        self.last_used = time.monotonic()


class SmtpClient:
    """One SMTP session kept open between messages; one ``send`` at a time (the outbox's task)."""

    def __init__(
        self,
        smtp: Smtp,
        *,
        idle_seconds: float = IDLE_SECONDS,
        max_messages: int = MAX_MESSAGES,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        check_transport(smtp)
        self._smtp = smtp
        self._idle_seconds = idle_seconds
        self._max_messages = max_messages
        self._context = tls_context
        self._local_hostname: bytes | None = None
        self._session: _Session | None = None
        self._lock = asyncio.Lock()  # one conversation at a time: a send, or a close
        self.connections = 0  # sessions opened so far (for tests and diagnostics)

    @property
    def connected(self) -> bool:
        return self._session is not None

    @property
    def busy(self) -> bool:
        """A send (or a close) is talking to the server right now."""
        return self._lock.locked()

    # -- one delivery attempt --------------------------------------------------------------

    async def send(self, envelope: Envelope) -> None:
        """One delivery attempt; raises what the server or the network said."""
        async with self._lock:
            await self._send(envelope)

    async def _send(self, envelope: Envelope) -> None:
        session, reused = await self._open()
        try:
            try:
                code, reply = await self._command(session, b"MAIL FROM:<%s>" % envelope.sender.encode())
            except (SMTPServerDisconnected, OSError):
                if not reused:
                    raise
                code, reply = 421, b"session lost while idle"
            if code == 421 and reused:  # the server hung up on the idle session: start afresh
                await self._drop()
                session, _ = await self._open()
                code, reply = await self._command(session, b"MAIL FROM:<%s>" % envelope.sender.encode())
            await self._transaction(session, envelope, code, reply)
        except (SMTPSenderRefused, SMTPRecipientsRefused, SMTPDataError):
            session.last_used = time.monotonic()  # answered and reset: the session stays usable
            raise
        except BaseException:
            await self._drop()
            raise
        session.sent += 1
        session.last_used = time.monotonic()

    async def _transaction(self, session: _Session, envelope: Envelope, code: int, reply: bytes) -> None:
        """RCPT and DATA after ``MAIL`` answered ``code``; a refusal resets the transaction."""
        if code != 250:
            await self._reset(session, code)
            raise SMTPSenderRefused(code, reply, envelope.sender)
        code, reply = await self._command(session, b"RCPT TO:<%s>" % envelope.recipient.encode())
        if code not in (250, 251):
            await self._reset(session, code)
            raise SMTPRecipientsRefused({envelope.recipient: (code, reply)})
        code, reply = await self._command(session, b"DATA")
        if code != 354:
            await self._reset(session, code)
            raise SMTPDataError(code, reply)
        data = _LEADING_DOT.sub(b"..", envelope.data)
        if not data.endswith(CRLF):
            data += CRLF
        session.writer.write(data + b"." + CRLF)
        code, reply = await self._reply(session)
        if code != 250:
            await self._reset(session, code)
            raise SMTPDataError(code, reply)

    async def _reset(self, session: _Session, code: int) -> None:
        if code == 421:  # the server is closing the connection
            await self._drop()
            return
        try:
            await self._command(session, b"RSET")
        except (SMTPException, OSError, TimeoutError):
            await self._drop()

    # -- sessions ------------------------------------------------------------------------

    async def _open(self) -> tuple[_Session, bool]:
        """The open session, unless idle or used too long, else a new one; and whether reused."""
        session = self._session
        if session is not None:
            stale = time.monotonic() - session.last_used > self._idle_seconds
            if not stale and session.sent < self._max_messages:
                return session, True
            await self._quit()
        self._session = await self._connect()
        return self._session, False

    def _tls(self) -> ssl.SSLContext:
        if self._context is None:
            self._context = ssl.create_default_context()
        return self._context

    async def _connect(self) -> _Session:
        smtp = self._smtp
        if self._local_hostname is None:  # may ask DNS: never on the loop, and once per client
            self._local_hostname = await asyncio.to_thread(_ehlo_name)
        async with asyncio.timeout(smtp.timeout_seconds):
            if smtp.ssl:
                reader, writer = await asyncio.open_connection(
                    smtp.host, smtp.port, ssl=self._tls(), server_hostname=smtp.host
                )
            else:
                reader, writer = await asyncio.open_connection(smtp.host, smtp.port)
        session = _Session(reader, writer)
        try:
            code, reply = await self._reply(session)
            if code != 220:
                raise SMTPConnectError(code, reply)
            await self._ehlo(session)
            if smtp.starttls:
                if "starttls" not in session.features:
                    raise SMTPNotSupportedError("STARTTLS extension not supported by server.")
                code, reply = await self._command(session, b"STARTTLS")
                if code != 220:
                    raise SMTPResponseException(code, reply)
                async with asyncio.timeout(smtp.timeout_seconds):
                    await writer.start_tls(self._tls(), server_hostname=smtp.host)
                await self._ehlo(session)  # RFC 3207 4.2: forget what was said before TLS
            if smtp.username is not None and smtp.password is not None:
                await self._login(session, smtp.username, smtp.password)
        except BaseException:
            writer.close()
            raise
        self.connections += 1
        return session

    async def _ehlo(self, session: _Session) -> None:
        assert self._local_hostname is not None
        session.features = {}
        code, reply = await self._command(session, b"EHLO " + self._local_hostname)
        if code == 250:
            for line in reply.split(b"\n")[1:]:
                keyword, _, params = line.decode("ascii", "replace").partition(" ")
                session.features[keyword.lower()] = params.strip()
            return
        code, reply = await self._command(session, b"HELO " + self._local_hostname)
        if code != 250:
            raise SMTPHeloError(code, reply)

    async def _login(self, session: _Session, username: str, password: str) -> None:
        offered = session.features.get("auth", "").upper().split()
        if not offered:
            raise SMTPNotSupportedError("SMTP AUTH extension not supported by server.")
        user, secret = username.encode(), password.encode()
        if "PLAIN" in offered:  # RFC 4616
            token = base64.b64encode(b"\0" + user + b"\0" + secret)
            code, reply = await self._command(session, b"AUTH PLAIN " + token)
        elif "LOGIN" in offered:
            code, reply = await self._command(session, b"AUTH LOGIN " + base64.b64encode(user))
            if code == 334:
                code, reply = await self._command(session, base64.b64encode(secret))
        else:
            raise SMTPException("No suitable authentication method found.")
        if code not in (235, 503):  # 503: already authenticated
            raise SMTPAuthenticationError(code, reply)

    async def _drop(self) -> None:
        """Forget the session without talking to the server."""
        session, self._session = self._session, None
        if session is not None:
            session.writer.close()
            with contextlib.suppress(Exception):
                await session.writer.wait_closed()

    async def close(self) -> None:
        """End the session politely (``QUIT``, waiting at most a short while), if one is open;
        after the send in progress, if any."""
        async with self._lock:
            await self._quit()

    async def _quit(self) -> None:
        session, self._session = self._session, None
        if session is None:
            return
        with contextlib.suppress(Exception):
            async with asyncio.timeout(min(QUIT_TIMEOUT_SECONDS, self._smtp.timeout_seconds)):
                await self._command(session, b"QUIT")
        session.writer.close()
        with contextlib.suppress(Exception):
            await session.writer.wait_closed()

    # -- the wire ------------------------------------------------------------------------

    async def _command(self, session: _Session, line: bytes) -> tuple[int, bytes]:
        session.writer.write(line + CRLF)
        return await self._reply(session)

    async def _reply(self, session: _Session) -> tuple[int, bytes]:
        """A (possibly multi-line) reply: its code and its text lines joined by LF."""
        lines: list[bytes] = []
        async with asyncio.timeout(self._smtp.timeout_seconds):
            while True:
                try:
                    line = await session.reader.readuntil(b"\n")
                except asyncio.IncompleteReadError as exc:
                    raise SMTPServerDisconnected("Connection unexpectedly closed") from exc
                except asyncio.LimitOverrunError as exc:
                    raise SMTPResponseException(500, b"Line too long.") from exc
                if len(line) > MAX_REPLY_LINE:
                    raise SMTPResponseException(500, b"Line too long.")
                lines.append(line[4:].strip(b" \t\r\n"))
                if not line[:3].isdigit():
                    raise SMTPResponseException(-1, b"Invalid reply: " + line[:80])
                if line[3:4] != b"-":
                    return int(line[:3]), b"\n".join(lines)
