"""The gateway's load benchmark: one run measures the floor and the gateway at 1 and 2 workers.

Run from the repository root: ``.venv/bin/python bench/run.py [--quick] [--workers 1,2]``
(``make bench``). For each worker count it starts, one after the other, the floor (a bare
Starlette JSON endpoint, ``bench/floor_app.py``) and the gateway (``python -m gateway serve``),
both on uvicorn with uvloop and ``gateway.http_protocol``, no access log; the gateway with a
SQLite store in a temporary directory, mail to an SMTP sink in this process and passcode limits
raised. Then it measures:

- with ``wrk``: the floor, discovery and userinfo (a real access token from one sign-in);
- with the lean client (``bench/signin_driver.py``): the token endpoint's code exchange, over
  codes obtained by signing in first, and complete passcode sign-ins (authorize, answered with the
  email page -> email, answered with the passcode page -> passcode from the sink -> passcode -> code
  -> token exchange), each by a new guest (so each signs up too), then by the same guests again
  (returning: nothing to sign up). The target applies to the first.

It prints req/s, p50 and p99 per endpoint, each as a ratio to the floor, the gateway's CPU time
per request (from ``/proc``: robust on a noisy shared machine), sign-ins per second and the
gateway's CPU time per complete sign-in, with the targets beside them.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make `bench` and `tests.support` importable
    sys.path.insert(0, str(ROOT))

import uvloop  # noqa: E402

from bench.signin_driver import (  # noqa: E402
    Connection,
    PasscodeSink,
    SignedIn,
    SigninDriver,
    percentile,
    run_concurrently,
)
from tests.support.live_server import (  # noqa: E402
    LiveServer,
    free_port,
    live_server,
    serving,
    tree_cpu_seconds,
)

BENCH_OVERRIDES: dict[str, Any] = {
    "passcode": {"resend_interval_seconds": 0, "max_sends_per_address_per_hour": 1_000_000},
    "limits": {
        "passcode_sends_per_ip_per_hour": 1_000_000_000,
        "signin_failures_per_ip_per_hour": 1_000_000_000,
        "signin_failures_per_address_per_hour": 1_000_000_000,
        "token_requests_per_client_per_minute": 1_000_000_000,
    },
    "tokens": {"authorization_code_seconds": 600},
}
TARGETS = {"discovery": 0.50, "userinfo": 0.25}
CPU_TARGET_MS = 3.0
# GET authorize (answered with the email page), POST email (the passcode page), POST passcode, POST token
REQUESTS_PER_SIGNIN = 4
ENTRY_FRAMES = ("(gateway/cli.py:61)", "(gateway/cli.py:162)", "(gateway/__main__.py:5)")
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


@dataclass
class Mode:
    duration: int  # seconds per wrk run
    connections: int
    codes: int  # codes harvested for the exchange measurement
    signins: int  # complete sign-ins measured
    concurrency: int  # concurrent sign-ins / exchanges of the lean client
    steps: int  # sign-ins one at a time, for the cost of each step
    seconds: float  # at most this long for each sign-in loop (codes, sign-ins, steps)
    rounds: int  # sign-in rounds (new guests, then the same guests again); medians are printed


FULL = Mode(
    duration=8, connections=64, codes=1500, signins=800, concurrency=8, steps=200, seconds=12, rounds=5
)
QUICK = Mode(duration=2, connections=32, codes=100, signins=60, concurrency=4, steps=20, seconds=4, rounds=1)


@dataclass
class Figure:
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_us: float | None = None  # gateway CPU per request
    errors: int = 0
    note: str = ""


def wrk(url: str, mode: Mode, cpu: Callable[[], float], name: str, headers: tuple[str, ...] = ()) -> Figure:
    argv = ["wrk", "-t2", f"-c{mode.connections}", f"-d{mode.duration}s", "--latency"]
    for header in headers:
        argv += ["-H", header]
    before = cpu()
    output = subprocess.run([*argv, url], capture_output=True, text=True, check=True).stdout
    used = cpu() - before
    rps = float(_match(r"Requests/sec:\s+([\d.]+)", output))
    total = int(_match(r"(\d+) requests in", output))
    errors = int(_match(r"Non-2xx or 3xx responses: (\d+)", output)) if "Non-2xx" in output else 0
    socket_errors = re.search(r"Socket errors:.*", output)
    return Figure(
        name, rps, _latency(output, "50%"), _latency(output, "99%"), used / max(total, 1) * 1e6, errors,
        socket_errors.group(0) if socket_errors else "",
    )  # fmt: skip


def _match(pattern: str, text: str) -> str:
    found = re.search(pattern, text)
    if found is None:
        raise RuntimeError(f"unexpected wrk output (no {pattern!r}):\n{text}")
    return found.group(1)


def _latency(output: str, which: str) -> float:
    value, unit = re.search(rf"^\s+{which}\s+([\d.]+)(us|ms|s|m)\s*$", output, re.M).groups()  # type: ignore[union-attr]
    return float(value) * UNITS[unit]


def floor(mode: Mode, workers: int, workdir: Path) -> Figure:
    port = free_port()
    argv = [sys.executable, str(ROOT / "bench" / "floor_app.py"), "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(workers)]  # fmt: skip
    with serving(argv, cwd=workdir, log_path=workdir / f"floor-{workers}.log", port=port, workers=workers,
                 health_path="/") as process:  # fmt: skip
        return wrk(
            f"http://127.0.0.1:{port}/", mode, lambda: tree_cpu_seconds(process.pid), "floor (Starlette JSON)"
        )


@dataclass
class SigninFigures:
    count: int
    wall: float
    cpu_ms: float
    latencies: list[float]


@dataclass
class GatewayFigures:
    endpoints: list[Figure]
    signins: list[SigninFigures]  # a round each, new guests
    returning: list[SigninFigures]  # the same guests signing in again, a round each: no sign-up
    steps: list[tuple[str, float, float]]  # (step, gateway CPU ms, wall ms) per sign-in, one at a time
    profile: list[str]


async def measure_gateway(
    mode: Mode, workers: int, workdir: Path, sink: PasscodeSink, profile_dir: Path | None
) -> GatewayFigures:
    with live_server(workdir, smtp=(sink.host, sink.port), workers=workers, overrides=BENCH_OVERRIDES) as gw:
        driver = SigninDriver("127.0.0.1", gw.port, gw.base_url, sink)
        run = f"w{workers}-{int(time.time())}"
        # warm every worker (templates, key cache) and get an access token for userinfo
        warm, _ = await _signins(driver, 4 * workers, mode.concurrency, f"warm-{run}", exchange=True)
        assert warm[0].tokens is not None
        cpu = gw.cpu_seconds  # the tree at each reading: a worker's mail relay may start later

        bearer = (f"Authorization: Bearer {warm[0].tokens['access_token']}",)
        discovery = f"{gw.base_url}/.well-known/openid-configuration"
        endpoints = [
            await asyncio.to_thread(wrk, discovery, mode, cpu, "discovery"),
            await asyncio.to_thread(wrk, f"{gw.base_url}/oauth2/userinfo", mode, cpu, "userinfo", bearer),
            await _exchanges(driver, cpu, mode, run),
        ]
        spy = _start_profiler(gw, profile_dir / f"signin-w{workers}.txt") if profile_dir else None
        signins: list[SigninFigures] = []
        returning: list[SigninFigures] = []
        for round_ in range(mode.rounds):
            prefix = f"signin-{run}-{round_}"
            signins.append(await _measured(driver, cpu, mode.signins, mode.concurrency, prefix, mode.seconds))
            # the same addresses again: each guest exists, so nothing is signed up
            returning.append(await _measured(driver, cpu, signins[-1].count, mode.concurrency, prefix, None))
        profile = _stop_profiler(*spy) if spy else []
        steps = await _steps(driver, cpu, mode.steps, run, mode.seconds / 2)
        return GatewayFigures(endpoints, signins, returning, steps, profile)


async def _measured(
    driver: SigninDriver,
    cpu: Callable[[], float],
    count: int,
    concurrency: int,
    prefix: str,
    seconds: float | None,
) -> SigninFigures:
    """Complete sign-ins of ``prefix``'s addresses and the gateway's CPU per sign-in."""
    before = cpu()
    done, wall = await _signins(driver, count, concurrency, prefix, exchange=True, seconds=seconds)
    used = cpu() - before
    return SigninFigures(len(done), wall, used / len(done) * 1e3, [s.seconds for s in done])


async def _signins(
    driver: SigninDriver,
    count: int,
    concurrency: int,
    prefix: str,
    *,
    exchange: bool,
    seconds: float | None = None,
) -> tuple[list[SignedIn], float]:
    done: list[SignedIn] = []

    async def job(conn: Connection, index: int) -> float:
        signed = await driver.sign_in(conn, f"{prefix}-{index}@fabrikam.example", exchange=exchange)
        done.append(signed)
        return signed.seconds

    _, wall = await run_concurrently(count, concurrency, driver, job, seconds=seconds)
    return done, wall


async def _exchanges(driver: SigninDriver, cpu: Callable[[], float], mode: Mode, run: str) -> Figure:
    codes, _ = await _signins(
        driver, mode.codes, mode.concurrency, f"codes-{run}", exchange=False, seconds=mode.seconds
    )

    async def job(conn: Connection, index: int) -> float:
        started = time.perf_counter()
        await driver.exchange(conn, codes[index].code, codes[index].verifier)
        return time.perf_counter() - started

    before = cpu()
    latencies, wall = await run_concurrently(len(codes), 2 * mode.concurrency, driver, job)
    used = cpu() - before
    return Figure("token (code exchange)", len(latencies) / wall, percentile(latencies, 0.5) * 1e3,
                  percentile(latencies, 0.99) * 1e3, used / len(latencies) * 1e6,
                  note=f"lean client, {2 * mode.concurrency} conns")  # fmt: skip


async def _steps(
    driver: SigninDriver, cpu: Callable[[], float], count: int, run: str, seconds: float
) -> list[tuple[str, float, float]]:
    """Sign-ins one at a time, the gateway's CPU and the wall time split by step (averages)."""
    totals: dict[str, list[float]] = {}
    mark = [0.0, 0.0]

    def on_step(name: str) -> None:
        now, clock = cpu(), time.perf_counter()
        total = totals.setdefault(name, [0.0, 0.0])
        total[0] += now - mark[0]
        total[1] += clock - mark[1]
        mark[:] = [now, clock]

    conn = driver.connection()
    try:
        for index in range(count):
            mark[:] = [cpu(), time.perf_counter()]
            await driver.sign_in(
                conn, f"steps-{run}-{index}@fabrikam.example", exchange=True, on_step=on_step
            )
    finally:
        await conn.close()
    return [(name, used / count * 1e3, wall / count * 1e3) for name, (used, wall) in totals.items()]


