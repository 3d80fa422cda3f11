"""The runs of the instructions benchmark: gateway replicas under callgrind, a prepared store, a workload.

``Runner.run(name, plan, replicas)`` restores the prepared store (SQLite: a copy of the prepared
``var/``; Redis: ``FLUSHALL`` and ``RESTORE`` of every key the preparation left), starts
``replicas`` ``gateway serve`` processes (one worker each; the second with the first one's
configuration on its own port, both on the same store), each under
``valgrind --tool=callgrind`` with its own output file and instrumentation off (start-up is
neither counted nor slowed much), switches instrumentation on in each once all are ready, and in
each process they start (a worker's mail relay, ``--trace-children=yes``) once it has connected to
the SMTP sink (its start-up over; one message, or two, delivered uncounted in every run alike),
drives ``plan`` through them and stops them; it returns each replica's instruction total (its
process and its relay) and the seconds from that switch to its exit (``RunTotals``).

The workload (``drive``): ``plan.signins`` complete passcode sign-ins (a new guest each,
``offline_access``, so each yields a refresh token for the pool), then ``plan.tokens``
operations of a ``refresh_token`` grant (the rotated token goes back to the pool) followed by a
``userinfo`` call with the new access token, as ``bench/load_client.py``'s ``token`` kind. Each
of ``plan.concurrency`` loops sends its requests through a ``RoundRobin`` connection: with two
replicas, consecutive requests of one sign-in go to alternate replicas. Addresses are the same in
every run (``guest-00001@...``), so runs from the same store state do the same work.

With ``keep``, every callgrind output file is copied there, named
``<run name>-<replica index>.<pid>.callgrind``, for ``callgrind_annotate``.

``Runner.prepare`` makes the store state every run starts from: one native (not under callgrind)
start and stop of the gateway, which creates the schema, the signing keys and the pairwise salt
(making keys costs a random number of instructions, so no measured run may do it).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Coroutine, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from ruamel.yaml import YAML

from bench.instructions_figures import RunTotals, callgrind_total
from bench.load_client import SCOPE, RoundRobin, refresh_grant, userinfo_call
from bench.run import BENCH_OVERRIDES
from bench.signin_driver import BenchError, PasscodeSink, SigninDriver
from tests.support.live_server import LiveServer, live_server

START_TIMEOUT = 600.0  # seconds: a gateway under callgrind starts ~50x slower
# A fixed secret, so that the store prepared once (keys sealed with it) serves every run.
OVERRIDES: dict[str, Any] = {**BENCH_OVERRIDES, "secrets": {"key": "bench-instructions-" + "k" * 40}}
Snapshot = list[tuple[bytes, int, bytes]]  # (key, milliseconds to live or 0, DUMP value)


@dataclass(frozen=True)
class Plan:
    """What one run does: passcode sign-ins, then token operations (``concurrency`` at a time), then
    ``idle_seconds`` of nothing."""

    signins: int
    tokens: int = 0
    idle_seconds: float = 0.0
    concurrency: int = 4


def snapshot(url: str) -> Snapshot:
    """Every key of the Redis database with its time to live and ``DUMP`` value."""
    saved: Snapshot = []
    with redis.Redis.from_url(url) as client:
        for key in client.scan_iter(count=1000):
            value, ttl = client.dump(key), int(client.pttl(key))
            if value is not None and ttl != -2:  # -2: expired between the scan and now
                saved.append((key, max(ttl, 0), value))
    return saved


def restore(url: str, saved: Snapshot) -> None:
    """``FLUSHALL``, then the keys of ``saved`` as they were."""
    with redis.Redis.from_url(url) as client:
        client.flushall()
        for key, ttl, value in saved:
            client.restore(key, ttl, value)


def _wrapper(folder: Path, stem: str) -> str:
    """An executable that runs the venv's Python under callgrind, its children too (the worker's mail
    relay), each writing ``<stem>.<pid>.callgrind``; they start with instrumentation off
    (``instrument`` turns it on), so start-up runs several times faster."""
    script = folder / f"python-{stem}"
    script.write_text(
        "#!/bin/sh\nexec valgrind --tool=callgrind --instr-atstart=no --trace-children=yes "
        f'--callgrind-out-file={folder / stem}.%p.callgrind {sys.executable} "$@"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


def instrument(pid: int) -> None:
    """Turn callgrind's instrumentation on in process ``pid`` (``vgdb --pid``: that process only; a
    ``callgrind_control`` without a matching pid would switch every callgrind run of the machine)."""
    done = subprocess.run(
        ["vgdb", f"--pid={pid}", "instrumentation", "on"], capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        raise RuntimeError(f"vgdb could not turn instrumentation on in process {pid}: {done.stderr.strip()}")


def _sockets_to(port: int) -> set[str]:
    """The inodes of this machine's TCP connections to local port ``port`` (``/proc/net/tcp``)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[2].rsplit(":", 1)[1], 16) == port:  # rem_address is ADDR:PORT in hex
            found.add(f"socket:[{fields[9]}]")
    return found


