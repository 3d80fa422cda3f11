"""The scale-out load benchmark: a multi-process load generator against 1 and 2 replicas on Redis and SQLite.

Run from the repository root: ``.venv/bin/python bench/load.py [--quick] [--duration S] [--clients N]``
(see bench/README.md). For each target (``redis-1``: one ``gateway serve`` on Redis; ``redis-2``: two
on two ports sharing one ``redis-server``, every request of a sign-in sent to the next replica in
turn; ``sqlite-1`` / ``sqlite-w2``: the SQLite default with 1 and 2 workers) it starts the gateway(s)
(``tests/support/live_server.py``), the upstream test IdP in a process of its own
(``bench/brokered.py idp``) and N load-generator processes (``bench/load_client.py``), then measures,
kind after kind, in repeated windows: complete passcode sign-ins (each a new guest), complete
sign-ins through the upstream OIDC IdP, and refresh_token grants each followed by a userinfo call.

Printed per target and kind: operations and requests per second, the latency p50/p99, the CPU time
per operation of the gateway (all its processes, from ``/proc``), of Redis and of the load
generator; medians over the windows. Then the ratios 2 replicas / 1 replica (the gateway's CPU per
sign-in must not grow), SQLite / Redis, every request rate against the floor app
(``bench/floor_app.py``, driven by the same generator in the same run), and the memory one stored
SSO session costs in Redis (``bench/load_redis.py``; target <= 1 KiB).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make `bench` and `tests.support` importable
    sys.path.insert(0, str(ROOT))

import uvloop  # noqa: E402
from ruamel.yaml import YAML  # noqa: E402

from bench.brokered import CONNECTOR, gateway_overrides, upstream  # noqa: E402
from bench.load_client import ClientSpec, Run, WindowResult  # noqa: E402
from bench.load_generator import Generator, PasscodeHub  # noqa: E402
from bench.load_redis import SessionMemory, flush, redis_server, session_memory, used_memory  # noqa: E402
from bench.run import BENCH_OVERRIDES  # noqa: E402
from bench.signin_driver import percentile  # noqa: E402
from tests.support.gateway_app import merge  # noqa: E402
from tests.support.live_server import LiveServer, cpu_seconds, free_port, live_server, serving  # noqa: E402

HOST = "127.0.0.1"
GROWTH_TOLERANCE = 1.20  # 2 replicas / 1 replica CPU per sign-in above this: "GREW" (the machine is noisy)
KIND_NAMES = {"passcode": "passcode sign-in", "oidc": "OIDC sign-in", "token": "refresh + userinfo"}
LATENCY_NAMES = {"passcode": "sign-in", "oidc": "sign-in", "refresh": "refresh", "userinfo": "userinfo"}


@dataclass(frozen=True)
class Target:
    name: str
    title: str
    redis: bool
    replicas: int
    workers: int


TARGETS = {
    "redis-1": Target("redis-1", "1 replica on Redis", redis=True, replicas=1, workers=1),
    "redis-2": Target(
        "redis-2", "2 replicas on one Redis, requests alternating", redis=True, replicas=2, workers=1
    ),
    "sqlite-1": Target("sqlite-1", "SQLite default, 1 process", redis=False, replicas=1, workers=1),
    "sqlite-w2": Target("sqlite-w2", "SQLite default, --workers 2", redis=False, replicas=1, workers=2),
}


@dataclass(frozen=True)
class Options:
    targets: tuple[str, ...] = tuple(TARGETS)
    duration: float = 12.0  # seconds of measurement per kind and target, split into windows
    windows: int = 3
    clients: int = 2  # load-generator processes
    concurrency: int = 4  # concurrent loops in each process
    warm_seconds: float = 1.0

    @property
    def window_seconds(self) -> float:
        return self.duration / self.windows


QUICK = Options(targets=("redis-1", "redis-2"), duration=2.0, windows=2, warm_seconds=0.5)


@dataclass
class Window:
    ops: int
    requests: int
    wall: float
    cpu: dict[str, float]  # component -> CPU seconds during the window (gateway, redis, idp, generator)


@dataclass
class KindFigures:
    kind: str
    windows: list[Window] = field(default_factory=list)
    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @property
    def ops(self) -> int:
        return sum(w.ops for w in self.windows)

    def rate(self) -> float:
        return statistics.median(w.ops / w.wall for w in self.windows)

    def request_rate(self) -> float:
        return statistics.median(w.requests / w.wall for w in self.windows)

    def cpu_ms(self, component: str) -> float:
        """Median over the windows of ``component``'s CPU ms per operation (nan when none completed)."""
        per_op = [w.cpu[component] / w.ops * 1e3 for w in self.windows if w.ops and component in w.cpu]
        return statistics.median(per_op) if per_op else float("nan")


