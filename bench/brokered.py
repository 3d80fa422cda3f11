"""Brokered sign-in benchmark: the gateway's CPU per complete sign-in through an upstream OIDC IdP.

Run from the repository root: ``.venv/bin/python bench/brokered.py [--quick] [--workers 1,2]
[--profile DIR]``. For each worker count it starts the real gateway (``python -m gateway serve``,
SQLite store in a temporary directory) with an ``oidc`` connector ``partner-a`` and a partner
entry for ``partner-a.example``, and the test IdP (``tests/support/oidc_idp.py``, auto-approve,
ES256) in a process of its own (``bench/brokered.py idp``), so its CPU is not the gateway's.

One brokered sign-in, driven by the lean HTTP/1.1 client of ``bench/signin_driver.py``, one
gateway connection and one IdP connection per concurrent loop, a fresh cookie jar each time:
GET /oauth2/authorize (answered with the email page) -> POST the email -> GET /signin/{id}/upstream (the
continuation page) -> GET the IdP's /authorize (auto-approve: a redirect) -> GET /callback/partner-a
(the gateway redeems the upstream code at the IdP's token endpoint and checks the ID token) ->
the code -> POST /oauth2/token. The IdP knows one user, so after the warm-up every sign-in is a
returning guest, found by (issuer, subject).

Printed per worker count: sign-ins per second, latency, the gateway's CPU time per complete
sign-in (user + system of the server and its workers, from ``/proc``) beside the target
(<= 5 ms), the IdP's and the driver's CPU for context, and the gateway's CPU by step (sign-ins
one at a time). ``--profile DIR`` samples the gateway with py-spy during the measured phase.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import html
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make `bench` and `tests.support` importable
    sys.path.insert(0, str(ROOT))

import uvloop  # noqa: E402

from bench.signin_driver import BenchError, Connection, CookieJar, Response, percentile  # noqa: E402
from tests.support.live_server import (  # noqa: E402
    LiveServer,
    free_port,
    live_server,
    serving,
    tree_cpu_seconds,
)

CPU_TARGET_MS = 5.0
CONNECTOR = "partner-a"
DOMAIN = "partner-a.example"
PARTNER_TENANT = "11111111-2222-4333-8444-555555555555"
IDP_CLIENT_ID = "gateway"
SECRET_ENV = "BENCH_IDP_CLIENT_SECRET"
SIGNING_ALG = "ES256"
HOST = "127.0.0.1"
CSRF = re.compile(rb'name="csrf" value="([^"]+)"')
CONTINUE = re.compile(rb'id="continue" href="([^"]+)"')
EMAIL_FORM = re.compile(rb'action="(/signin/[A-Za-z0-9_-]+)/email"')
FORM = "application/x-www-form-urlencoded"
ENTRY_FRAMES = ("(gateway/cli.py", "(gateway/__main__.py")


@dataclass(frozen=True)
class Mode:
    signins: int  # complete sign-ins measured (at most)
    seconds: float  # ... or for at most this long
    concurrency: int  # concurrent sign-in loops
    steps: int  # sign-ins one at a time, for the cost of each step


FULL = Mode(signins=1500, seconds=15, concurrency=8, steps=150)
QUICK = Mode(signins=150, seconds=4, concurrency=4, steps=20)


# -- the upstream IdP, in its own process ------------------------------------------------------------


def serve_idp(port: int, redirect_uri: str) -> None:
    """``brokered.py idp``: the test IdP on ``HOST:port``, auto-approving, one client (the gateway)."""
    import uvicorn

    from tests.support.oidc_idp import IdpClient, IdpUser, OidcTestIdP

    secret = os.environ[SECRET_ENV]
    idp = OidcTestIdP(
        f"http://{HOST}:{port}",
        clients=[IdpClient(IDP_CLIENT_ID, secret, [redirect_uri])],
        user=IdpUser(sub="alice-0001", email=f"alice@{DOMAIN}"),
    )
    idp.knobs.signing_alg = SIGNING_ALG
    idp.knobs.include_at_hash = False
    uvicorn.run(idp.app, host=HOST, port=port, loop="uvloop", http="httptools", access_log=False,
                log_level="info", lifespan="on")  # fmt: skip


@contextmanager
def upstream(workdir: Path, port: int, redirect_uri: str, secret: str) -> Iterator[subprocess.Popen[bytes]]:
    argv = [sys.executable, str(Path(__file__).resolve()), "idp", "--port", str(port),
            "--redirect-uri", redirect_uri]  # fmt: skip
    env = {**os.environ, SECRET_ENV: secret}
    with serving(argv, cwd=workdir, log_path=workdir / "idp.log", port=port, env=env,
                 health_path="/.well-known/openid-configuration") as process:  # fmt: skip
        yield process


def gateway_overrides(idp_issuer: str, secret: str) -> dict[str, Any]:
    return {
        "connectors": [
            {"id": "email", "type": "email_otp"},
            {
                "id": CONNECTOR,
                "type": "oidc",
                "issuer": idp_issuer,
                "client_id": IDP_CLIENT_ID,
                "client_secret": secret,
                "allowed_algorithms": [SIGNING_ALG],
                "display_name": "Partner A",
            },
        ],
        "user_flows": [{"id": "default", "identity_providers": ["email", CONNECTOR]}],
        "cross_tenant_access": {
            "partners": [{"tenant_id": PARTNER_TENANT, "domains": [DOMAIN], "connector": CONNECTOR}]
        },
        "tokens": {"authorization_code_seconds": 600},
    }


# -- the driver --------------------------------------------------------------------------------------


def _target(url: str, netloc: str, what: str) -> str:
    """``url``'s path and query, after checking it points at ``netloc``."""
    parts = urlsplit(url)
    if parts.netloc != netloc:
        raise BenchError(f"{what}: expected a URL at {netloc}, got {url}")
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def _location(response: Response, jar: CookieJar | None, step: str) -> str:
    if jar is not None:
        jar.update(response)
    if response.status not in (302, 303) or "location" not in response.headers:
        raise BenchError(f"{step}: expected a redirect, got {response.status} {response.body[:300]!r}")
    return response.headers["location"]