def _start_profiler(gw: LiveServer, output: Path) -> tuple[subprocess.Popen[bytes], Path]:
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    output.parent.mkdir(parents=True, exist_ok=True)
    argv = [spy, "record", "--pid", str(gw.process.pid), "--subprocesses", "--rate", "250",
            "--nonblocking", "--format", "raw", "--output", str(output)]  # fmt: skip
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.0)  # py-spy attaches
    if process.poll() is not None:
        raise SystemExit(f"bench: py-spy failed: {process.stderr.read().decode() if process.stderr else ''}")
    return process, output


def _stop_profiler(process: subprocess.Popen[bytes], output: Path, top: int = 15) -> list[str]:
    """Stop py-spy and summarise its collapsed stacks: top frames by own and by inclusive samples."""
    process.send_signal(signal.SIGINT)
    process.wait(timeout=30)
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in output.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [frame for frame in stack.split(";") if not frame.startswith(("process ", "thread "))]
        if not frames or not count.isdigit():
            continue
        total += int(count)
        own[frames[-1]] += int(count)
        for frame in set(frames):
            if ("gateway/" in frame or "idp_connectors/" in frame) and not frame.endswith(ENTRY_FRAMES):
                inclusive[frame] += int(count)
    lines = [
        f"profile of the sign-in phase ({total} samples of busy threads; stacks: {output}):",
        "  own time:",
    ]
    lines += [f"    {n / total:6.1%}  {frame}" for frame, n in own.most_common(top)]
    lines.append("  inclusive, gateway code:")
    lines += [f"    {n / total:6.1%}  {frame}" for frame, n in inclusive.most_common(top)]
    return lines


