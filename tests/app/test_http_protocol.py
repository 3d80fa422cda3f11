"""``gateway.http_protocol``: a response's head and body leave in one write, and nothing else changes.

Two levels: ``HeldWriteTransport`` over a recording transport (what is held, when it leaves), and
uvicorn serving a small app over loopback HTTP with the protocol ``gateway serve`` uses, on uvloop
in a thread of its own, where a recorder under the protocol counts the socket writes per response
and the client checks every byte it reads.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import uvicorn
import uvloop
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from gateway.http_protocol import HOLD_LIMIT, HeldWriteHttpToolsProtocol, HeldWriteTransport
from tests.support.live_server import free_port


class RecordingTransport:
    """Records ``write`` and ``writelines`` calls (as lists of bytes) and passes everything on; with
    nothing to pass on to, it is the whole transport."""

    def __init__(self, inner: Any = None) -> None:
        self.inner = inner
        self.calls: list[list[bytes]] = []
        self.closed = self.aborted = False
        self.log: list[str] = []

    def write(self, data: bytes) -> None:
        self.calls.append([bytes(data)])
        self.log.append("write")
        if self.inner is not None:
            self.inner.write(data)

    def writelines(self, parts: Any) -> None:
        parts = [bytes(part) for part in parts]
        self.calls.append(parts)
        self.log.append("writelines")
        if self.inner is not None:
            self.inner.writelines(parts)

    def is_closing(self) -> bool:
        return self.inner.is_closing() if self.inner is not None else self.closed or self.aborted

    def close(self) -> None:
        self.closed = True
        self.log.append("close")
        if self.inner is not None:
            self.inner.close()

    def abort(self) -> None:
        self.aborted = True
        self.log.append("abort")
        if self.inner is not None:
            self.inner.abort()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if self.inner is not None:
            return self.inner.get_extra_info(name, default)
        return {"peername": ("127.0.0.1", 4321)}.get(name, default)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


# -- HeldWriteTransport ------------------------------------------------------------------


@pytest.fixture
async def held() -> tuple[HeldWriteTransport, RecordingTransport]:
    inner = RecordingTransport()
    return HeldWriteTransport(inner, asyncio.get_running_loop()), inner  # type: ignore[arg-type]


async def test_a_small_write_waits_for_the_next_and_both_leave_in_one_call(
    held: tuple[HeldWriteTransport, RecordingTransport],
) -> None:
    transport, inner = held
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    assert inner.calls == []
    transport.write(b"body")
    assert inner.calls == [[b"HTTP/1.1 200 OK\r\n\r\n", b"body"]]
    await asyncio.sleep(0)
    assert inner.calls == [[b"HTTP/1.1 200 OK\r\n\r\n", b"body"]]  # nothing left to release


async def test_a_held_write_leaves_at_the_end_of_the_loop_iteration(
    held: tuple[HeldWriteTransport, RecordingTransport],
) -> None:
    transport, inner = held
    transport.write(b"head")
    await asyncio.sleep(0)
    assert inner.calls == [[b"head"]]
    transport.write(b"next")  # held again, released again
    await asyncio.sleep(0)
    assert inner.calls == [[b"head"], [b"next"]]


async def test_a_large_write_is_never_held(held: tuple[HeldWriteTransport, RecordingTransport]) -> None:
    transport, inner = held
    large = b"x" * (HOLD_LIMIT + 1)
    transport.write(large)
    assert inner.calls == [[large]]
    transport.write(b"head")
    transport.write(large)
    assert inner.calls == [[large], [b"head", large]]
    await asyncio.sleep(0)
    assert len(inner.calls) == 2


async def test_bytes_and_their_order_are_kept(held: tuple[HeldWriteTransport, RecordingTransport]) -> None:
    transport, inner = held
    pieces = [b"a", bytearray(b"b"), memoryview(b"c"), b"d" * (HOLD_LIMIT + 5), b"e", b"f"]
    for piece in pieces:
        transport.write(piece)
    await asyncio.sleep(0)
    assert b"".join(b"".join(call) for call in inner.calls) == b"".join(bytes(piece) for piece in pieces)


async def test_close_sends_the_held_write_first(held: tuple[HeldWriteTransport, RecordingTransport]) -> None:
    transport, inner = held
    transport.write(b"last words")
    transport.close()
    assert inner.log == ["write", "close"] and inner.calls == [[b"last words"]]
    await asyncio.sleep(0)
    assert inner.calls == [[b"last words"]]  # not sent twice


async def test_abort_drops_the_held_write(held: tuple[HeldWriteTransport, RecordingTransport]) -> None:
    transport, inner = held
    transport.write(b"never")
    transport.abort()
    await asyncio.sleep(0)
    assert inner.log == ["abort"] and inner.calls == []


async def test_nothing_is_held_for_a_closing_transport(
    held: tuple[HeldWriteTransport, RecordingTransport],
) -> None:
    transport, inner = held
    inner.closed = True
    transport.write(b"late")  # the transport decides what a write after close means
    assert inner.calls == [[b"late"]]


async def test_other_attributes_are_the_wrapped_transports(
    held: tuple[HeldWriteTransport, RecordingTransport],
) -> None:
    transport, inner = held
    assert transport.get_extra_info("peername") == ("127.0.0.1", 4321)
    assert transport.is_closing() is False
    inner.closed = True
    assert transport.is_closing() is True


# -- uvicorn over loopback -------------------------------------------------------------

RECORDERS: list[RecordingTransport] = []


class RecordedProtocol(HeldWriteHttpToolsProtocol):
    """``gateway serve``'s protocol with a recorder between it and the socket's transport."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        recorder = RecordingTransport(transport)
        RECORDERS.append(recorder)
        super().connection_made(recorder)  # type: ignore[arg-type]


