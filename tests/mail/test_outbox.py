"""Mail delivery: the dev console outbox and the SMTP outbox against a real aiosmtpd server."""

from __future__ import annotations

import asyncio
import email
import logging
import smtplib
import socket
import ssl
import time
from collections.abc import Callable
from email import policy
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from typing import Any

import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword

from gateway.mail.outbox import ConsoleOutbox, SmtpOutbox, open_outbox
from gateway.mail.relay import RelayOutbox
from gateway.mail.smtp import Composer, is_permanent, mask_address
from gateway.settings.models import Mail
from idp_connectors.base import MailBranding, MailMessage
from idp_connectors.email_otp.messages import ENGLISH, passcode_message
from tests.mail.common import FROM, TO, mail_settings, passcode_mail
from tests.support.smtp_server import SmtpServer, extract_passcode, start_smtp_server

OutboxFactory = Callable[..., SmtpOutbox | RelayOutbox]
ThreadOutboxFactory = Callable[..., SmtpOutbox]


async def test_delivers_through_a_real_smtp_server(
    smtp_server: SmtpServer, make_outbox: OutboxFactory
) -> None:
    outbox = make_outbox(mail_settings(smtp_server.host, smtp_server.port))
    await outbox.start()
    outbox.send(passcode_mail("04812345"))
    message = await smtp_server.wait_for(to=TO, timeout=5)
    assert message["From"] == FROM
    assert message["To"] == TO
    assert message["Subject"] == "Your Contoso sign-in code"
    assert message["Auto-Submitted"] == "auto-generated"
    assert parsedate_to_datetime(message["Date"]).tzinfo is not None
    assert message["Message-ID"].endswith("@contoso.example>")
    assert extract_passcode(message) == "04812345"
    html = message.get_body(preferencelist=("html",))
    assert html is not None and "04812345" in html.get_content()
    assert smtp_server.received[0].rcpt_tos == (TO,)
    assert smtp_server.received[0].mail_from == "no-reply@contoso.example"
    assert not smtp_server.received[0].authenticated


async def test_send_returns_without_waiting_for_the_server(
    smtp_server: SmtpServer, make_outbox: OutboxFactory
) -> None:
    smtp_server.delay_seconds = 0.5
    outbox = make_outbox(mail_settings(smtp_server.host, smtp_server.port))
    await outbox.start()
    started = time.perf_counter()
    outbox.send(passcode_mail())
    assert time.perf_counter() - started < 0.05
    assert smtp_server.messages == []
    await smtp_server.wait_for(to=TO, timeout=5)
    assert time.perf_counter() - started >= 0.5


async def test_a_temporary_refusal_is_retried(
    smtp_server: SmtpServer, make_outbox: OutboxFactory, caplog_mail: pytest.LogCaptureFixture
) -> None:
    smtp_server.refuse_next(1, "451 4.3.0 Try again later")
    outbox = make_outbox(mail_settings(smtp_server.host, smtp_server.port))
    await outbox.start()
    outbox.send(passcode_mail("11112222"))
    message = await smtp_server.wait_for(to=TO, timeout=5)
    assert extract_passcode(message) == "11112222"
    await outbox.stop()
    assert smtp_server.data_commands == 2
    assert smtp_server.sessions == 1  # a refusal resets the transaction, not the session
    assert "attempt 1 of 3 failed" in caplog_mail.text
    assert "mail to g***@fabrikam.example delivered" in caplog_mail.text


