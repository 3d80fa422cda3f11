"""The relay outbox's own behaviour: its process, its pipe, its end. Delivery itself (retries,
refusals, sessions, credentials) is tested for both outboxes in ``test_outbox``."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword

from gateway.cli import JsonFormatter
from gateway.mail import relay
from gateway.mail.relay import RelayOutbox
from gateway.observability.context import CURRENT, RequestContext
from tests.mail.common import TO, mail_settings, passcode_mail
from tests.support.smtp_server import SmtpServer, extract_passcode, start_smtp_server

PASSWORD = "correct horse battery staple"


async def until(condition: Callable[[], object], timeout: float = 5.0) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def proc_file(pid: int, name: str) -> bytes:
    return Path(f"/proc/{pid}/{name}").read_bytes()


def alive(pid: int) -> bool:
    """The process runs (a zombie, exited but not yet reaped, does not count)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def test_the_relay_starts_with_the_first_message_not_before(
    smtp_server: SmtpServer, make_relay: Callable[..., RelayOutbox]
) -> None:
    outbox = make_relay(mail_settings(smtp_server.host, smtp_server.port))
    await outbox.start()
    await asyncio.sleep(0.2)
    assert outbox.pid is None  # a gateway that sends no mail runs no relay
    outbox.send(passcode_mail("24682468"))
    assert extract_passcode(await smtp_server.wait_for(to=TO, timeout=10)) == "24682468"
    assert outbox.pid is not None and alive(outbox.pid)
    assert outbox.pid != os.getpid()


async def test_the_relays_records_are_logged_as_the_gateways(
    smtp_server: SmtpServer, make_relay: Callable[..., RelayOutbox], caplog_mail: pytest.LogCaptureFixture
) -> None:
    outbox = make_relay(mail_settings(smtp_server.host, smtp_server.port))
    await outbox.start()
    outbox.send(passcode_mail())
    message = await smtp_server.wait_for(to=TO, timeout=10)
    await until(lambda: outbox.settled == 1)
    [record] = [r for r in caplog_mail.records if "delivered" in r.getMessage()]
    assert record.name == "gateway.mail" and record.levelno == logging.INFO
    assert record.getMessage() == "mail to g***@fabrikam.example delivered"
    assert record.__dict__["mail_to"] == "g***@fabrikam.example"
    assert record.__dict__["message_id"] == message["Message-ID"]
    assert record.__dict__["attempts"] == 1
    assert (outbox.written, outbox.settled) == (1, 1)


