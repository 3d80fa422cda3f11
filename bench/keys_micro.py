"""Micro-benchmark of the signing-key ring: load, sign, verify and JWKS costs per operation.

Run from the repository root: ``.venv/bin/python -m bench.keys_micro [rounds]``. Prints
microseconds per call (median of five batches). ``sign`` is the bare signature;
``KeyRing.sign`` is wall time per call, which for RS256 includes the hop to the thread pool.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from gateway.secrets import SecretBox
from gateway.tokens.jwt import encode
from gateway.tokens.keys import KeyRing, ensure_keys

CLAIMS = {
    "iss": "http://127.0.0.1:8000",
    "sub": "Zk9hT0xqV1JvZ0ZxbGxSZ0N6V2dUZk9hT0xqV1JvZ0Z",
    "aud": "demo",
    "iat": 1_700_000_000,
    "exp": 1_700_000_300,
    "auth_time": 1_699_999_990,
    "nonce": "n-0S6_WzA2Mj",
    "amr": ["otp"],
    "tid": "4f5c2b0e-6a71-4c3e-9a8e-2f1d7c9b1a00",
}


class DictStore:
    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = {}

    async def list_signing_keys(self) -> list[dict[str, Any]]:
        return [dict(record) for record in self.records.values()]

    async def save_signing_key(self, record: dict[str, Any]) -> None:
        self.records[record["kid"]] = dict(record)


def per_call_us(function: Callable[[], object], rounds: int) -> float:
    batches = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(rounds):
            function()
        batches.append((time.perf_counter() - start) / rounds * 1e6)
    return statistics.median(batches)


async def per_call_us_async(function: Callable[[], Awaitable[object]], rounds: int) -> float:
    batches = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(rounds):
            await function()
        batches.append((time.perf_counter() - start) / rounds * 1e6)
    return statistics.median(batches)


async def main(rounds: int) -> None:
    store, box = DictStore(), SecretBox(["bench-secret-" + "x" * 40])
    await ensure_keys(store, box, {"ES256", "RS256"}, time.time())
    start = time.perf_counter()
    ring = await KeyRing.load(store, box)
    print(f"KeyRing.load (1 EC + 1 RSA key, decrypt + import): {(time.perf_counter() - start) * 1e3:.1f} ms")
    for alg in ("ES256", "RS256"):
        key = ring.signing_key(alg)
        token = await ring.sign(CLAIMS, alg)
        inline = per_call_us(lambda: encode(CLAIMS, key.jwk, alg=alg, kid=key.kid, typ="JWT"), rounds)  # noqa: B023
        through = await per_call_us_async(lambda: ring.sign(CLAIMS, alg), rounds)  # noqa: B023
        verify = per_call_us(lambda: ring.verify(token), rounds)  # noqa: B023
        print(f"{alg}: sign {inline:.0f} us, KeyRing.sign {through:.0f} us, verify {verify:.0f} us")
    print(f"jwks() cached: {per_call_us(ring.jwks, rounds * 10):.2f} us")
    print(f"refresh() unchanged: {await per_call_us_async(lambda: ring.refresh(store), rounds):.1f} us")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 200))