async def test_gives_up_after_three_attempts_logs_and_keeps_working(
    smtp_server: SmtpServer, make_outbox: OutboxFactory, caplog_mail: pytest.LogCaptureFixture
) -> None:
    smtp_server.refuse_next(3)
    outbox = make_outbox(mail_settings(smtp_server.host, smtp_server.port))
    await outbox.start()
    outbox.send(passcode_mail("11111111"))
    outbox.send(passcode_mail("22222222"))
    message = await smtp_server.wait_for(to=TO, timeout=5)
    assert extract_passcode(message) == "22222222"
    assert smtp_server.data_commands == 4
    assert len(smtp_server.messages) == 1
    errors = [r for r in caplog_mail.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "after 3 attempt(s)" in errors[0].getMessage()
    assert TO not in caplog_mail.text and "g***@fabrikam.example" in caplog_mail.text


async def test_a_permanent_refusal_is_not_retried(
    smtp_server: SmtpServer, make_outbox: OutboxFactory, caplog_mail: pytest.LogCaptureFixture
) -> None:
    smtp_server.refuse_next(3, "550 5.1.1 No such user")
    outbox = make_outbox(mail_settings(smtp_server.host, smtp_server.port))
    await outbox.start()
    outbox.send(passcode_mail())
    await outbox.stop()
    assert smtp_server.data_commands == 1
    assert smtp_server.messages == []
    assert "after 1 attempt(s)" in caplog_mail.text


async def test_an_unreachable_server_is_retried_then_logged(
    make_outbox: OutboxFactory, caplog_mail: pytest.LogCaptureFixture
) -> None:
    with start_smtp_server() as server:
        host, port = server.host, server.port
    outbox = make_outbox(mail_settings(host, port, timeout_seconds=2))
    await outbox.start()
    outbox.send(passcode_mail())
    await outbox.stop()
    assert "attempt 2 of 3 failed" in caplog_mail.text
    assert "not delivered after 3 attempt(s)" in caplog_mail.text


async def test_stop_drains_the_queue(smtp_server: SmtpServer, make_outbox: OutboxFactory) -> None:
    outbox = make_outbox(mail_settings(smtp_server.host, smtp_server.port))
    await outbox.start()
    for i in range(5):
        outbox.send(passcode_mail(f"{i:08d}", to=f"guest{i}@fabrikam.example"))
    await outbox.stop()
    assert sorted(extract_passcode(m) for m in smtp_server.messages) == [f"{i:08d}" for i in range(5)]


async def test_stop_waits_only_a_bounded_time(
    smtp_server: SmtpServer, make_thread_outbox: ThreadOutboxFactory, caplog_mail: pytest.LogCaptureFixture
) -> None:
    smtp_server.delay_seconds = 0.6
    outbox = make_thread_outbox(mail_settings(smtp_server.host, smtp_server.port), drain_timeout=0.1)
    await outbox.start()
    outbox.send(passcode_mail())
    outbox.send(passcode_mail())
    started = time.perf_counter()
    await outbox.stop()
    assert time.perf_counter() - started < 0.5
    assert "stopped with 1 messages undelivered" in caplog_mail.text
    await smtp_server.wait_for(to=TO, timeout=5)  # the attempt already in flight finishes


async def test_a_message_with_a_header_injection_is_refused_not_raised(
    smtp_server: SmtpServer, make_outbox: OutboxFactory, caplog_mail: pytest.LogCaptureFixture
) -> None:
    outbox = make_outbox(mail_settings(smtp_server.host, smtp_server.port))
    await outbox.start()
    outbox.send(MailMessage(to=TO, subject="Hello\r\nBcc: everyone@contoso.example", text="x"))
    outbox.send(passcode_mail("33334444"))
    message = await smtp_server.wait_for(timeout=5)
    assert extract_passcode(message) == "33334444"
    assert smtp_server.data_commands == 1
    assert "cannot build it" in caplog_mail.text


async def test_a_full_queue_drops_and_logs_without_raising(caplog_mail: pytest.LogCaptureFixture) -> None:
    outbox = SmtpOutbox(mail_settings("127.0.0.1", 25), max_queued=1)
    outbox.send(passcode_mail())
    outbox.send(passcode_mail())
    assert "outbox full" in caplog_mail.text


def _authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        b"gateway",
        b"correct horse battery staple",
    )
    return AuthResult(success=ok, handled=False)