def _spread(rounds: list[SigninFigures]) -> str:
    """The rounds' CPU per sign-in, in the order they ran."""
    return f"{len(rounds)} round(s) ({', '.join(f'{r.cpu_ms:.2f}' for r in rounds)})"


def report(workers: int, base: Figure, gateway: GatewayFigures) -> list[str]:
    lines = [
        f"== gateway with {workers} worker(s) ==",
        f"{'endpoint':<24}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'vs floor':>10}{'CPU us/req':>12}  target",
    ]
    for figure in [base, *gateway.endpoints]:
        ratio = figure.rps / base.rps
        target = TARGETS.get(figure.name)
        verdict = "" if target is None else f">= {target:.0%} {'ok' if ratio >= target else 'MISSED'}"
        notes = [n for n in (figure.note, f"{figure.errors} non-2xx!" if figure.errors else "") if n]
        cpu = f"{figure.cpu_us:.0f}" if figure.cpu_us is not None else "-"
        lines.append(
            f"{figure.name:<24}{figure.rps:>10.0f}{figure.p50_ms:>9.2f}{figure.p99_ms:>9.2f}"
            f"{ratio:>9.0%} {cpu:>12}  {verdict}{'  (' + '; '.join(notes) + ')' if notes else ''}"
        )
    rounds = gateway.signins
    cpu_ms = statistics.median(r.cpu_ms for r in rounds)
    per_second = statistics.median(r.count / r.wall for r in rounds)
    latencies = [latency for r in rounds for latency in r.latencies]
    verdict = f"target <= {CPU_TARGET_MS:g} ms: {'ok' if cpu_ms <= CPU_TARGET_MS else 'MISSED'}"
    p50, p99 = percentile(latencies, 0.5) * 1e3, percentile(latencies, 0.99) * 1e3
    share = REQUESTS_PER_SIGNIN * per_second / base.rps
    in_floor = f"; {cpu_ms * 1e3 / base.cpu_us:.0f}x the floor's CPU a request" if base.cpu_us else ""
    again = gateway.returning
    lines += [
        f"passcode sign-in: {len(rounds)} round(s) of {rounds[0].count} complete sign-ins "
        f"({REQUESTS_PER_SIGNIN} requests each, a new guest each): median {per_second:.0f} sign-ins/s "
        f"({share:.1%} of the floor's req/s); latency p50 {p50:.1f} ms, p99 {p99:.1f} ms",
        f"gateway CPU per complete sign-in: median {cpu_ms:.2f} ms of {_spread(rounds)} "
        f"({verdict}{in_floor})",
        f"  the same guests again (returning, no sign-up): median "
        f"{statistics.median(r.cpu_ms for r in again):.2f} ms of {_spread(again)}, "
        f"{statistics.median(r.count / r.wall for r in again):.0f} sign-ins/s",
        "  one at a time, by step:    gateway CPU ms   wall ms",
    ]
    lines += [f"    {name:<26}{used:>12.2f}{wall:>10.2f}" for name, used, wall in gateway.steps]
    return [*lines, *gateway.profile, ""]


