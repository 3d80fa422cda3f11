"""Pytest fixtures: a real Redis Cluster (three primaries) and a real Sentinel, on loopback.

``redis_cluster_url`` (session) starts three ``redis-server --cluster-enabled yes`` nodes, joins
them with ``redis-cli --cluster create`` and yields ``redis+cluster://127.0.0.1:P1,127.0.0.1:P2``;
``redis_sentinel_url`` (session) starts a primary and a ``redis-server --sentinel`` that monitors
it as ``mymaster`` and yields ``redis+sentinel://127.0.0.1:SP/mymaster/0``. Each test flushes what
it uses. Servers are stopped (SIGTERM, then SIGKILL) at the end of the session.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import redis

from tests.support.redis_server import _free_port, stop_process

READY_SECONDS = 15.0


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not on PATH: `apt-get install redis-server` (it ships {name})", pytrace=False)
    return found


def _spawn(stack: ExitStack, argv: list[str], log: Path) -> None:
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    stack.callback(stop_process, process)


def _wait(check: object, what: str, log: Path) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        try:
            if callable(check) and check():
                return
        except redis.RedisError:
            pass
        time.sleep(0.1)
    raise RuntimeError(
        f"{what} did not become ready:\n{log.read_text(errors='replace') if log.exists() else ''}"
    )


def _cluster_port() -> int:
    """A free port a cluster node can use: Redis Cluster talks on port + 10000, so at most 55535."""
    for _ in range(200):
        port = _free_port()
        if port <= 55535:
            return port
    raise RuntimeError("no free port at or below 55535 for a Redis Cluster node")


def _ping(port: int) -> bool:
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1, socket_connect_timeout=1)
    try:
        return bool(client.ping())
    finally:
        client.close()


@pytest.fixture(scope="session")
def redis_cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server, cli = _binary("redis-server"), _binary("redis-cli")
    workdir = tmp_path_factory.mktemp("redis-cluster")
    with ExitStack() as stack:
        ports = [_cluster_port() for _ in range(3)]
        for port in ports:
            log = workdir / f"node-{port}.log"
            _spawn(stack, [
                server, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                "--cluster-config-file", str(workdir / f"nodes-{port}.conf"), "--save", "",
                "--appendonly", "no", "--dir", str(workdir), "--logfile", str(log),
            ], log)  # fmt: skip
            _wait(lambda port=port: _ping(port), f"cluster node {port}", log)
        subprocess.run(
            [cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports), "--cluster-replicas", "0",
             "--cluster-yes"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, timeout=30,
        )  # fmt: skip

        def ok() -> bool:
            for port in ports:
                client = redis.Redis(host="127.0.0.1", port=port, decode_responses=True)
                try:
                    if client.cluster("INFO").get("cluster_state") != "ok":
                        return False
                finally:
                    client.close()
            return True

        _wait(ok, "the cluster", workdir / f"node-{ports[0]}.log")
        yield f"redis+cluster://127.0.0.1:{ports[0]},127.0.0.1:{ports[1]}"


@pytest.fixture(scope="session")
def redis_sentinel_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = _binary("redis-server")
    workdir = tmp_path_factory.mktemp("redis-sentinel")
    with ExitStack() as stack:
        primary, sentinel = _free_port(), _free_port()
        log = workdir / "primary.log"
        _spawn(stack, [
            server, "--port", str(primary), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(workdir), "--logfile", str(log),
        ], log)  # fmt: skip
        _wait(lambda: _ping(primary), "the primary", log)
        config = workdir / "sentinel.conf"  # a sentinel rewrites its configuration: a file of its own
        config.write_text(
            f"port {sentinel}\nbind 127.0.0.1\ndir {workdir}\nlogfile {workdir / 'sentinel.log'}\n"
            f"sentinel monitor mymaster 127.0.0.1 {primary} 1\n"
        )
        _spawn(stack, [server, str(config), "--sentinel"], workdir / "sentinel.log")

        def knows_primary() -> bool:
            client = redis.Redis(host="127.0.0.1", port=sentinel, decode_responses=True)
            try:
                found = client.execute_command("SENTINEL", "get-master-addr-by-name", "mymaster")  # type: ignore[no-untyped-call]
                return bool(found) and int(found[1]) == primary
            finally:
                client.close()

        _wait(knows_primary, "the sentinel", workdir / "sentinel.log")
        yield f"redis+sentinel://127.0.0.1:{sentinel}/mymaster/0"
