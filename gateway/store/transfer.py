"""Copying a whole store: the dump format, reading a store into it, writing it into a store.

``gateway store migrate`` (store to store) and ``gateway store backup`` / ``restore`` (store to a
file and back) share this module; ``transfer_sqlite`` and ``transfer_redis`` read each backend.

What is copied: install metadata (the pairwise-subject salt and every other ``meta`` value but
``schema_version``, which the target's own ``migrate`` writes), signing-key records (sealed, in
their order; the target needs the same ``secrets.key``), users with their identities index
entries and soft-deletion times, groups with members and owners (those of soft-deleted users
too), application owners, app role assignments, and every live artefact (sign-in transactions,
codes, sessions, refresh tokens, invitation tickets, passcodes, replay markers...) with its
payload, grant, consumed state and absolute expiry, and live counters (rate limits, passcode
attempts) with their value and expiry. Not copied: what has expired, the grant indexes (rebuilt
from the artefacts' grants) and mail indexes (rebuilt from the users). Artefact expiry is kept in
whole seconds, rounded down; one with less than a second left is left out. A counter above
``MAX_COUNTER`` is written as ``MAX_COUNTER`` (above every limit the gateway applies).

The dump file is JSON lines: a ``header`` (format, ``schema_version``, time written), one line a
record, and an ``end`` line with the count of each record type, so a truncated file is refused.
A whole file is parsed and checked before anything is written.

Writing goes through the ``Store`` interface, so the target's own checks and indexes apply.
It is idempotent: an object already there is replaced by the dump's copy (a user by
``update_user``, a group by ``update_group``, a counter is written again), a link or assignment
already there is kept. A
target whose ``meta`` (e.g. ``pairwise_salt``) differs from the dump's is refused: every pairwise
``sub`` would change. Stop the gateways (or accept that writes made during the copy may be
missed) while copying: Redis is read key by key, not as one snapshot.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from gateway.store.base import JSON, Store
from gateway.store.validate import SCHEMA_VERSION

FORMAT = "gateway-store-dump"
MAX_COUNTER = 1000
RECORD_TYPES = (
    "meta", "signing_key", "user", "group", "group_member", "group_owner", "app_owner", "assignment",
    "artefact", "counter",
)  # fmt: skip


class DumpError(ValueError):
    """A dump file or a target store that cannot be used; the message says why."""


@dataclass
class Dump:
    """A store's content, as the dump records (see the module docstring)."""

    meta: dict[str, str] = field(default_factory=dict)
    signing_keys: list[JSON] = field(default_factory=list)
    users: list[JSON] = field(default_factory=list)
    """``{"user": doc, "identities": [[issuer, issuerAssignedId], ...], "deleted_at": int | None}``"""
    groups: list[JSON] = field(default_factory=list)
    group_members: list[tuple[str, str]] = field(default_factory=list)
    group_owners: list[tuple[str, str]] = field(default_factory=list)
    app_owners: list[tuple[str, str]] = field(default_factory=list)
    assignments: list[JSON] = field(default_factory=list)
    artefacts: list[JSON] = field(default_factory=list)
    """``{"kind", "id", "payload", "grant_id", "uses", "expires_at"}`` (epoch seconds)"""
    counters: list[JSON] = field(default_factory=list)
    """``{"kind", "id", "value", "expires_at"}``"""

    def counts(self) -> dict[str, int]:
        return {
            "meta": len(self.meta), "signing_key": len(self.signing_keys), "user": len(self.users),
            "group": len(self.groups), "group_member": len(self.group_members),
            "group_owner": len(self.group_owners), "app_owner": len(self.app_owners),
            "assignment": len(self.assignments), "artefact": len(self.artefacts),
            "counter": len(self.counters),
        }  # fmt: skip

    def empty(self) -> bool:
        return not any(self.counts().values())


