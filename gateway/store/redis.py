"""Redis backend (``redis.asyncio``): for many replicas sharing one Redis (standalone, Sentinel or
Cluster; the URL forms are in ``redis_urls``).

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
``gw:{dir}:users``, ``gw:{dir}:identities``, ``gw:{dir}:user-identities``,
``gw:{dir}:user-mails``, ``gw:{dir}:mail:<address>``, ``gw:{dir}:signing-keys``,
``gw:{dir}:signing-key-order``, ``gw:{dir}:signing-key-seq``, ``gw:{dir}:meta``
    The directory, all in the ``{dir}`` slot so that a user and its index entries are
    written by one atomic script: ``users`` HASH id -> user JSON; ``identities`` HASH
    ``["issuer","issuerAssignedId"]`` (compact JSON) -> user id; ``user-identities`` HASH id
    -> JSON list of that user's ``[issuer, issuerAssignedId]`` pairs; ``user-mails`` HASH id
    -> JSON list of the lower-cased addresses it is indexed under; ``mail:<address>`` SET of
    the ids of the users with that lower-cased address (gone when empty); ``signing-keys``
    HASH kid -> record JSON, ordered by the ZSET ``signing-key-order`` (score from the
    ``signing-key-seq`` counter at first save); ``meta`` HASH name -> value (holds
    ``schema_version``). Scripts get every key they touch in ``KEYS``: ``update_user`` and
    ``delete_user`` read the user's ``user-mails``/``user-identities`` entries first, and
    ``add_identity`` its document and ``user-identities`` entry, then run a script that applies
    the change only if what they read is unchanged (else they read again).
``gw:{dir}:user-ids``, ``gw:{dir}:deleted``, ``gw:{dir}:deleted-ids``, ``gw:{dir}:groups``,
``gw:{dir}:group-ids``, ``gw:{dir}:members``, ``gw:{dir}:member-of``, ``gw:{dir}:owners``,
``gw:{dir}:owner-of``, ``gw:{dir}:app-owners``, ``gw:{dir}:owned-apps``,
``gw:{dir}:assignments``, ``gw:{dir}:assignment-triples``,
``gw:{dir}:assignments-by-principal``, ``gw:{dir}:assignments-by-resource``
    Listings, soft delete, groups and app links: see ``redis_directory``. ``create_user`` and
    ``delete_user`` keep ``user-ids`` (every user id, for paging) in step; a user in the
    ``deleted`` ZSET is soft-deleted, and ``get_user``, ``find_user_by_identity``,
    ``find_users_by_mail``, ``update_user`` and ``add_identity`` treat it as absent;
    ``delete_user`` also removes its links and assignments.

Schema versions: 1 had neither the ``user-*`` hashes nor the mail sets; ``migrate`` builds them
for every stored user (idempotent, so an interrupted upgrade is finished by the next run) and
only then records version 2. 2 had no ``user-ids``: ``migrate`` adds every stored user id (also
idempotent) before it records version 3; the other schema 3 keys start empty.

Round trips: ``get``, ``put``, ``consume``, ``delete``, ``incr``, ``ttl``, ``ttl_many`` (a
pipeline of ``PTTL``) and ``add`` are one each (``put`` with a grant pipelines the artefact write
and the index update), ``consume_counted`` two (``incr``, then ``consume``: other hash slots);
``apply`` and a write-behind block (``batch``, ``gateway.store.write_behind``) pipeline all their
writes in one (not a transaction: each write is atomic on its own, and its keys share one hash
slot), and an artefact operation after queued writes costs one more; scripts run by ``EVALSHA``
and are reloaded once if the server lost them. Directory data has no TTL: run Redis with
persistence (AOF or RDB) in production.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, cast

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from gateway.store import write_behind
from gateway.store.base import JSON, Consumed, Counter, Delete, Put, Write
from gateway.store.redis_directory import DIRECTORY_SCRIPTS, RedisDirectoryMixin
from gateway.store.redis_keys import (
    DELETED,
    DIR_KEYS,
    FIRST_EXTRA_KEY,
    IDENTITIES,
    META,
    SIGNING_KEY_ORDER,
    SIGNING_KEY_SEQ,
    SIGNING_KEYS,
    USER_IDENTITIES,
    USER_IDS,
    USER_MAILS,
    USERS,
    Script,
    compact,
    directory_script,
    lua_script,
    mail_key,
)
from gateway.store.redis_urls import (
    CLUSTER_SCHEMES,
    CONNECTION_OPTIONS,
    SENTINEL_SCHEMES,
    open_client,
    parse_target,
)
from gateway.store.signin_log_redis import RedisSignInLogMixin
from gateway.store.validate import (
    SCHEMA_VERSION,
    append_identity,
    check_counted,
    check_grant,
    check_identities,
    check_identity,
    check_key,
    check_mail,
    check_meta_value,
    check_schema_version,
    check_seconds,
    check_signing_key,
    check_text,
    check_user,
    decode,
    encode,
    user_mails,
)

SCAN_COUNT = 200


def artefact_key(kind: str, id: str) -> str:
    return f"gw:a:{{{kind}:{id}}}"


def counter_key(kind: str, id: str) -> str:
    return f"gw:n:{{{kind}:{id}}}"


def grant_key(grant_id: str) -> str:
    return f"gw:g:{{{grant_id}}}"


def identity_field(issuer: str, issuer_assigned_id: str) -> str:
    return compact([issuer, issuer_assigned_id])


# KEYS[1] artefact; ARGV payload, grant ("" = none), ttl ms
PUT = lua_script("""
redis.call('HSET', KEYS[1], 'payload', ARGV[1], 'grant', ARGV[2], 'uses', 0)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
""")
ADD = lua_script("""
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'payload', ARGV[1], 'grant', ARGV[2], 'uses', 0)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
""")
# KEYS[1] artefact, KEYS[2] counter of the same name (one hash tag)
DELETE = lua_script("""
return redis.call('DEL', KEYS[1], KEYS[2])
""")
# KEYS[1] grant index; ARGV member key, ttl ms
GRANT_ADD = lua_script("""
redis.call('SADD', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1
""")
GRANT_TAKE = lua_script("""
local members = redis.call('SMEMBERS', KEYS[1])
redis.call('DEL', KEYS[1])
return members
""")
# KEYS[1] artefact; ARGV grant id
DELETE_IF_GRANT = lua_script("""
if redis.call('HGET', KEYS[1], 'grant') == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
""")
CONSUME = lua_script("""
local found = redis.call('HMGET', KEYS[1], 'payload', 'grant')
if not found[1] then return false end
return {found[1], found[2] or '', redis.call('HINCRBY', KEYS[1], 'uses', 1)}
""")
# KEYS[1] counter; ARGV window ms
INCR = lua_script("""
local value = redis.call('INCR', KEYS[1])
local left = redis.call('PTTL', KEYS[1])
if left < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  left = tonumber(ARGV[1])
end
return {value, left}
""")
# KEYS users, identities, user-identities, user-mails, user-ids, mail sets...;
# ARGV user id, user JSON, pairs JSON, addresses JSON, identity fields...
CREATE_USER = lua_script("""
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return -1 end
for i = 5, #ARGV do
  if redis.call('HEXISTS', KEYS[2], ARGV[i]) == 1 then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
for i = 5, #ARGV do redis.call('HSET', KEYS[2], ARGV[i], ARGV[1]) end
redis.call('HSET', KEYS[3], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[4], ARGV[1], ARGV[4])
redis.call('ZADD', KEYS[5], 0, ARGV[1])
for i = 6, #KEYS do redis.call('SADD', KEYS[i], ARGV[1]) end
return 1
""")
# KEYS users, deleted; ARGV user id -> the live user's JSON or nil
GET_USER = lua_script("""
if redis.call('ZSCORE', KEYS[2], ARGV[1]) then return false end
return redis.call('HGET', KEYS[1], ARGV[1])
""")
# KEYS identities, users, deleted; ARGV identity field
FIND_USER = lua_script("""
local user_id = redis.call('HGET', KEYS[1], ARGV[1])
if not user_id or redis.call('ZSCORE', KEYS[3], user_id) then return false end
return redis.call('HGET', KEYS[2], user_id)
""")
# KEYS users, user-mails, deleted, old mail sets (ARGV[5] of them), new mail sets;
# ARGV user id, user JSON, expected user-mails entry ("" = none), new addresses JSON, count
UPDATE_USER = lua_script("""
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
if redis.call('ZSCORE', KEYS[3], ARGV[1]) then return 0 end
if (redis.call('HGET', KEYS[2], ARGV[1]) or '') ~= ARGV[3] then return -1 end
local old = tonumber(ARGV[5])
for i = 4, 3 + old do redis.call('SREM', KEYS[i], ARGV[1]) end
for i = 4 + old, #KEYS do redis.call('SADD', KEYS[i], ARGV[1]) end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[4])
return 1
""")
# KEYS DIR_KEYS, mail sets...; ARGV user id, expected user-identities entry, expected
# user-mails entry, deleted before ("" = any user; else only one soft-deleted before that
# time), identity fields... -2: not deleted before that, -1: changed since read, 0: no such user
DELETE_USER = directory_script(f"""
if redis.call('HEXISTS', K.users, ARGV[1]) == 0 then return 0 end
if ARGV[4] ~= '' then
  local at = redis.call('ZSCORE', K.deleted, ARGV[1])
  if not at or tonumber(at) >= tonumber(ARGV[4]) then return -2 end
end
if (redis.call('HGET', K.user_identities, ARGV[1]) or '') ~= ARGV[2] then return -1 end
if (redis.call('HGET', K.user_mails, ARGV[1]) or '') ~= ARGV[3] then return -1 end
for i = 5, #ARGV do
  if redis.call('HGET', K.identities, ARGV[i]) == ARGV[1] then redis.call('HDEL', K.identities, ARGV[i]) end
end
for i = {FIRST_EXTRA_KEY}, #KEYS do redis.call('SREM', KEYS[i], ARGV[1]) end
redis.call('HDEL', K.users, ARGV[1])
redis.call('HDEL', K.user_identities, ARGV[1])
redis.call('HDEL', K.user_mails, ARGV[1])
redis.call('ZREM', K.user_ids, ARGV[1])
redis.call('ZREM', K.deleted, ARGV[1])
redis.call('ZREM', K.deleted_ids, ARGV[1])
unlink(K.member_of, K.members, ARGV[1])
unlink(K.owner_of, K.owners, ARGV[1])
unlink(K.owned_apps, K.app_owners, ARGV[1])
unassign_principal(ARGV[1], 'User')
return 1
""")
# KEYS users, identities, user-identities, deleted; ARGV user id, user JSON as read, new user
# JSON, user-identities entry as read ("" = none), new user-identities entry, identity field.
# -2: no such live user, -1: changed since read, 0: pair taken, 1: linked
ADD_IDENTITY = lua_script("""
local doc = redis.call('HGET', KEYS[1], ARGV[1])
if not doc or redis.call('ZSCORE', KEYS[4], ARGV[1]) then return -2 end
if doc ~= ARGV[2] then return -1 end
if (redis.call('HGET', KEYS[3], ARGV[1]) or '') ~= ARGV[4] then return -1 end
if redis.call('HEXISTS', KEYS[2], ARGV[6]) == 1 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[2], ARGV[6], ARGV[1])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[5])
return 1
""")
# KEYS mail set, users, deleted -> flat list of live user id, user JSON (unordered: Lua
# compares with strcoll)
FIND_BY_MAIL = lua_script("""
local found = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local doc = redis.call('HGET', KEYS[2], id)
  if doc and not redis.call('ZSCORE', KEYS[3], id) then
    found[#found + 1] = id
    found[#found + 1] = doc
  end
end
return found
""")
# Schema 1 -> 2 for one user. KEYS users, user-identities, user-mails, mail sets...;
# ARGV user id, user JSON as read, pairs JSON, addresses JSON. 0: already indexed, -1: changed
INDEX_USER = lua_script("""
if redis.call('HEXISTS', KEYS[3], ARGV[1]) == 1 then return 0 end
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return -1 end
redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[4])
for i = 4, #KEYS do redis.call('SADD', KEYS[i], ARGV[1]) end
return 1
""")
# Schema 2 -> 3. KEYS users, user-ids; ARGV user ids: each still stored is filed in user-ids
INDEX_USER_IDS = lua_script("""
for i = 1, #ARGV do
  if redis.call('HEXISTS', KEYS[1], ARGV[i]) == 1 then redis.call('ZADD', KEYS[2], 0, ARGV[i]) end
end
return 1
""")
# KEYS signing-keys, signing-key-order, signing-key-seq; ARGV kid, record JSON
SAVE_KEY = lua_script("""
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if not redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[3]), ARGV[1])
end
return 1
""")
LIST_KEYS = lua_script("""
local kids = redis.call('ZRANGE', KEYS[2], 0, -1)
if #kids == 0 then return {} end
return redis.call('HMGET', KEYS[1], unpack(kids))
""")
SET_META_IF_ABSENT = lua_script("""
redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
return redis.call('HGET', KEYS[1], ARGV[1])
""")
SCRIPTS = (
    PUT, ADD, DELETE, GRANT_ADD, GRANT_TAKE, DELETE_IF_GRANT, CONSUME, INCR,
    CREATE_USER, GET_USER, FIND_USER, UPDATE_USER, DELETE_USER, ADD_IDENTITY, FIND_BY_MAIL,
    INDEX_USER, INDEX_USER_IDS, SAVE_KEY, LIST_KEYS, SET_META_IF_ABSENT, *DIRECTORY_SCRIPTS,
)  # fmt: skip


def _seconds(milliseconds: int) -> int:
    return max(math.ceil(milliseconds / 1000), 0)


Call = tuple[Script, Sequence[str], Sequence[str | int]]


def _put_calls(kind: str, id: str, payload: JSON, ttl: int, grant_id: str | None) -> list[Call]:
    """A checked ``put``: the artefact write and, with a grant, the grant index update."""
    check_key(kind, id)
    check_seconds("ttl", ttl)
    check_grant(grant_id)
    text = encode("payload", payload)
    key = artefact_key(kind, id)
    write: Call = (PUT, [key], [text, grant_id or "", ttl * 1000])
    if grant_id is None:
        return [write]
    return [write, (GRANT_ADD, [grant_key(grant_id)], [key, ttl * 1000])]


def _delete_calls(kind: str, id: str) -> list[Call]:
    """A checked ``delete``: the artefact and the counter of that name."""
    check_key(kind, id)
    return [(DELETE, [artefact_key(kind, id), counter_key(kind, id)], [])]


def _prepare(write: Write) -> list[Call]:
    if isinstance(write, Put):
        return _put_calls(write.kind, write.id, write.payload, write.ttl, write.grant_id)
    if isinstance(write, Delete):
        return _delete_calls(write.kind, write.id)
    raise TypeError(f"apply takes Put and Delete values, got {type(write).__name__}")


def _index_call(user_id: str, doc: str, pairs: list[list[str]]) -> Call:
    """The ``INDEX_USER`` call for a stored user (schema 1 -> 2); RuntimeError if its mails are bad."""
    try:
        user = decode(doc)
        check_user(user)
        mails = user_mails(user)
    except (TypeError, ValueError) as exc:
        raise RuntimeError(
            f"cannot upgrade the store to schema_version {SCHEMA_VERSION}: user {user_id!r}: {exc}; "
            "fix that user's document, then migrate again"
        ) from exc
    keys = [USERS, USER_IDENTITIES, USER_MAILS, *map(mail_key, mails)]
    return INDEX_USER, keys, [user_id, doc, compact(sorted(pairs)), compact(mails)]


class Pipeline(Protocol):
    """The part of ``redis.asyncio`` pipelines this module uses (typed here because the
    ``types-redis`` stubs, when installed, shadow redis-py's own annotations and predate 5.x)."""

    def evalsha(self, sha: str, numkeys: int, *keys_and_args: str | int) -> Any: ...

    def script_load(self, script: str) -> Any: ...

    def hget(self, name: str, key: str) -> Any: ...

    def pttl(self, name: str) -> Any: ...

    async def execute(self) -> list[Any]: ...


class Client(Protocol):
    """The part of ``redis.asyncio.Redis`` (``decode_responses=True``) this module uses."""

    async def evalsha(self, sha: str, numkeys: int, *keys_and_args: str | int) -> Any: ...

    async def hget(self, name: str, key: str) -> str | None: ...

    async def hset(self, name: str, key: str, value: str) -> int: ...

    async def pttl(self, name: str) -> int: ...

    async def delete(self, *names: str) -> int: ...

    def hscan_iter(self, name: str, *, count: int | None = None) -> AsyncIterator[Any]: ...

    def pipeline(self, transaction: bool = True) -> Pipeline: ...

    async def script_load(self, script: str) -> str: ...

    async def aclose(self) -> None: ...


class RedisStore(RedisDirectoryMixin, RedisSignInLogMixin):
    """``Store`` over one Redis database; see the module docstring for the key scheme."""

    def __init__(self, client: Client, *, cluster: bool = False, also_close: Sequence[Any] = ()) -> None:
        self._redis = client
        self._cluster = cluster  # scripts are loaded one call each (a cluster sends each to every primary)
        self._also_close = list(also_close)

    @classmethod
    def from_url(cls, url: str) -> RedisStore:
        """A store on ``url``: ``redis://`` / ``rediss://`` (query options such as timeouts win), or
        a Sentinel or Cluster URL (``gateway.store.redis_urls``)."""
        scheme = url.split("://", 1)[0].lower()
        if scheme in SENTINEL_SCHEMES or scheme in CLUSTER_SCHEMES:
            target = parse_target(url)
            client, others = open_client(target)
            return cls(cast(Client, client), cluster=target.mode == "cluster", also_close=others)
        client = Redis.from_url(url, decode_responses=True, **CONNECTION_OPTIONS)
        return cls(cast(Client, client))

    # -- script plumbing ---------------------------------------------------------------

    async def _load_scripts(self) -> None:
        if self._cluster:  # a pipeline sends a command to one node; script_load goes to every primary
            for script in SCRIPTS:
                await self._redis.script_load(script.source)
            return
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
        """Several scripts in one pipelined round trip (in order, not as a transaction). A cluster
        client does not pipeline scripts (redis-py refuses): there they run one after another."""
        if self._cluster:
            return [await self._eval(script, keys, args) for script, keys, args in calls]
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
        stored = await self._redis.hget(META, "schema_version")
        found = check_schema_version(None if stored is None else str(stored))
        await self._load_scripts()
        if found is None or found < 2:
            await self._index_directory()
        if found is None or found < 3:
            await self._index_user_ids()
        await self._redis.hset(META, "schema_version", str(SCHEMA_VERSION))

    async def _index_directory(self) -> None:
        """Schema 1 -> 2: the ``user-*`` entries and mail sets of every user not yet indexed."""
        owned: dict[str, list[list[str]]] = {}
        async for field, user_id in self._redis.hscan_iter(IDENTITIES, count=SCAN_COUNT):
            owned.setdefault(str(user_id), []).append(json.loads(field))
        batch: list[tuple[str, str]] = []
        async for user_id, doc in self._redis.hscan_iter(USERS, count=SCAN_COUNT):
            batch.append((str(user_id), str(doc)))
            if len(batch) >= SCAN_COUNT:
                await self._index_users(batch, owned)
                batch = []
        await self._index_users(batch, owned)

    async def _index_users(self, batch: list[tuple[str, str]], owned: dict[str, list[list[str]]]) -> None:
        while batch:
            calls = [_index_call(user_id, doc, owned.get(user_id, [])) for user_id, doc in batch]
            outcomes = await self._eval_many(calls)
            changed = [user_id for (user_id, _), done in zip(batch, outcomes, strict=True) if int(done) < 0]
            batch = []
            for user_id in changed:  # written or deleted since it was scanned: index what is there now
                found = await self._redis.hget(USERS, user_id)
                if found is not None:
                    batch.append((user_id, str(found)))

    async def _index_user_ids(self) -> None:
        """Schema 2 -> 3: file every stored user id in ``user-ids``."""
        batch: list[str] = []
        async for user_id, _ in self._redis.hscan_iter(USERS, count=SCAN_COUNT):
            batch.append(str(user_id))
            if len(batch) >= SCAN_COUNT:
                await self._eval(INDEX_USER_IDS, [USERS, USER_IDS], batch)
                batch = []
        if batch:
            await self._eval(INDEX_USER_IDS, [USERS, USER_IDS], batch)

    async def close(self) -> None:
        await self._redis.aclose()
        for other in self._also_close:
            await other.aclose()

    # -- ArtefactStore -----------------------------------------------------------------

    def batch(self) -> AbstractAsyncContextManager[None]:
        return write_behind.block(self, self._pipeline_writes)

    async def apply(self, writes: Sequence[Write]) -> None:
        calls = [call for write in writes for call in _prepare(write)]
        queued = write_behind.take(self)
        await self._pipeline_writes([*queued, *calls], queued)

    async def _pipeline_writes(self, calls: list[Call], queued: list[Call] | None = None) -> None:
        """``calls`` in one pipelined round trip; ``queued`` (taken from a ``batch`` block) go back
        to its queue when that fails."""
        if not calls:
            return
        try:
            await self._eval_many(calls)
        except BaseException:
            write_behind.give_back(self, queued or [])
            raise

    async def _flush(self) -> None:
        """Before an artefact operation: make the writes this task's ``batch`` block has queued."""
        queued = write_behind.take(self)
        if queued:
            await self._pipeline_writes(queued, queued)

    async def _write_or_queue(self, calls: list[Call]) -> None:
        queue = write_behind.queue_for(self)
        if queue is not None:
            queue.writes.extend(calls)
        elif len(calls) == 1:
            await self._eval(*calls[0])
        else:
            await self._eval_many(calls)

    async def put(self, kind: str, id: str, payload: JSON, ttl: int, *, grant_id: str | None = None) -> None:
        await self._write_or_queue(_put_calls(kind, id, payload, ttl, grant_id))

    async def add(self, kind: str, id: str, payload: JSON, ttl: int, *, grant_id: str | None = None) -> bool:
        check_key(kind, id)
        check_seconds("ttl", ttl)
        check_grant(grant_id)
        text = encode("payload", payload)
        key = artefact_key(kind, id)
        await self._flush()
        if not await self._eval(ADD, [key], [text, grant_id or "", ttl * 1000]):
            return False
        if grant_id is not None:
            await self._eval(GRANT_ADD, [grant_key(grant_id)], [key, ttl * 1000])
        return True

    async def get(self, kind: str, id: str) -> JSON | None:
        check_key(kind, id)
        await self._flush()
        found = await self._redis.hget(artefact_key(kind, id), "payload")
        return None if found is None else decode(found)

    async def consume(self, kind: str, id: str) -> Consumed | None:
        check_key(kind, id)
        await self._flush()
        found = await self._eval(CONSUME, [artefact_key(kind, id)], [])
        if found is None:
            return None
        payload, grant, uses = found
        return Consumed(payload=decode(payload), grant_id=grant or None, first=int(uses) == 1)

    async def delete(self, kind: str, id: str) -> None:
        await self._write_or_queue(_delete_calls(kind, id))

    async def revoke_grant(self, grant_id: str) -> int:
        check_text("grant_id", grant_id)
        await self._flush()
        members = cast(list[str], await self._eval(GRANT_TAKE, [grant_key(grant_id)], []))
        if not members:
            return 0
        removed = await self._eval_many([(DELETE_IF_GRANT, [member], [grant_id]) for member in members])
        return sum(int(count) for count in removed)

    async def incr(self, kind: str, id: str, window: int) -> Counter:
        check_key(kind, id)
        check_seconds("window", window)
        await self._flush()
        value, left = await self._eval(INCR, [counter_key(kind, id)], [window * 1000])
        return Counter(value=int(value), expires_in=_seconds(int(left)))

    async def consume_counted(
        self, kind: str, id: str, counter: str, window: int, limit: int, *, counter_id: str | None = None
    ) -> tuple[Counter, Consumed | None]:
        counted_id = check_counted(kind, id, counter, counter_id, window, limit)
        counted = await self.incr(counter, counted_id, window)
        if counted.value > limit:
            return counted, None
        return counted, await self.consume(kind, id)

    async def ttl(self, kind: str, id: str) -> int | None:
        check_key(kind, id)
        await self._flush()
        left = await self._redis.pttl(artefact_key(kind, id))
        return None if left < 0 else _seconds(left)

    async def ttl_many(self, names: Sequence[tuple[str, str]]) -> list[int | None]:
        for kind, id in names:
            check_key(kind, id)
        await self._flush()
        if not names:
            return []
        pipe = self._redis.pipeline(transaction=False)
        for kind, id in names:
            pipe.pttl(artefact_key(kind, id))
        return [None if left < 0 else _seconds(left) for left in await pipe.execute()]

    # -- DirectoryStore ----------------------------------------------------------------

    async def create_user(self, user: JSON, identities: list[tuple[str, str]]) -> bool:
        user_id = check_user(user)
        pairs = check_identities(identities)
        mails = user_mails(user)
        doc = encode("user", user)
        fields = [identity_field(issuer, assigned) for issuer, assigned in pairs]
        keys = [USERS, IDENTITIES, USER_IDENTITIES, USER_MAILS, USER_IDS, *map(mail_key, mails)]
        args = [user_id, doc, compact([list(pair) for pair in pairs]), compact(mails), *fields]
        outcome = int(await self._eval(CREATE_USER, keys, args))
        if outcome < 0:
            raise ValueError(f"a user with id {user_id!r} already exists")
        return outcome == 1

    async def get_user(self, user_id: str) -> JSON | None:
        check_text("user id", user_id)
        found = await self._eval(GET_USER, [USERS, DELETED], [user_id])
        return None if found is None else decode(found)

    async def find_user_by_identity(self, issuer: str, issuer_assigned_id: str) -> JSON | None:
        check_text("identity issuer", issuer)
        check_text("identity issuer_assigned_id", issuer_assigned_id)
        field = identity_field(issuer, issuer_assigned_id)
        found = await self._eval(FIND_USER, [IDENTITIES, USERS, DELETED], [field])
        return None if found is None else decode(found)

    async def update_user(self, user: JSON) -> None:
        user_id = check_user(user)
        mails = user_mails(user)
        doc = encode("user", user)
        new_keys = [mail_key(mail) for mail in mails]
        while True:  # compare-and-set on the user's user-mails entry
            indexed = await self._redis.hget(USER_MAILS, user_id)
            old: list[str] = [] if indexed is None else json.loads(indexed)
            keys = [USERS, USER_MAILS, DELETED, *map(mail_key, old), *new_keys]
            args: list[str | int] = [user_id, doc, indexed or "", compact(mails), len(old)]
            outcome = int(await self._eval(UPDATE_USER, keys, args))
            if outcome == 0:
                raise KeyError(f"no user with id {user_id!r}")
            if outcome == 1:
                return

    async def add_identity(self, user_id: str, issuer: str, issuer_assigned_id: str, identity: JSON) -> bool:
        check_text("user id", user_id)
        entry = check_identity(issuer, issuer_assigned_id, identity)
        field = identity_field(issuer, issuer_assigned_id)
        keys = [USERS, IDENTITIES, USER_IDENTITIES, DELETED]
        while True:  # compare-and-set on the user's document and user-identities entry
            pipe = self._redis.pipeline(transaction=False)
            pipe.hget(USERS, user_id)
            pipe.hget(USER_IDENTITIES, user_id)
            doc, owned = await pipe.execute()
            if doc is None:
                raise KeyError(f"no user with id {user_id!r}")
            linked = encode("user", append_identity(decode(doc), entry))
            pairs: list[list[str]] = [] if owned is None else json.loads(owned)
            now_owned = compact([*pairs, [issuer, issuer_assigned_id]])
            args = [user_id, doc, linked, owned or "", now_owned, field]
            outcome = int(await self._eval(ADD_IDENTITY, keys, args))
            if outcome == -2:
                raise KeyError(f"no user with id {user_id!r}")
            if outcome >= 0:
                return outcome == 1

    async def find_users_by_mail(self, mail: str) -> list[JSON]:
        address = check_mail(mail)
        found = await self._eval(FIND_BY_MAIL, [mail_key(address), USERS, DELETED], [])
        pairs = sorted(zip(found[::2], found[1::2], strict=True), key=lambda pair: str(pair[0]))
        return [decode(doc) for _, doc in pairs]

    async def delete_user(self, user_id: str) -> bool:
        check_text("user id", user_id)
        return await self._delete_user(user_id, None)

    async def _delete_user(self, user_id: str, deleted_before: int | None) -> bool:
        """Hard-delete the user (when ``deleted_before`` is given: only if it was soft-deleted
        before that time); True when it was removed."""
        condition = "" if deleted_before is None else str(deleted_before)
        while True:  # compare-and-set on the user's user-identities and user-mails entries
            pipe = self._redis.pipeline(transaction=False)
            pipe.hget(USER_IDENTITIES, user_id)
            pipe.hget(USER_MAILS, user_id)
            owned, indexed = await pipe.execute()
            pairs: list[list[str]] = [] if owned is None else json.loads(owned)
            mails: list[str] = [] if indexed is None else json.loads(indexed)
            keys = [*DIR_KEYS, *map(mail_key, mails)]
            fields = (identity_field(i, a) for i, a in pairs)
            args = [user_id, owned or "", indexed or "", condition, *fields]
            outcome = int(await self._eval(DELETE_USER, keys, args))
            if outcome != -1:
                return outcome == 1

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