async def small(request: Request) -> Response:
    return JSONResponse({"ok": True, "path": request.url.path})


async def large(request: Request) -> Response:
    return Response(b"L" * 100_000, media_type="application/octet-stream")


async def streamed(request: Request) -> Response:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"first,"
        yield b"m" * (HOLD_LIMIT * 2)
        yield b",last"

    return StreamingResponse(chunks(), media_type="text/plain")


async def empty(request: Request) -> Response:
    return Response(status_code=204)


APP = Starlette(
    routes=[
        Route("/small", small, methods=["GET", "HEAD"]),
        Route("/large", large),
        Route("/streamed", streamed),
        Route("/empty", empty),
    ]
)


@pytest.fixture(scope="module")
def server() -> Iterator[int]:
    port = free_port("127.0.0.1")
    config = uvicorn.Config(
        APP, host="127.0.0.1", port=port, http=RecordedProtocol, loop="none", access_log=False,
        log_level="warning",
    )  # fmt: skip
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: uvloop.run(instance.serve()), daemon=True)
    thread.start()
    for _ in range(500):
        if instance.started:
            break
        threading.Event().wait(0.01)
    assert instance.started, "uvicorn did not start"
    yield port
    instance.should_exit = True
    thread.join(10)


def read_response(conn: socket.socket, buffer: bytearray, *, head_only: bool = False) -> tuple[bytes, bytes]:
    """One response (head, body) from a keep-alive connection; what follows stays in ``buffer``."""
    while b"\r\n\r\n" not in buffer:
        buffer += conn.recv(65536) or b""
    end = buffer.index(b"\r\n\r\n") + 4
    head = bytes(buffer[:end])
    del buffer[:end]
    if head_only or head.startswith(b"HTTP/1.1 204"):
        return head, b""
    fields = dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:-2])
    if b"content-length" in fields:
        length = int(fields[b"content-length"])
        while len(buffer) < length:
            buffer += conn.recv(65536)
        body = bytes(buffer[:length])
        del buffer[:length]
        return head, body
    body = bytearray()  # chunked
    while True:
        while b"\r\n" not in buffer:
            buffer += conn.recv(65536)
        line_end = buffer.index(b"\r\n")
        size = int(buffer[:line_end], 16)
        while len(buffer) < line_end + 2 + size + 2:
            buffer += conn.recv(65536)
        body += buffer[line_end + 2 : line_end + 2 + size]
        del buffer[: line_end + 2 + size + 2]
        if size == 0:
            return head, bytes(body)


def wire(recorder: RecordingTransport) -> bytes:
    return b"".join(b"".join(call) for call in recorder.calls)


def request(path: str, method: str = "GET", extra: str = "") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}\r\n".encode()


def test_each_response_leaves_in_one_write_over_a_kept_alive_connection(server: int) -> None:
    RECORDERS.clear()
    with socket.create_connection(("127.0.0.1", server)) as conn:
        buffer = bytearray()
        received = b""
        for path in ("/small", "/small", "/small"):
            conn.sendall(request(path))
            head, body = read_response(conn, buffer)
            assert head.startswith(b"HTTP/1.1 200 OK\r\n") and body == b'{"ok":true,"path":"/small"}'
            received += head + body
        [recorder] = RECORDERS
        assert [len(call) for call in recorder.calls] == [2, 2, 2]  # head and body, one writev each
        assert wire(recorder) == received


def test_head_large_streamed_and_empty_responses_are_whole(server: int) -> None:
    RECORDERS.clear()
    with socket.create_connection(("127.0.0.1", server)) as conn:
        buffer = bytearray()
        received = b""
        conn.sendall(request("/small", "HEAD"))
        head, _ = read_response(conn, buffer, head_only=True)
        assert b"content-length: 27\r\n" in head
        received += head
        conn.sendall(request("/large"))
        head, body = read_response(conn, buffer)
        assert body == b"L" * 100_000
        received += head + body
        conn.sendall(request("/streamed"))
        head, body = read_response(conn, buffer)
        assert b"transfer-encoding: chunked\r\n" in head
        assert body == b"first," + b"m" * (HOLD_LIMIT * 2) + b",last"
        conn.sendall(request("/empty"))
        head, body = read_response(conn, buffer)
        assert head.startswith(b"HTTP/1.1 204 No Content\r\n") and body == b""
        [recorder] = RECORDERS
        assert wire(recorder).startswith(received)
        assert b"".join(recorder.calls[-1]) == head
        assert len(recorder.calls) <= 7  # HEAD 1, large 1, streamed at most 4, empty 1


def test_a_response_before_connection_close_arrives_whole(server: int) -> None:
    RECORDERS.clear()
    with socket.create_connection(("127.0.0.1", server)) as conn:
        conn.sendall(request("/small", extra="Connection: close\r\n"))
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
    assert received.endswith(b'\r\n\r\n{"ok":true,"path":"/small"}')
    assert b"connection: close\r\n" in received
    [recorder] = RECORDERS
    assert wire(recorder) == received