async def test_logs_in_with_the_configured_credentials(make_outbox: OutboxFactory) -> None:
    with start_smtp_server(authenticator=_authenticator, auth_require_tls=False) as server:
        settings = mail_settings(
            server.host, server.port, username="gateway", password="correct horse battery staple"
        )
        outbox = make_outbox(settings)
        await outbox.start()
        outbox.send(passcode_mail("55556666"))
        assert extract_passcode(await server.wait_for(to=TO, timeout=5)) == "55556666"
        assert server.received[0].authenticated
        await outbox.stop()


async def test_a_rejected_login_is_logged_without_the_password(
    make_outbox: OutboxFactory, caplog_mail: pytest.LogCaptureFixture
) -> None:
    with start_smtp_server(authenticator=_authenticator, auth_require_tls=False) as server:
        settings = mail_settings(server.host, server.port, username="gateway", password="wrong-Pa55word")
        outbox = make_outbox(settings)
        await outbox.start()
        outbox.send(passcode_mail())
        await outbox.stop()
        assert server.messages == []
    assert "SMTPAuthenticationError" in caplog_mail.text
    assert "after 1 attempt(s)" in caplog_mail.text
    assert "wrong-Pa55word" not in caplog_mail.text
    assert "wrong-Pa55word" not in repr(outbox)


@pytest.mark.parametrize("kind", [SmtpOutbox, RelayOutbox], ids=["thread", "relay"])
def test_refuses_to_send_credentials_in_clear_text_to_another_host(
    kind: type[SmtpOutbox] | type[RelayOutbox],
) -> None:
    with pytest.raises(ValueError, match="unencrypted"):
        kind(mail_settings("smtp.contoso.example", 25, username="u", password="p"))
    kind(mail_settings("smtp.contoso.example", 587, starttls=True, username="u", password="p"))
    kind(mail_settings("smtp.contoso.example", 465, ssl=True, username="u", password="p"))
    kind(mail_settings("127.0.0.1", 25, username="u", password="p"))
    kind(mail_settings("[::1]", 25, username="u", password="p"))


def parse(data: bytes) -> EmailMessage:
    return email.message_from_bytes(data, policy=policy.default)


def content(message: EmailMessage, kind: str) -> str:
    """A body part's text as a reader sees it (line ends as LF)."""
    part = message.get_body(preferencelist=(kind,))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")


def test_compose_shape() -> None:
    composer = Composer(FROM)
    envelope = composer.compose(MailMessage(to=TO, subject="S", text="plain", html="<p>rich</p>"))
    assert (envelope.sender, envelope.recipient) == ("no-reply@contoso.example", TO)
    message = parse(envelope.data)
    assert message.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in message.iter_parts()] == ["text/plain", "text/html"]
    assert content(message, "html") == "<p>rich</p>\n"
    assert message["Message-ID"] == envelope.message_id
    assert message["MIME-Version"] == "1.0"
    plain_only = parse(composer.compose(MailMessage(to=TO, subject="S", text="plain")).data)
    assert plain_only.get_content_type() == "text/plain"
    assert content(plain_only, "plain") == "plain\n"
    ids = {composer.compose(passcode_mail()).message_id for _ in range(2)}
    assert len(ids) == 2
    assert all(i.endswith("@contoso.example>") for i in ids)


