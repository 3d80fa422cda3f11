"""The real gateway as a subprocess (``python -m gateway serve``) on a free loopback port.

``live_server(workdir, smtp=(host, port), workers=N, overrides={...})`` writes a config built
from ``config/gateway.yaml`` (issuer, demo redirect URIs and logout URIs on the chosen port, a
random secret, the store under ``workdir/var/``, mail to the given SMTP server or the console),
starts the server with ``workdir`` as its working directory, waits until every worker has
started and ``/healthz`` answers, yields a ``LiveServer`` and stops the server (SIGTERM, then
SIGKILL for anything left) on exit. Its output goes to ``workdir/server.log``.

``LiveServer.cpu_seconds()`` is the user+system CPU time of the server process and all its
descendants (the uvicorn workers), read from ``/proc``: the benchmark's measure of cost.
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
from contextlib import closing, contextmanager
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
    """The server did not start (or exited); the message carries its log."""


def free_port(host: str = HOST) -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def gateway_config(
    port: int, *, smtp: tuple[str, int] | None = None, overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The default configuration, moved to ``http://127.0.0.1:PORT``, deep-merged with ``overrides``."""
    base = f"http://{HOST}:{port}"
    data = default_config()
    data["issuer"] = base
    data["store"] = "sqlite:///var/gateway.db"  # relative: under the server's working directory
    data["secrets"] = {"key": secrets.token_urlsafe(32)}
    mail_from = data["mail"]["from"]
    if smtp is not None:
        data["mail"] = {"from": mail_from, "smtp": {"host": smtp[0], "port": smtp[1]}}
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
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def pids(self) -> list[int]:
        """The server process and every live descendant (uvicorn's workers)."""
        children: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            stat = _read_stat(int(entry))
            if stat is not None:
                children.setdefault(int(stat[1]), []).append(int(entry))
        found, queue = [], [self.process.pid]
        while queue:
            pid = queue.pop()
            found.append(pid)
            queue.extend(children.get(pid, []))
        return found

    def cpu_seconds(self) -> float:
        """User + system CPU seconds used so far by the server and its live descendants."""
        ticks = 0
        for pid in self.pids():
            stat = _read_stat(pid)
            if stat is not None:  # fields 14 and 15 of /proc/PID/stat: utime, stime
                ticks += int(stat[11]) + int(stat[12])
        return ticks / CLOCK_TICKS


def _read_stat(pid: int) -> list[str] | None:
    """``/proc/PID/stat`` after the command name: [state, ppid, ...]; None if the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            text = handle.read()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def _healthy(port: int) -> bool:
    connection = http.client.HTTPConnection(HOST, port, timeout=2)
    try:
        connection.request("GET", "/healthz")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def _identities(pids: list[int]) -> set[tuple[int, str]]:
    """(pid, start time) pairs: a pid reused by an unrelated process never matches."""
    found = set()
    for pid in pids:
        stat = _read_stat(pid)
        if stat is not None:
            found.add((pid, stat[19]))
    return found


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
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _start(
    workdir: Path, port: int, workers: int, config: dict[str, Any], timeout: float
) -> tuple[LiveServer | None, str]:
    config_path = workdir / "gateway.yaml"
    with config_path.open("w") as handle:
        YAML(typ="safe", pure=True).dump(config, handle)
    log_path = workdir / "server.log"
    env = dict(os.environ)
    env.pop("GATEWAY_CONFIG", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--config", str(config_path),
             "--host", HOST, "--port", str(port), "--workers", str(workers)],
            cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    server = LiveServer(f"http://{HOST}:{port}", port, workers, workdir, config_path, log_path, process)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return None, server.log()
        if server.log().count(STARTED) >= workers and _healthy(port):
            return server, ""
        time.sleep(0.1)
    _stop(process, _identities(server.pids()))
    raise ServerFailed(f"the gateway did not become healthy within {timeout:.0f}s:\n{server.log()}")


@contextmanager
def live_server(
    workdir: Path,
    *,
    smtp: tuple[str, int] | None = None,
    workers: int = 1,
    overrides: Mapping[str, Any] | None = None,
    timeout: float = 60.0,
) -> Iterator[LiveServer]:
    """Run ``gateway serve`` from ``workdir`` until the block ends (see the module docstring)."""
    workdir.mkdir(parents=True, exist_ok=True)
    output = ""
    for _ in range(3):  # a free port can be taken between the probe and the server's bind
        port = free_port()
        server, output = _start(workdir, port, workers, gateway_config(port, smtp=smtp, overrides=overrides), timeout)
        if server is not None:
            break
        if "cannot listen" not in output:
            raise ServerFailed(f"the gateway exited during start-up:\n{output}")
    else:
        raise ServerFailed(f"the gateway could not bind a port:\n{output}")
    started = _identities(server.pids())
    try:
        yield server
    finally:
        _stop(server.process, started | _identities(server.pids()))