@dataclass
class TargetFigures:
    target: Target
    kinds: dict[str, KindFigures]
    memory_per_signin: float | None = None  # Redis used_memory growth per passcode sign-in, bytes
    sessions: SessionMemory | None = None


async def measure(
    generator: Generator, kind: str, options: Options, cpu: dict[str, Callable[[], float]]
) -> KindFigures:
    figures = KindFigures(kind)
    for _ in range(options.windows):
        before = {name: read() for name, read in cpu.items()}
        started = time.perf_counter()
        results = await generator.run(Run(kind, options.window_seconds))
        wall = time.perf_counter() - started
        used = {name: read() - before[name] for name, read in cpu.items()}
        used["generator"] = sum(r.cpu_seconds for r in results)
        figures.windows.append(
            Window(sum(r.ops for r in results), sum(r.requests for r in results), wall, used)
        )
        _collect(figures, results)
    return figures


def _collect(figures: KindFigures, results: Sequence[WindowResult]) -> None:
    for result in results:
        figures.errors.extend(result.errors)
        for name, values in result.latencies.items():
            figures.latencies.setdefault(name, []).extend(values)


def _specs(options: Options, targets: Sequence[str], issuer: str, hub: PasscodeHub, idp: str | None,
           first: int) -> list[ClientSpec]:  # fmt: skip
    run_id = secrets.token_hex(3)
    return [
        ClientSpec(first + n, tuple(targets), issuer, hub.hub_port, idp, options.concurrency, run_id)
        for n in range(options.clients)
    ]


class Bench:
    def __init__(self, options: Options, workdir: Path, hub: PasscodeHub) -> None:
        self.options, self.workdir, self.hub = options, workdir, hub
        self._next_index = 0

    def _generator(self, targets: Sequence[str], issuer: str, idp: str | None) -> Generator:
        specs = _specs(self.options, targets, issuer, self.hub, idp, self._next_index)
        self._next_index += len(specs)
        return Generator(specs)

    async def floor(self) -> KindFigures:
        port = free_port()
        argv = [sys.executable, str(ROOT / "bench" / "floor_app.py"), "--host", HOST, "--port", str(port)]
        with serving(
            argv, cwd=self.workdir, log_path=self.workdir / "floor.log", port=port, health_path="/"
        ) as p:
            generator = self._generator([f"http://{HOST}:{port}"], f"http://{HOST}:{port}", None)
            try:
                await self.hub.wait_for(generator.indices)
                await generator.run(Run("floor", self.options.warm_seconds))
                return await measure(
                    generator, "floor", self.options, {"gateway": lambda: cpu_seconds([p.pid])}
                )
            finally:
                generator.close()

    async def target(self, target: Target, redis: tuple[str, int] | None) -> TargetFigures:
        secret = secrets.token_urlsafe(24)
        idp_port = free_port()
        idp_issuer = f"http://{HOST}:{idp_port}"
        overrides: dict[str, Any] = merge(BENCH_OVERRIDES, gateway_overrides(idp_issuer, secret))
        if redis is not None:
            flush(redis[0])
            overrides["store"] = redis[0]
        workdir = self.workdir / target.name
        smtp = (self.hub.host, self.hub.port)
        with ExitStack() as stack:
            servers = [stack.enter_context(live_server(workdir / "a", smtp=smtp, workers=target.workers,
                                                       overrides=overrides))]  # fmt: skip
            if target.replicas == 2:  # the second replica: the first one's configuration, its own port
                config: dict[str, Any] = YAML(typ="safe", pure=True).load(servers[0].config_path.read_text())
                servers.append(stack.enter_context(live_server(workdir / "b", smtp=smtp, overrides=config)))
            issuer = servers[0].base_url
            idp = stack.enter_context(upstream(workdir, idp_port, f"{issuer}/callback/{CONNECTOR}", secret))
            generator = self._generator([s.base_url for s in servers], issuer, idp_issuer)
            stack.callback(generator.close)
            return await self._measure_target(target, servers, generator, idp.pid, redis)
        raise AssertionError("unreachable")  # ExitStack does not swallow exceptions

    async def _measure_target(
        self, target: Target, servers: list[LiveServer], generator: Generator, idp_pid: int,
        redis: tuple[str, int] | None,
    ) -> TargetFigures:  # fmt: skip
        await self.hub.wait_for(generator.indices)
        warm = self.options.warm_seconds
        await generator.run(Run("oidc", 60, max_ops=1), only=0)  # the partner guest's first sign-in, alone
        for kind in ("passcode", "oidc", "token"):  # every replica's caches, templates, pools
            await generator.run(Run(kind, warm))
        cpu: dict[str, Callable[[], float]] = {  # gateway: each tree at each reading (relays start late)
            "gateway": lambda: sum(server.cpu_seconds() for server in servers),
            "idp": lambda: cpu_seconds([idp_pid]),
        }
        if redis is not None:
            cpu["redis"] = lambda: cpu_seconds([redis[1]])
        kinds: dict[str, KindFigures] = {}
        memory_before = used_memory(redis[0]) if redis else 0
        kinds["passcode"] = await measure(generator, "passcode", self.options, cpu)
        growth = (used_memory(redis[0]) - memory_before) / max(kinds["passcode"].ops, 1) if redis else None
        kinds["oidc"] = await measure(generator, "oidc", self.options, cpu)
        kinds["token"] = await measure(generator, "token", self.options, cpu)
        sessions = session_memory(redis[0]) if redis else None
        return TargetFigures(target, kinds, growth, sessions)