def test_compose_is_rfc5322_on_the_wire() -> None:
    data = Composer(FROM).compose(passcode_mail("12345678")).data
    assert b"\n" not in data.replace(b"\r\n", b"")  # CRLF only, no bare CR or LF
    assert data.isascii()
    assert all(len(line) <= 78 for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n"))
    message = parse(data)
    assert parsedate_to_datetime(message["Date"]).tzinfo is not None
    assert message["Auto-Submitted"] == "auto-generated"
    assert extract_passcode(message) == "12345678"
    assert not message.defects and all(not part.defects for part in message.walk())


def test_compose_encodes_non_ascii_headers_and_bodies() -> None:
    composer = Composer("Contõso Ltd <no-reply@contoso.example>")
    subject = "Votre code de connexion Contõso — " + "très long " * 8
    envelope = composer.compose(
        MailMessage(to=TO, subject=subject, text="Code: 1234\nMerci, Contõso\n", html="<p>Contõso</p>")
    )
    assert envelope.data.isascii()
    head = envelope.data.split(b"\r\n\r\n", 1)[0]
    assert b"=?utf-8?" in head
    assert all(len(line) <= 78 for line in head.split(b"\r\n"))
    message = parse(envelope.data)
    assert message["Subject"] == subject
    assert message["From"].addresses[0].display_name == "Contõso Ltd"
    assert content(message, "plain") == "Code: 1234\nMerci, Contõso\n"
    assert content(message, "html") == "<p>Contõso</p>\n"


@pytest.mark.parametrize(
    "message",
    [
        MailMessage(to=TO, subject="Hello\nBcc: everyone@contoso.example", text="x"),
        MailMessage(to=TO + "\r\nBcc: everyone@contoso.example", subject="S", text="x"),
        MailMessage(to="not an address", subject="S", text="x"),
        MailMessage(to="gäst@fabrikam.example", subject="S", text="x"),
    ],
)
def test_compose_refuses_header_injection_and_bad_recipients(message: MailMessage) -> None:
    with pytest.raises(ValueError):
        Composer(FROM).compose(message)


@pytest.mark.parametrize("kind", [SmtpOutbox, RelayOutbox], ids=["thread", "relay"])
def test_a_from_without_an_address_is_a_config_error(kind: type[SmtpOutbox] | type[RelayOutbox]) -> None:
    with pytest.raises(ValueError, match=r"mail\.from"):
        kind(Mail.model_validate({"from": "Contoso", "smtp": {"host": "127.0.0.1"}}))


async def test_one_smtp_session_carries_many_messages(
    smtp_server: SmtpServer, make_outbox: OutboxFactory
) -> None:
    outbox = make_outbox(mail_settings(smtp_server.host, smtp_server.port))
    await outbox.start()
    for i in range(3):
        outbox.send(passcode_mail(f"{i:08d}", to=f"guest{i}@fabrikam.example"))
        await smtp_server.wait_for(to=f"guest{i}@fabrikam.example", timeout=5)
    assert smtp_server.data_commands == 3
    assert smtp_server.sessions == 1
    assert [r.rcpt_tos for r in smtp_server.received] == [(f"guest{i}@fabrikam.example",) for i in range(3)]


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "one-by-one"])
async def test_a_session_the_server_dropped_is_replaced_without_a_failed_attempt(
    make_outbox: OutboxFactory, caplog_mail: pytest.LogCaptureFixture, pipelining: bool
) -> None:
    with start_smtp_server(timeout=0.2, pipelining=pipelining) as server:  # hangs up idle clients
        outbox = make_outbox(mail_settings(server.host, server.port))
        await outbox.start()
        outbox.send(passcode_mail("11111111"))
        await server.wait_for(to=TO, timeout=5)
        await asyncio.sleep(0.5)
        outbox.send(passcode_mail("22222222"))
        assert extract_passcode(await server.wait_for(to=TO, timeout=5)) == "22222222"
        assert server.data_commands == 2
        assert server.sessions == 2
        await outbox.stop()
    assert "failed" not in caplog_mail.text


async def test_a_session_lost_without_a_word_is_replaced_without_a_failed_attempt(
    smtp_server: SmtpServer, make_thread_outbox: ThreadOutboxFactory, caplog_mail: pytest.LogCaptureFixture
) -> None:
    outbox = make_thread_outbox(mail_settings(smtp_server.host, smtp_server.port))
    await outbox.start()
    outbox.send(passcode_mail("11111111"))
    await smtp_server.wait_for(to=TO, timeout=5)
    # The server has the message before the client has read its reply: wait until the delivery is
    # over, so the connection is dropped while idle and not in the middle of the first transaction.
    for _ in range(250):
        if "delivered" in caplog_mail.text:
            break
        await asyncio.sleep(0.02)
    assert "delivered" in caplog_mail.text
    session = outbox.client._client
    assert session is not None and session.sock is not None
    session.sock.shutdown(socket.SHUT_RDWR)  # the network drops the idle connection
    outbox.send(passcode_mail("22222222"))
    assert extract_passcode(await smtp_server.wait_for(to=TO, timeout=5)) == "22222222"
    assert smtp_server.data_commands == 2
    assert outbox.client.connections == 2
    assert "failed" not in caplog_mail.text


