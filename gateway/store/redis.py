"""Redis backend (``redis.asyncio``): for many replicas sharing one Redis (standalone/Sentinel).

Key scheme. Every Lua script and every transaction touches keys of one hash slot only, so
the layout is ready for Redis Cluster: keys that change together share a ``{hash tag}``.

``gw:a:{<kind>:<id>}``
    An artefact: a HASH with ``payload`` (JSON text), ``grant`` (grant id, ``""`` when
    unbound) and ``uses`` (how many times it was consumed), with the artefact's TTL as the
    key's expiry. ``kind`` never contains ``:``, so the name is unambiguous.
``gw:n:{<kind>:<id>}``
    A counter (``incr``): an integer STRING whose expiry is set by the first increment (a
    fixed window). Same hash tag as the artefact of that name, so ``delete`` removes both
    with one ``DEL``.
``gw:g:{<grant_id>}``
    The grant index: a SET of the artefact keys bound to the grant, its TTL extended to the
    longest member's. Members may be stale (expired, deleted or rebound artefacts);
    ``revoke_grant`` takes the set, then deletes each member only if its ``grant`` field
    still names this grant.
``gw:{dir}:users``, ``gw:{dir}:identities``, ``gw:{dir}:signing-keys``,
``gw:{dir}:signing-key-order``, ``gw:{dir}:signing-key-seq``, ``gw:{dir}:meta``
    The directory, all in the ``{dir}`` slot so that a user and its identity index entries
    are written by one atomic script: ``users`` HASH id -> user JSON; ``identities`` HASH
    ``["issuer","issuerAssignedId"]`` (compact JSON) -> user id; ``signing-keys`` HASH kid ->
    record JSON, ordered by the ZSET ``signing-key-order`` (score from the
    ``signing-key-seq`` counter at first save); ``meta`` HASH name -> value (holds
    ``schema_version``).

Round trips: ``get``, ``put``, ``consume``, ``delete``, ``incr``, ``ttl`` and ``add`` are one
each (``put`` with a grant pipelines the artefact write and the index update); scripts run by
``EVALSHA`` and are reloaded once if the server lost them. Directory data has no TTL: run
Redis with persistence (AOF or RDB) in production.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from gateway.store.base import JSON, Consumed, Counter
from gateway.store.validate import (
    SCHEMA_VERSION,
    check_grant,
    check_identities,
    check_key,
    check_meta_value,
    check_schema_version,
    check_seconds,
    check_signing_key,
    check_text,
    check_user,
    decode,
    encode,
)

USERS = "gw:{dir}:users"
IDENTITIES = "gw:{dir}:identities"
SIGNING_KEYS = "gw:{dir}:signing-keys"
SIGNING_KEY_ORDER = "gw:{dir}:signing-key-order"
SIGNING_KEY_SEQ = "gw:{dir}:signing-key-seq"
META = "gw:{dir}:meta"


def artefact_key(kind: str, id: str) -> str:
    return f"gw:a:{{{kind}:{id}}}"


def counter_key(kind: str, id: str) -> str:
    return f"gw:n:{{{kind}:{id}}}"


def grant_key(grant_id: str) -> str:
    return f"gw:g:{{{grant_id}}}"


def identity_field(issuer: str, issuer_assigned_id: str) -> str:
    return json.dumps([issuer, issuer_assigned_id], separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class Script:
    source: str
    sha: str


def _script(source: str) -> Script:
    return Script(source, hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest())


# KEYS[1] artefact; ARGV payload, grant ("" = none), ttl ms
PUT = _script("""
redis.call('HSET', KEYS[1], 'payload', ARGV[1], 'grant', ARGV[2], 'uses', 0)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
""")
ADD = _script("""
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'payload', ARGV[1], 'grant', ARGV[2], 'uses', 0)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
""")
# KEYS[1] grant index; ARGV member key, ttl ms
GRANT_ADD = _script("""
redis.call('SADD', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1
""")
GRANT_TAKE = _script("""
local members = redis.call('SMEMBERS', KEYS[1])
redis.call('DEL', KEYS[1])
return members
""")
# KEYS[1] artefact; ARGV grant id
DELETE_IF_GRANT = _script("""
if redis.call('HGET', KEYS[1], 'grant') == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
""")
CONSUME = _script("""
local found = redis.call('HMGET', KEYS[1], 'payload', 'grant')
if not found[1] then return false end
return {found[1], found[2] or '', redis.call('HINCRBY', KEYS[1], 'uses', 1)}
""")
# KEYS[1] counter; ARGV window ms
INCR = _script("""
local value = redis.call('INCR', KEYS[1])
local left = redis.call('PTTL', KEYS[1])
if left < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  left = tonumber(ARGV[1])
end
return {value, left}
""")
# KEYS users, identities; ARGV user id, user JSON, identity fields...
CREATE_USER = _script("""
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return -1 end
for i = 3, #ARGV do
  if redis.call('HEXISTS', KEYS[2], ARGV[i]) == 1 then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
for i = 3, #ARGV do redis.call('HSET', KEYS[2], ARGV[i], ARGV[1]) end
return 1
""")
FIND_USER = _script("""
local user_id = redis.call('HGET', KEYS[1], ARGV[1])
if not user_id then return false end
return redis.call('HGET', KEYS[2], user_id)
""")
UPDATE_USER = _script("""
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
""")
# KEYS signing-keys, signing-key-order, signing-key-seq; ARGV kid, record JSON
SAVE_KEY = _script("""
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if not redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[3]), ARGV[1])
end
return 1
""")
LIST_KEYS = _script("""
local kids = redis.call('ZRANGE', KEYS[2], 0, -1)
if #kids == 0 then return {} end
return redis.call('HMGET', KEYS[1], unpack(kids))
""")
SET_META_IF_ABSENT = _script("""
redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
return redis.call('HGET', KEYS[1], ARGV[1])
""")
SCRIPTS = (
    PUT, ADD, GRANT_ADD, GRANT_TAKE, DELETE_IF_GRANT, CONSUME, INCR,
    CREATE_USER, FIND_USER, UPDATE_USER, SAVE_KEY, LIST_KEYS, SET_META_IF_ABSENT,
)  # fmt: skip


def _seconds(milliseconds: int) -> int:
    return max(math.ceil(milliseconds / 1000), 0)


Call = tuple[Script, Sequence[str], Sequence[str | int]]


class Pipeline(Protocol):
    """The part of ``redis.asyncio`` pipelines this module uses (typed here because the
    ``types-redis`` stubs, when installed, shadow redis-py's own annotations and predate 5.x)."""

    def evalsha(self, sha: str, numkeys: int, *keys_and_args: str | int) -> Any: ...

    def script_load(self, script: str) -> Any: ...

    async def execute(self) -> list[Any]: ...


class Client(Protocol):
    """The part of ``redis.asyncio.Redis`` (``decode_responses=True``) this module uses."""

    async def evalsha(self, sha: str, numkeys: int, *keys_and_args: str | int) -> Any: ...

    async def hget(self, name: str, key: str) -> str | None: ...

    async def hset(self, name: str, key: str, value: str) -> int: ...

    async def pttl(self, name: str) -> int: ...

    async def delete(self, *names: str) -> int: ...

    def pipeline(self, transaction: bool = True) -> Pipeline: ...

    async def aclose(self) -> None: ...


class RedisStore:
    """``Store`` over one Redis database; see the module docstring for the key scheme."""

    def __init__(self, client: Client) -> None:
        self._redis = client

    @classmethod
    def from_url(cls, url: str) -> RedisStore:
        """A store on ``redis://`` / ``rediss://`` ``url`` (query options such as timeouts win)."""
        client = Redis.from_url(url, decode_responses=True, socket_timeout=5, socket_connect_timeout=5)
        return cls(cast(Client, client))

    # -- script plumbing ---------------------------------------------------------------

    async def _load_scripts(self) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for script in SCRIPTS:
            pipe.script_load(script.source)
        await pipe.execute()

    async def _eval(self, script: Script, keys: Sequence[str], args: Sequence[str | int]) -> Any:
        try:
            return await self._redis.evalsha(script.sha, len(keys), *keys, *args)
        except NoScriptError:
            await self._load_scripts()
            return await self._redis.evalsha(script.sha, len(keys), *keys, *args)

    async def _eval_many(self, calls: Sequence[Call]) -> list[Any]:
        """Several scripts in one pipelined round trip (in order, not as a transaction)."""
        for attempt in (1, 2):
            pipe = self._redis.pipeline(transaction=False)
            for script, keys, args in calls:
                pipe.evalsha(script.sha, len(keys), *keys, *args)
            try:
                return await pipe.execute()
            except NoScriptError:
                if attempt == 2:
                    raise
                await self._load_scripts()
        raise AssertionError("unreachable")

    # -- Store -------------------------------------------------------------------------

    async def migrate(self) -> None:
        found = await self._redis.hget(META, "schema_version")
        check_schema_version(None if found is None else str(found))
        await self._redis.hset(META, "schema_version", str(SCHEMA_VERSION))
        await self._load_scripts()

    async def close(self) -> None:
        await self._redis.aclose()

    # -- ArtefactStore -----------------------------------------------------------------

    async def put(self, kind: str, id: str, payload: JSON, ttl: int, *, grant_id: str | None = None) -> None:
        check_key(kind, id)
        check_seconds("ttl", ttl)
        check_grant(grant_id)
        text = encode("payload", payload)
        key = artefact_key(kind, id)
        write: Call = (PUT, [key], [text, grant_id or "", ttl * 1000])
        if grant_id is None:
            await self._eval(*write)
        else:
            await self._eval_many([write, (GRANT_ADD, [grant_key(grant_id)], [key, ttl * 1000])])

    async def add(self, kind: str, id: str, payload: JSON, ttl: int, *, grant_id: str | None = None) -> bool:
        check_key(kind, id)
        check_seconds("ttl", ttl)
        check_grant(grant_id)
        text = encode("payload", payload)
        key = artefact_key(kind, id)
        if not await self._eval(ADD, [key], [text, grant_id or "", ttl * 1000]):
            return False
        if grant_id is not None:
            await self._eval(GRANT_ADD, [grant_key(grant_id)], [key, ttl * 1000])
        return True

    async def get(self, kind: str, id: str) -> JSON | None:
        check_key(kind, id)
        found = await self._redis.hget(artefact_key(kind, id), "payload")
        return None if found is None else decode(found)

    async def consume(self, kind: str, id: str) -> Consumed | None:
        check_key(kind, id)
        found = await self._eval(CONSUME, [artefact_key(kind, id)], [])
        if found is None:
            return None
        payload, grant, uses = found
        return Consumed(payload=decode(payload), grant_id=grant or None, first=int(uses) == 1)

    async def delete(self, kind: str, id: str) -> None:
        check_key(kind, id)
        await self._redis.delete(artefact_key(kind, id), counter_key(kind, id))

    async def revoke_grant(self, grant_id: str) -> int:
        check_text("grant_id", grant_id)
        members = cast(list[str], await self._eval(GRANT_TAKE, [grant_key(grant_id)], []))
        if not members:
            return 0
        removed = await self._eval_many([(DELETE_IF_GRANT, [member], [grant_id]) for member in members])
        return sum(int(count) for count in removed)

    async def incr(self, kind: str, id: str, window: int) -> Counter:
        check_key(kind, id)
        check_seconds("window", window)
        value, left = await self._eval(INCR, [counter_key(kind, id)], [window * 1000])
        return Counter(value=int(value), expires_in=_seconds(int(left)))

    async def ttl(self, kind: str, id: str) -> int | None:
        check_key(kind, id)
        left = await self._redis.pttl(artefact_key(kind, id))
        return None if left < 0 else _seconds(left)

    # -- DirectoryStore ----------------------------------------------------------------

    async def create_user(self, user: JSON, identities: list[tuple[str, str]]) -> bool:
        user_id = check_user(user)
        pairs = check_identities(identities)
        doc = encode("user", user)
        fields = [identity_field(issuer, assigned) for issuer, assigned in pairs]
        outcome = int(await self._eval(CREATE_USER, [USERS, IDENTITIES], [user_id, doc, *fields]))
        if outcome < 0:
            raise ValueError(f"a user with id {user_id!r} already exists")
        return outcome == 1

    async def get_user(self, user_id: str) -> JSON | None:
        check_text("user id", user_id)
        found = await self._redis.hget(USERS, user_id)
        return None if found is None else decode(found)

    async def find_user_by_identity(self, issuer: str, issuer_assigned_id: str) -> JSON | None:
        check_text("identity issuer", issuer)
        check_text("identity issuer_assigned_id", issuer_assigned_id)
        field = identity_field(issuer, issuer_assigned_id)
        found = await self._eval(FIND_USER, [IDENTITIES, USERS], [field])
        return None if found is None else decode(found)

    async def update_user(self, user: JSON) -> None:
        user_id = check_user(user)
        doc = encode("user", user)
        if not await self._eval(UPDATE_USER, [USERS], [user_id, doc]):
            raise KeyError(f"no user with id {user_id!r}")

    async def list_signing_keys(self) -> list[JSON]:
        records = await self._eval(LIST_KEYS, [SIGNING_KEYS, SIGNING_KEY_ORDER], [])
        return [decode(record) for record in records if record is not None]

    async def save_signing_key(self, record: JSON) -> None:
        kid = check_signing_key(record)
        text = encode("signing-key record", record)
        await self._eval(SAVE_KEY, [SIGNING_KEYS, SIGNING_KEY_ORDER, SIGNING_KEY_SEQ], [kid, text])

    async def get_meta(self, name: str) -> str | None:
        check_text("meta name", name)
        found = await self._redis.hget(META, name)
        return None if found is None else str(found)

    async def set_meta_if_absent(self, name: str, value: str) -> str:
        check_text("meta name", name)
        check_meta_value(value)
        return str(await self._eval(SET_META_IF_ABSENT, [META], [name, value]))