async def read_store(store: Store, now: float | None = None) -> Dump:
    """Everything ``store`` holds (see the module docstring), live artefacts as of ``now``."""
    from gateway.store.redis import RedisStore
    from gateway.store.sqlite import SQLiteStore

    at = time.time() if now is None else now
    if isinstance(store, SQLiteStore):
        from gateway.store.transfer_sqlite import read_sqlite

        return await read_sqlite(store, at)
    if isinstance(store, RedisStore):
        from gateway.store.transfer_redis import read_redis

        return await read_redis(store, at)
    raise DumpError(f"cannot read a {type(store).__name__}: only the SQLite and Redis stores are supported")


# -- the file format -------------------------------------------------------------------------


def dump_lines(dump: Dump, now: float | None = None) -> Iterator[str]:
    """The JSON lines of ``dump`` (each without its newline)."""

    def line(record: str, **fields: Any) -> str:
        return json.dumps({"record": record, **fields}, separators=(",", ":"), ensure_ascii=False)

    written = int(time.time() if now is None else now)
    yield line("header", format=FORMAT, schema_version=SCHEMA_VERSION, written_at=written)
    for name, value in sorted(dump.meta.items()):
        yield line("meta", name=name, value=value)
    for key in dump.signing_keys:
        yield line("signing_key", key=key)
    for user in dump.users:
        yield line("user", **user)
    for group in dump.groups:
        yield line("group", group=group)
    for kind, pairs in (
        ("group_member", dump.group_members),
        ("group_owner", dump.group_owners),
    ):
        for group_id, user_id in pairs:
            yield line(kind, group_id=group_id, user_id=user_id)
    for app_id, user_id in dump.app_owners:
        yield line("app_owner", app_id=app_id, user_id=user_id)
    for assignment in dump.assignments:
        yield line("assignment", assignment=assignment)
    for artefact in dump.artefacts:
        yield line("artefact", **artefact)
    for counter in dump.counters:
        yield line("counter", **counter)
    yield line("end", counts=dump.counts())


def _text(where: str, record: JSON, name: str) -> str:
    value = record.get(name)
    if not isinstance(value, str) or not value:
        raise DumpError(f"{where}: {name!r} must be a non-empty string")
    return value


def _object(where: str, record: JSON, name: str) -> JSON:
    value = record.get(name)
    if not isinstance(value, dict):
        raise DumpError(f"{where}: {name!r} must be a JSON object")
    return value


def _number(where: str, record: JSON, name: str, *, integer: bool = False) -> float:
    value = record.get(name)
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (integer and not isinstance(value, int))
    ):
        raise DumpError(f"{where}: {name!r} must be {'an integer' if integer else 'a number'}")
    if not math.isfinite(value) or value < 0:
        raise DumpError(f"{where}: {name!r} must be a finite number >= 0")
    return value


def _fields(where: str, record: JSON, allowed: set[str]) -> None:
    extra = sorted(set(record) - allowed - {"record"})
    if extra:
        raise DumpError(f"{where}: unexpected field(s) {extra}")