async def test_an_idle_session_is_closed(
    smtp_server: SmtpServer, make_thread_outbox: ThreadOutboxFactory
) -> None:
    outbox = make_thread_outbox(mail_settings(smtp_server.host, smtp_server.port), idle_seconds=0.1)
    await outbox.start()
    outbox.send(passcode_mail())
    await smtp_server.wait_for(to=TO, timeout=5)
    await asyncio.sleep(0.05)
    assert outbox.client.connected
    await asyncio.sleep(0.4)
    assert not outbox.client.connected
    outbox.send(passcode_mail("44445555"))
    assert extract_passcode(await smtp_server.wait_for(to=TO, timeout=5)) == "44445555"
    assert outbox.client.connections == 2


@pytest.mark.parametrize(
    ("exc", "permanent"),
    [
        (smtplib.SMTPDataError(451, b"later"), False),
        (smtplib.SMTPDataError(554, b"no"), True),
        (smtplib.SMTPRecipientsRefused({TO: (450, b"busy")}), False),
        (smtplib.SMTPRecipientsRefused({TO: (550, b"no such user")}), True),
        (smtplib.SMTPAuthenticationError(535, b"bad"), True),
        (smtplib.SMTPNotSupportedError("STARTTLS extension not supported by server."), True),
        (smtplib.SMTPServerDisconnected("gone"), False),
        (ConnectionRefusedError(), False),
        (TimeoutError(), False),
        (ssl.SSLCertVerificationError("bad cert"), True),
    ],
)
def test_permanent_failures_are_told_apart(exc: BaseException, permanent: bool) -> None:
    assert is_permanent(exc) is permanent


def test_mask_address() -> None:
    assert mask_address("jane.doe@contoso.example") == "j***@contoso.example"
    assert mask_address("nonsense") == "***"


async def test_console_outbox_prints_and_logs_the_code(
    capsys: pytest.CaptureFixture[str], caplog_mail: pytest.LogCaptureFixture
) -> None:
    outbox = open_outbox(Mail.model_validate({"from": FROM, "console": True}))
    assert isinstance(outbox, ConsoleOutbox)
    await outbox.start()
    outbox.send(passcode_mail("90817263"))
    await outbox.stop()
    err = capsys.readouterr().err
    assert "DEV OUTBOX" in err
    assert f"To:      {TO}" in err
    assert "Subject: Your Contoso sign-in code" in err
    assert "90817263" in err
    assert "90817263" in caplog_mail.text
    assert caplog_mail.records[0].name == "gateway.mail"


def test_open_outbox_picks_the_relay_and_the_thread_in_process() -> None:
    assert isinstance(open_outbox(mail_settings("127.0.0.1", 2525)), RelayOutbox)
    assert isinstance(open_outbox(mail_settings("127.0.0.1", 2525), in_process=True), SmtpOutbox)


async def test_send_before_start_is_delivered_once_started(
    smtp_server: SmtpServer, make_outbox: OutboxFactory
) -> None:
    outbox = make_outbox(mail_settings(smtp_server.host, smtp_server.port))
    outbox.send(passcode_mail("77778888"))
    await asyncio.sleep(0.05)
    assert smtp_server.messages == []
    await outbox.start()
    assert extract_passcode(await smtp_server.wait_for(to=TO, timeout=5)) == "77778888"


