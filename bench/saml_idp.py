"""SAML assertion issue rate beside the OIDC token endpoint, against one live gateway in one run.

Run from the repository root: ``.venv/bin/python bench/saml_idp.py [--quick] [--workers 1,2]``.
For each worker count it starts the real gateway (``live_server``: ``gateway serve``, SQLite store
in a temporary directory, mail to the benchmark's SMTP sink) with the demo app and one SAML app
(``bench-sp``: persistent NameID, two attributes, signed assertion), then measures, with the lean
client of ``bench/signin_driver.py``:

- **token (code exchange)**: exactly ``bench/run.py``'s row (codes from passcode sign-ins first,
  then exchanged with PKCE over 16 keep-alive connections);
- **SAML assertion issue**: an SSO-session-backed ``GET /saml2/sso`` (HTTP-Redirect AuthnRequest
  made by pysaml2, beforehand) answered with the auto-POST page carrying a signed Response; the
  guests signed in once each through the SAML app itself (passcode), one per connection.

Before timing, one answer is checked by a real SP (pysaml2 on the in-process backend, IdP
metadata from ``/saml2/metadata``). Printed per row: req/s, p50, p99, the gateway's CPU µs per
request (``/proc``, all its processes), and the SAML / token ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make `bench` and `tests.support` importable
    sys.path.insert(0, str(ROOT))

import uvloop  # noqa: E402

from bench.run import BENCH_OVERRIDES, FULL, QUICK, Figure, Mode, _exchanges, _signins  # noqa: E402
from bench.signin_driver import (  # noqa: E402
    CSRF,
    EMAIL_FORM,
    FORM,
    BenchError,
    Connection,
    CookieJar,
    PasscodeSink,
    SigninDriver,
    percentile,
    run_concurrently,
)
from tests.support.gateway_app import default_config, merge  # noqa: E402
from tests.support.live_server import free_port, live_server  # noqa: E402
from tests.support.saml_sp import SamlTestSP, post_form_of  # noqa: E402

SP_BASE = "https://sp.bench.example"
APP_ID = "bench-sp"
SAML_FIELD = re.compile(rb'name="SAMLResponse"')


def overrides(sp: SamlTestSP, base: str) -> dict[str, Any]:
    """The benchmark's configuration: ``bench/run.py``'s limits, the demo app and the SAML app."""
    demo = next(app for app in default_config()["applications"] if app["id"] == "demo")
    demo["oidc"]["redirect_uris"] = [f"{base}/demo/callback"]
    demo["oidc"]["post_logout_redirect_uris"] = [f"{base}/demo"]
    saml_app = {
        "id": APP_ID,
        "name": "Bench SP",
        "user_flow": "default",
        "saml": {
            "entity_id": sp.entity_id,
            "acs_urls": [sp.acs_url],
            "attributes": [
                {
                    "name": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
                    "source": "mail",
                },
                {"name": "displayName", "source": "displayName"},
            ],
        },
    }
    return merge(BENCH_OVERRIDES, {"applications": [demo, saml_app]})


def _target(url: str) -> str:
    """The request target (path and query) of an absolute URL."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def _match(pattern: re.Pattern[bytes], body: bytes, what: str) -> str:
    found = pattern.search(body)
    if found is None:
        raise BenchError(f"{what}: not found in {body[:300]!r}")
    return found.group(1).decode()


async def saml_sign_in(conn: Connection, sink: PasscodeSink, sp: SamlTestSP, address: str) -> CookieJar:
    """A passcode sign-in started by the SP's AuthnRequest; the browser's cookies (its SSO session)."""
    jar = CookieJar()
    out = await sp.authn_request_url()
    page = await conn.request("GET", _target(out.url), headers=jar.header())
    jar.update(page)
    signin = _match(EMAIL_FORM, page.body, "the email page")
    passcode = sink.expect(address)
    form = urlencode({"csrf": _match(CSRF, page.body, "csrf"), "email": address}).encode()
    sent = await conn.request(
        "POST", f"{signin}/email", body=form, headers=[("Content-Type", FORM), *jar.header()]
    )
    jar.update(sent)
    if sent.status != 200:  # answered with the passcode page
        raise BenchError(f"POST email: {sent.status} {sent.body[:300]!r}")
    code = await asyncio.wait_for(passcode, timeout=30)
    form = urlencode({"csrf": _match(CSRF, sent.body, "csrf"), "passcode": code}).encode()
    done = await conn.request(
        "POST", f"{signin}/passcode", body=form, headers=[("Content-Type", FORM), *jar.header()]
    )
    jar.update(done)
    if done.status != 200 or not SAML_FIELD.search(done.body):
        raise BenchError(f"POST passcode: not the SAML answer: {done.status} {done.body[:300]!r}")
    return jar


