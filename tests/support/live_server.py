"""The real gateway as a subprocess (``python -m gateway serve``) on a free loopback port.

``live_server(workdir, smtp=(host, port), workers=N, overrides={...})`` writes a config built
from ``config/gateway.yaml`` (issuer, demo redirect and logout URIs on the chosen port, a random
secret, the store under ``workdir/var/``, mail to the given SMTP server or, without one, the
console), starts the server with ``workdir`` as its working directory, waits until every worker
has started and ``/healthz`` answers, yields a ``LiveServer`` and stops the server (SIGTERM, then
SIGKILL for anything left) when the block ends. Its output goes to ``workdir/server.log``.
``host`` is the loopback address it binds and publishes (default ``127.0.0.1``; another one,
e.g. ``127.0.0.2``, keeps two servers' cookies apart); ``port`` fixes the port (no retry when it
is taken), for servers whose configurations name each other.

``serving(argv, ...)`` does the same for any uvicorn command line (the benchmark's floor app);
``tree_cpu_seconds(pid)`` is the user+system CPU time of a process and all its live descendants
(uvicorn's workers), read from ``/proc``: the benchmark's measure of cost.
"""

from __future__ import annotations

import http.client
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from tests.support.gateway_app import default_config, merge

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
STARTED = "Application startup complete"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class ServerFailed(RuntimeError):
    """The server did not start; the message carries its log."""


class ServerExited(ServerFailed):
    """The server exited during start-up; ``output`` is its log."""

    def __init__(self, output: str) -> None:
        super().__init__(f"the server exited during start-up:\n{output}")
        self.output = output


def free_port(host: str = HOST) -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _read_stat(pid: int) -> list[str] | None:
    """``/proc/PID/stat`` after the command name: [state, ppid, ...]; None if the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            text = handle.read()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def process_tree(root: int) -> list[int]:
    """``root`` and every live descendant."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _read_stat(int(entry))) is not None:
            children.setdefault(int(stat[1]), []).append(int(entry))
    found, queue = [], [root]
    while queue:
        pid = queue.pop()
        found.append(pid)
        queue.extend(children.get(pid, []))
    return found


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds used so far by these processes (all their threads)."""
    ticks = 0
    for pid in pids:
        if (stat := _read_stat(pid)) is not None:  # fields 14 and 15 of /proc/PID/stat: utime, stime
            ticks += int(stat[11]) + int(stat[12])
    return ticks / CLOCK_TICKS


def tree_cpu_seconds(root: int) -> float:
    """User + system CPU seconds used so far by ``root`` and its live descendants."""
    return cpu_seconds(process_tree(root))


def _identities(pids: list[int]) -> set[tuple[int, str]]:
    """(pid, start time) pairs: a pid later reused by an unrelated process never matches."""
    return {(pid, stat[19]) for pid in pids if (stat := _read_stat(pid)) is not None}


def _stop(process: subprocess.Popen[bytes], started: set[tuple[int, str]], timeout: float = 15.0) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)  # uvicorn's supervisor passes it on to its workers
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for pid, start in started:  # a worker that outlived its supervisor (it should not)
        stat = _read_stat(pid)
        if pid != process.pid and stat is not None and stat[19] == start:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _answers(host: str, port: int, path: str) -> bool:
    connection = http.client.HTTPConnection(host, port, timeout=2)
    try:
        connection.request("GET", path)
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def _log(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


@contextmanager
def serving(
    argv: list[str],
    *,
    cwd: Path,
    log_path: Path,
    port: int,
    workers: int = 1,
    health_path: str = "/healthz",
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
    host: str = HOST,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run a uvicorn-based server until the block ends; ready when ``workers`` started and it answers."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            argv, cwd=cwd, env=dict(env) if env is not None else None, stdin=subprocess.DEVNULL,
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    started: set[tuple[int, str]] = set()
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise ServerExited(_log(log_path))
            if _log(log_path).count(STARTED) >= workers and _answers(host, port, health_path):
                break
            if time.monotonic() > deadline:
                raise ServerFailed(
                    f"the server did not become ready within {timeout:.0f}s:\n{_log(log_path)}"
                )
            time.sleep(0.1)
        started = _identities(process_tree(process.pid))
        yield process
    finally:
        _stop(process, started | _identities(process_tree(process.pid)))


def gateway_config(
    port: int,
    *,
    smtp: tuple[str, int] | None = None,
    overrides: Mapping[str, Any] | None = None,
    host: str = HOST,
) -> dict[str, Any]:
    """The default configuration, moved to ``http://HOST:PORT``, deep-merged with ``overrides``."""
    base = f"http://{host}:{port}"
    data = default_config()
    data["issuer"] = base
    data["store"] = "sqlite:///var/gateway.db"  # relative: under the server's working directory
    data["secrets"] = {"key": secrets.token_urlsafe(32)}
    if smtp is not None:
        data["mail"] = {"from": data["mail"]["from"], "smtp": {"host": smtp[0], "port": smtp[1]}}
    for app in data.get("applications", []):
        if app.get("id") == "demo":
            app["oidc"]["redirect_uris"] = [f"{base}/demo/callback"]
            app["oidc"]["post_logout_redirect_uris"] = [f"{base}/demo"]
    return merge(data, dict(overrides or {}))


@dataclass
class LiveServer:
    base_url: str
    port: int
    workers: int
    workdir: Path
    config_path: Path
    log_path: Path
    process: subprocess.Popen[bytes]

    def log(self) -> str:
        return _log(self.log_path)

    def pids(self) -> list[int]:
        """The server process and its workers."""
        return process_tree(self.process.pid)

    def cpu_seconds(self) -> float:
        """User + system CPU seconds used so far by the server, its workers and their mail relays
        (the process tree as it is now: a relay started since the last reading counts)."""
        return tree_cpu_seconds(self.process.pid)


@contextmanager
def live_server(
    workdir: Path,
    *,
    smtp: tuple[str, int] | None = None,
    workers: int = 1,
    overrides: Mapping[str, Any] | None = None,
    timeout: float = 60.0,
    host: str = HOST,
    port: int | None = None,
) -> Iterator[LiveServer]:
    """Run ``gateway serve`` from ``workdir`` until the block ends (see the module docstring)."""
    workdir.mkdir(parents=True, exist_ok=True)
    config_path, log_path = workdir / "gateway.yaml", workdir / "server.log"
    env = {k: v for k, v in os.environ.items() if k != "GATEWAY_CONFIG"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    for attempt in range(3):  # a free port can be taken between the probe and the server's bind
        bound = free_port(host) if port is None else port
        with config_path.open("w") as handle:
            config = gateway_config(bound, smtp=smtp, overrides=overrides, host=host)
            YAML(typ="safe", pure=True).dump(config, handle)
        argv = [sys.executable, "-m", "gateway", "serve", "--config", str(config_path),
                "--host", host, "--port", str(bound), "--workers", str(workers)]  # fmt: skip
        try:
            with serving(argv, cwd=workdir, log_path=log_path, port=bound, workers=workers, env=env,
                         timeout=timeout, host=host) as process:  # fmt: skip
                yield LiveServer(
                    f"http://{host}:{bound}", bound, workers, workdir, config_path, log_path, process
                )
                return
        except ServerExited as exc:
            if "cannot listen" not in exc.output or attempt == 2 or port is not None:
                raise
