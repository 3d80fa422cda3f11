"""The arithmetic of the instructions benchmark (``bench/instructions.py``): pure, so it is tested alone.

``callgrind_total(text)`` reads the total of a callgrind output file (its ``summary:`` line).
A ``RunTotals`` is one run of the benchmark: the instructions of each gateway process (replica)
and how long each lived (from its start to its exit, in seconds). ``per_operation(warm,
measured, ops, idle_rate)`` is the figure: the SUM over the processes of the measured run minus
the warm run, divided by the operations the measured run did on top; beside it the share of that
figure the processes' timers account for (``idle_rate`` instructions per second and process, times
the extra time the processes lived, divided by the operations): what a slower run costs without
any more work per request. ``idle_rate(short, long)`` is that rate, from two runs of one idle
process that differ only in how long it idled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

KINDS = ("passcode", "token")
KIND_NAMES = {"passcode": "complete passcode sign-in", "token": "refresh_token grant + userinfo"}


def callgrind_total(text: str, name: str = "callgrind output") -> int:
    """The ``summary:`` total of a callgrind output file (``totals:`` if it has no summary line)."""
    found: dict[str, int] = {}
    for line in text.splitlines():
        label, _, rest = line.partition(":")
        if label in ("summary", "totals") and label not in found:
            fields = rest.split()
            if not fields or not fields[0].isdigit():
                raise ValueError(f"{name}: malformed {label} line {line!r}")
            found[label] = int(fields[0])
    if "summary" in found:
        return found["summary"]
    if "totals" in found:
        return found["totals"]
    raise ValueError(f"{name}: no callgrind summary (did the gateway stop cleanly?)")


@dataclass(frozen=True)
class RunTotals:
    """One run: instructions and lifetime (seconds) of each gateway process, in replica order."""

    instructions: tuple[int, ...]
    lifetimes: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.instructions or len(self.instructions) != len(self.lifetimes):
            raise ValueError(
                f"a run needs one lifetime per process: {len(self.instructions)} instruction totals, "
                f"{len(self.lifetimes)} lifetimes"
            )
        if any(count < 0 for count in self.instructions) or any(not s >= 0 for s in self.lifetimes):
            raise ValueError("instruction totals and lifetimes cannot be negative")


@dataclass(frozen=True)
class PerOperation:
    """Instructions per operation: all processes, the timers' share of it, and each process's part."""

    instructions: float
    timers: float
    per_process: tuple[float, ...]

    @property
    def steady(self) -> float:
        """The figure without the timers' share: the work the requests themselves caused."""
        return self.instructions - self.timers


def per_operation(warm: RunTotals, measured: RunTotals, ops: int, idle_rate: float = 0.0) -> PerOperation:
    """(measured - warm) summed over the processes, per operation (see the module docstring)."""
    if len(warm.instructions) != len(measured.instructions):
        raise ValueError(
            f"the warm run had {len(warm.instructions)} processes, the measured run "
            f"{len(measured.instructions)}: they cannot be subtracted"
        )
    if ops < 1:
        raise ValueError(f"operations measured must be at least 1, got {ops}")
    if not idle_rate >= 0 or math.isinf(idle_rate):
        raise ValueError(f"the idle rate must be a finite number >= 0, got {idle_rate}")
    parts = tuple((m - w) / ops for w, m in zip(warm.instructions, measured.instructions, strict=True))
    longer = sum(m - w for w, m in zip(warm.lifetimes, measured.lifetimes, strict=True))
    return PerOperation(sum(parts), idle_rate * longer / ops, parts)


def idle_rate(short: RunTotals, long: RunTotals) -> float:
    """Instructions per second of one idle process: the difference of two idle runs over their lifetimes."""
    if len(short.instructions) != 1 or len(long.instructions) != 1:
        raise ValueError("the idle rate is measured on one process per run")
    seconds = long.lifetimes[0] - short.lifetimes[0]
    if seconds <= 0:
        raise ValueError(f"the long idle run must outlive the short one, got {seconds:+.1f} s")
    return (long.instructions[0] - short.instructions[0]) / seconds


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else math.nan


def mega(value: float) -> str:
    return f"{value / 1e6:.2f} M"


def run_line(kind: str, replicas: int, figure: PerOperation) -> str:
    """One row: the figure, the timers' share and the figure without it, each process's part."""
    parts = " + ".join(f"{part / 1e6:.2f}" for part in figure.per_process)
    return (
        f"  {kind:<9}{replicas:>9}  {mega(figure.instructions):>11}  {mega(figure.timers):>10}  "
        f"{mega(figure.steady):>15}   {parts}"
    )


HEADER = (
    f"  {'kind':<9}{'replicas':>9}  {'per op':>11}  {'timers':>10}  {'without timers':>15}   per process (M)"
)


def comparison_lines(kind: str, one: PerOperation, two: PerOperation) -> list[str]:
    """The two rows of one kind and their ratios 2 replicas / 1 replica."""
    return [
        run_line(kind, 1, one),
        run_line(kind, 2, two),
        f"  {kind}: 2 replicas / 1 replica = {ratio(two.instructions, one.instructions):.3f}x "
        f"(without timers {ratio(two.steady, one.steady):.3f}x)",
    ]
