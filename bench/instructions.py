"""Instructions per operation: the real gateway under callgrind, a figure load cannot move.

Run from the repository root (needs valgrind; Redis runs need ``redis-server``)::

    .venv/bin/python -m bench.instructions [--signins N]                       # SQLite, 1 process
    .venv/bin/python -m bench.instructions --store redis --replicas 2 --kind token
    .venv/bin/python -m bench.instructions --store redis --compare-replicas --kind all
    .venv/bin/python -m bench.instructions --store redis --idle               # an idle process only

CPU time per sign-in (``bench/run.py``, ``bench/load.py``) swings by a third on a shared 2-core
machine with what else runs; the number of instructions the gateway executes does not, so this is
the figure to compare two versions of the code, or 1 and 2 replicas, with.

How (``bench/instructions_replicas.py``): the real gateway (``python -m gateway serve``, one worker
per process, mail to an SMTP sink in this process) runs twice under ``valgrind --tool=callgrind``,
from one prepared store state whose signing keys and pairwise salt already exist: once for the
warm-up, once for the warm-up + N operations. Each process starts with callgrind's instrumentation
off and has it turned on (``vgdb``) once every process is ready, so start-up runs several times
faster and is not counted. With ``--replicas 2`` two gateway processes share one
``redis-server`` and every request of an operation goes to the next replica in turn, each process
under callgrind with its own output file. The SUM over the processes of the measured run minus the
warm run (every thread, user space: a system call counts as one instruction), divided by N, is
printed (``bench/instructions_figures.py``).

Kinds: ``passcode``, a complete passcode sign-in (authorize, email, passcode, code
exchange; a new guest, ``offline_access``); ``token``, a ``refresh_token`` grant followed by a
``userinfo`` call, with refresh tokens from the warm-up's sign-ins. The warm-up (``WARM`` sign-ins,
and ``WARM`` token operations for ``token``) goes through every replica, so lazy imports, pools and
caches of each process are filled before the measured part. ``--concurrency`` (default 4) is how
many operations are in flight at a time; ``--keep DIR`` keeps the callgrind files for
``callgrind_annotate``.

``--compare-replicas`` (the default with ``--store redis`` and no ``--replicas``) measures 1 and 2
replicas and prints the ratio, per kind, and the instructions per second of an idle gateway process
(``IDLE`` vs ``2 x IDLE`` seconds of nothing): each row also shows the share of the figure that
the processes' timers (uvicorn's 0.1 s tick, configuration watch, key refresh) account for in the
time the extra operations took under callgrind, and the figure without it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make `bench` and `tests.support` importable
    sys.path.insert(0, str(ROOT))

import uvloop  # noqa: E402

from bench.instructions_figures import (  # noqa: E402
    HEADER,
    KIND_NAMES,
    KINDS,
    PerOperation,
    comparison_lines,
    idle_rate,
    mega,
    per_operation,
)
from bench.instructions_replicas import Plan, Runner  # noqa: E402
from bench.load_redis import redis_server  # noqa: E402
from bench.signin_driver import PasscodeSink  # noqa: E402

WARM = 20  # sign-ins (and token operations for ``token``) before the measured part
IDLE = 20.0  # seconds: the idle rate is (run idle 2 x IDLE) - (run idle IDLE)


@dataclass(frozen=True)
class Options:
    signins: int = 200
    store: str = "sqlite"
    replicas: tuple[int, ...] = (1,)
    kinds: tuple[str, ...] = ("passcode",)
    idle: bool = False  # measure the idle rate (and, in a comparison, the timers' share)
    only_idle: bool = False
    keep: Path | None = None  # copy every callgrind output file here
    concurrency: int = 4

    @property
    def compare(self) -> bool:
        return len(self.replicas) > 1


def plans(kind: str, ops: int, concurrency: int = 4) -> tuple[Plan, Plan]:
    """The warm run and the measured run of ``kind`` with ``ops`` measured operations."""
    if kind == "passcode":
        return Plan(WARM, concurrency=concurrency), Plan(WARM + ops, concurrency=concurrency)
    if kind == "token":
        return Plan(WARM, WARM, concurrency=concurrency), Plan(WARM, WARM + ops, concurrency=concurrency)
    raise ValueError(f"unknown kind {kind!r}: choose from {', '.join(KINDS)}")


async def measure(options: Options) -> list[str]:
    """Run what ``options`` asks for; the report's lines (progress goes to stderr as runs end)."""
    sink = PasscodeSink()
    await sink.start()
    try:
        with tempfile.TemporaryDirectory(prefix="gateway-instructions-") as tmp, ExitStack() as stack:
            base = Path(tmp)
            url = stack.enter_context(redis_server(base / "redis"))[0] if options.store == "redis" else None
            runner = Runner(base, sink, url, options.keep)
            runner.prepare()  # keys, salt, schema: made once, natively
            rate = await _idle_rate(runner) if options.idle else 0.0
            lines = [] if options.only_idle else await _kinds(runner, options, rate)
            if options.idle:
                lines.append(
                    f"idle gateway process: {mega(rate)} instructions/s ({options.store} store; idle "
                    f"{IDLE:.0f} s vs {2 * IDLE:.0f} s; timers: uvicorn's tick, config watch, key refresh)"
                )
            return lines
    finally:
        await sink.stop()


