"""What the outbox sends, and the rules around it: the RFC 5322 message, transport checks, errors.

``Composer`` turns a ``MailMessage`` into an ``Envelope``: the envelope addresses and the
message as CRLF bytes (From, To, Subject, Date, Message-ID, Auto-Submitted, MIME-Version;
text/plain, or multipart/alternative with the HTML). Headers that are plain ASCII and short
are written as they are; any other header goes through the ``email`` package's SMTP policy,
which folds it and encodes non-ASCII text as RFC 2047 encoded words. Bodies are 7bit when
they are ASCII with short lines, else base64 of their UTF-8. This costs a few dozen µs where
``EmailMessage`` plus its generator cost well over a millisecond a message. A plain
``local@domain`` address (``PLAIN_ADDRESS``, what the passcode connector sends to) skips the
``email`` package's address parser, which would return it unchanged, and the Date header is
formatted once a second.

``check_transport`` refuses to send a password in clear text to another machine;
``is_permanent`` tells the failures worth retrying from the others; ``mask_address`` is how
addresses appear in logs. The SMTP conversation itself is ``client.SmtpClient``'s.
"""

from __future__ import annotations

import base64
import re
import secrets
import smtplib
import ssl
import time
from dataclasses import dataclass
from email.utils import formatdate, parseaddr
from typing import Protocol

from idp_connectors.urls import is_loopback_host

MAX_PLAIN_HEADER = 78  # RFC 5322 2.1.1: longer lines are folded
MAX_7BIT_LINE = 998
CRLF = "\r\n"
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
PLAIN_ADDRESS = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*", re.ASCII)
"""A dot-atom addr-spec: ``email.utils.parseaddr`` and ``smtplib.quoteaddr`` take it as it is."""


class Transport(Protocol):
    """What an SMTP session needs from ``mail.smtp`` (``settings.models.Smtp`` has it; so has the
    mail relay's copy, which spares the relay process pydantic and the settings models)."""

    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def starttls(self) -> bool: ...
    @property
    def ssl(self) -> bool: ...
    @property
    def username(self) -> str | None: ...
    @property
    def password(self) -> str | None: ...
    @property
    def timeout_seconds(self) -> float: ...


class Outgoing(Protocol):
    """What a message to compose has (``idp_connectors.base.MailMessage`` and the relay's copy)."""

    @property
    def to(self) -> str: ...
    @property
    def subject(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def html(self) -> str | None: ...
    @property
    def reply_to(self) -> str | None: ...


def check_transport(smtp: Transport) -> None:
    """Fail closed: never send SMTP credentials in clear text to another machine."""
    encrypted = smtp.ssl or smtp.starttls
    if smtp.username is not None and not encrypted and not is_loopback_host(smtp.host):
        raise ValueError(
            f"mail.smtp: refusing to send the SMTP password unencrypted to {smtp.host}; "
            "set `starttls: true` or `ssl: true`"
        )


@dataclass(frozen=True, slots=True)
class Envelope:
    """One message ready for SMTP: envelope sender and recipient, Message-ID, the bytes."""

    sender: str
    recipient: str
    message_id: str
    data: bytes


def _header(name: str, value: str) -> str:
    """``Name: value`` + CRLF, folded and RFC 2047-encoded when needed; ValueError on a line break."""
    if "\r" in value or "\n" in value:
        raise ValueError(f"header {name!r} contains a line break")
    if value.isascii() and len(name) + 2 + len(value) <= MAX_PLAIN_HEADER:
        return f"{name}: {value}{CRLF}"
    from email import policy  # only for headers that need folding or encoding: a relay seldom does

    return str(policy.SMTP.header_factory(name, value).fold(policy=policy.SMTP))


def _address(header: str, value: str) -> str:
    """The addr-spec of an address header, for the SMTP envelope."""
    if PLAIN_ADDRESS.fullmatch(value):
        return value
    address = parseaddr(value)[1]
    if "@" not in address or not address.isascii():
        raise ValueError(f"{header} {value!r} has no plain ASCII address")
    return address


def _part(subtype: str, text: str) -> str:
    """Content headers, a blank line and the body of one text part (its lines ended by CRLF)."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.endswith("\n"):
        text += "\n"
    if text.isascii() and (len(text) <= MAX_7BIT_LINE or max(map(len, text.split("\n"))) <= MAX_7BIT_LINE):
        encoding, body = "7bit", text.replace("\n", CRLF)
    else:
        encoding = "base64"
        body = base64.encodebytes(text.encode()).decode("ascii").replace("\n", CRLF)
    return (
        f'Content-Type: text/{subtype}; charset="utf-8"{CRLF}'
        f"Content-Transfer-Encoding: {encoding}{CRLF}{CRLF}{body}"
    )


class Composer:
    """Builds the messages of one ``From``; its address and header are worked out once."""

    def __init__(self, from_: str) -> None:
        self.from_header = _header("From", from_)
        self.sender = _address("From", from_)
        self.domain = self.sender.rpartition("@")[2]
        self._date: tuple[int, str] = (-1, "")

    def _date_header(self, now: float | None) -> str:
        """``Date:`` for ``now`` (default: the current time), formatted once per second."""
        second = int(time.time() if now is None else now)
        if self._date[0] != second:
            self._date = (second, _header("Date", formatdate(second, usegmt=True)))
        return self._date[1]

    def compose(self, message: Outgoing, *, now: float | None = None) -> Envelope:
        """The message as sent. ``ValueError`` for a header with a line break (header
        injection) or a recipient that is not a plain ASCII address."""
        recipient = _address("To", message.to)
        message_id = f"<{secrets.token_hex(16)}@{self.domain}>"
        head = [
            self.from_header,
            _header("To", message.to),
            _header("Subject", message.subject),
            *([_header("Reply-To", message.reply_to)] if message.reply_to else []),
            self._date_header(now),
            f"Message-ID: {message_id}{CRLF}",
            f"Auto-Submitted: auto-generated{CRLF}",  # RFC 3834: no auto-replies, please
            f"MIME-Version: 1.0{CRLF}",
        ]
        if message.html is None:
            body = _part("plain", message.text)
        else:
            parts = [_part("plain", message.text), _part("html", message.html)]
            boundary = "=_" + secrets.token_hex(12)  # "=_" never occurs in base64
            while any(boundary in part for part in parts):
                boundary = "=_" + secrets.token_hex(12)
            body = (
                f'Content-Type: multipart/alternative; boundary="{boundary}"{CRLF}{CRLF}'
                + "".join(f"--{boundary}{CRLF}{part}{CRLF}" for part in parts)  # RFC 2046 5.1.1
                + f"--{boundary}--{CRLF}"
            )
        data = ("".join(head) + body).encode("utf-8")
        return Envelope(self.sender, recipient, message_id, data)


def is_permanent(exc: BaseException) -> bool:
    """True when trying again cannot help: a 5xx answer, a missing extension, a bad certificate."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return bool(exc.recipients) and all(code >= 500 for code, _ in exc.recipients.values())
    if isinstance(exc, smtplib.SMTPResponseException):
        return exc.smtp_code >= 500
    return isinstance(exc, smtplib.SMTPNotSupportedError | ssl.SSLCertVerificationError | ValueError)


def mask_address(address: str) -> str:
    """``jane.doe@contoso.example`` -> ``j***@contoso.example``: enough to trace, not to harvest."""
    local, at, domain = address.rpartition("@")
    if not at:
        return "***"
    return f"{local[:1]}***@{domain}"


__all__ = ["Composer", "Envelope", "Outgoing", "Transport", "check_transport", "is_permanent", "mask_address"]
