"""``SmtpClient``: the outbox's SMTP session (stdlib ``smtplib``, blocking), kept open between messages.

Each ``send`` is one delivery attempt: ``MAIL``, ``RCPT``, ``DATA`` as ``smtplib.SMTP.sendmail``
does them (without ESMTP options: ``smtp.Composer`` makes ASCII messages; ``DATA``'s dot-stuffing
by ``bytes.replace`` rather than smtplib's regular expression), on a session that stays open
between messages. When the server offers ``PIPELINING`` (RFC 2920), as mail servers generally do,
the three commands go in one write and their replies are read after it: two round trips a message
instead of four. A plain envelope address (``smtp.PLAIN_ADDRESS``) goes into ``MAIL``
and ``RCPT`` as it is, without the address parser ``smtplib`` would run on it twice. A reused
session that the server has dropped while it was idle is noticed at ``MAIL`` (the connection is
closed, or the ``421`` the server sent on its way out is read) and replaced at once, without
counting as a failed attempt: nothing had been sent. So no ``RSET`` probe costs a round trip per
message; a refused transaction is reset (``RSET``) and the session kept. A session is closed
(``QUIT``) after ``IDLE_SECONDS`` without mail or after ``MAX_MESSAGES`` messages.

The TLS context (``starttls: true`` or ``ssl: true``: the system's CA bundle, certificate and
host name checked) is created once per client, as loading the CA bundle costs ~25 ms, and the
EHLO name is looked up once per client rather than once per connection.

Everything here blocks; the relay process (``relay_process``) or ``outbox.SmtpOutbox``'s thread
runs it, one call at a time. Nothing here logs, so settings (and the password) never reach a log.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
import time

from gateway.mail.smtp import PLAIN_ADDRESS, Envelope, Transport, check_transport


def _path(address: str) -> str:
    """``address`` as ``MAIL FROM:`` and ``RCPT TO:`` take it (``<address>``): a plain one as it is,
    any other through ``smtplib.quoteaddr``, as ``smtplib.SMTP.mail`` and ``rcpt`` write it."""
    return f"<{address}>" if PLAIN_ADDRESS.fullmatch(address) else smtplib.quoteaddr(address)


def _mail(client: smtplib.SMTP, sender: str) -> tuple[int, bytes]:
    """``client.mail(sender)``."""
    client.putcmd("mail", f"FROM:{_path(sender)}")
    return client.getreply()


def _rcpt(client: smtplib.SMTP, recipient: str) -> tuple[int, bytes]:
    """``client.rcpt(recipient)``."""
    client.putcmd("rcpt", f"TO:{_path(recipient)}")
    return client.getreply()


def _pipelined_mail(client: smtplib.SMTP, envelope: Envelope) -> tuple[int, bytes]:
    """``MAIL``, ``RCPT`` and ``DATA`` in one write (RFC 2920 3.1: ``DATA`` may only end a group);
    ``MAIL``'s reply. The replies to ``RCPT`` and ``DATA`` are left for the caller to read."""
    # The commands as ``putcmd`` writes them, so the bytes on the wire are those of the unpipelined path.
    client.send(f"mail FROM:{_path(envelope.sender)}\r\nrcpt TO:{_path(envelope.recipient)}\r\ndata\r\n")
    return client.getreply()


def _data(client: smtplib.SMTP, data: bytes) -> tuple[int, bytes]:
    """``client.data(data)`` for a message already in bytes: the same commands and the same bytes."""
    client.putcmd("data")
    code, reply = client.getreply()
    if code != 354:
        raise smtplib.SMTPDataError(code, reply)
    return _content(client, data)


def _content(client: smtplib.SMTP, data: bytes) -> tuple[int, bytes]:
    """The message after ``DATA``'s 354, and the reply to it: dot-stuffed by ``bytes.replace`` where
    smtplib runs the regular expression ``(?m)^\\.`` over the whole message (a dot at its start or
    after any LF gets a second one), ten times the cost."""
    stuffed = data.replace(b"\n.", b"\n..")
    if stuffed[:1] == b".":
        stuffed = b"." + stuffed
    if stuffed[-2:] != b"\r\n":
        stuffed += b"\r\n"
    client.send(stuffed + b".\r\n")
    return client.getreply()


def _pipelining(client: smtplib.SMTP) -> bool:
    """Whether the server offered ``PIPELINING`` in its (last) ``EHLO`` reply."""
    return bool(client.does_esmtp and client.has_extn("pipelining"))


IDLE_SECONDS = 30.0  # well under the 5 minutes a server waits (RFC 5321 4.5.3.2.7)
MAX_MESSAGES = 100  # messages per session, then a fresh connection (servers cap this too)