def _has_connected(pid: int, sockets: set[str]) -> bool:
    try:
        return any(os.readlink(f"/proc/{pid}/fd/{fd}") in sockets for fd in os.listdir(f"/proc/{pid}/fd"))
    except (FileNotFoundError, PermissionError):
        return False


async def instrument_children(servers: Sequence[LiveServer], smtp_port: int, done: set[int]) -> None:
    """Turn instrumentation on in every process the servers start (a worker's mail relay) once it
    has connected to the SMTP sink: its start-up is over (imports, which run for a time that varies
    under valgrind, are not counted) and it delivers from then on; until cancelled."""
    while True:
        for server in servers:
            waiting = [pid for pid in server.pids()[1:] if pid not in done]
            sockets = _sockets_to(smtp_port) if waiting else set()
            for pid in waiting:
                if _has_connected(pid, sockets):
                    try:
                        await asyncio.to_thread(instrument, pid)
                    except (RuntimeError, subprocess.TimeoutExpired):
                        continue  # still starting under valgrind: the next round
                    done.add(pid)
        await asyncio.sleep(0.1)


@contextmanager
def _python(executable: str) -> Iterator[None]:
    """``live_server`` starts ``sys.executable -m gateway serve``: point it at ``executable`` meanwhile."""
    real = sys.executable
    sys.executable = executable
    try:
        yield
    finally:
        sys.executable = real


Job = Callable[[RoundRobin, int], Coroutine[Any, Any, None]]


async def _concurrently(count: int, concurrency: int, targets: list[str], job: Job) -> None:
    """``job(conn, i)`` for i in range(count), ``concurrency`` at a time, loop n starting at replica n."""
    indices = iter(range(count))

    async def loop(number: int) -> None:
        conn = RoundRobin(targets, start=number)
        try:
            for index in indices:
                await job(conn, index)
        finally:
            await conn.close()

    await asyncio.gather(*(loop(number) for number in range(min(concurrency, count))))


async def _refresh_and_userinfo(conn: RoundRobin, pool: deque[str]) -> None:
    await userinfo_call(conn, await refresh_grant(conn, pool))


async def drive(plan: Plan, targets: list[str], issuer: str, sink: PasscodeSink) -> None:
    """The workload of ``plan`` against ``targets`` (see the module docstring)."""
    driver = SigninDriver("127.0.0.1", 0, issuer, sink, scope=SCOPE)
    pool: deque[str] = deque()

    async def passcode(conn: RoundRobin, index: int) -> None:
        signed = await driver.sign_in(conn, f"guest-{index:05d}@fabrikam.example", exchange=True)
        if signed.tokens is None or "refresh_token" not in signed.tokens:
            raise BenchError("passcode sign-in: no refresh token (offline_access was asked)")
        pool.append(signed.tokens["refresh_token"])

    async def token(conn: RoundRobin, index: int) -> None:
        await _refresh_and_userinfo(conn, pool)

    await _concurrently(plan.signins, plan.concurrency, targets, passcode)
    await _concurrently(plan.tokens, plan.concurrency, targets, token)
    await asyncio.sleep(plan.idle_seconds)