async def check_one(conn: Connection, jar: CookieJar, sp: SamlTestSP) -> None:
    """One SSO answer, verified by the real SP (signature, audience, recipient, InResponseTo)."""
    out = await sp.authn_request_url()
    answer = await conn.request("GET", _target(out.url), headers=jar.header())
    form = post_form_of(answer.body.decode("utf-8"))
    if answer.status != 200 or form is None or form.action != sp.acs_url:
        raise BenchError(f"SSO answer: {answer.status} {answer.body[:300]!r}")
    received = sp.consume(form.fields)
    if not received.assertion_signed or received.in_response_to != out.request_id:
        raise BenchError(f"the SP did not get a signed answer to its request: {received}")
    size = len(base64.b64decode(form.fields["SAMLResponse"]))
    print(f"  checked by pysaml2: signed assertion, NameID {received.name_id[:12]}..., {size} bytes of XML")


async def assertions(
    driver: SigninDriver, sp: SamlTestSP, jars: list[CookieJar], mode: Mode, cpu: Any
) -> Figure:
    """SSO-backed ``/saml2/sso`` requests, each answered with a signed assertion."""
    targets = [_target((await sp.authn_request_url()).url) for _ in range(mode.codes)]

    async def job(conn: Connection, index: int) -> float:
        started = time.perf_counter()
        answer = await conn.request("GET", targets[index], headers=jars[index % len(jars)].header())
        if answer.status != 200 or not SAML_FIELD.search(answer.body):
            raise BenchError(f"/saml2/sso: {answer.status} {answer.body[:300]!r}")
        return time.perf_counter() - started

    before = cpu()
    latencies, wall = await run_concurrently(len(targets), 2 * mode.concurrency, driver, job)
    used = cpu() - before
    return Figure("SAML assertion (SSO)", len(latencies) / wall, percentile(latencies, 0.5) * 1e3,
                  percentile(latencies, 0.99) * 1e3, used / len(latencies) * 1e6,
                  note=f"lean client, {2 * mode.concurrency} conns, {len(jars)} sessions")  # fmt: skip


@dataclass
class Result:
    workers: int
    token: Figure
    saml: Figure


async def measure(mode: Mode, workers: int, workdir: Path, sink: PasscodeSink) -> Result:
    sp = SamlTestSP(SP_BASE)
    port = free_port()
    config = overrides(sp, f"http://127.0.0.1:{port}")
    with live_server(
        workdir, smtp=(sink.host, sink.port), workers=workers, overrides=config, port=port
    ) as gw:
        sp.idp_metadata_url = f"{gw.base_url}/saml2/metadata"
        await sp.load_idp_metadata()
        driver = SigninDriver("127.0.0.1", gw.port, gw.base_url, sink)
        run = f"w{workers}-{int(time.time())}"
        await _signins(driver, 4 * workers, mode.concurrency, f"warm-{run}", exchange=True)
        conn = driver.connection()
        try:
            jars = [
                await saml_sign_in(conn, sink, sp, f"saml-{run}-{index}@fabrikam.example")
                for index in range(2 * mode.concurrency)
            ]
            await check_one(conn, jars[0], sp)
        finally:
            await conn.close()
        cpu = gw.cpu_seconds  # the tree at each reading: a worker's mail relay may start later

        token = await _exchanges(driver, cpu, mode, run)
        saml = await assertions(driver, sp, jars, mode, cpu)
        return Result(workers, token, saml)


def report(result: Result) -> list[str]:
    lines = [
        f"== gateway with {result.workers} worker(s) ==",
        f"{'endpoint':<24}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'CPU us/req':>12}  note",
    ]
    for figure in (result.token, result.saml):
        cpu = f"{figure.cpu_us:.0f}" if figure.cpu_us is not None else "-"
        latency = f"{figure.p50_ms:>9.2f}{figure.p99_ms:>9.2f}"
        lines.append(f"{figure.name:<24}{figure.rps:>10.0f}{latency}{cpu:>12}  {figure.note}")
    token, saml = result.token, result.saml
    cpu_ratio = (saml.cpu_us or 0.0) / (token.cpu_us or 1.0)
    lines.append(
        f"SAML / token: {saml.rps / token.rps:.2f}x the req/s, {cpu_ratio:.2f}x the gateway CPU per request"
    )
    return [*lines, ""]


async def main(mode: Mode, worker_counts: list[int]) -> int:
    sink = PasscodeSink()
    await sink.start()
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="gateway-bench-saml-") as tmp:
            for workers in worker_counts:
                result = await measure(mode, workers, Path(tmp) / f"gw-{workers}", sink)
                print("\n".join(report(result)), flush=True)
    finally:
        await sink.stop()
    print(f"(run took {time.monotonic() - started:.0f} s; up to {mode.codes} requests per row)")
    return 0


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="SAML assertion issue rate beside the token endpoint.")
    parser.add_argument("--quick", action="store_true", help="a fast smoke run: few requests")
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts (default: 1,2)")
    args = parser.parse_args(argv)
    try:
        worker_counts = [int(part) for part in args.workers.split(",")]
    except ValueError:
        parser.error(f"--workers: comma-separated whole numbers, not {args.workers!r}")
    if not worker_counts or any(n < 1 for n in worker_counts):
        parser.error("--workers: each count must be at least 1")
    return uvloop.run(main(QUICK if args.quick else FULL, worker_counts))


if __name__ == "__main__":
    raise SystemExit(cli())
