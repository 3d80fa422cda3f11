"""The orchestrator's side of the load generator (``bench/load.py``): the client processes and the mail hub.

``Generator(specs)`` starts one process per ``ClientSpec`` (multiprocessing with the spawn start
method: each process builds its own event loop and connections, nothing is inherited), and
``await generator.run(Run(...))`` sends the same command to every process (or to one) and gathers
their ``WindowResult``s; ``close()`` ends them (a process that does not end within 10 s is
terminated).

``PasscodeHub`` is the one SMTP server the gateways send mail to: ``PasscodeSink``'s parser on the
orchestrator's event loop. Each client process connects to its TCP port and says its index; each
passcode is forwarded, as one ``address passcode`` line, to the process whose index the recipient
address carries (``c<index>-...@...``).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import re
import time
from collections.abc import Sequence
from contextlib import suppress
from typing import Any

from bench.load_client import ClientSpec, Run, WindowResult, client_main
from bench.signin_driver import PasscodeSink

ADDRESS_INDEX = re.compile(r"^c(\d+)-")
STOP_SECONDS = 10.0
REGISTER_SECONDS = 60.0


class PasscodeHub(PasscodeSink):
    def __init__(self) -> None:
        super().__init__()
        self._clients: dict[int, asyncio.StreamWriter] = {}
        self._hub: asyncio.Server | None = None
        self.hub_port = 0
        self.unrouted = 0  # mail for an address no client process claims (a bug in the benchmark)

    async def start(self) -> None:
        await super().start()
        self._hub = await asyncio.start_server(self._register, self.host, 0)
        self.hub_port = int(self._hub.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._hub is not None:
            self._hub.close()
            for writer in self._clients.values():
                writer.close()
            await self._hub.wait_closed()
        await super().stop()

    async def _register(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = await reader.readline()
        if line.strip().isdigit():
            self._clients[int(line)] = writer
        else:
            writer.close()

    async def wait_for(self, indices: Sequence[int]) -> None:
        deadline = time.monotonic() + REGISTER_SECONDS
        while not set(indices) <= self._clients.keys():
            if time.monotonic() > deadline:
                missing = sorted(set(indices) - self._clients.keys())
                raise RuntimeError(f"load: client processes {missing} did not reach the mail hub")
            await asyncio.sleep(0.05)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received += 1
        content = envelope.content if isinstance(envelope.content, bytes) else envelope.content.encode()
        code = self._passcode(content) or ""
        for recipient in envelope.rcpt_tos:
            address = str(recipient).lower()
            match = ADDRESS_INDEX.match(address)
            writer = self._clients.get(int(match.group(1))) if match else None
            if writer is None:
                self.unrouted += 1
                continue
            writer.write(f"{address} {code}\n".encode())
        return "250 2.0.0 OK"


class Generator:
    def __init__(self, specs: Sequence[ClientSpec]) -> None:
        context = multiprocessing.get_context("spawn")
        self.indices = [spec.index for spec in specs]
        self._pipes = []
        self._processes = []
        for spec in specs:
            parent, child = context.Pipe()
            process = context.Process(
                target=client_main, args=(spec, child), name=f"load-client-{spec.index}"
            )
            process.start()
            child.close()
            self._pipes.append(parent)
            self._processes.append(process)

    @property
    def pids(self) -> list[int]:
        return [process.pid for process in self._processes if process.pid is not None]

    async def run(self, run: Run, *, only: int | None = None) -> list[WindowResult]:
        pipes = self._pipes if only is None else [self._pipes[only]]
        for pipe in pipes:
            pipe.send(run)
        results: list[WindowResult] = await asyncio.gather(*(asyncio.to_thread(pipe.recv) for pipe in pipes))
        return results

    def close(self) -> None:
        for pipe in self._pipes:
            with suppress(OSError):  # the process is gone already
                pipe.send(None)
        for process in self._processes:
            process.join(STOP_SECONDS)
            if process.is_alive():
                process.terminate()
                process.join(STOP_SECONDS)
        for pipe in self._pipes:
            pipe.close()
