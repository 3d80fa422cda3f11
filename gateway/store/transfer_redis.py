"""Reading a whole Redis store into a ``transfer.Dump``.

Directory hashes are read with ``HSCAN``, link ZSETs with ``ZRANGE``, artefacts and counters found
with ``SCAN`` (on every primary of a cluster) and read with ``HGETALL``/``GET`` and ``PTTL`` in
pipelined batches. This is not one snapshot: copy with the gateways stopped. Key scheme:
``redis.py`` and ``redis_directory.py``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, cast

from gateway.store.redis import RedisStore
from gateway.store.redis_keys import (
    APP_OWNERS,
    ASSIGNMENTS,
    DELETED,
    GROUPS,
    MEMBERS,
    META,
    OWNERS,
    USER_IDENTITIES,
    USERS,
)
from gateway.store.transfer import Dump
from gateway.store.validate import decode

BATCH = 200
ARTEFACT_PREFIX = "gw:a:{"
COUNTER_PREFIX = "gw:n:{"


def split_link(entry: str) -> tuple[str, str]:
    """``enc(a) .. b`` (``enc(s)`` = ``<byte length>:<s>``) -> ``(a, b)``."""
    raw = entry.encode()
    length, _, rest = raw.partition(b":")
    size = int(length)
    return rest[:size].decode(), rest[size:].decode()


def name_of(key: str, prefix: str) -> tuple[str, str]:
    """``gw:a:{kind:id}`` -> ``(kind, id)`` (a kind never contains ``:``)."""
    kind, _, id = key[len(prefix) : -1].partition(":")
    return kind, id


async def _hash(client: Any, key: str) -> dict[str, str]:
    return {str(field): str(value) async for field, value in client.hscan_iter(key, count=BATCH)}


async def _keys(client: Any, prefix: str) -> list[str]:
    return sorted({str(key) async for key in client.scan_iter(match=prefix + "*", count=BATCH)})


async def _with_ttl(client: Any, prefix: str, read: str) -> AsyncIterator[tuple[str, Any, int]]:
    """Each key under ``prefix`` with its value (the client method ``read``: ``get``, ``hgetall``)
    and its milliseconds left (``PTTL``), ``BATCH`` keys a pipelined round trip."""
    keys = await _keys(client, prefix)
    for start in range(0, len(keys), BATCH):
        batch = keys[start : start + BATCH]
        pipe = client.pipeline(transaction=False)
        for key in batch:
            getattr(pipe, read)(key)
            pipe.pttl(key)
        found = await pipe.execute()
        for key, value, left in zip(batch, found[::2], found[1::2], strict=True):
            yield key, value, int(left)


async def _read_artefacts(client: Any, dump: Dump, now: float) -> None:
    async for key, fields, left in _with_ttl(client, ARTEFACT_PREFIX, "hgetall"):
        if not fields or "payload" not in fields or left <= 0:
            continue  # gone, or without an expiry (never written by this store)
        kind, id = name_of(key, ARTEFACT_PREFIX)
        dump.artefacts.append(
            {
                "kind": kind,
                "id": id,
                "payload": decode(fields["payload"]),
                "grant_id": fields.get("grant") or None,
                "uses": int(fields.get("uses") or 0),
                "expires_at": now + left / 1000,
            }
        )


async def _read_counters(client: Any, dump: Dump, now: float) -> None:
    async for key, value, left in _with_ttl(client, COUNTER_PREFIX, "get"):
        if value is None or left <= 0:
            continue
        kind, id = name_of(key, COUNTER_PREFIX)
        dump.counters.append({"kind": kind, "id": id, "value": int(value), "expires_at": now + left / 1000})


async def read_redis(store: RedisStore, now: float) -> Dump:
    """Everything in ``store``'s database (migrated first, so every index is in place)."""
    await store.migrate()
    client = cast(Any, store._redis)
    dump = Dump()
    dump.meta = {name: value for name, value in sorted((await _hash(client, META)).items())}
    dump.meta.pop("schema_version", None)
    dump.signing_keys = await store.list_signing_keys()
    owned = await _hash(client, USER_IDENTITIES)
    deleted = {
        str(user_id): int(float(at)) for user_id, at in await client.zrange(DELETED, 0, -1, withscores=True)
    }
    for user_id, doc in sorted((await _hash(client, USERS)).items()):
        dump.users.append(
            {
                "user": decode(doc),
                "identities": sorted(json.loads(owned[user_id])) if user_id in owned else [],
                "deleted_at": deleted.get(user_id),
            }
        )
    dump.groups = [decode(doc) for _, doc in sorted((await _hash(client, GROUPS)).items())]
    dump.group_members = [split_link(str(e)) for e in await client.zrange(MEMBERS, 0, -1)]
    dump.group_owners = [split_link(str(e)) for e in await client.zrange(OWNERS, 0, -1)]
    dump.app_owners = [split_link(str(e)) for e in await client.zrange(APP_OWNERS, 0, -1)]
    dump.assignments = [decode(doc) for _, doc in sorted((await _hash(client, ASSIGNMENTS)).items())]
    await _read_artefacts(client, dump, now)
    await _read_counters(client, dump, now)
    return dump