class FormattedLines(logging.Handler):
    """The lines ``gateway serve`` would write for ``gateway.mail``, formatted where they are logged."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(JsonFormatter())
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


def send_in_request(outbox: RelayOutbox, request_id: str | None, code: str) -> None:
    """``outbox.send`` as a request handler with that request id calls it (None: outside a request)."""
    if request_id is None:
        outbox.send(passcode_mail(code))
        return
    token = CURRENT.set(RequestContext(request_id, {}, None))  # type: ignore[arg-type]
    try:
        outbox.send(passcode_mail(code))
    finally:
        CURRENT.reset(token)


async def test_each_delivery_is_logged_with_the_id_of_the_request_that_sent_the_mail(
    smtp_server: SmtpServer, make_relay: Callable[..., RelayOutbox]
) -> None:
    handler = FormattedLines()
    mail_logger = logging.getLogger("gateway.mail")
    mail_logger.addHandler(handler)
    previous_level = mail_logger.level
    mail_logger.setLevel(logging.INFO)
    try:
        outbox = make_relay(mail_settings(smtp_server.host, smtp_server.port))
        await outbox.start()
        send_in_request(outbox, "request-that-started-the-relay", "11111111")
        await until(lambda: outbox.settled == 1, timeout=10)
        send_in_request(outbox, "a-later-request", "22222222")
        send_in_request(outbox, None, "33333333")  # an invitation sent by a background job, say
        await until(lambda: outbox.settled == 3, timeout=10)
    finally:
        mail_logger.removeHandler(handler)
        mail_logger.setLevel(previous_level)
    delivered = [line for line in handler.lines if line["message"].endswith(" delivered")]
    assert [line.get("request_id") for line in delivered] == [
        "request-that-started-the-relay",
        "a-later-request",
        None,
    ]


async def test_a_record_line_with_a_request_id_that_is_not_a_string_is_skipped(
    caplog_mail: pytest.LogCaptureFixture,
) -> None:
    record = '{"records": [{"level": 20, "msg": "delivered", "args": [], "extra": {}}], "request_id": 5}'
    outbox = RelayOutbox(mail_settings("127.0.0.1", 25))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", f"print({record!r})", stdout=asyncio.subprocess.PIPE
    )
    outbox._process = process
    await outbox._read(process)
    first = caplog_mail.records[0].getMessage()
    assert first.startswith("the mail relay wrote a line that is not a record")
    assert not [r for r in caplog_mail.records if r.getMessage() == "delivered"]
    assert outbox.settled == 0


def _authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        b"gateway",
        PASSWORD.encode(),
    )
    return AuthResult(success=ok, handled=False)


async def test_the_password_is_in_neither_the_relays_command_line_nor_its_environment(
    make_relay: Callable[..., RelayOutbox],
) -> None:
    with start_smtp_server(authenticator=_authenticator, auth_require_tls=False) as server:
        outbox = make_relay(mail_settings(server.host, server.port, username="gateway", password=PASSWORD))
        await outbox.start()
        outbox.send(passcode_mail("13571357"))
        assert extract_passcode(await server.wait_for(to=TO, timeout=10)) == "13571357"
        assert server.received[0].authenticated  # the password reached the relay, down its pipe
        assert outbox.pid is not None
        command_line, environment = proc_file(outbox.pid, "cmdline"), proc_file(outbox.pid, "environ")
        assert b"gateway.mail.relay_process" in command_line
        assert PASSWORD.encode() not in command_line
        assert PASSWORD.encode() not in environment


async def test_a_relay_that_dies_is_logged_and_the_next_message_starts_another(
    smtp_server: SmtpServer, make_relay: Callable[..., RelayOutbox], caplog_mail: pytest.LogCaptureFixture
) -> None:
    outbox = make_relay(mail_settings(smtp_server.host, smtp_server.port))
    await outbox.start()
    outbox.send(passcode_mail("11111111"))
    await smtp_server.wait_for(to=TO, timeout=10)
    await until(lambda: outbox.settled == 1)  # the relay has reported the delivery
    first = outbox.pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    await until(lambda: "the mail relay exited" in caplog_mail.text)
    assert "exited with code -9; the outcome of 0 messages it had is unknown" in caplog_mail.text
    assert outbox.pid is None
    outbox.send(passcode_mail("22222222"))
    assert extract_passcode(await smtp_server.wait_for(to=TO, timeout=10)) == "22222222"
    assert outbox.pid is not None and outbox.pid != first


async def test_stop_lets_the_relay_deliver_what_it_has_then_it_exits(
    smtp_server: SmtpServer, make_relay: Callable[..., RelayOutbox]
) -> None:
    outbox = make_relay(mail_settings(smtp_server.host, smtp_server.port))
    await outbox.start()
    for i in range(5):
        outbox.send(passcode_mail(f"{i:08d}", to=f"guest{i}@fabrikam.example"))
    await until(lambda: outbox.pid is not None)
    pid = outbox.pid
    assert pid is not None
    await outbox.stop()
    assert sorted(extract_passcode(m) for m in smtp_server.messages) == [f"{i:08d}" for i in range(5)]
    assert not alive(pid)
    assert outbox.pid is None


async def test_stop_kills_a_relay_still_busy_after_the_drain_timeout(
    smtp_server: SmtpServer, make_relay: Callable[..., RelayOutbox], caplog_mail: pytest.LogCaptureFixture
) -> None:
    smtp_server.delay_seconds = 1.0
    outbox = make_relay(mail_settings(smtp_server.host, smtp_server.port), drain_timeout=0.2)
    await outbox.start()
    outbox.send(passcode_mail())
    outbox.send(passcode_mail())
    await until(lambda: smtp_server.data_commands == 1)  # the first is with the server
    pid = outbox.pid
    assert pid is not None
    started = time.perf_counter()
    await outbox.stop()
    assert time.perf_counter() - started < 0.8
    assert "mail outbox stopped with 2 messages undelivered" in caplog_mail.text
    assert not alive(pid)
    await asyncio.sleep(1.2)
    assert smtp_server.data_commands == 1  # the second message never went


async def test_stop_during_a_retry_wait_ends_the_relay_at_the_drain_timeout(
    smtp_server: SmtpServer, make_relay: Callable[..., RelayOutbox], caplog_mail: pytest.LogCaptureFixture
) -> None:
    smtp_server.refuse_next(1)
    outbox = make_relay(
        mail_settings(smtp_server.host, smtp_server.port), retry_delays=(30.0, 30.0), drain_timeout=0.2
    )
    await outbox.start()
    outbox.send(passcode_mail())
    await until(lambda: smtp_server.data_commands == 1)
    started = time.perf_counter()
    await outbox.stop()
    assert time.perf_counter() - started < 1.0
    assert "stopped with 1 messages undelivered" in caplog_mail.text
    await asyncio.sleep(0.2)
    assert smtp_server.data_commands == 1 and smtp_server.messages == []  # no attempt after the stop


async def test_a_relay_that_does_not_keep_up_drops_mail_past_the_bound_and_logs(
    smtp_server: SmtpServer, make_relay: Callable[..., RelayOutbox], caplog_mail: pytest.LogCaptureFixture
) -> None:
    outbox = make_relay(mail_settings(smtp_server.host, smtp_server.port), max_buffered=20_000)
    await outbox.start()
    outbox.send(passcode_mail("00000000", to="guest0@fabrikam.example"))
    await smtp_server.wait_for(to="guest0@fabrikam.example", timeout=10)
    pid = outbox.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)  # the relay reads nothing more: the pipe fills, then the buffer
    try:
        sent = 1
        while "outbox full" not in caplog_mail.text:
            outbox.send(passcode_mail(f"{sent:08d}", to=f"guest{sent}@fabrikam.example"))
            sent += 1
            if sent % 10 == 0:
                await asyncio.sleep(0)  # let the loop write what the pipe takes
            assert sent < 2000, "the bound was never reached"
    finally:
        os.kill(pid, signal.SIGCONT)
    dropped = sum("outbox full" in r.getMessage() for r in caplog_mail.records)
    assert dropped == 1
    assert "dropped mail to g***@fabrikam.example" in caplog_mail.text
    await outbox.stop()
    assert len(smtp_server.messages) == sent - 1  # all but the one dropped
    assert outbox.written == sent - 1


async def test_mail_waiting_for_the_relay_to_start_is_bounded(caplog_mail: pytest.LogCaptureFixture) -> None:
    outbox = RelayOutbox(mail_settings("127.0.0.1", 25), max_queued=2)
    for _ in range(3):
        outbox.send(passcode_mail())
    assert "mail outbox full (2 waiting); dropped mail to g***@fabrikam.example" in caplog_mail.text
    assert outbox.pid is None  # not started: nothing was spawned


async def test_a_relay_that_cannot_start_keeps_the_mail_for_the_next_try(
    smtp_server: SmtpServer,
    make_relay: Callable[..., RelayOutbox],
    monkeypatch: pytest.MonkeyPatch,
    caplog_mail: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(relay, "RESTART_SECONDS", 0.1)
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    outbox = make_relay(mail_settings(smtp_server.host, smtp_server.port))
    await outbox.start()
    outbox.send(passcode_mail("11111111"))
    await until(lambda: "the mail relay did not start" in caplog_mail.text)
    assert "1 messages wait for the next try" in caplog_mail.text
    assert outbox.pid is None and smtp_server.data_commands == 0
    monkeypatch.undo()
    outbox.send(passcode_mail("22222222"))
    first, second = await smtp_server.wait_for(timeout=10), await smtp_server.wait_for(timeout=10)
    assert [extract_passcode(first), extract_passcode(second)] == ["11111111", "22222222"]


async def test_what_the_relay_writes_that_is_not_a_record_is_logged_and_skipped(
    caplog_mail: pytest.LogCaptureFixture,
) -> None:
    record = (
        '{"records": [{"level": 20, "msg": "mail to %s delivered", "args": ["g***@x.example"], "extra": {}}]}'
    )
    script = f"print('not json'); print('[1, 2]'); print({record!r})"
    outbox = RelayOutbox(mail_settings("127.0.0.1", 25))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, stdout=asyncio.subprocess.PIPE
    )
    outbox._process = process  # as if it were the relay the outbox started
    await outbox._read(process)
    errors = [r.getMessage() for r in caplog_mail.records if r.levelno == logging.ERROR]
    assert errors[:2] == [
        "the mail relay wrote a line that is not a record: b'not json\\n'",
        "the mail relay wrote a line that is not a record: b'[1, 2]\\n'",
    ]
    delivered = [r for r in caplog_mail.records if "delivered" in r.getMessage()]
    assert len(delivered) == 1  # the good line still counts, the bad ones count for nothing
    assert errors[2] == "the mail relay exited with code 0; the outcome of 0 messages it had is unknown"
    assert outbox.pid is None