def _add_record(dump: Dump, where: str, record: JSON) -> None:
    kind = record.get("record")
    if kind == "meta":
        _fields(where, record, {"name", "value"})
        value = record.get("value")
        if not isinstance(value, str):
            raise DumpError(f"{where}: 'value' must be a string")
        dump.meta[_text(where, record, "name")] = value
    elif kind == "signing_key":
        _fields(where, record, {"key"})
        key = _object(where, record, "key")
        _text(where, key, "kid")
        dump.signing_keys.append(key)
    elif kind == "user":
        _fields(where, record, {"user", "identities", "deleted_at"})
        _text(where, _object(where, record, "user"), "id")
        pairs = record.get("identities")
        if not isinstance(pairs, list) or not all(
            isinstance(p, list) and len(p) == 2 and all(isinstance(s, str) and s for s in p) for p in pairs
        ):
            raise DumpError(f"{where}: 'identities' must be a list of [issuer, issuerAssignedId] pairs")
        if record.get("deleted_at") is not None:
            _number(where, record, "deleted_at", integer=True)
        dump.users.append({k: record.get(k) for k in ("user", "identities", "deleted_at")})
    elif kind == "group":
        _fields(where, record, {"group"})
        _text(where, _object(where, record, "group"), "id")
        dump.groups.append(_object(where, record, "group"))
    elif kind in ("group_member", "group_owner"):
        _fields(where, record, {"group_id", "user_id"})
        pair = (_text(where, record, "group_id"), _text(where, record, "user_id"))
        (dump.group_members if kind == "group_member" else dump.group_owners).append(pair)
    elif kind == "app_owner":
        _fields(where, record, {"app_id", "user_id"})
        dump.app_owners.append((_text(where, record, "app_id"), _text(where, record, "user_id")))
    elif kind == "assignment":
        _fields(where, record, {"assignment"})
        assignment = _object(where, record, "assignment")
        _text(where, assignment, "id")
        dump.assignments.append(assignment)
    elif kind == "artefact":
        _fields(where, record, {"kind", "id", "payload", "grant_id", "uses", "expires_at"})
        grant = record.get("grant_id")
        if grant is not None and (not isinstance(grant, str) or not grant):
            raise DumpError(f"{where}: 'grant_id' must be null or a non-empty string")
        _text(where, record, "kind"), _text(where, record, "id"), _object(where, record, "payload")
        _number(where, record, "uses", integer=True), _number(where, record, "expires_at")
        dump.artefacts.append(
            {k: record.get(k) for k in ("kind", "id", "payload", "grant_id", "uses", "expires_at")}
        )
    elif kind == "counter":
        _fields(where, record, {"kind", "id", "value", "expires_at"})
        _text(where, record, "kind"), _text(where, record, "id")
        _number(where, record, "value", integer=True), _number(where, record, "expires_at")
        dump.counters.append({k: record[k] for k in ("kind", "id", "value", "expires_at")})
    else:
        raise DumpError(f"{where}: unknown record type {kind!r}; expected one of {', '.join(RECORD_TYPES)}")