def _page(response: Response, jar: CookieJar, step: str) -> bytes:
    jar.update(response)
    if response.status != 200:
        raise BenchError(f"{step}: {response.status} {response.body[:300]!r}")
    return response.body


def _find(pattern: re.Pattern[bytes], body: bytes, what: str) -> str:
    match = pattern.search(body)
    if match is None:
        raise BenchError(f"no {what} on the page: {body[:300]!r}")
    return html.unescape(match.group(1).decode())


@dataclass
class BrokeredDriver:
    gateway: str  # base URL, e.g. http://127.0.0.1:8000
    idp: str
    client_id: str = "demo"

    def __post_init__(self) -> None:
        self.redirect_uri = f"{self.gateway}/demo/callback"
        self.gw_netloc, self.idp_netloc = urlsplit(self.gateway).netloc, urlsplit(self.idp).netloc

    def connections(self) -> tuple[Connection, Connection]:
        gw, idp = urlsplit(self.gateway), urlsplit(self.idp)
        return Connection(gw.hostname or HOST, gw.port or 80), Connection(
            idp.hostname or HOST, idp.port or 80
        )

    async def sign_in(
        self, gw: Connection, idp: Connection, email: str, on_step: Callable[[str], None] | None = None
    ) -> float:
        """One complete brokered sign-in with a fresh browser; its wall time in seconds."""
        step = on_step or (lambda name: None)
        started = time.perf_counter()
        jar = CookieJar()
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        state = secrets.token_urlsafe(12)
        query = urlencode({
            "response_type": "code", "client_id": self.client_id, "redirect_uri": self.redirect_uri,
            "scope": "openid profile email", "state": state, "nonce": secrets.token_urlsafe(12),
            "code_challenge": challenge, "code_challenge_method": "S256",
        })  # fmt: skip
        page = _page(await gw.request("GET", f"/oauth2/authorize?{query}"), jar, "authorize")
        signin = _find(EMAIL_FORM, page, "email form")
        step("GET /oauth2/authorize")
        form = urlencode({"csrf": _find(CSRF, page, "CSRF token"), "email": email}).encode()
        headers = [("Content-Type", FORM), *jar.header()]
        onward = _location(
            await gw.request("POST", f"{signin}/email", body=form, headers=headers), jar, "email"
        )
        step("POST email")
        page = _page(await gw.request("GET", onward, headers=jar.header()), jar, "continuation page")
        authorize = _find(CONTINUE, page, "continue link")
        step("GET upstream page (begin)")
        back = _location(await idp.request("GET", _target(authorize, self.idp_netloc, "IdP")), None, "IdP")
        step("IdP /authorize (not gateway)")
        callback = _target(back, self.gw_netloc, "callback")
        done = _location(await gw.request("GET", callback, headers=jar.header()), jar, "callback")
        step("GET /callback (complete)")
        params = {k: v[0] for k, v in parse_qs(urlsplit(done).query).items()}
        if params.get("state") != state or "code" not in params:
            raise BenchError(f"the authorization response is not a code for this sign-in: {done}")
        await self.exchange(gw, params["code"], verifier)
        step("POST /oauth2/token")
        return time.perf_counter() - started

    async def exchange(self, gw: Connection, code: str, verifier: str) -> None:
        form = urlencode({
            "grant_type": "authorization_code", "code": code, "redirect_uri": self.redirect_uri,
            "client_id": self.client_id, "code_verifier": verifier,
        }).encode()  # fmt: skip
        response = await gw.request("POST", "/oauth2/token", body=form, headers=[("Content-Type", FORM)])
        if response.status != 200 or b'"id_token"' not in response.body:
            raise BenchError(f"token endpoint: {response.status} {response.body[:300]!r}")


