"""A lean HTTP/1.1 client and passcode sign-in driver for the benchmark, plus the SMTP sink it reads.

httpx costs 1-2 ms a request, more than the gateway spends on most of them, so the driver speaks
HTTP/1.1 over raw asyncio streams with keep-alive: one connection per concurrent sign-in loop,
``Content-Length`` and chunked bodies, cookies kept per sign-in (a fresh browser each time, so no
SSO session short-cuts the passcode). ``PasscodeSink`` is an aiosmtpd server on the driver's own
event loop; the driver registers the address before it submits it and awaits the passcode.

One sign-in (``SigninDriver.sign_in``): GET /oauth2/authorize (answered with the email page) -> POST
the email (answered with the passcode page) -> passcode from the sink -> POST the passcode -> the
code from the redirect -> (``exchange=True``) POST /oauth2/token with the PKCE verifier.
"""

from __future__ import annotations

import asyncio
import base64
import email
import hashlib
import json
import math
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from aiosmtpd.smtp import SMTP

CSRF = re.compile(rb'name="csrf" value="([^"]+)"')
EMAIL_FORM = re.compile(rb'action="(/signin/[A-Za-z0-9_-]+)/email"')
FORM = "application/x-www-form-urlencoded"


class BenchError(RuntimeError):
    """The gateway answered something a successful sign-in never gets."""


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    cookies: list[str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Connection:
    """One keep-alive HTTP/1.1 connection; reconnects when the server closed it."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.host_header = f"{host}:{port}".encode()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._reader = self._writer = None

    async def request(
        self, method: str, target: str, *, body: bytes = b"", headers: Sequence[tuple[str, str]] = ()
    ) -> Response:
        head = [f"{method} {target} HTTP/1.1".encode(), b"Host: " + self.host_header]
        head.extend(f"{name}: {value}".encode() for name, value in headers)
        if body or method == "POST":
            head.append(b"Content-Length: %d" % len(body))
        payload = b"\r\n".join(head) + b"\r\n\r\n" + body
        reused = self._writer is not None
        try:
            return await self._send(payload)
        except (ConnectionError, asyncio.IncompleteReadError):
            await self.close()
            if not reused:  # a fresh connection failed: that is an error, not an idle close
                raise
            return await self._send(payload)

    async def _send(self, payload: bytes) -> Response:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        assert self._reader is not None
        self._writer.write(payload)
        head = await self._reader.readuntil(b"\r\n\r\n")
        lines = head[:-4].split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        headers: dict[str, str] = {}
        cookies: list[str] = []
        for line in lines[1:]:
            name, _, value = line.decode("latin-1").partition(":")
            name, value = name.strip().lower(), value.strip()
            if name == "set-cookie":
                cookies.append(value)
            else:
                headers[name] = value
        if "content-length" in headers:
            body = await self._reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = await self._chunked()
        else:
            body = b""
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return Response(status, headers, cookies, body)

    async def _chunked(self) -> bytes:
        assert self._reader is not None
        parts: list[bytes] = []
        while True:
            size = int((await self._reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self._reader.readuntil(b"\r\n")
                return b"".join(parts)
            parts.append(await self._reader.readexactly(size))
            await self._reader.readexactly(2)


class CookieJar:
    """Name -> value; enough for the gateway's and the demo's cookies (paths are not told apart)."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def update(self, response: Response) -> None:
        for cookie in response.cookies:
            pair, _, attributes = cookie.partition(";")
            name, _, value = pair.partition("=")
            if "max-age=0" in attributes.lower().replace(" ", "") or not value.strip('"'):
                self.values.pop(name.strip(), None)
            else:
                self.values[name.strip()] = value.strip()

    def header(self) -> list[tuple[str, str]]:
        if not self.values:
            return []
        return [("Cookie", "; ".join(f"{name}={value}" for name, value in self.values.items()))]


class PasscodeSink:
    """An SMTP server on this event loop that hands each passcode to whoever awaits its address.
    Like the mail servers a gateway relays through, it offers ``PIPELINING`` (RFC 2920)."""

    def __init__(self, length: int = 8) -> None:
        self._digits = re.compile(rb"(?<![0-9])[0-9]{%d}(?![0-9])" % length)
        self._boundary_line = re.compile(rb"^--.*$", re.M)
        self._waiting: dict[str, asyncio.Future[str]] = {}
        self._server: asyncio.Server | None = None
        self.host, self.port = "127.0.0.1", 0
        self.received = 0

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: SMTP(self, hostname="bench-sink"), self.host, 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def expect(self, address: str) -> asyncio.Future[str]:
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiting[address.lower()] = future
        return future

    def _passcode(self, content: bytes) -> str | None:
        body = content.partition(b"\r\n\r\n")[2] or content.partition(b"\n\n")[2]
        match = self._digits.search(self._boundary_line.sub(b"", body))  # MIME boundaries hold digits
        if match is not None:
            return match.group(0).decode()
        message = email.message_from_bytes(content, policy=policy.default)  # encoded bodies: the slow way
        text = message.get_body(preferencelist=("plain",))
        if not isinstance(text, EmailMessage):
            return None
        found = self._digits.search(str(text.get_content()).encode())
        return found.group(0).decode() if found else None

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received += 1
        content = envelope.content if isinstance(envelope.content, bytes) else envelope.content.encode()
        code = self._passcode(content)
        for recipient in envelope.rcpt_tos:
            future = self._waiting.pop(str(recipient).lower(), None)
            if future is not None and not future.done():
                if code is None:
                    future.set_exception(BenchError(f"no passcode in the mail to {recipient}"))
                else:
                    future.set_result(code)
        return "250 2.0.0 OK"


@dataclass
class SignedIn:
    code: str
    verifier: str
    tokens: dict[str, Any] | None
    seconds: float


@dataclass
class SigninDriver:
    host: str
    port: int
    issuer: str
    sink: PasscodeSink
    client_id: str = "demo"
    scope: str = "openid profile email"
    redirect_uri: str = field(default="")

    def __post_init__(self) -> None:
        self.redirect_uri = self.redirect_uri or f"{self.issuer}/demo/callback"

    def connection(self) -> Connection:
        return Connection(self.host, self.port)

    async def sign_in(
        self, conn: Connection, address: str, *, exchange: bool, on_step: Callable[[str], None] | None = None
    ) -> SignedIn:
        """One complete sign-in; ``on_step(name)`` is called as each step ends (for a cost breakdown)."""
        step = on_step or (lambda name: None)
        started = time.perf_counter()
        jar = CookieJar()
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        state = secrets.token_urlsafe(12)
        query = urlencode({
            "response_type": "code", "client_id": self.client_id, "redirect_uri": self.redirect_uri,
            "scope": self.scope, "state": state, "nonce": secrets.token_urlsafe(12),
            "code_challenge": challenge, "code_challenge_method": "S256",
        })  # fmt: skip
        page = await self._get(conn, jar, f"/oauth2/authorize?{query}")
        signin = _signin_path(page)
        step("GET /oauth2/authorize")
        passcode = self.sink.expect(address)
        form = urlencode({"csrf": _csrf(page), "email": address}).encode()
        page = _page(await self._post(conn, jar, f"{signin}/email", form), jar, "POST email")
        code = await asyncio.wait_for(passcode, timeout=30)
        step("POST email + mail sent")
        form = urlencode({"csrf": _csrf(page), "passcode": code}).encode()
        back = _redirect(await self._post(conn, jar, f"{signin}/passcode", form), jar, "passcode")
        step("POST passcode")
        params = {k: v[0] for k, v in parse_qs(urlsplit(back).query).items()}
        if params.get("state") != state or "code" not in params:
            raise BenchError(f"the authorization response is not a code for this sign-in: {back}")
        tokens = None
        if exchange:
            tokens = await self.exchange(conn, params["code"], verifier)
            step("POST /oauth2/token")
        return SignedIn(params["code"], verifier, tokens, time.perf_counter() - started)

    async def exchange(self, conn: Connection, code: str, verifier: str) -> dict[str, Any]:
        form = urlencode({
            "grant_type": "authorization_code", "code": code, "redirect_uri": self.redirect_uri,
            "client_id": self.client_id, "code_verifier": verifier,
        }).encode()  # fmt: skip
        response = await conn.request("POST", "/oauth2/token", body=form, headers=[("Content-Type", FORM)])
        if response.status != 200:
            raise BenchError(f"token endpoint: {response.status} {response.body[:300]!r}")
        tokens: dict[str, Any] = response.json()
        if "access_token" not in tokens or "id_token" not in tokens:
            raise BenchError(f"token endpoint: no tokens in {response.body[:300]!r}")
        return tokens

    async def _get(self, conn: Connection, jar: CookieJar, target: str) -> Response:
        response = await conn.request("GET", target, headers=jar.header())
        jar.update(response)
        if response.status != 200:
            raise BenchError(f"GET {target}: {response.status} {response.body[:300]!r}")
        return response

    async def _post(self, conn: Connection, jar: CookieJar, target: str, form: bytes) -> Response:
        return await conn.request("POST", target, body=form, headers=[("Content-Type", FORM), *jar.header()])


def _csrf(page: Response) -> str:
    match = CSRF.search(page.body)
    if match is None:
        raise BenchError(f"no CSRF token on the page: {page.body[:300]!r}")
    return match.group(1).decode()


def _signin_path(page: Response) -> str:
    """The sign-in path (``/signin/{id}``) of the email page the authorization endpoint answers with."""
    match = EMAIL_FORM.search(page.body)
    if match is None:
        raise BenchError(f"authorize: not the email page: {page.body[:300]!r}")
    return match.group(1).decode()


def _page(response: Response, jar: CookieJar, step: str) -> Response:
    jar.update(response)
    if response.status != 200:
        raise BenchError(f"{step}: expected a page, got {response.status} {response.body[:300]!r}")
    return response


def _redirect(response: Response, jar: CookieJar, step: str) -> str:
    jar.update(response)
    if response.status not in (302, 303) or "location" not in response.headers:
        raise BenchError(f"{step}: expected a redirect, got {response.status} {response.body[:300]!r}")
    return response.headers["location"]


async def run_concurrently(
    count: int,
    concurrency: int,
    driver: SigninDriver,
    job: Callable[[Connection, int], Awaitable[float]],
    *,
    seconds: float | None = None,
) -> tuple[list[float], float]:
    """``job(conn, i)`` for i in range(count) over ``concurrency`` connections; (latencies, wall seconds).

    With ``seconds``, no job starts after that much time: fewer than ``count`` may run.
    """
    latencies: list[float] = []
    next_index = iter(range(count))
    started = time.perf_counter()
    deadline = math.inf if seconds is None else started + seconds

    async def loop() -> None:
        conn = driver.connection()
        try:
            for index in next_index:
                latencies.append(await job(conn, index))
                if time.perf_counter() > deadline:
                    return
        finally:
            await conn.close()

    await asyncio.gather(*(loop() for _ in range(min(concurrency, count))))
    return latencies, time.perf_counter() - started


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]
