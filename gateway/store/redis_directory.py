"""Redis side of the directory's listings, soft delete, groups and app links (schema 3).

``RedisDirectoryMixin`` gives ``RedisStore`` these ``DirectoryStore`` methods. Each write is one
Lua script over ``{dir}`` keys only, all named in ``KEYS`` (``redis_keys.DIR_KEYS``), so a link
and its reverse entry, or an assignment and its three index entries, change together. Keys
(all ``gw:{dir}:...``; ``enc(s)`` is ``<byte length>:<s>``, see ``redis_keys``):

``user-ids``
    ZSET (all scores 0, so ordered by id bytes) of every user id: ``list_users`` pages it.
``deleted`` / ``deleted-ids``
    ZSET soft-deleted user id -> deletion time (epoch seconds; ``purge_deleted_users`` ranges
    it), and the same ids with score 0 for paging in id order. The user's document is left as
    it is; presence in ``deleted`` hides it (``redis.py``'s lookups check it).
``groups`` / ``group-ids``
    HASH group id -> group JSON, and the ids with score 0 for paging.
``members`` / ``member-of``, ``owners`` / ``owner-of``, ``app-owners`` / ``owned-apps``
    Lex ZSETs of ``enc(group) .. user`` / ``enc(user) .. group`` (``enc(app) .. user`` /
    ``enc(user) .. app``): both directions of each link, listed by prefix in id order.
``assignments``, ``assignment-triples``, ``assignments-by-principal``, ``assignments-by-resource``
    HASH assignment id -> ``appRoleAssignment`` JSON; HASH ``enc(principalId) ..
    enc(resourceId) .. appRoleId`` -> assignment id (the uniqueness rule); lex ZSETs
    ``enc(principalId) .. id`` and ``enc(resourceId) .. id``.

``list_users`` without ``mail`` scans ``user-ids`` (or ``deleted-ids``) from the cursor in
batches of ``SCAN_BATCH`` ids per script call, filtering in Lua (``cjson``) until the page is
full; with ``mail`` it reads that address's small mail set. Listings leave soft-deleted users
(and their links and assignments) out, as the SQLite backend does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from gateway.store.base import JSON
from gateway.store.redis_keys import DELETED, DIR_KEYS, USERS, Script, directory_script, lua_script, mail_key
from gateway.store.validate import check_text, decode
from gateway.store.validate_directory import (
    check_assignment,
    check_epoch,
    check_group,
    check_link,
    check_page,
    check_user_ids,
    check_user_query,
    deleted_view,
    page_of,
)

SCAN_BATCH = 500

# -- users -------------------------------------------------------------------------------------
# KEYS users, deleted; ARGV user ids -> flat list of live user id, user JSON
GET_USERS = lua_script("""
local found = {}
for i = 1, #ARGV do
  local doc = redis.call('HGET', KEYS[1], ARGV[i])
  if doc and not redis.call('ZSCORE', KEYS[2], ARGV[i]) then
    found[#found + 1] = ARGV[i]
    found[#found + 1] = doc
  end
end
return found
""")
# ARGV user id, now -> the stored document, or false (absent or already deleted)
SOFT_DELETE = directory_script("""
local doc = redis.call('HGET', K.users, ARGV[1])
if not doc or redis.call('ZSCORE', K.deleted, ARGV[1]) then return false end
redis.call('ZADD', K.deleted, ARGV[2], ARGV[1])
redis.call('ZADD', K.deleted_ids, 0, ARGV[1])
return doc
""")
RESTORE = directory_script("""
if not redis.call('ZSCORE', K.deleted, ARGV[1]) then return false end
redis.call('ZREM', K.deleted, ARGV[1])
redis.call('ZREM', K.deleted_ids, ARGV[1])
return redis.call('HGET', K.users, ARGV[1])
""")
GET_DELETED = directory_script("""
local at = redis.call('ZSCORE', K.deleted, ARGV[1])
if not at then return false end
return {redis.call('HGET', K.users, ARGV[1]), at}
""")
# ARGV older than -> ids deleted before it
PURGE_DUE = directory_script("""
return redis.call('ZRANGEBYSCORE', K.deleted, '-inf', '(' .. ARGV[1])
""")
# The user-matching part of both listings: ARGV[d] '1' for deleted users, ARGV[d+1] userType,
# ARGV[d+2] externalUserState ('' = any). -> document, deletion time ('' = live) or nil
_MATCH = """
local function match(id, d)
  local at = redis.call('ZSCORE', K.deleted, id)
  if (at ~= false) ~= (ARGV[d] == '1') then return nil end
  local doc = redis.call('HGET', K.users, id)
  if not doc then return nil end
  if ARGV[d + 1] ~= '' or ARGV[d + 2] ~= '' then
    local user = cjson.decode(doc)
    if ARGV[d + 1] ~= '' and user.userType ~= ARGV[d + 1] then return nil end
    if ARGV[d + 2] ~= '' and user.externalUserState ~= ARGV[d + 2] then return nil end
  end
  return doc, at or ''
end
"""
# ARGV start ('-' or '(' .. after), batch, wanted, deleted, userType, externalUserState
# -> {more (1 when the scan stopped early or filled its batch), last id scanned, id, doc, at, ...}
LIST_USERS = directory_script(
    _MATCH
    + """
local source = K.user_ids
if ARGV[4] == '1' then source = K.deleted_ids end
local batch = tonumber(ARGV[2])
local ids = redis.call('ZRANGEBYLEX', source, ARGV[1], '+', 'LIMIT', 0, batch)
local out = {0, ''}
if #ids == batch then out[1] = 1 end
local wanted = tonumber(ARGV[3])
local found = 0
for i, id in ipairs(ids) do
  out[2] = id
  local doc, at = match(id, 4)
  if doc then
    out[#out + 1] = id
    out[#out + 1] = doc
    out[#out + 1] = at
    found = found + 1
    if found >= wanted then
      if i < #ids then out[1] = 1 end
      break
    end
  end
end
return out
"""
)
# KEYS DIR_KEYS, mail set; ARGV deleted, userType, externalUserState -> {id, doc, at, ...}
LIST_USERS_BY_MAIL = directory_script(
    _MATCH
    + """
local out = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[#KEYS])) do
  local doc, at = match(id, 1)
  if doc then
    out[#out + 1] = id
    out[#out + 1] = doc
    out[#out + 1] = at
  end
end
return out
"""
)

# -- groups and links ----------------------------------------------------------------------------
CREATE_GROUP = directory_script("""
if redis.call('HSETNX', K.groups, ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('ZADD', K.group_ids, 0, ARGV[1])
return 1
""")
GET_GROUP = directory_script("""
return redis.call('HGET', K.groups, ARGV[1])
""")
UPDATE_GROUP = directory_script("""
if redis.call('HEXISTS', K.groups, ARGV[1]) == 0 then return 0 end
redis.call('HSET', K.groups, ARGV[1], ARGV[2])
return 1
""")
# ARGV start, count -> {id, doc, ...}
LIST_GROUPS = directory_script("""
local out = {}
for _, id in ipairs(redis.call('ZRANGEBYLEX', K.group_ids, ARGV[1], '+', 'LIMIT', 0, tonumber(ARGV[2]))) do
  out[#out + 1] = id
  out[#out + 1] = redis.call('HGET', K.groups, id)
end
return out
""")
DELETE_GROUP = directory_script("""
if redis.call('HDEL', K.groups, ARGV[1]) == 0 then return 0 end
redis.call('ZREM', K.group_ids, ARGV[1])
unlink(K.members, K.member_of, ARGV[1])
unlink(K.owners, K.owner_of, ARGV[1])
unassign_principal(ARGV[1], 'Group')
return 1
""")
# ARGV forward link ZSET name, its reverse's name, container id, user id, '1' when the container
# is a group that must exist. -1: no such group, -2: no such live user, 0: linked already, 1: added
ADD_LINK = directory_script("""
if ARGV[5] == '1' and redis.call('HEXISTS', K.groups, ARGV[3]) == 0 then return -1 end
if redis.call('HEXISTS', K.users, ARGV[4]) == 0 or redis.call('ZSCORE', K.deleted, ARGV[4]) then
  return -2
end
if redis.call('ZADD', K[ARGV[1]], 0, enc(ARGV[3]) .. ARGV[4]) == 0 then return 0 end
redis.call('ZADD', K[ARGV[2]], 0, enc(ARGV[4]) .. ARGV[3])
return 1
""")
REMOVE_LINK = directory_script("""
if redis.call('ZREM', K[ARGV[1]], enc(ARGV[3]) .. ARGV[4]) == 0 then return 0 end
redis.call('ZREM', K[ARGV[2]], enc(ARGV[4]) .. ARGV[3])
return 1
""")
# ARGV link ZSET name, id, 'users' (entries are users: leave deleted ones out) or 'of' (the id
# is a user: nothing when it is deleted)
LIST_LINKED = directory_script("""
local ids = under(K[ARGV[1]], enc(ARGV[2]))
if ARGV[3] == 'of' then
  if redis.call('ZSCORE', K.deleted, ARGV[2]) then return {} end
  return ids
end
local live = {}
for _, id in ipairs(ids) do
  if not redis.call('ZSCORE', K.deleted, id) then live[#live + 1] = id end
end
return live
""")

# -- app role assignments ------------------------------------------------------------------------
# ARGV id, doc, principalId, principalType, resourceId, appRoleId.
# -2: no such principal, 0: triple assigned already, -1: id taken, 1: added
ADD_ASSIGNMENT = directory_script("""
if ARGV[4] == 'User' then
  if redis.call('HEXISTS', K.users, ARGV[3]) == 0 or redis.call('ZSCORE', K.deleted, ARGV[3]) then
    return -2
  end
elseif redis.call('HEXISTS', K.groups, ARGV[3]) == 0 then
  return -2
end
local triple = enc(ARGV[3]) .. enc(ARGV[5]) .. ARGV[6]
if redis.call('HEXISTS', K.triples, triple) == 1 then return 0 end
if redis.call('HEXISTS', K.assignments, ARGV[1]) == 1 then return -1 end
redis.call('HSET', K.assignments, ARGV[1], ARGV[2])
redis.call('HSET', K.triples, triple, ARGV[1])
redis.call('ZADD', K.by_principal, 0, enc(ARGV[3]) .. ARGV[1])
redis.call('ZADD', K.by_resource, 0, enc(ARGV[5]) .. ARGV[1])
return 1
""")
REMOVE_ASSIGNMENT = directory_script("""
return unassign(ARGV[1])
""")
# ARGV 'principal' | 'resource' | 'all', id -> {doc, ...} (unordered; users' only when live)
LIST_ASSIGNMENTS = directory_script("""
local ids
if ARGV[1] == 'principal' then ids = under(K.by_principal, enc(ARGV[2]))
elseif ARGV[1] == 'resource' then ids = under(K.by_resource, enc(ARGV[2]))
else ids = redis.call('HKEYS', K.assignments) end
local out = {}
for _, id in ipairs(ids) do
  local doc = redis.call('HGET', K.assignments, id)
  if doc then
    local a = cjson.decode(doc)
    if a.principalType ~= 'User' or not redis.call('ZSCORE', K.deleted, a.principalId) then
      out[#out + 1] = doc
    end
  end
end
return out
""")

DIRECTORY_SCRIPTS = (
    GET_USERS, SOFT_DELETE, RESTORE, GET_DELETED, PURGE_DUE, LIST_USERS, LIST_USERS_BY_MAIL,
    CREATE_GROUP, GET_GROUP, UPDATE_GROUP, LIST_GROUPS, DELETE_GROUP, ADD_LINK, REMOVE_LINK, LIST_LINKED,
    ADD_ASSIGNMENT, REMOVE_ASSIGNMENT, LIST_ASSIGNMENTS,
)  # fmt: skip

# Lua names (``redis_keys.LUA_DIRECTORY``) of each link's forward and reverse ZSETs.
GROUP_MEMBERS = ("members", "member_of")
GROUP_OWNERS = ("owners", "owner_of")
APP_OWNERS = ("app_owners", "owned_apps")


def _triples(flat: list[Any]) -> list[tuple[str, JSON]]:
    """``[id, doc, deleted_at, ...]`` -> ``(id, user or its deleted view)`` pairs."""
    found: list[tuple[str, JSON]] = []
    for user_id, doc, deleted_at in zip(flat[::3], flat[1::3], flat[2::3], strict=True):
        user = decode(doc)
        found.append((str(user_id), deleted_view(user, int(float(deleted_at))) if deleted_at else user))
    return found


class _Host(Protocol):
    """What the mixin uses of ``RedisStore``."""

    async def _eval(self, script: Script, keys: Sequence[str], args: Sequence[str | int]) -> Any: ...

    async def _delete_user(self, user_id: str, deleted_before: int | None) -> bool: ...


async def _run(host: _Host, script: Script, *args: str | int, extra_keys: Sequence[str] = ()) -> Any:
    return await host._eval(script, [*DIR_KEYS, *extra_keys], args)


async def _add_link(host: _Host, link: tuple[str, str], container_id: str, user_id: str, group: bool) -> bool:
    check_link("group" if group else "app", container_id, user_id)
    outcome = int(await _run(host, ADD_LINK, *link, container_id, user_id, "1" if group else "0"))
    if outcome == -1:
        raise KeyError(f"no group with id {container_id!r}")
    if outcome == -2:
        raise KeyError(f"no user with id {user_id!r}")
    return outcome == 1


async def _remove_link(
    host: _Host, link: tuple[str, str], container_id: str, user_id: str, group: bool
) -> bool:
    check_link("group" if group else "app", container_id, user_id)
    return int(await _run(host, REMOVE_LINK, *link, container_id, user_id)) == 1


async def _linked(host: _Host, index: str, what: str, id: str, mode: str) -> list[str]:
    check_text(what, id)
    return [str(found) for found in await _run(host, LIST_LINKED, index, id, mode)]


class RedisDirectoryMixin:
    """The schema 3 ``DirectoryStore`` methods of ``RedisStore``; see the module docstring."""

    # -- users -----------------------------------------------------------------------------

    async def get_users(self: _Host, user_ids: Sequence[str]) -> dict[str, JSON]:
        ids = check_user_ids(user_ids)
        if not ids:
            return {}
        flat = await self._eval(GET_USERS, [USERS, DELETED], ids)
        return {str(user_id): decode(doc) for user_id, doc in zip(flat[::2], flat[1::2], strict=True)}

    async def list_users(
        self: _Host,
        *,
        mail: str | None = None,
        external_user_state: str | None = None,
        user_type: str | None = None,
        deleted: bool = False,
        limit: int = 100,
        after: str | None = None,
    ) -> tuple[list[JSON], str | None]:
        query = check_user_query(mail, external_user_state, user_type, deleted, limit, after)
        filters = ("1" if query.deleted else "0", query.user_type or "", query.external_user_state or "")
        if query.mail is not None:
            flat = await _run(self, LIST_USERS_BY_MAIL, *filters, extra_keys=[mail_key(query.mail)])
            found = sorted(_triples(flat), key=lambda pair: pair[0])
            if query.after is not None:
                found = [pair for pair in found if pair[0] > query.after]
            return page_of(found[: query.fetch], query.limit)
        found = []
        start = "-" if query.after is None else "(" + query.after
        while len(found) < query.fetch:
            more, last, *flat = await _run(
                self, LIST_USERS, start, SCAN_BATCH, query.fetch - len(found), *filters
            )
            found.extend(_triples(flat))
            if not int(more):
                break
            start = "(" + str(last)
        return page_of(found, query.limit)

    async def soft_delete_user(self: _Host, user_id: str, now: int) -> JSON | None:
        check_text("user id", user_id)
        at = check_epoch("now", now)
        doc = await _run(self, SOFT_DELETE, user_id, at)
        return None if doc is None else deleted_view(decode(doc), at)

    async def restore_user(self: _Host, user_id: str) -> JSON | None:
        check_text("user id", user_id)
        doc = await _run(self, RESTORE, user_id)
        return None if doc is None else decode(doc)

    async def get_deleted_user(self: _Host, user_id: str) -> JSON | None:
        check_text("user id", user_id)
        found = await _run(self, GET_DELETED, user_id)
        if found is None:
            return None
        doc, deleted_at = found
        return deleted_view(decode(doc), int(float(deleted_at)))

    async def purge_deleted_users(self: _Host, older_than: int) -> int:
        before = check_epoch("older_than", older_than)
        due = await _run(self, PURGE_DUE, before)
        removed = 0
        for user_id in due:  # each removed only if still deleted before ``before`` (else skipped)
            removed += await self._delete_user(str(user_id), before)
        return removed

    # -- groups ----------------------------------------------------------------------------

    async def create_group(self: _Host, group: JSON) -> None:
        group_id, doc = check_group(group)
        if not int(await _run(self, CREATE_GROUP, group_id, doc)):
            raise ValueError(f"a group with id {group_id!r} already exists")

    async def get_group(self: _Host, group_id: str) -> JSON | None:
        check_text("group id", group_id)
        doc = await _run(self, GET_GROUP, group_id)
        return None if doc is None else decode(doc)

    async def list_groups(
        self: _Host, *, limit: int = 100, after: str | None = None
    ) -> tuple[list[JSON], str | None]:
        check_page(limit, after)
        flat = await _run(self, LIST_GROUPS, "-" if after is None else "(" + after, limit + 1)
        found = [(str(group_id), decode(doc)) for group_id, doc in zip(flat[::2], flat[1::2], strict=True)]
        return page_of(found, limit)

    async def update_group(self: _Host, group: JSON) -> None:
        group_id, doc = check_group(group)
        if not int(await _run(self, UPDATE_GROUP, group_id, doc)):
            raise KeyError(f"no group with id {group_id!r}")

    async def delete_group(self: _Host, group_id: str) -> bool:
        check_text("group id", group_id)
        return int(await _run(self, DELETE_GROUP, group_id)) == 1

    async def add_group_member(self: _Host, group_id: str, user_id: str) -> bool:
        return await _add_link(self, GROUP_MEMBERS, group_id, user_id, True)

    async def remove_group_member(self: _Host, group_id: str, user_id: str) -> bool:
        return await _remove_link(self, GROUP_MEMBERS, group_id, user_id, True)

    async def list_group_members(self: _Host, group_id: str) -> list[str]:
        return await _linked(self, "members", "group id", group_id, "users")

    async def add_group_owner(self: _Host, group_id: str, user_id: str) -> bool:
        return await _add_link(self, GROUP_OWNERS, group_id, user_id, True)

    async def remove_group_owner(self: _Host, group_id: str, user_id: str) -> bool:
        return await _remove_link(self, GROUP_OWNERS, group_id, user_id, True)

    async def list_group_owners(self: _Host, group_id: str) -> list[str]:
        return await _linked(self, "owners", "group id", group_id, "users")

    async def list_user_groups(self: _Host, user_id: str) -> list[str]:
        return await _linked(self, "member_of", "user id", user_id, "of")

    async def list_owned_groups(self: _Host, user_id: str) -> list[str]:
        return await _linked(self, "owner_of", "user id", user_id, "of")

    # -- applications ----------------------------------------------------------------------

    async def add_app_owner(self: _Host, app_id: str, user_id: str) -> bool:
        return await _add_link(self, APP_OWNERS, app_id, user_id, False)

    async def remove_app_owner(self: _Host, app_id: str, user_id: str) -> bool:
        return await _remove_link(self, APP_OWNERS, app_id, user_id, False)

    async def list_app_owners(self: _Host, app_id: str) -> list[str]:
        return await _linked(self, "app_owners", "app id", app_id, "users")

    async def list_owned_apps(self: _Host, user_id: str) -> list[str]:
        return await _linked(self, "owned_apps", "user id", user_id, "of")

    async def add_app_role_assignment(self: _Host, assignment: JSON) -> bool:
        a = check_assignment(assignment)
        args = (a.id, a.doc, a.principal_id, a.principal_type, a.resource_id, a.app_role_id)
        outcome = int(await _run(self, ADD_ASSIGNMENT, *args))
        if outcome == -2:
            raise KeyError(f"no {a.principal_type.lower()} with id {a.principal_id!r}")
        if outcome == -1:
            raise ValueError(f"an app role assignment with id {a.id!r} already exists")
        return outcome == 1

    async def remove_app_role_assignment(self: _Host, assignment_id: str) -> bool:
        check_text("app role assignment id", assignment_id)
        return int(await _run(self, REMOVE_ASSIGNMENT, assignment_id)) == 1

    async def list_app_role_assignments(
        self: _Host, *, resource_id: str | None = None, principal_id: str | None = None
    ) -> list[JSON]:
        if resource_id is not None:
            check_text("resource id", resource_id)
        if principal_id is not None:
            check_text("principal id", principal_id)
        if principal_id is not None:
            docs = await _run(self, LIST_ASSIGNMENTS, "principal", principal_id)
        elif resource_id is not None:
            docs = await _run(self, LIST_ASSIGNMENTS, "resource", resource_id)
        else:
            docs = await _run(self, LIST_ASSIGNMENTS, "all", "")
        found = [decode(doc) for doc in docs]
        if resource_id is not None:
            found = [a for a in found if a["resourceId"] == resource_id]
        return sorted(found, key=lambda a: str(a["id"]))