def _ms(values: list[float], fraction: float) -> str:
    return f"{percentile(values, fraction) * 1e3:.1f}" if values else "-"


def target_lines(figures: TargetFigures, floor: KindFigures, options: Options) -> list[str]:
    target = figures.target
    lines = [
        f"== {target.name}: {target.title} ==",
        f"{'kind':<20}{'ops/s':>8}{'req/s':>8}{'vs floor':>9}  {'latency p50/p99 ms':<34}"
        f"{'CPU ms/op: gateway':>19}{'redis':>7}{'IdP':>6}{'gen':>6}  errors",
    ]
    for kind, kf in figures.kinds.items():
        labels = ["refresh", "userinfo"] if kind == "token" else [kind]
        timed = [(LATENCY_NAMES[label], kf.latencies.get(label, [])) for label in labels]
        latency = ", ".join(f"{name} {_ms(values, 0.5)}/{_ms(values, 0.99)}" for name, values in timed)
        redis_ms = f"{kf.cpu_ms('redis'):.2f}" if target.redis else "-"
        idp_ms = f"{kf.cpu_ms('idp'):.2f}" if kind == "oidc" else "-"
        ratio = kf.request_rate() / floor.request_rate() if kf.windows and floor.windows else float("nan")
        lines.append(
            f"{KIND_NAMES[kind]:<20}{kf.rate():>8.0f}{kf.request_rate():>8.0f}{ratio:>9.1%}  {latency:<34}"
            f"{kf.cpu_ms('gateway'):>19.2f}{redis_ms:>7}{idp_ms:>6}{kf.cpu_ms('generator'):>6.2f}  "
            f"{len(kf.errors)}{'  first: ' + kf.errors[0] if kf.errors else ''}"
        )
    if figures.memory_per_signin is not None:
        lines.append(f"Redis used_memory growth per passcode sign-in (guest, session, tokens, transaction, "
                     f"counters): {figures.memory_per_signin:.0f} B")  # fmt: skip
    if figures.sessions is not None:
        lines += ["memory per stored SSO session:", *(f"  {line}" for line in figures.sessions.lines())]
    return [*lines, ""]


def _ratio_line(label: str, numerator: float, denominator: float, unit: str, verdict: str = "") -> str:
    ratio = numerator / denominator if denominator else float("nan")
    return f"  {label:<44}{numerator:>9.2f} / {denominator:>9.2f} {unit:<10}= {ratio:5.2f}x{verdict}"


def comparison_lines(results: dict[str, TargetFigures]) -> list[str]:
    lines: list[str] = []
    pairs = [
        ("redis-2", "redis-1", "2 replicas / 1 replica"),
        ("sqlite-1", "redis-1", "SQLite / Redis (1 process)"),
        ("sqlite-w2", "sqlite-1", "SQLite --workers 2 / 1"),
    ]
    for top, bottom, title in pairs:
        if top not in results or bottom not in results:
            continue
        lines.append(f"== {title} ==")
        for kind in ("passcode", "oidc", "token"):
            a, b = results[top].kinds[kind], results[bottom].kinds[kind]
            growth = a.cpu_ms("gateway") / b.cpu_ms("gateway") if b.cpu_ms("gateway") else float("nan")
            verdict = ""
            if top == "redis-2" and kind in ("passcode", "oidc"):
                grew = not growth <= GROWTH_TOLERANCE
                verdict = f"  ({'GREW' if grew else 'ok: did not grow'}; tolerance {GROWTH_TOLERANCE:.2f}x)"
            lines.append(_ratio_line(f"gateway CPU per {KIND_NAMES[kind]}", a.cpu_ms("gateway"),
                                     b.cpu_ms("gateway"), "ms", verdict))  # fmt: skip
            lines.append(_ratio_line(f"{KIND_NAMES[kind]}s per second", a.rate(), b.rate(), "/s"))
        lines.append("")
    return lines