class SmtpClient:
    """One SMTP session kept open between messages; use from one thread at a time."""

    def __init__(
        self,
        smtp: Transport,
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
        self._local_hostname: str | None = None
        self._client: smtplib.SMTP | None = None
        self._sent = 0
        self._last_used = 0.0
        self.connections = 0  # sessions opened so far (for tests and diagnostics)

    @property
    def connected(self) -> bool:
        return self._client is not None

    def send(self, envelope: Envelope) -> None:
        """One delivery attempt; raises what the server or the network said."""
        client, reused = self._session()
        try:
            try:
                code, reply = self._begin(client, envelope)
            except (smtplib.SMTPServerDisconnected, OSError):
                if not reused:
                    raise
                code, reply = 421, b"session lost while idle"
            if code == 421 and reused:  # the server hung up on the idle session: start afresh
                self._drop()
                client, _ = self._session()
                code, reply = self._begin(client, envelope)
            self._transaction(client, envelope, code, reply)
        except (smtplib.SMTPSenderRefused, smtplib.SMTPRecipientsRefused, smtplib.SMTPDataError):
            self._last_used = time.monotonic()  # answered and reset: the session stays usable
            raise
        except BaseException:
            self._drop()
            raise
        self._sent += 1
        self._last_used = time.monotonic()

    @staticmethod
    def _begin(client: smtplib.SMTP, envelope: Envelope) -> tuple[int, bytes]:
        """Send ``MAIL`` (with ``RCPT`` and ``DATA`` when the server pipelines); ``MAIL``'s reply."""
        return _pipelined_mail(client, envelope) if _pipelining(client) else _mail(client, envelope.sender)

    def _transaction(self, client: smtplib.SMTP, envelope: Envelope, code: int, reply: bytes) -> None:
        """The rest of the transaction after ``MAIL`` answered ``code``; a refusal resets it."""
        if code == 421:  # the server is closing the connection: nothing more will be answered
            self._drop()
            raise smtplib.SMTPSenderRefused(code, reply, envelope.sender)
        if _pipelining(client):
            self._pipelined_transaction(client, envelope, code, reply)
            return
        if code != 250:
            self._reset(client, code)
            raise smtplib.SMTPSenderRefused(code, reply, envelope.sender)
        code, reply = _rcpt(client, envelope.recipient)
        if code not in (250, 251):
            self._reset(client, code)
            raise smtplib.SMTPRecipientsRefused({envelope.recipient: (code, reply)})
        code, reply = _data(client, envelope.data)  # dot-stuffs the message and ends it
        if code != 250:
            self._reset(client, code)
            raise smtplib.SMTPDataError(code, reply)

    def _pipelined_transaction(
        self, client: smtplib.SMTP, envelope: Envelope, code: int, reply: bytes
    ) -> None:
        """Read the replies to the pipelined ``RCPT`` and ``DATA``, then send the message. A server
        may accept ``DATA`` although it refused ``MAIL`` or ``RCPT``; it is then owed data (RFC 2920
        3.1), and gets an empty message (a lone dot), which it refuses for want of a recipient,
        before the transaction is reset."""
        rcpt = client.getreply()
        data = client.getreply()
        refusal: smtplib.SMTPException | None = None
        if code != 250:
            refusal = smtplib.SMTPSenderRefused(code, reply, envelope.sender)
        elif rcpt[0] not in (250, 251):
            code, refusal = rcpt[0], smtplib.SMTPRecipientsRefused({envelope.recipient: rcpt})
        elif data[0] != 354:
            code, refusal = data[0], smtplib.SMTPDataError(*data)
        if refusal is None:
            code, reply = _content(client, envelope.data)
            if code == 250:
                return
            refusal = smtplib.SMTPDataError(code, reply)
        elif data[0] == 354:
            client.send(b".\r\n")
            client.getreply()
        self._reset(client, code)
        raise refusal

    def _reset(self, client: smtplib.SMTP, code: int) -> None:
        if code == 421:  # the server is closing the connection
            self._drop()
            return
        try:
            client.rset()
        except (smtplib.SMTPException, OSError):
            self._drop()

    def _session(self) -> tuple[smtplib.SMTP, bool]:
        """The open session unless it was idle or used too long, else a new one; and whether
        it is an open session being reused."""
        if self._client is not None:
            if time.monotonic() - self._last_used > self._idle_seconds or self._sent >= self._max_messages:
                self.close()
            else:
                return self._client, True
        self._client = self._connect()
        return self._client, False

    def _tls(self) -> ssl.SSLContext:
        if self._context is None:
            self._context = ssl.create_default_context()
        return self._context

    def _connect(self) -> smtplib.SMTP:
        smtp = self._smtp
        if self._local_hostname is None:
            self._local_hostname = socket.getfqdn()
        client: smtplib.SMTP
        if smtp.ssl:
            client = smtplib.SMTP_SSL(
                smtp.host, smtp.port, local_hostname=self._local_hostname,
                timeout=smtp.timeout_seconds, context=self._tls(),
            )  # fmt: skip
        else:
            client = smtplib.SMTP(
                smtp.host, smtp.port, local_hostname=self._local_hostname, timeout=smtp.timeout_seconds
            )
        try:
            client.ehlo()
            if smtp.starttls:
                client.starttls(context=self._tls())
                client.ehlo()
            if smtp.username is not None and smtp.password is not None:
                client.login(smtp.username, smtp.password)
        except BaseException:
            client.close()
            raise
        self.connections += 1
        self._sent = 0
        return client

    def _drop(self) -> None:
        """Forget the session without talking to the server."""
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def close(self) -> None:
        """End the session politely (QUIT), if one is open."""
        client, self._client = self._client, None
        if client is None:
            return
        try:
            client.quit()
        except (smtplib.SMTPException, OSError):
            client.close()