async def _idle_rate(runner: Runner) -> float:
    short = await runner.run("idle-short", Plan(0, idle_seconds=IDLE), 1)
    long = await runner.run("idle-long", Plan(0, idle_seconds=2 * IDLE), 1)
    _progress("idle", short.instructions, long.instructions)
    return idle_rate(short, long)


async def _kinds(runner: Runner, options: Options, rate: float) -> list[str]:
    where = (
        f"{options.store} store, {options.signins} operations after {WARM} warm-up ones, "
        f"{options.concurrency} at a time"
    )
    lines = [
        f"gateway instructions per operation (callgrind; {where}; user space, every thread, SUM of all "
        "gateway processes):"
    ]
    if options.compare:
        lines.append(HEADER)
    for kind in options.kinds:
        warm_plan, measured_plan = plans(kind, options.signins, options.concurrency)
        figures: dict[int, PerOperation] = {}
        for replicas in options.replicas:
            warm = await runner.run(f"{kind}-{replicas}-warm", warm_plan, replicas)
            measured = await runner.run(f"{kind}-{replicas}-measured", measured_plan, replicas)
            _progress(f"{kind} x{replicas}", warm.instructions, measured.instructions)
            figures[replicas] = per_operation(warm, measured, options.signins, rate)
        if options.compare:
            lines.extend(comparison_lines(kind, figures[1], figures[2]))
        else:
            replicas = options.replicas[0]
            lines.append(f"  {KIND_NAMES[kind]}: {mega(figures[replicas].instructions)} ({replicas} "
                         f"replica{'s' if replicas > 1 else ''})")  # fmt: skip
    return lines


def _progress(name: str, first: Sequence[int], second: Sequence[int]) -> None:
    print(f"bench: {name}: {', '.join(map(str, first))} -> {', '.join(map(str, second))} instructions",
          file=sys.stderr, flush=True)  # fmt: skip


def parse(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        description="Instructions per operation under callgrind (see bench/README.md)."
    )
    parser.add_argument(
        "--signins", type=int, default=200, help="operations measured per kind (default: 200)"
    )
    parser.add_argument("--store", choices=("sqlite", "redis"), default="sqlite", help="default: sqlite")
    parser.add_argument("--replicas", type=int, choices=(1, 2), help="gateway processes (2: Redis only)")
    parser.add_argument("--kind", choices=(*KINDS, "all"), default="passcode", help="default: passcode")
    parser.add_argument(
        "--compare-replicas",
        action="store_true",
        help="1 and 2 replicas, their ratio and the idle rate (default with --store redis)",
    )
    parser.add_argument("--idle", action="store_true", help="only the instructions/s of an idle process")
    parser.add_argument("--concurrency", type=int, default=4, help="operations at a time (default: 4)")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="copy the callgrind output files to DIR")
    args = parser.parse_args(argv)
    if args.signins < 1:
        parser.error("--signins: must be at least 1")
    if args.concurrency < 1:
        parser.error("--concurrency: must be at least 1")
    if args.replicas == 2 and args.store != "redis":
        parser.error("--replicas 2: replicas share a store only on Redis; add --store redis")
    if args.compare_replicas and args.store != "redis":
        parser.error("--compare-replicas: needs --store redis (two replicas share a store only on Redis)")
    if args.compare_replicas and args.replicas is not None:
        parser.error("--compare-replicas runs 1 and 2 replicas: leave out --replicas")
    if args.idle and (args.compare_replicas or args.replicas is not None):
        parser.error("--idle measures one idle process only: leave out --replicas and --compare-replicas")
    compare = args.compare_replicas or (args.store == "redis" and args.replicas is None and not args.idle)
    return Options(
        signins=args.signins,
        store=args.store,
        replicas=(1, 2) if compare else (args.replicas or 1,),
        kinds=KINDS if args.kind == "all" else (args.kind,),
        idle=compare or args.idle,
        only_idle=args.idle,
        keep=args.keep,
        concurrency=args.concurrency,
    )


def cli(argv: list[str] | None = None) -> int:
    options = parse(argv)
    missing = [tool for tool in ("valgrind", "redis-server") if shutil.which(tool) is None]
    if "valgrind" in missing or (options.store == "redis" and missing):
        print(
            f"bench: {' and '.join(missing)} missing (`apt-get install valgrind redis-server`)",
            file=sys.stderr,
        )
        return 1
    os.environ.pop("GATEWAY_CONFIG", None)
    os.environ["PYTHONHASHSEED"] = "0"  # the gateways' dicts and sets in the same order in every run
    print("\n".join(uvloop.run(measure(options))))
    return 0


if __name__ == "__main__":
    raise SystemExit(cli())