async def run(options: Options) -> tuple[dict[str, TargetFigures], list[str]]:
    """Measure every target of ``options``; the figures and the report's lines (also printed as they come)."""
    started = time.monotonic()
    lines: list[str] = []

    def emit(new: list[str]) -> None:
        lines.extend(new)
        print("\n".join(new), flush=True)

    cores = len(os.sched_getaffinity(0))
    emit([f"load benchmark: {options.clients} load-generator processes x {options.concurrency} loops; "
          f"{options.windows} windows of {options.window_seconds:.1f} s per kind; figures are medians of "
          f"the windows.", f"NOTE: this machine has {cores} cores, shared by the gateway(s), Redis, the "
          "upstream IdP and the load generator (and other work): absolute figures are noisy; compare the "
          "ratios measured in this run.", ""])  # fmt: skip
    results: dict[str, TargetFigures] = {}
    hub = PasscodeHub()
    await hub.start()
    try:
        with tempfile.TemporaryDirectory(prefix="gateway-load-") as tmp, ExitStack() as stack:
            bench = Bench(options, Path(tmp), hub)
            redis = None
            if any(TARGETS[name].redis for name in options.targets):
                redis = stack.enter_context(redis_server(Path(tmp) / "redis"))
            floor = await bench.floor()
            emit([f"floor (bench/floor_app.py, 1 process, GET / by the same generator): "
                  f"{floor.request_rate():.0f} req/s, p50 {_ms(floor.latencies['floor'], 0.5)} ms"
                  ])  # fmt: skip
            for name in options.targets:
                target = TARGETS[name]
                results[name] = await bench.target(target, redis if target.redis else None)
                emit(target_lines(results[name], floor, options))
            after = await bench.floor()
            emit([f"floor again after the targets: {after.request_rate():.0f} req/s", ""])
            emit(comparison_lines(results))
    finally:
        await hub.stop()
    took = time.monotonic() - started
    emit([f"(run took {took:.0f} s; mail hub: {hub.received} mails, {hub.unrouted} unrouted)"])
    return results, lines


def errors_of(results: dict[str, TargetFigures]) -> int:
    return sum(len(kf.errors) for figures in results.values() for kf in figures.kinds.values())


def parse(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description="Scale-out load benchmark (see bench/README.md).")
    parser.add_argument("--quick", action="store_true", help="a smoke run of about 30-40 s")
    parser.add_argument("--duration", type=float, help="seconds measured per kind and target (default 12)")
    parser.add_argument("--windows", type=int, help="windows the duration is split into (default 3)")
    parser.add_argument("--clients", type=int, help="load-generator processes (default 2)")
    parser.add_argument("--concurrency", type=int, help="concurrent loops per process (default 4)")
    parser.add_argument(
        "--targets", help=f"comma-separated, of {', '.join(TARGETS)} (default: all; --quick: redis-1,redis-2)"
    )
    args = parser.parse_args(argv)
    options = QUICK if args.quick else Options()
    changes: dict[str, Any] = {}
    for name in ("duration", "windows", "clients", "concurrency"):
        value = getattr(args, name)
        if value is not None:
            if value <= 0:
                parser.error(f"--{name}: must be positive, not {value}")
            changes[name] = value
    if args.targets is not None:
        names = tuple(part.strip() for part in args.targets.split(",") if part.strip())
        unknown = [name for name in names if name not in TARGETS]
        if unknown or not names:
            parser.error(f"--targets: {', '.join(unknown) or 'none given'}: choose from {', '.join(TARGETS)}")
        changes["targets"] = names
    return dataclasses.replace(options, **changes)


def cli(argv: Sequence[str] | None = None) -> int:
    options = parse(argv)
    results, _ = uvloop.run(run(options))
    failures = errors_of(results)
    if failures:
        print(f"load: {failures} operations failed (see 'first:' above)", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(cli())