async def test_stop_during_a_retry_wait_gives_the_message_up_at_once(
    smtp_server: SmtpServer, make_thread_outbox: ThreadOutboxFactory, caplog_mail: pytest.LogCaptureFixture
) -> None:
    smtp_server.refuse_next(1)
    outbox = make_thread_outbox(
        mail_settings(smtp_server.host, smtp_server.port), retry_delays=(30.0, 30.0), drain_timeout=0.2
    )
    await outbox.start()
    outbox.send(passcode_mail())
    for _ in range(100):  # the first attempt refused: the thread waits to retry
        if "attempt 1 of 3 failed" in caplog_mail.text:
            break
        await asyncio.sleep(0.02)
    started = time.perf_counter()
    await outbox.stop()
    assert time.perf_counter() - started < 1.0
    assert "stopped with 0 messages undelivered" in caplog_mail.text
    await asyncio.sleep(0.2)
    assert smtp_server.data_commands == 1 and smtp_server.messages == []  # no attempt after the stop
    assert not outbox.client.connected  # the thread QUIT on its way out


async def test_mail_sent_after_stop_goes_with_the_next_start(
    smtp_server: SmtpServer, make_outbox: OutboxFactory
) -> None:
    outbox = make_outbox(mail_settings(smtp_server.host, smtp_server.port))
    await outbox.start()
    outbox.send(passcode_mail("12121212"))
    await outbox.stop()
    outbox.send(passcode_mail("34343434"))
    await asyncio.sleep(0.1)
    assert [extract_passcode(m) for m in smtp_server.messages] == ["12121212"]
    smtp_server.clear()
    await outbox.start()
    assert extract_passcode(await smtp_server.wait_for(to=TO, timeout=5)) == "34343434"


def test_compose_ends_every_line_with_crlf_and_base64_encodes_long_lines() -> None:
    composer = Composer(FROM)
    for text, body in [
        ("one\ntwo", b"one\r\ntwo\r\n"),
        ("one\r\ntwo\rthree\n", b"one\r\ntwo\r\nthree\r\n"),
        ("", b"\r\n"),
    ]:
        data = composer.compose(MailMessage(to=TO, subject="s", text=text)).data
        assert data.endswith(b"Content-Transfer-Encoding: 7bit\r\n\r\n" + body)
    long = "x" * 999 + "\nshort"
    data = composer.compose(MailMessage(to=TO, subject="s", text=long)).data
    assert b"Content-Transfer-Encoding: base64\r\n" in data
    message = email.message_from_bytes(data, policy=policy.SMTP)
    assert isinstance(message, EmailMessage) and message.get_content() == long + "\n"


def test_the_passcode_mail_follows_its_inputs_each_time() -> None:
    texts = {
        **ENGLISH,
        "mail.passcode.subject": "Code for {org}",
        "mail.passcode.intro": "<b>{org}</b> code:",
    }
    branding = MailBranding(
        logo_url="https://contoso.example/logo.png?a=1&b=2", terms_url="https://t.example"
    )
    first = passcode_message(to=TO, code="11111111", tenant_name="Contoso", validity_seconds=600)
    assert first.subject == "Your Contoso sign-in code" and "11111111" in first.text
    again = passcode_message(
        to="x@fabrikam.example", code="22222222", tenant_name="Contoso", validity_seconds=600
    )
    assert again.to == "x@fabrikam.example"
    assert again.text == first.text.replace("11111111", "22222222")
    assert again.html == (first.html or "").replace("11111111", "22222222")
    other = passcode_message(
        to=TO,
        code="<33>",
        tenant_name="Fabrikam",
        validity_seconds=3600,
        texts=texts,
        lang="fr",
        branding=branding,
    )
    assert other.subject == "Code for Fabrikam"
    assert "<b>Fabrikam</b> code:\n\n    <33>\n" in other.text and "It works for 1 hour" in other.text
    assert other.html is not None and "&lt;33&gt;" in other.html and "<33>" not in other.html
    assert "&lt;b&gt;Fabrikam&lt;/b&gt;" in other.html and 'lang="fr"' in other.html
    assert 'src="https://contoso.example/logo.png?a=1&amp;b=2"' in other.html
    assert "Terms of use: https://t.example" in other.text
    back = passcode_message(to=TO, code="11111111", tenant_name="Contoso", validity_seconds=600)
    assert back == first
