"""A private ``redis-server`` that a test can stop and start again on the same port.

``RestartableRedis(workdir, aof=True)`` runs with append-only persistence in ``workdir``
(``appendfsync always``, so everything acknowledged survives a stop); ``aof=False`` runs with no
persistence at all, so a stop loses every key. ``start()`` waits for PING; ``stop()`` sends
SIGTERM (a clean shutdown) and waits for the process to end.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis

from tests.support.redis_server import stop_process

START_TIMEOUT_SECONDS = 10.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RestartableRedis:
    def __init__(self, workdir: Path, *, aof: bool) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not on PATH (apt-get install redis-server)")
        self.binary = binary
        self.workdir = workdir
        self.aof = aof
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2, decode_responses=True)

    def start(self) -> None:
        assert self.process is None, "already running"
        persistence = (
            ["--appendonly", "yes", "--appendfsync", "always"] if self.aof else ["--appendonly", "no"]
        )
        log = self.workdir / "redis.log"
        self.process = subprocess.Popen(
            [
                self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                *persistence, "--dir", str(self.workdir), "--logfile", str(log),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        client = self.client()
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    break
                try:
                    if client.ping():
                        return
                except (redis.ConnectionError, redis.exceptions.BusyLoadingError):
                    time.sleep(0.05)
        finally:
            client.close()
        self.stop()
        raise RuntimeError(f"redis-server on port {self.port} did not answer PING:\n{log.read_text()}")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            stop_process(process)

    def stored_keys(self) -> list[str]:
        client = self.client()
        try:
            return sorted(client.scan_iter(count=500))
        finally:
            client.close()
