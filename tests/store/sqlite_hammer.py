"""Worker process for the multi-process SQLite test (run as ``python -m tests.store.sqlite_hammer``).

Opens ``STORES`` stores (connections) on the shared file, prints ``ready``, waits for a line
on stdin, then has every store consume each of ``codes`` ids and increment one shared
counter once per id. Prints a JSON report: the ids this process consumed first, how many
consumes returned a payload, and every counter value it saw.
"""

from __future__ import annotations

import asyncio
import json
import sys

from gateway.store.sqlite import SQLiteStore

STORES = 2


async def hammer(store: SQLiteStore, codes: int) -> tuple[list[int], int, list[int]]:
    firsts: list[int] = []
    seen = 0
    values: list[int] = []
    for n in range(codes):
        consumed = await store.consume("code", f"c{n}")
        if consumed is not None:
            seen += 1
            if consumed.first:
                firsts.append(n)
        values.append((await store.incr("hits", "shared", 3600)).value)
        await asyncio.sleep(0)  # store operations on the loop never suspend: let the other store run
    return firsts, seen, values


async def main(path: str, codes: int) -> None:
    stores = [SQLiteStore(path) for _ in range(STORES)]
    for store in stores:
        await store.get("code", "warm-up")  # open the connection before the start signal
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    results = await asyncio.gather(*(hammer(store, codes) for store in stores))
    for store in stores:
        await store.close()
    print(
        json.dumps(
            {
                "firsts": [n for firsts, _, _ in results for n in firsts],
                "seen": sum(seen for _, seen, _ in results),
                "values": [v for _, _, values in results for v in values],
                "busy_fallbacks": sum(store.busy_fallbacks for store in stores),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
