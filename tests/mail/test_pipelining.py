"""SMTP command pipelining (RFC 2920) in ``SmtpClient``: what goes on the wire, and refusals.

Two kinds of server: aiosmtpd (``start_smtp_server``, which offers ``PIPELINING`` unless told not
to) for whole deliveries, and a scripted server (below) for the exact order of commands and
replies, including a server that accepts ``DATA`` after refusing the recipient, which aiosmtpd
never does.
"""

from __future__ import annotations

import asyncio
import select
import smtplib
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from typing import Any

import pytest

from gateway.mail.client import SmtpClient
from gateway.mail.smtp import Composer, is_permanent
from gateway.settings.models import Smtp
from idp_connectors.base import MailMessage
from tests.support.smtp_server import start_smtp_server

FROM = "no-reply@contoso.example"
TO = "guest@fabrikam.example"
PIPELINED_GROUP = [f"mail FROM:<{FROM}>", f"rcpt TO:<{TO}>", "data"]  # as smtplib writes them


def envelope(text: str = "Your code is 12345678\n") -> Any:
    return Composer(f"Contoso <{FROM}>").compose(MailMessage(to=TO, subject="S", text=text))


class Conversation:
    """The server's end of one scripted SMTP session: lines read, replies written, all recorded."""

    def __init__(self, conn: socket.socket) -> None:
        self._conn, self._buffer = conn, b""
        self.heard: list[str] = []

    def line(self) -> str:
        while b"\r\n" not in self._buffer:
            chunk = self._conn.recv(65536)
            if not chunk:
                raise EOFError("the client closed the connection")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\r\n", 1)
        self.heard.append(raw.decode())
        return raw.decode()

    def lines(self, count: int) -> list[str]:
        return [self.line() for _ in range(count)]

    def message(self) -> list[str]:
        """The lines of a message up to its ending dot (which is not returned)."""
        body = []
        while (line := self.line()) != ".":
            body.append(line)
        return body

    def nothing_more_within(self, seconds: float) -> bool:
        """Whether the client sent nothing more for ``seconds`` (closing the connection is nothing)."""
        if self._buffer:
            return False
        if not select.select([self._conn], [], [], seconds)[0]:
            return True
        return self._conn.recv(1, socket.MSG_PEEK) == b""

    def reply(self, *lines: str) -> None:
        self._conn.sendall("".join(f"{line}\r\n" for line in lines).encode())

    def goodbye(self) -> None:
        assert self.line() == "quit"
        self.reply("221 Bye")

    def greet(self, *, pipelining: bool) -> None:
        self.reply("220 scripted ESMTP")
        assert self.line().startswith("ehlo ")
        self.reply("250-scripted", *(["250-PIPELINING"] if pipelining else []), "250 HELP")


@contextmanager
def scripted_server(script: Callable[[Conversation], None]) -> Iterator[tuple[int, list[BaseException]]]:
    """A one-connection SMTP server on a free loopback port running ``script``; yields the port
    and the errors the script raised (an assertion of the script fails the test through them)."""
    errors: list[BaseException] = []
    with closing(socket.socket()) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(5)

        def serve() -> None:
            try:
                conn, _ = listener.accept()
                with conn:
                    conn.settimeout(5)
                    script(Conversation(conn))
            except BaseException as exc:  # reported to the test
                errors.append(exc)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        yield listener.getsockname()[1], errors
        thread.join(timeout=10)
    assert not thread.is_alive(), "the scripted server did not finish"


def client_for(port: int) -> SmtpClient:
    return SmtpClient(Smtp(host="127.0.0.1", port=port, timeout_seconds=5))


async def deliver_once(script: Callable[[Conversation], None]) -> None:
    """One message delivered to a scripted server, then the session closed; the script's verdict."""
    with scripted_server(script) as (port, errors):
        client = client_for(port)
        await asyncio.to_thread(client.send, envelope())
        await asyncio.to_thread(client.close)
    assert not errors, errors


async def test_with_pipelining_mail_rcpt_and_data_go_before_any_reply() -> None:
    def script(talk: Conversation) -> None:
        talk.greet(pipelining=True)
        # No reply before all three have arrived: a client waiting for MAIL's reply would hang here.
        assert talk.lines(3) == PIPELINED_GROUP
        talk.reply("250 2.1.0 Ok", "250 2.1.5 Ok", "354 End data with <CR><LF>.<CR><LF>")
        assert "Your code is 12345678" in talk.message()
        talk.reply("250 2.0.0 Ok: queued")
        talk.goodbye()

    await deliver_once(script)


