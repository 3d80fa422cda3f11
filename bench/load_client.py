"""The client side of the load benchmark (``bench/load.py``): one process of the load generator.

``client_main(spec, pipe)`` runs in a process of its own (multiprocessing, spawn), with its own
uvloop event loop and its own keep-alive connections (the lean HTTP/1.1 client of
``bench/signin_driver.py``). It answers commands from the orchestrator over ``pipe``:
``Run(kind, seconds, max_ops)`` runs ``spec.concurrency`` loops of one kind of operation until the
time is up (no operation starts later; those in flight finish) and answers a ``WindowResult``;
``None`` ends the process.

Kinds of operation:

- ``floor``: ``GET /`` of the floor app (``bench/floor_app.py``): what the generator itself can drive;
- ``passcode``: a complete passcode sign-in with a new address (a first sign-in: it creates the
  guest), scope with ``offline_access``; its refresh token joins this process's pool;
- ``oidc``: a complete sign-in through the upstream test IdP (``bench/brokered.py``'s driver);
- ``token``: a ``refresh_token`` grant with a pooled refresh token (the new one goes back to the
  pool: tokens rotate) and a ``userinfo`` call with the new access token.

Every gateway request goes through a ``RoundRobin`` connection: with two replicas, consecutive
requests of one sign-in go to alternate replicas (they share one store, so any of them can serve
any step). Passcodes reach the process through ``HubSink``: the orchestrator's SMTP hub
(``bench/load.py``) forwards ``address passcode`` lines to the process whose index the address
carries (``c<index>-...@...``).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection as Pipe
from urllib.parse import urlencode, urlsplit

import uvloop

from bench.brokered import DOMAIN as IDP_DOMAIN
from bench.brokered import BrokeredDriver
from bench.signin_driver import FORM, BenchError, Connection, PasscodeSink, Response, SigninDriver

KINDS = ("floor", "passcode", "oidc", "token")
SIGNIN_KINDS = ("passcode", "oidc")
PASSCODE_DOMAIN = "fabrikam.example"
SCOPE = "openid profile email offline_access"


@dataclass(frozen=True)
class ClientSpec:
    index: int
    targets: tuple[str, ...]  # base URLs the requests rotate over (the replicas, or the floor)
    issuer: str  # the gateways' shared issuer (redirect URIs, the callback's host)
    hub_port: int
    idp: str | None  # the upstream IdP's issuer, for ``oidc``
    concurrency: int
    run_id: str


@dataclass(frozen=True)
class Run:
    kind: str
    seconds: float
    max_ops: int = 1_000_000_000


@dataclass
class WindowResult:
    kind: str
    ops: int = 0
    requests: int = 0  # to the gateway (or the floor); the IdP's are not counted
    latencies: dict[str, list[float]] = field(default_factory=dict)  # seconds, by what was timed
    errors: list[str] = field(default_factory=list)
    cpu_seconds: float = 0.0  # this process's own CPU during the window


class RoundRobin(Connection):
    """Keep-alive connections to every target; each request goes to the next one in turn."""

    def __init__(self, targets: Sequence[str], start: int) -> None:
        parts = [urlsplit(target) for target in targets]
        self._conns = [Connection(part.hostname or "127.0.0.1", part.port or 80) for part in parts]
        super().__init__(self._conns[0].host, self._conns[0].port)
        self._next = start % len(self._conns)
        self.requests = 0

    async def request(
        self, method: str, target: str, *, body: bytes = b"", headers: Sequence[tuple[str, str]] = ()
    ) -> Response:
        conn = self._conns[self._next]
        self._next = (self._next + 1) % len(self._conns)
        self.requests += 1
        return await conn.request(method, target, body=body, headers=headers)

    async def close(self) -> None:
        for conn in self._conns:
            await conn.close()


class HubSink(PasscodeSink):
    """``PasscodeSink``'s ``expect`` fed by the orchestrator's hub instead of an SMTP server of its own."""

    def __init__(self, index: int, port: int) -> None:
        super().__init__()
        self.index, self.port = index, port
        self._reader_task: asyncio.Task[None] | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def start(self) -> None:
        reader, self._writer = await asyncio.open_connection(self.host, self.port)
        self._writer.write(f"{self.index}\n".encode())
        await self._writer.drain()
        self._reader_task = asyncio.create_task(self._read(reader))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        while line := await reader.readline():
            address, _, code = line.decode().strip().partition(" ")
            future = self._waiting.pop(address, None)
            if future is not None and not future.done():
                if code:
                    future.set_result(code)
                else:
                    future.set_exception(BenchError(f"no passcode in the mail to {address}"))

    async def stop(self) -> None:
        if self._reader_task is not None:
            self._reader_task.cancel()
        if self._writer is not None:
            self._writer.close()


class Client:
    def __init__(self, spec: ClientSpec, sink: HubSink) -> None:
        self.spec = spec
        self.passcode = SigninDriver("127.0.0.1", 0, spec.issuer, sink, scope=SCOPE)
        self.brokered = BrokeredDriver(spec.issuer, spec.idp) if spec.idp else None
        self.refresh_tokens: deque[str] = deque()
        self.count = 0

    def _address(self) -> str:
        self.count += 1
        return f"c{self.spec.index}-{self.spec.run_id}-{self.count}@{PASSCODE_DOMAIN}"

    async def window(self, run: Run) -> WindowResult:
        result = WindowResult(run.kind)
        started_cpu = time.process_time()
        deadline = time.perf_counter() + run.seconds
        budget = [run.max_ops]

        async def loop(number: int) -> None:
            gw = RoundRobin(self.spec.targets, start=number)
            idp = self.brokered.connections()[1] if self.brokered and run.kind == "oidc" else None
            try:
                while budget[0] > 0 and time.perf_counter() < deadline:
                    budget[0] -= 1
                    try:
                        await self._operation(run.kind, gw, idp, result)
                        result.ops += 1
                    except (BenchError, OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
                        result.errors.append(f"{run.kind}: {type(exc).__name__}: {exc}"[:400])
                        await gw.close()  # a fresh start for the next operation
            finally:
                result.requests += gw.requests
                await gw.close()
                if idp is not None:
                    await idp.close()

        await asyncio.gather(*(loop(number) for number in range(self.spec.concurrency)))
        result.cpu_seconds = time.process_time() - started_cpu
        return result

    async def _operation(
        self, kind: str, gw: RoundRobin, idp: Connection | None, result: WindowResult
    ) -> None:
        timed = result.latencies.setdefault(kind, [])
        started = time.perf_counter()
        if kind == "floor":
            response = await gw.request("GET", "/")
            if response.status != 200:
                raise BenchError(f"floor: {response.status}")
        elif kind == "passcode":
            signed = await self.passcode.sign_in(gw, self._address(), exchange=True)
            if signed.tokens is None or "refresh_token" not in signed.tokens:
                raise BenchError("passcode sign-in: no refresh token (offline_access was asked)")
            self.refresh_tokens.append(signed.tokens["refresh_token"])
        elif kind == "oidc":
            if self.brokered is None or idp is None:
                raise BenchError("oidc: no upstream IdP in this run")
            await self.brokered.sign_in(gw, idp, f"c{self.spec.index}+{self.count}@{IDP_DOMAIN}")
            self.count += 1
        elif kind == "token":
            await self._refresh_and_userinfo(gw, result)
        else:
            raise BenchError(f"unknown kind {kind!r}")
        timed.append(time.perf_counter() - started)

    async def _refresh_and_userinfo(self, gw: RoundRobin, result: WindowResult) -> None:
        started = time.perf_counter()
        access_token = await refresh_grant(gw, self.refresh_tokens)
        middle = time.perf_counter()
        await userinfo_call(gw, access_token)
        result.latencies.setdefault("refresh", []).append(middle - started)
        result.latencies.setdefault("userinfo", []).append(time.perf_counter() - middle)


async def refresh_grant(conn: Connection, pool: deque[str]) -> str:
    """A ``refresh_token`` grant with the oldest refresh token of ``pool``; the rotated one goes
    back to the pool. Returns the new access token."""
    if not pool:
        raise BenchError("token: no refresh token in the pool (run passcode sign-ins first)")
    form = urlencode({"grant_type": "refresh_token", "refresh_token": pool.popleft(), "client_id": "demo"})
    response = await conn.request(
        "POST", "/oauth2/token", body=form.encode(), headers=[("Content-Type", FORM)]
    )
    if response.status != 200:
        raise BenchError(f"refresh_token grant: {response.status} {response.body[:300]!r}")
    tokens = response.json()
    if "refresh_token" not in tokens or "access_token" not in tokens:
        raise BenchError(f"refresh_token grant: no rotated tokens in {response.body[:300]!r}")
    pool.append(tokens["refresh_token"])
    return str(tokens["access_token"])


async def userinfo_call(conn: Connection, access_token: str) -> None:
    info = await conn.request(
        "GET", "/oauth2/userinfo", headers=[("Authorization", f"Bearer {access_token}")]
    )
    if info.status != 200 or b'"sub"' not in info.body:
        raise BenchError(f"userinfo: {info.status} {info.body[:300]!r}")


async def _serve(spec: ClientSpec, pipe: Pipe) -> None:
    loop = asyncio.get_running_loop()
    sink = HubSink(spec.index, spec.hub_port)
    await sink.start()
    client = Client(spec, sink)
    try:
        while (run := await loop.run_in_executor(None, pipe.recv)) is not None:
            pipe.send(await client.window(run))
    finally:
        await sink.stop()


def client_main(spec: ClientSpec, pipe: Pipe) -> None:
    """The entry point of one load-generator process."""
    uvloop.run(_serve(spec, pipe))
