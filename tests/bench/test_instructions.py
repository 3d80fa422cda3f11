"""The pieces of ``bench/instructions.py`` that need no valgrind: reading a callgrind summary, the
arithmetic of instructions per operation (the sum over replicas, the timers' share, the idle rate),
the options, and the Redis snapshot every run starts from."""

from __future__ import annotations

import math

import pytest
import redis

from bench import instructions
from bench.instructions_figures import (
    PerOperation,
    RunTotals,
    callgrind_total,
    comparison_lines,
    idle_rate,
    per_operation,
)
from bench.instructions_replicas import Plan, restore, snapshot

CALLGRIND = """# callgrind format
version: 1
creator: callgrind-3.19.0
cmd:  /work/main/.venv/bin/python -m gateway serve
events: Ir
summary: 5390170359

fn=(1) 0x0000000000001100
0 3
totals: 5390170359
"""


def test_the_summary_line_is_the_total() -> None:
    assert callgrind_total(CALLGRIND) == 5_390_170_359


def test_the_totals_line_serves_when_there_is_no_summary() -> None:
    text = CALLGRIND.replace("summary: 5390170359\n", "").replace("totals: 5390170359", "totals: 42 7")
    assert callgrind_total(text) == 42


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "version: 1\nevents: Ir\nfn=(1)\n0 3\n",
            "run-0.callgrind: no callgrind summary (did the gateway stop",
        ),
        ("events: Ir\nsummary: many\n", "run-0.callgrind: malformed summary line 'summary: many'"),
        ("events: Ir\nsummary:\n", "run-0.callgrind: malformed summary line"),
    ],
    ids=["cut-short", "not-a-number", "empty"],
)
def test_an_output_without_a_readable_total_is_refused_by_name(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        callgrind_total(text, "run-0.callgrind")


def test_the_figure_is_the_sum_over_the_processes_of_measured_minus_warm_per_operation() -> None:
    warm = RunTotals((400_000_000, 410_000_000), (30.0, 29.0))
    measured = RunTotals((1_400_000_000, 1_610_000_000), (130.0, 129.0))

    figure = per_operation(warm, measured, 100, idle_rate=50_000.0)

    assert figure.per_process == (10_000_000.0, 12_000_000.0)
    assert figure.instructions == 22_000_000.0
    assert figure.timers == 50_000.0 * 200.0 / 100  # each process lived 100 s longer
    assert figure.steady == 22_000_000.0 - 100_000.0


def test_without_an_idle_rate_nothing_is_attributed_to_timers() -> None:
    figure = per_operation(RunTotals((10,), (1.0,)), RunTotals((110,), (9.0,)), 10)
    assert (figure.instructions, figure.timers, figure.steady) == (10.0, 0.0, 10.0)


@pytest.mark.parametrize(
    ("warm", "measured", "ops", "rate", "message"),
    [
        (
            RunTotals((1,), (1.0,)),
            RunTotals((2, 2), (2.0, 2.0)),
            1,
            0.0,
            "warm run had 1 processes, the measured",
        ),
        (RunTotals((1,), (1.0,)), RunTotals((2,), (2.0,)), 0, 0.0, "operations measured must be at least 1"),
        (RunTotals((1,), (1.0,)), RunTotals((2,), (2.0,)), 1, -1.0, "idle rate must be a finite number >= 0"),
        (RunTotals((1,), (1.0,)), RunTotals((2,), (2.0,)), 1, math.nan, "idle rate must be a finite number"),
    ],
    ids=["replicas-differ", "no-ops", "negative-rate", "nan-rate"],
)
def test_figures_that_cannot_be_subtracted_are_refused(
    warm: RunTotals, measured: RunTotals, ops: int, rate: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        per_operation(warm, measured, ops, rate)


def test_a_run_needs_one_lifetime_per_process_and_no_negative_figure() -> None:
    with pytest.raises(ValueError, match="one lifetime per process: 2 instruction totals, 1 lifetimes"):
        RunTotals((1, 2), (1.0,))
    with pytest.raises(ValueError, match="one lifetime per process: 0 instruction totals"):
        RunTotals((), ())
    with pytest.raises(ValueError, match="cannot be negative"):
        RunTotals((-1,), (1.0,))


def test_the_idle_rate_is_the_difference_of_two_idle_runs_over_their_lifetimes() -> None:
    assert idle_rate(RunTotals((1_000_000,), (21.0,)), RunTotals((3_000_000,), (41.0,))) == 100_000.0
    with pytest.raises(ValueError, match="must outlive the short one"):
        idle_rate(RunTotals((1,), (41.0,)), RunTotals((2,), (21.0,)))
    with pytest.raises(ValueError, match="one process per run"):
        idle_rate(RunTotals((1, 1), (1.0, 1.0)), RunTotals((2, 2), (2.0, 2.0)))


def test_the_comparison_prints_both_rows_and_the_ratios_two_over_one() -> None:
    one = PerOperation(30e6, 0.3e6, (30e6,))
    two = PerOperation(31.5e6, 0.6e6, (15.5e6, 16e6))

    rows = comparison_lines("passcode", one, two)

    assert "30.00 M" in rows[0] and "29.70 M" in rows[0]
    assert rows[1].split()[:2] == ["passcode", "2"] and "15.50 + 16.00" in rows[1]
    assert rows[2] == "  passcode: 2 replicas / 1 replica = 1.050x (without timers 1.040x)"


def test_the_plans_differ_only_by_the_measured_operations() -> None:
    assert instructions.plans("passcode", 100) == (Plan(20), Plan(120))
    assert instructions.plans("token", 60) == (Plan(20, 20), Plan(20, 80))
    assert instructions.plans("token", 60, 1) == (Plan(20, 20, concurrency=1), Plan(20, 80, concurrency=1))
    with pytest.raises(ValueError, match="unknown kind 'oidc'"):
        instructions.plans("oidc", 1)


def test_redis_compares_one_and_two_replicas_by_default_with_the_idle_rate() -> None:
    options = instructions.parse(["--store", "redis", "--kind", "all", "--signins", "60"])
    assert (options.replicas, options.kinds, options.idle, options.signins) == (
        (1, 2),
        ("passcode", "token"),
        True,
        60,
    )
    assert instructions.parse(["--store", "redis", "--compare-replicas"]).compare
    single = instructions.parse(["--store", "redis", "--replicas", "2", "--kind", "token"])
    assert (single.replicas, single.kinds, single.idle) == ((2,), ("token",), False)
    assert instructions.parse([]) == instructions.Options()  # the SQLite default of before
    assert instructions.parse(["--store", "redis", "--concurrency", "1"]).concurrency == 1
    idle = instructions.parse(["--idle"])
    assert idle.only_idle and idle.idle and idle.replicas == (1,)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--replicas", "2"], "--replicas 2: replicas share a store only on Redis; add --store redis"),
        (["--compare-replicas"], "--compare-replicas: needs --store redis"),
        (["--store", "redis", "--compare-replicas", "--replicas", "1"], "leave out --replicas"),
        (["--store", "redis", "--idle", "--replicas", "2"], "--idle measures one idle process only"),
        (["--signins", "0"], "--signins: must be at least 1"),
        (["--concurrency", "0"], "--concurrency: must be at least 1"),
        (["--replicas", "3"], "argument --replicas: invalid choice: 3"),
        (["--kind", "oidc"], "argument --kind: invalid choice: 'oidc'"),
    ],
)
def test_bad_options_are_refused_with_a_clear_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        instructions.parse(argv)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.redis
def test_a_snapshot_restores_every_key_with_its_value_and_time_to_live(fresh_redis_url: str) -> None:
    with redis.Redis.from_url(fresh_redis_url) as client:
        client.set("gw:meta:{meta}:pairwise_salt", b"salt")
        client.hset("gw:a:{session:1}", mapping={"payload": "{}", "uses": "0"})
        client.set("gw:a:{code:1}", b"code", px=600_000)
        saved = snapshot(fresh_redis_url)
        client.set("gw:meta:{meta}:pairwise_salt", b"changed")
        client.set("gw:a:{later}", b"written by a run")
        client.delete("gw:a:{session:1}")

        restore(fresh_redis_url, saved)

        assert sorted(client.keys()) == [
            b"gw:a:{code:1}",
            b"gw:a:{session:1}",
            b"gw:meta:{meta}:pairwise_salt",
        ]
        assert client.get("gw:meta:{meta}:pairwise_salt") == b"salt"
        assert client.hgetall("gw:a:{session:1}") == {b"payload": b"{}", b"uses": b"0"}
        assert client.pttl("gw:meta:{meta}:pairwise_salt") == -1
        assert 590_000 < client.pttl("gw:a:{code:1}") <= 600_000