async def test_without_pipelining_each_command_waits_for_its_reply() -> None:
    def script(talk: Conversation) -> None:
        talk.greet(pipelining=False)
        for command, answer in zip(PIPELINED_GROUP, ("250 Ok", "250 Ok", "354 Go ahead"), strict=True):
            assert talk.line() == command
            assert talk.nothing_more_within(0.2), f"the client sent more before the reply to {command}"
            talk.reply(answer)
        talk.message()
        talk.reply("250 Ok")
        talk.goodbye()

    await deliver_once(script)


@pytest.mark.parametrize(
    ("replies", "refusal"),
    [
        (("550 5.7.1 Refused", "503 5.5.1 Need MAIL", "503 5.5.1 Need RCPT"), smtplib.SMTPSenderRefused),
        (("250 Ok", "550 5.1.1 No such user", "554 5.5.1 No recipients"), smtplib.SMTPRecipientsRefused),
        (("250 Ok", "250 Ok", "554 5.3.4 Not now"), smtplib.SMTPDataError),
    ],
    ids=["mail", "rcpt", "data"],
)
async def test_a_refusal_in_the_group_sends_no_message_resets_and_keeps_the_session(
    replies: tuple[str, str, str], refusal: type[Exception]
) -> None:
    def script(talk: Conversation) -> None:
        talk.greet(pipelining=True)
        assert talk.lines(3) == PIPELINED_GROUP
        talk.reply(*replies)
        assert talk.line() == "rset"  # and not a line of the message
        talk.reply("250 Ok")
        assert talk.lines(3) == PIPELINED_GROUP  # the next message, on the same session
        talk.reply("250 Ok", "250 Ok", "354 Go ahead")
        talk.message()
        talk.reply("250 Ok")
        talk.goodbye()

    with scripted_server(script) as (port, errors):
        client = client_for(port)
        with pytest.raises(refusal) as caught:
            await asyncio.to_thread(client.send, envelope())
        assert is_permanent(caught.value)
        assert client.connected
        await asyncio.to_thread(client.send, envelope())
        await asyncio.to_thread(client.close)
    assert not errors, errors
    assert client.connections == 1


async def test_data_accepted_after_a_refused_recipient_gets_an_empty_message() -> None:
    """RFC 2920 3.1: a server may answer DATA with 354 although no recipient was accepted; the
    client then owes it data, and sends only the ending dot, never the message."""

    def script(talk: Conversation) -> None:
        talk.greet(pipelining=True)
        assert talk.lines(3) == PIPELINED_GROUP
        talk.reply("250 Ok", "550 5.1.1 No such user", "354 Go ahead")
        assert talk.message() == []
        talk.reply("554 5.5.1 No valid recipients")
        assert talk.line() == "rset"
        talk.reply("250 Ok")
        talk.goodbye()

    with scripted_server(script) as (port, errors):
        client = client_for(port)
        with pytest.raises(smtplib.SMTPRecipientsRefused) as caught:
            await asyncio.to_thread(client.send, envelope())
        assert caught.value.recipients == {TO: (550, b"5.1.1 No such user")}
        assert client.connected
        await asyncio.to_thread(client.close)
    assert not errors, errors


async def test_a_server_closing_at_mail_is_not_asked_anything_more() -> None:
    def script(talk: Conversation) -> None:
        talk.greet(pipelining=True)
        assert talk.lines(3) == PIPELINED_GROUP
        talk.reply("421 4.3.2 Shutting down")
        assert talk.nothing_more_within(0.3)

    with scripted_server(script) as (port, errors):
        client = client_for(port)
        with pytest.raises(smtplib.SMTPSenderRefused) as caught:
            await asyncio.to_thread(client.send, envelope())
        assert caught.value.smtp_code == 421 and not is_permanent(caught.value)
        assert not client.connected
    assert not errors, errors


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "one-by-one"])
async def test_a_refused_recipient_at_a_real_server_leaves_the_session_usable(pipelining: bool) -> None:
    with start_smtp_server(pipelining=pipelining) as server:
        client = SmtpClient(Smtp(host=server.host, port=server.port))
        server.refuse_next_recipient("550 5.1.1 No such user")
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            await asyncio.to_thread(client.send, envelope("first\n"))
        await asyncio.to_thread(client.send, envelope("second\n"))
        await asyncio.to_thread(client.close)
        assert server.data_commands == 1  # the refused message never reached DATA's end
        assert [str(m.get_content()).strip() for m in server.messages] == ["second"]
        assert client.connections == 1


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "one-by-one"])
async def test_many_messages_on_one_session(pipelining: bool) -> None:
    with start_smtp_server(pipelining=pipelining) as server:
        client = SmtpClient(Smtp(host=server.host, port=server.port))
        for i in range(5):
            await asyncio.to_thread(client.send, envelope(f"message {i}\n"))
        await asyncio.to_thread(client.close)
        assert [str(m.get_content()).strip() for m in server.messages] == [f"message {i}" for i in range(5)]
        assert server.sessions == 1
