"""``gateway serve --workers N`` (N > 1): uvicorn's worker supervisor, with SIGHUP passed on.

uvicorn's own supervisor (``uvicorn.supervisors.multiprocess``) answers SIGHUP by replacing every
worker, one after the other: a new process starts, reads the file and opens its runtime, then the
old one is stopped. Here each worker reloads the configuration in place instead
(``gateway.reload``: an invalid file is refused and logged while the running generation keeps
serving, and no connection is dropped), so the supervisor only sends SIGHUP on to every worker
that has started; one still starting (whose handler is not installed yet, and whom SIGHUP would
kill) gets it as soon as it has. SIGINT, SIGTERM, SIGTTIN and SIGTTOU keep uvicorn's meaning.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import signal
from collections.abc import Iterator
from socket import socket
from typing import Any

from uvicorn import Config
from uvicorn.supervisors.multiprocess import Multiprocess, Process

logger = logging.getLogger("gateway.reload")


class Supervisor(Multiprocess):
    """uvicorn's ``Multiprocess`` whose SIGHUP reloads the workers' configuration (module docstring)."""

    def __init__(self, config: Config, sockets: list[socket]) -> None:
        super().__init__(config, sockets)
        self._hup_pending: list[Process] = []

    def handle_hup(self) -> None:
        logger.info("Received SIGHUP, passing it on to the workers (configuration reload).")
        self._hup_pending = list(self.processes)
        self._send_hups()

    def keep_subprocess_alive(self) -> None:
        super().keep_subprocess_alive()
        self._send_hups()

    def _send_hups(self) -> None:
        waiting: list[Process] = []
        for process in self._hup_pending:
            if process not in self.processes or process.pid is None or not process.process.is_alive():
                continue  # replaced or gone: its successor reads the file when it starts
            if process.is_ready(timeout=1):
                os.kill(process.pid, signal.SIGHUP)
            else:
                waiting.append(process)
        self._hup_pending = waiting


@contextlib.contextmanager
def sighup_reloads_workers() -> Iterator[None]:
    """Within the block, ``uvicorn.run(..., workers=N)`` supervises its workers with ``Supervisor``
    (it looks the class up as ``uvicorn.main.Multiprocess`` when it runs); restored afterwards."""
    module: Any = importlib.import_module("uvicorn.main")  # the module (`uvicorn.main` is the command)
    original = module.Multiprocess
    module.Multiprocess = Supervisor
    try:
        yield
    finally:
        module.Multiprocess = original