async def run_loops(
    driver: BrokeredDriver, count: int, concurrency: int, seconds: float
) -> tuple[list[float], float]:
    """Up to ``count`` sign-ins over ``concurrency`` loops, none started after ``seconds``.

    Returns (latencies, wall seconds)."""
    latencies: list[float] = []
    indices = iter(range(count))
    started = time.perf_counter()
    deadline = started + seconds

    async def loop() -> None:
        gw, idp = driver.connections()
        try:
            for index in indices:
                latencies.append(await driver.sign_in(gw, idp, f"alice+{index}@{DOMAIN}"))
                if time.perf_counter() > deadline:
                    return
        finally:
            await gw.close()
            await idp.close()

    await asyncio.gather(*(loop() for _ in range(min(concurrency, count))))
    return latencies, time.perf_counter() - started


async def by_step(
    driver: BrokeredDriver, cpu: Callable[[], float], count: int
) -> list[tuple[str, float, float]]:
    """Sign-ins one at a time: the gateway's CPU ms and the wall ms of each step (averages)."""
    totals: dict[str, list[float]] = {}
    mark = [0.0, 0.0]

    def on_step(name: str) -> None:
        now, clock = cpu(), time.perf_counter()
        total = totals.setdefault(name, [0.0, 0.0])
        total[0] += now - mark[0]
        total[1] += clock - mark[1]
        mark[:] = [now, clock]

    gw, idp = driver.connections()
    try:
        for index in range(count):
            mark[:] = [cpu(), time.perf_counter()]
            await driver.sign_in(gw, idp, f"steps+{index}@{DOMAIN}", on_step)
    finally:
        await gw.close()
        await idp.close()
    return [(name, used / count * 1e3, wall / count * 1e3) for name, (used, wall) in totals.items()]


# -- profiling ---------------------------------------------------------------------------------------


def start_profiler(gw: LiveServer, output: Path) -> subprocess.Popen[bytes]:
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    output.parent.mkdir(parents=True, exist_ok=True)
    argv = [spy, "record", "--pid", str(gw.process.pid), "--subprocesses", "--rate", "250",
            "--nonblocking", "--format", "raw", "--output", str(output)]  # fmt: skip
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.0)  # py-spy attaches
    if process.poll() is not None:
        error = process.stderr.read().decode() if process.stderr else ""
        raise SystemExit(f"brokered: py-spy failed: {error}")
    return process


def stop_profiler(process: subprocess.Popen[bytes], output: Path, top: int = 20) -> list[str]:
    """Stop py-spy; the top frames of its collapsed stacks by own samples and, for our code, inclusive."""
    process.send_signal(signal.SIGINT)
    process.wait(timeout=30)
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in output.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        if not frames or not count.isdigit():
            continue
        total += int(count)
        own[frames[-1]] += int(count)
        for frame in set(frames):
            ours = "gateway/" in frame or "idp_connectors/" in frame
            if ours and not any(entry in frame for entry in ENTRY_FRAMES):
                inclusive[frame] += int(count)
    if total == 0:
        return [f"profile: no samples ({output})"]
    lines = [f"profile of the measured phase ({total} samples of busy threads; stacks: {output}):", "  own:"]
    lines += [f"    {n / total:6.1%}  {frame}" for frame, n in own.most_common(top)]
    lines.append("  inclusive, gateway and connector code:")
    lines += [f"    {n / total:6.1%}  {frame}" for frame, n in inclusive.most_common(top)]
    return lines


# -- one worker count --------------------------------------------------------------------------------


