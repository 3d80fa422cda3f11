"""The HTTP/1.1 protocol ``gateway serve`` gives uvicorn: httptools's, a response's head and body in
one write (docs/adr/0016).

uvicorn writes a response's status line and headers to the socket as soon as the app sends
``http.response.start``, and the body in a second write when it sends ``http.response.body``.
Over TCP with ``TCP_NODELAY`` (uvloop sets it) that is two system calls and two segments, and on
loopback the kernel also delivers each segment to the reader inside the sender's system call.
``HeldWriteTransport`` holds back one small write until the next write, which goes out with it in
one ``writelines`` (one ``writev``), or until the end of the loop iteration it was made in,
whichever comes first. Nothing else changes: bytes and their order are the same, a large write
is never held, ``close`` sends what is held first, and flow control sees every write but the
held one at once.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HOLD_LIMIT = 16 * 1024
"""The largest write held back (a response's head is well under it)."""


class HeldWriteTransport:
    """A transport that holds back one small write until the next write or the end of the loop
    iteration (module docstring); every other attribute is the wrapped transport's."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.writelines((held, data))  # one writev
        elif len(data) <= HOLD_LIMIT and not self._transport.is_closing():
            self._held = bytes(data)
            self._loop.call_soon(self._release)
        else:
            self._transport.write(data)

    def _release(self) -> None:
        held, self._held = self._held, None
        if held is not None and not self._transport.is_closing():
            self._transport.write(held)

    def close(self) -> None:
        self._release()
        self._transport.close()

    def abort(self) -> None:
        self._held = None
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class HeldWriteHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol writing through a ``HeldWriteTransport``."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.transport = HeldWriteTransport(transport, self.loop)  # type: ignore[assignment]