class Runner:
    """Runs under callgrind from one prepared store (``redis_url`` None: SQLite); see the module docstring."""

    def __init__(
        self, base: Path, sink: PasscodeSink, redis_url: str | None, keep: Path | None = None
    ) -> None:
        self.base, self.sink, self.redis_url, self.keep = base, sink, redis_url, keep
        self.overrides: dict[str, Any] = dict(OVERRIDES)
        if redis_url is not None:
            self.overrides["store"] = redis_url
        self._prepared = base / "prepared"
        self._saved: Snapshot = []

    def prepare(self) -> None:
        """One native start and stop of the gateway on an empty store; keep what it made."""
        if self.redis_url is not None:
            restore(self.redis_url, [])
        with live_server(self._prepared, smtp=(self.sink.host, self.sink.port), overrides=self.overrides):
            pass
        if self.redis_url is not None:
            self._saved = snapshot(self.redis_url)

    def _restore(self, workdir: Path) -> None:
        if self.redis_url is None:
            shutil.copytree(self._prepared / "var", workdir / "var")
        else:
            restore(self.redis_url, self._saved)

    async def run(self, name: str, plan: Plan, replicas: int) -> RunTotals:
        """One run of ``plan`` through ``replicas`` gateway processes under callgrind."""
        if replicas > 1 and self.redis_url is None:
            raise ValueError("several replicas need a shared store: use Redis")
        stems = [f"{name}-{index}" for index in range(replicas)]
        starts, ends = [0.0] * replicas, [0.0] * replicas
        smtp = (self.sink.host, self.sink.port)

        def ended(index: int) -> None:
            ends[index] = time.monotonic()

        stack = ExitStack()
        try:
            servers: list[LiveServer] = []
            for index, stem in enumerate(stems):
                workdir = self.base / name / f"replica-{index}"
                if index == 0:
                    self._restore(workdir)
                    overrides = self.overrides
                else:  # the first one's configuration (issuer, redirect URIs, secret, store), its own port
                    overrides = YAML(typ="safe", pure=True).load(servers[0].config_path.read_text())
                stack.callback(ended, index)  # registered before its server: runs after that server stopped
                with _python(_wrapper(self.base, stem)):
                    servers.append(stack.enter_context(
                        live_server(workdir, smtp=smtp, overrides=overrides, timeout=START_TIMEOUT)
                    ))  # fmt: skip
            instrumented = {server.process.pid for server in servers}
            for index, server in enumerate(servers):  # every one started: count from here on
                instrument(server.process.pid)
                starts[index] = time.monotonic()
            children = asyncio.create_task(instrument_children(servers, self.sink.port, instrumented))
            try:
                await drive(plan, [server.base_url for server in servers], servers[0].base_url, self.sink)
                await asyncio.sleep(1.0)  # let the last mail go before the servers stop
            finally:
                children.cancel()
        finally:  # stopped off the loop, which serves the SMTP sink: each relay's QUIT is answered, so
            await asyncio.to_thread(stack.close)  # it exits (and writes its callgrind file) at once
        outputs = [sorted(self.base.glob(f"{stem}.*.callgrind")) for stem in stems]  # process + relay
        totals = tuple(sum(callgrind_total(o.read_text(), o.name) for o in files) for files in outputs)
        if self.keep is not None:  # for callgrind_annotate: where the instructions went
            self.keep.mkdir(parents=True, exist_ok=True)
            for output in (o for files in outputs for o in files):
                shutil.copy2(output, self.keep / output.name)
        return RunTotals(totals, tuple(end - start for start, end in zip(starts, ends, strict=True)))
