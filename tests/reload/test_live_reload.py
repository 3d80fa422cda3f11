"""Hot reload of the real server (``gateway serve --workers 2``): an edited file reaches both workers,
and SIGHUP reloads them in place (same processes) while a client keeps going without one failure."""

from __future__ import annotations

import http.client
import os
import re
import signal
import threading
import time
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from tests.reload.support import authorize_url, with_apps
from tests.support.live_server import LiveServer, live_server

APPLIED = re.compile(r"configuration generation (\d+) applied from .* in process (\d+)")


def status(server: LiveServer, path: str) -> int:
    """One request on a new connection (so the kernel may hand it to either worker)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    finally:
        connection.close()


def edit(server: LiveServer, **changes: Any) -> None:
    yaml = YAML(typ="safe", pure=True)
    data = yaml.load(server.config_path.read_text())
    data.update(changes)
    with server.config_path.open("w") as handle:
        yaml.dump(data, handle)


def workers(server: LiveServer) -> set[int]:
    """The live worker processes (uvicorn logs each as it starts)."""
    started = {int(pid) for pid in re.findall(r"Started server process \[(\d+)\]", server.log())}
    return started & set(server.pids())


def applied(server: LiveServer, generation: int) -> set[int]:
    """The processes that logged applying ``generation``."""
    return {int(pid) for gen, pid in APPLIED.findall(server.log()) if int(gen) == generation}


def refused(server: LiveServer) -> set[int]:
    """The processes that logged refusing a file."""
    return {
        int(pid) for pid in re.findall(r"configuration not reloaded from .* in process (\d+)", server.log())
    }


def wait_for(condition: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_an_edited_file_reaches_both_workers(tmp_path: Path) -> None:
    with live_server(tmp_path, workers=2, overrides={"reload": {"interval_seconds": 0.2}}) as server:
        pids = workers(server)
        assert len(pids) == 2
        assert status(server, authorize_url("added")) == 400
        edit(server, applications=with_apps("added"))
        wait_for(lambda: applied(server, 2) == pids)
        assert [status(server, authorize_url("added")) for _ in range(20)] == [200] * 20
        edit(server, applications=with_apps(), limts={})  # invalid: refused, generation 2 keeps serving
        wait_for(lambda: refused(server) == pids)
        assert [status(server, authorize_url("added")) for _ in range(20)] == [200] * 20
        assert "gateway.yaml:" in server.log() and ": limts: unknown key" in server.log()
        assert workers(server) == pids


def test_sighup_reloads_both_workers_in_place_without_a_failed_request(tmp_path: Path) -> None:
    with live_server(tmp_path, workers=2, overrides={"reload": {"watch": False}}) as server:
        pids = workers(server)
        failures: list[str] = []
        count = 0
        done = threading.Event()

        def client() -> None:
            nonlocal count
            while not done.is_set():
                try:
                    code = status(server, "/.well-known/openid-configuration")
                    if code != 200:
                        failures.append(str(code))
                except OSError as exc:
                    failures.append(repr(exc))
                count += 1

        loop = threading.Thread(target=client)
        loop.start()
        try:
            edit(server, demo={"enabled": False})
            time.sleep(1.0)
            assert status(server, "/demo") == 200  # not watched: nothing changes by itself
            os.kill(server.process.pid, signal.SIGHUP)
            wait_for(lambda: applied(server, 2) == pids)
            time.sleep(0.5)
        finally:
            done.set()
            loop.join()
        assert failures == [] and count > 20
        assert workers(server) == pids  # reloaded in place: no worker was replaced
        assert [status(server, "/demo") for _ in range(10)] == [404] * 10
