"""Redis for the load benchmark (``bench/load.py``): the server, its memory and the size of a session.

``redis_server(workdir)`` runs a real ``redis-server`` on a free loopback port (the test suite's
starter, ``tests/support/redis_server.py``: no persistence) and yields ``(url, pid)``.
``session_memory(url)`` measures what the stored SSO sessions cost, after a run, two ways:

- ``MEMORY USAGE key SAMPLES 0`` of a sample of the session keys (``gw:a:{session:<sha256>}``,
  ``gateway/store/redis.py``'s artefact layout: a HASH of ``payload``, ``grant`` and ``uses``):
  the bytes of one key as Redis accounts them;
- the drop of ``INFO memory``'s ``used_memory`` when every session key is deleted, divided by
  their number: what a session costs the server, its share of the keyspace tables included.

It also says why a session is the size it is: the key's encoding (a HASH whose values all fit in
``hash-max-listpack-value`` bytes is one compact listpack; one longer value turns it into a hash
table), the payload's length and the length of each of its top-level fields.
"""

from __future__ import annotations

import json
import shutil
import statistics
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from tests.support.redis_server import _start

SESSION_PATTERN = "gw:a:{session:*"
SAMPLE = 200
TARGET_BYTES = 1024


@contextmanager
def redis_server(workdir: Path) -> Iterator[tuple[str, int]]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("load: redis-server is not on PATH (`make test` installs it)")
    workdir.mkdir(parents=True, exist_ok=True)
    process, port = _start(binary, workdir)
    try:
        yield f"redis://127.0.0.1:{port}/0", process.pid
    finally:
        process.terminate()
        process.wait(timeout=10)


def flush(url: str) -> None:
    with redis.Redis.from_url(url) as client:
        client.flushall()


def used_memory(url: str) -> int:
    with redis.Redis.from_url(url) as client:
        return int(client.info("memory")["used_memory"])


@dataclass(frozen=True)
class SessionMemory:
    sessions: int
    sampled: int
    mean_bytes: float
    median_bytes: float
    max_bytes: int
    freed_per_session: float  # used_memory drop when every session key is deleted, per session
    encoding: str
    listpack_value_limit: int
    payload_bytes: float  # mean length of the payload JSON
    field_bytes: dict[str, int]  # one sample payload: the JSON length of each top-level field

    @property
    def passed(self) -> bool:
        return max(self.mean_bytes, self.freed_per_session) <= TARGET_BYTES

    def lines(self) -> list[str]:
        if self.sessions == 0:
            return ["no session keys found: nothing to measure (FAIL)"]
        verdict = "PASS" if self.passed else "FAIL"
        per_10k = self.freed_per_session * 10_000 / 2**20
        fields = ", ".join(
            f"{name} {size} B" for name, size in sorted(self.field_bytes.items(), key=lambda x: -x[1])
        )
        return [
            f"{self.sessions} session keys; MEMORY USAGE of {self.sampled}: mean {self.mean_bytes:.0f} B, "
            f"median {self.median_bytes:.0f} B, max {self.max_bytes} B",
            f"used_memory freed by deleting all {self.sessions}: {self.freed_per_session:.0f} B per session "
            f"= {per_10k:.2f} MiB per 10k sessions",
            f"bytes per session (the larger of the two) <= {TARGET_BYTES}: {verdict}",
            f"why: encoding {self.encoding} (hash-max-listpack-value {self.listpack_value_limit}); "
            f"payload JSON {self.payload_bytes:.0f} B; its fields: {fields}",
        ]


def session_memory(url: str) -> SessionMemory:
    """Measure the stored sessions (see the module docstring); deletes them at the end."""
    with redis.Redis.from_url(url) as client:
        keys: list[bytes] = list(client.scan_iter(match=SESSION_PATTERN, count=1000))
        if not keys:
            return SessionMemory(0, 0, 0.0, 0.0, 0, 0.0, "", 0, 0.0, {})
        step = max(1, len(keys) // SAMPLE)
        sample = keys[::step][:SAMPLE]
        sizes = [int(client.memory_usage(key, samples=0) or 0) for key in sample]
        payloads = [client.hget(key, "payload") or b"" for key in sample]
        encoding = str(client.object("encoding", sample[0]), "ascii", "replace")
        config: dict[str, Any] = client.config_get("hash-max-listpack-value")
        limit = int(config.get("hash-max-listpack-value", 0))
        before = int(client.info("memory")["used_memory"])
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
        freed = before - int(client.info("memory")["used_memory"])
    record = json.loads(payloads[0]) if payloads[0] else {}
    field_bytes = {name: len(json.dumps(value, separators=(",", ":"))) for name, value in record.items()}
    return SessionMemory(
        sessions=len(keys),
        sampled=len(sample),
        mean_bytes=statistics.fmean(sizes),
        median_bytes=statistics.median(sizes),
        max_bytes=max(sizes),
        freed_per_session=freed / len(keys),
        encoding=encoding,
        listpack_value_limit=limit,
        payload_bytes=statistics.fmean(len(p) for p in payloads),
        field_bytes=field_bytes,
    )
