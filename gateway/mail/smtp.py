"""The blocking SMTP side of the outbox: build the RFC 5322 message, hand it to a server.

Everything here is synchronous (stdlib ``smtplib``); ``outbox.SmtpOutbox`` runs it in a
worker thread. Nothing here logs, so settings (and the password) never reach a log.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr

from gateway.settings.models import Smtp, is_loopback_host
from idp_connectors.base import MailMessage


def check_transport(smtp: Smtp) -> None:
    """Fail closed: never send SMTP credentials in clear text to another machine."""
    if smtp.username is not None and not (smtp.ssl or smtp.starttls) and not is_loopback_host(smtp.host):
        raise ValueError(
            f"mail.smtp: refusing to send the SMTP password unencrypted to {smtp.host}; "
            "set `starttls: true` or `ssl: true`"
        )


def build_email(from_: str, message: MailMessage) -> EmailMessage:
    """The message as sent: From, To, Subject, Date, Message-ID, text and optional HTML.

    Raises ``ValueError`` for a header value with a line break (header injection).
    """
    email = EmailMessage()
    email["From"] = from_
    email["To"] = message.to
    email["Subject"] = message.subject
    email["Date"] = formatdate(usegmt=True)
    domain = parseaddr(from_)[1].rpartition("@")[2] or "localhost"
    email["Message-ID"] = make_msgid(domain=domain)
    email["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies, please
    email.set_content(message.text)
    if message.html is not None:
        email.add_alternative(message.html, subtype="html")
    return email


def deliver(smtp: Smtp, email: EmailMessage) -> None:
    """One delivery attempt: connect, (START)TLS, log in if configured, send, quit."""
    check_transport(smtp)
    context = ssl.create_default_context()
    client: smtplib.SMTP
    if smtp.ssl:
        client = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=smtp.timeout_seconds, context=context)
    else:
        client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_seconds)
    with client:
        client.ehlo()
        if smtp.starttls:
            client.starttls(context=context)
            client.ehlo()
        if smtp.username is not None and smtp.password is not None:
            client.login(smtp.username, smtp.password)
        client.send_message(email)


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


__all__ = ["build_email", "check_transport", "deliver", "is_permanent", "mask_address"]