def parse_lines(lines: Iterable[str], source: str = "dump") -> Dump:
    """The dump in ``lines``, every line checked; DumpError naming the line for anything wrong."""
    dump = Dump()
    header: JSON | None = None
    end: JSON | None = None
    for number, text in enumerate(lines, start=1):
        where = f"{source}:{number}"
        if not text.strip():
            continue
        if end is not None:
            raise DumpError(f"{where}: a line after the 'end' record")
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DumpError(f"{where}: not JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise DumpError(f"{where}: a record is a JSON object")
        if header is None:
            if record.get("record") != "header" or record.get("format") != FORMAT:
                raise DumpError(f"{where}: not a gateway store dump (the first line is its {FORMAT} header)")
            version = record.get("schema_version")
            if isinstance(version, bool) or not isinstance(version, int):
                raise DumpError(f"{where}: the header's schema_version must be an integer")
            if version > SCHEMA_VERSION:
                raise DumpError(
                    f"{where}: the dump has schema_version {version}, newer than this gateway supports "
                    f"({SCHEMA_VERSION}); restore it with a newer gateway"
                )
            if version < SCHEMA_VERSION:
                raise DumpError(
                    f"{where}: the dump has schema_version {version}; this gateway reads dumps of "
                    f"schema_version {SCHEMA_VERSION} (the first with a dump format)"
                )
            header = record
        elif record.get("record") == "end":
            end = record
        else:
            _add_record(dump, where, record)
    if header is None:
        raise DumpError(f"{source}: empty file, not a gateway store dump")
    if end is None:
        raise DumpError(f"{source}: no 'end' record: the file is truncated")
    if end.get("counts") != dump.counts():
        raise DumpError(f"{source}: the 'end' record's counts {end.get('counts')} do not match the file's")
    return dump


# -- writing into a store --------------------------------------------------------------------


async def write_store(store: Store, dump: Dump, now: float | None = None) -> dict[str, int]:
    """Write ``dump`` into ``store`` (migrated first); returns how many of each were written
    (expired artefacts left out). DumpError when the target's metadata conflicts."""
    at = time.time() if now is None else now
    await store.migrate()
    for name, value in dump.meta.items():
        found = await store.get_meta(name)
        if found is not None and found != value:
            raise DumpError(
                f"the target store already has a different {name!r} (it was started on its own); "
                "empty it and copy again, or every pairwise subject would change"
            )
    written = dict.fromkeys(RECORD_TYPES, 0)
    for name, value in dump.meta.items():
        await store.set_meta_if_absent(name, value)
        written["meta"] += 1
    for key in dump.signing_keys:
        await store.save_signing_key(key)
        written["signing_key"] += 1
    for entry in dump.users:
        await _write_user(store, entry)
        written["user"] += 1
    for group in dump.groups:
        if await store.get_group(str(group["id"])) is None:
            await store.create_group(group)
        else:
            await store.update_group(group)
        written["group"] += 1
    for group_id, user_id in dump.group_members:
        await store.add_group_member(group_id, user_id)
        written["group_member"] += 1
    for group_id, user_id in dump.group_owners:
        await store.add_group_owner(group_id, user_id)
        written["group_owner"] += 1
    for app_id, user_id in dump.app_owners:
        await store.add_app_owner(app_id, user_id)
        written["app_owner"] += 1
    taken = {str(a["id"]) for a in await store.list_app_role_assignments()}
    for assignment in dump.assignments:
        if str(assignment["id"]) not in taken:
            await store.add_app_role_assignment(assignment)
        written["assignment"] += 1
    for entry in dump.users:  # soft deletion last: links and assignments need a live user
        deleted_at = entry.get("deleted_at")
        user_id = str(entry["user"]["id"])
        if deleted_at is not None and await store.get_deleted_user(user_id) is None:
            await store.soft_delete_user(user_id, int(deleted_at))
    written["counter"] = await _write_counters(store, dump.counters, at)
    written["artefact"] = await _write_artefacts(store, dump.artefacts, at)
    return written


async def _write_user(store: Store, entry: JSON) -> None:
    user: JSON = entry["user"]
    user_id = str(user["id"])
    pairs = [(str(issuer), str(assigned)) for issuer, assigned in entry["identities"]]
    if await store.get_deleted_user(user_id) is not None:
        await store.restore_user(user_id)  # soft-deleted again, at the dump's time, by write_store
    if await store.get_user(user_id) is not None:
        await store.update_user(user)
        return
    if not await store.create_user(user, pairs):
        raise DumpError(
            f"user {user_id!r}: one of its identities belongs to another user in the target store"
        )


async def _write_artefacts(store: Store, artefacts: list[JSON], now: float) -> int:
    count = 0
    for artefact in artefacts:
        ttl = math.floor(float(artefact["expires_at"]) - now)
        if ttl < 1:
            continue
        kind, id = str(artefact["kind"]), str(artefact["id"])
        await store.put(kind, id, artefact["payload"], ttl, grant_id=artefact.get("grant_id"))
        if int(artefact["uses"]) > 0:
            await store.consume(kind, id)  # consumed once: a later consume reports it is not the first
        count += 1
    return count


async def _write_counters(store: Store, counters: list[JSON], now: float) -> int:
    count = 0
    for counter in counters:
        window = math.floor(float(counter["expires_at"]) - now)
        if window < 1:
            continue
        kind, id = str(counter["kind"]), str(counter["id"])
        await store.delete(kind, id)  # a copy already there starts over (artefacts are written after)
        for _ in range(min(int(counter["value"]), MAX_COUNTER)):
            await store.incr(kind, id, window)
        count += 1
    return count