async def measure(mode: Mode, workers: int, workdir: Path, profile_dir: Path | None) -> list[str]:
    secret = secrets.token_urlsafe(24)
    idp_port = free_port()
    idp_issuer = f"http://{HOST}:{idp_port}"
    overrides = gateway_overrides(idp_issuer, secret)
    with (
        live_server(workdir / "gateway", workers=workers, overrides=overrides) as gw,
        upstream(workdir, idp_port, f"{gw.base_url}/callback/{CONNECTOR}", secret) as idp_process,
    ):
        driver = BrokeredDriver(gw.base_url, idp_issuer)
        # The guest's first sign-in alone (two concurrent first sign-ins of one identity race: see the
        # README), then warm each worker's caches (templates, discovery, JWKS, connection pool).
        await run_loops(driver, 1, 1, 30)
        await run_loops(driver, 8 * workers, 2 * workers, 30)
        gateway_cpu = gw.cpu_seconds  # the tree at each reading: a worker's mail relay may start later

        spy = profile_dir / f"brokered-w{workers}.txt" if profile_dir else None
        profiler = start_profiler(gw, spy) if spy else None
        before = (gateway_cpu(), tree_cpu_seconds(idp_process.pid), time.process_time())
        latencies, wall = await run_loops(driver, mode.signins, mode.concurrency, mode.seconds)
        after = (gateway_cpu(), tree_cpu_seconds(idp_process.pid), time.process_time())
        profile = stop_profiler(profiler, spy) if profiler and spy else []
        steps = await by_step(driver, gateway_cpu, mode.steps)
    count = len(latencies)
    gw_ms, idp_ms, driver_ms = ((a - b) / count * 1e3 for a, b in zip(after, before, strict=True))
    verdict = "ok" if gw_ms <= CPU_TARGET_MS else "MISSED"
    p50, p99 = percentile(latencies, 0.5) * 1e3, percentile(latencies, 0.99) * 1e3
    lines = [
        f"== brokered sign-in, gateway with {workers} worker(s) ==",
        f"{count} complete sign-ins in {wall:.1f} s ({mode.concurrency} at a time): "
        f"{count / wall:.0f} sign-ins/s; latency p50 {p50:.1f} ms, p99 {p99:.1f} ms",
        f"gateway CPU per complete brokered sign-in: {gw_ms:.2f} ms "
        f"(target <= {CPU_TARGET_MS:g} ms: {verdict})",
        f"  for context, per sign-in: upstream IdP {idp_ms:.2f} ms, load generator {driver_ms:.2f} ms of CPU",
        "  one at a time, by step:          gateway CPU ms   wall ms",
    ]
    lines += [f"    {name:<32}{used:>12.2f}{wall_ms:>10.2f}" for name, used, wall_ms in steps]
    return [*lines, *profile, ""]


async def main(mode: Mode, worker_counts: list[int], profile_dir: Path | None) -> int:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="gateway-brokered-") as tmp:
        for workers in worker_counts:
            print("\n".join(await measure(mode, workers, Path(tmp) / f"w{workers}", profile_dir)), flush=True)
    print(f"(run took {time.monotonic() - started:.0f} s; {len(os.sched_getaffinity(0))} cores shared by the "
          "gateway, the IdP and the load generator)")  # fmt: skip
    return 0


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Brokered sign-in benchmark (see bench/README.md).")
    sub = parser.add_subparsers(dest="command")
    idp = sub.add_parser("idp", help="(internal) serve the upstream test IdP")
    idp.add_argument("--port", type=int, required=True)
    idp.add_argument("--redirect-uri", required=True)
    parser.add_argument("--quick", action="store_true", help="a fast smoke run")
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts (default: 1,2)")
    parser.add_argument("--signins", type=int, help="sign-ins to measure (default: by mode)")
    parser.add_argument("--concurrency", type=int, help="concurrent sign-ins (default: by mode)")
    parser.add_argument("--profile", type=Path, metavar="DIR", help="py-spy the measured phase into DIR")
    args = parser.parse_args(argv)
    if args.command == "idp":
        serve_idp(args.port, args.redirect_uri)
        return 0
    try:
        worker_counts = [int(part) for part in args.workers.split(",")]
    except ValueError:
        parser.error(f"--workers: comma-separated whole numbers, not {args.workers!r}")
    if not worker_counts or any(n < 1 for n in worker_counts):
        parser.error("--workers: each count must be at least 1")
    mode = QUICK if args.quick else FULL
    for name in ("signins", "concurrency"):
        value = getattr(args, name)
        if value is not None:
            if value < 1:
                parser.error(f"--{name}: must be at least 1")
            mode = replace(mode, **{name: value})
    if args.profile and not (shutil.which("py-spy") or Path(sys.executable).with_name("py-spy").exists()):
        print("brokered: --profile needs py-spy: `.venv/bin/pip install py-spy`", file=sys.stderr)
        return 1
    return uvloop.run(main(mode, worker_counts, args.profile))


if __name__ == "__main__":
    raise SystemExit(cli())
