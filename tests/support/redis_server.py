"""Pytest plugin: a real ``redis-server`` on a free loopback port for the whole test session.

``redis_url`` (session) starts it and yields ``redis://127.0.0.1:PORT/0``; ``fresh_redis_url``
(function) flushes that database first, so each test starts empty. A missing ``redis-server``
fails the run (it is part of the test environment), it never skips.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

START_TIMEOUT_SECONDS = 10.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(binary: str, workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    log = workdir / f"redis-{port}.log"
    process = subprocess.Popen(
        [
            binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(workdir), "--logfile", str(log),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1, socket_connect_timeout=1)
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                break
            try:
                if client.ping():
                    return process, port
            except redis.ConnectionError:
                time.sleep(0.05)
    finally:
        client.close()
    process.kill()
    process.wait()
    output = log.read_text(errors="replace") if log.exists() else ""
    raise RuntimeError(f"redis-server on port {port} did not answer PING:\n{output}")


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail(
            "redis-server is not on PATH: run `make test` (it installs it) or `apt-get install redis-server`",
            pytrace=False,
        )
    workdir = tmp_path_factory.mktemp("redis")
    try:
        process, port = _start(binary, workdir)
    except RuntimeError:
        process, port = _start(binary, workdir)  # the free port was taken in between: try once more
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop_process(process)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if the server has not exited within 10 s."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def flush_db(url: str) -> None:
    """Empty the database of ``url``."""
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


@pytest.fixture
def fresh_redis_url(redis_url: str) -> str:
    """``redis_url`` with its database emptied, so a test sees no keys from earlier tests."""
    flush_db(redis_url)
    return redis_url