async def main(mode: Mode, worker_counts: list[int], profile_dir: Path | None) -> int:
    sink = PasscodeSink()
    await sink.start()
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="gateway-bench-") as tmp:
            for workers in worker_counts:
                before = await asyncio.to_thread(floor, mode, workers, Path(tmp))
                gateway = await measure_gateway(mode, workers, Path(tmp) / f"gw-{workers}", sink, profile_dir)
                after = await asyncio.to_thread(floor, mode, workers, Path(tmp))
                base = max(before, after, key=lambda figure: figure.rps)  # the less disturbed run
                base.note = f"best of {before.rps:.0f} before, {after.rps:.0f} after"
                print("\n".join(report(workers, base, gateway)), flush=True)
    finally:
        await sink.stop()
    print(f"(run took {time.monotonic() - started:.0f} s; wrk -t2 -c{mode.connections} -d{mode.duration}s; "
          f"lean client concurrency {mode.concurrency}; {len(os.sched_getaffinity(0))} cores; "
          f"{interpreter()})")  # fmt: skip
    return 0


def interpreter() -> str:
    """The Python the gateway ran on (``live_server`` starts it with this process's executable):
    its build moves every CPU figure (bench/README.md, "Ninth round": a PGO+LTO build used 0.84x
    the CPU a sign-in of a plain one), so a run's figures are only comparable on the same one."""
    executable = os.path.realpath(sys.executable)
    return f"{platform.python_implementation()} {platform.python_version()} at {executable}"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="The gateway's load benchmark (see bench/README.md).")
    parser.add_argument("--quick", action="store_true", help="a fast smoke run: short wrk runs, few sign-ins")
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts (default: 1,2)")
    parser.add_argument("--signins", type=int, help="complete sign-ins a round (default: by mode)")
    parser.add_argument("--rounds", type=int, help="sign-in rounds, medians printed (default: by mode)")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="profile the sign-in phase with py-spy, raw stacks into DIR")  # fmt: skip
    args = parser.parse_args(argv)
    try:
        args.worker_counts = [int(part) for part in args.workers.split(",")]
    except ValueError:
        parser.error(f"--workers: comma-separated whole numbers, not {args.workers!r}")
    if not args.worker_counts or any(n < 1 for n in args.worker_counts):
        parser.error("--workers: each count must be at least 1")
    if args.signins is not None and args.signins < 1:
        parser.error("--signins: must be at least 1")
    if args.rounds is not None and args.rounds < 1:
        parser.error("--rounds: must be at least 1")
    return args


def cli(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if shutil.which("wrk") is None:
        print("bench: wrk is missing: `make bench` installs it (or `apt-get install wrk`)", file=sys.stderr)
        return 1
    if args.profile and not (shutil.which("py-spy") or Path(sys.executable).with_name("py-spy").exists()):
        print("bench: --profile needs py-spy: `.venv/bin/pip install py-spy`", file=sys.stderr)
        return 1
    mode = QUICK if args.quick else FULL
    if args.signins:
        mode = dataclasses.replace(mode, signins=args.signins)
    if args.rounds:
        mode = dataclasses.replace(mode, rounds=args.rounds)
    return uvloop.run(main(mode, args.worker_counts, args.profile))


if __name__ == "__main__":
    raise SystemExit(cli())
