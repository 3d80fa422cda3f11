"""Instructions per passcode sign-in: the real gateway under callgrind, a figure load cannot move.

Run from the repository root: ``.venv/bin/python -m bench.instructions [--signins N]`` (needs
valgrind). CPU time per sign-in (``bench/run.py``) swings by a third on a shared 2-core machine
with what else runs; the number of instructions the gateway executes for a sign-in does not, so
this is the figure to compare two versions of the code with (a few per mille apart between runs).

How: the real gateway (``python -m gateway serve``, one worker, mail to an SMTP sink in this
process) runs twice under ``valgrind --tool=callgrind``, from copies of one store whose signing
keys and pairwise salt already exist (generating keys costs a random number of instructions):
once for ``WARM`` sign-ins, once for ``WARM`` + N. The difference of the two totals (every thread
of the process, user space: a system call counts as one instruction) divided by N is printed.
A run takes about a minute plus N x 0.15 s; sign-ins go 4 at a time. One worker only: uvicorn's
supervisor restarts worker processes that answer its health check late, as they do under valgrind.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import stat
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make `bench` and `tests.support` importable
    sys.path.insert(0, str(ROOT))

import uvloop  # noqa: E402

from bench.run import BENCH_OVERRIDES  # noqa: E402
from bench.signin_driver import Connection, PasscodeSink, SigninDriver, run_concurrently  # noqa: E402
from tests.support import live_server as servers  # noqa: E402

WARM = 20
CONCURRENCY = 4
# A fixed secret, so that the store prepared once (keys sealed with it) serves every run.
OVERRIDES: dict[str, Any] = {**BENCH_OVERRIDES, "secrets": {"key": "bench-instructions-" + "k" * 40}}


async def _sign_in(sink: PasscodeSink, workdir: Path, count: int, python: str) -> None:
    """Start the gateway from ``workdir`` with ``python`` and complete ``count`` sign-ins."""
    real = sys.executable
    sys.executable = python  # live_server starts ``sys.executable -m gateway serve``
    try:
        smtp = (sink.host, sink.port)
        with servers.live_server(workdir, smtp=smtp, overrides=OVERRIDES, timeout=600) as gw:
            driver = SigninDriver("127.0.0.1", gw.port, gw.base_url, sink)

            async def job(conn: Connection, index: int) -> float:
                signed = await driver.sign_in(conn, f"{workdir.name}-{index}@fabrikam.example", exchange=True)
                return signed.seconds

            await run_concurrently(count, CONCURRENCY, driver, job)
            await asyncio.sleep(1.0)  # let the last mail go before the server stops
    finally:
        sys.executable = real


def _wrapper(folder: Path, output: Path) -> str:
    """An executable that runs the venv's Python under callgrind, writing to ``output``."""
    script = folder / f"python-{output.stem}"
    script.write_text(
        f'#!/bin/sh\nexec valgrind --tool=callgrind --callgrind-out-file={output} {sys.executable} "$@"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


def _instructions(output: Path) -> int:
    """The total of a callgrind output file (its ``summary:`` line)."""
    for line in output.read_text().splitlines():
        if line.startswith("summary:"):
            return int(line.split()[1])
    raise RuntimeError(f"{output}: no callgrind summary (did the gateway stop cleanly?)")


async def measure(signins: int) -> int:
    """Instructions per sign-in (see the module docstring)."""
    sink = PasscodeSink()
    await sink.start()
    try:
        with tempfile.TemporaryDirectory(prefix="gateway-instructions-") as tmp:
            base = Path(tmp)
            prepared = base / "prepared"
            await _sign_in(sink, prepared, 1, sys.executable)  # keys, salt, schema: made once, natively
            totals = []
            for name, count in (("warm", WARM), ("measured", WARM + signins)):
                workdir = base / name
                shutil.copytree(prepared / "var", workdir / "var")
                output = base / f"{name}.callgrind"
                await _sign_in(sink, workdir, count, _wrapper(base, output))
                totals.append(_instructions(output))
            return (totals[1] - totals[0]) // signins
    finally:
        await sink.stop()


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Instructions per passcode sign-in (see bench/README.md).")
    parser.add_argument("--signins", type=int, default=200, help="sign-ins measured (default: 200)")
    args = parser.parse_args(argv)
    if args.signins < 1:
        parser.error("--signins: must be at least 1")
    if shutil.which("valgrind") is None:
        print("bench: valgrind is missing (`apt-get install valgrind`)", file=sys.stderr)
        return 1
    os.environ.pop("GATEWAY_CONFIG", None)
    per_signin = uvloop.run(measure(args.signins))
    print(
        f"gateway instructions per complete sign-in: {per_signin / 1e6:.2f} M (callgrind, 1 worker, "
        f"{args.signins} sign-ins after {WARM}, user space, all threads)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(cli())
