"""``bench/load.py`` in miniature: one replica on a real Redis, two load-generator processes, a window of
about a second per kind. Every kind of operation must complete without an error, the CPU and rate
figures must be real numbers, and the session memory must have been measured on real session keys."""

from __future__ import annotations

import math

import pytest
import uvloop

from bench import load

pytestmark = pytest.mark.redis
ARGV = ["--targets", "redis-1", "--duration", "1", "--windows", "1", "--clients", "2", "--concurrency", "2"]


def test_a_minimal_run_against_one_replica_on_redis_completes_every_kind() -> None:
    options = load.parse(ARGV)
    assert options.targets == ("redis-1",) and options.clients == 2

    results, lines = uvloop.run(load.run(options))

    figures = results["redis-1"]
    for kind in ("passcode", "oidc", "token"):
        measured = figures.kinds[kind]
        assert measured.errors == [], measured.errors[:3]
        assert measured.ops > 0, kind
        assert measured.rate() > 0 and math.isfinite(measured.cpu_ms("gateway")), kind
        assert measured.cpu_ms("gateway") > 0 and math.isfinite(measured.cpu_ms("redis")), kind
    assert figures.kinds["token"].latencies.keys() >= {"refresh", "userinfo"}
    sessions = figures.sessions
    assert sessions is not None
    assert sessions.sessions >= figures.kinds["passcode"].ops + figures.kinds["oidc"].ops
    assert sessions.mean_bytes > 0 and sessions.freed_per_session > 0
    assert any("<= 1024: PASS" in line or "<= 1024: FAIL" in line for line in lines)
    assert any(line.startswith("== redis-1: 1 replica on Redis ==") for line in lines)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--targets", "redis-3"], "--targets: redis-3: choose from"),
        (["--clients", "0"], "--clients: must be positive"),
        (["--duration", "-1"], "--duration: must be positive"),
    ],
)
def test_bad_options_are_refused_with_a_clear_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        load.parse(argv)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err
