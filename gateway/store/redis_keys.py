"""Key names, the script wrapper and the Lua building blocks of the Redis directory.

Shared by ``redis.py`` (users, identities, mail index) and ``redis_directory.py`` (listings, soft
delete, groups, app links); the key scheme itself is documented in ``redis.py``. Every directory
key carries the ``{dir}`` hash tag, so a script may touch any of them in one slot.

Scripts that need several directory structures take ``DIR_KEYS`` as their first ``KEYS`` (in
that order) and start with ``LUA_DIRECTORY``, which names them in a Lua table ``K`` and defines:

- ``enc(s)``: ``<byte length>:<s>``, the prefix under which a lex-ordered link ZSET files the
  entries of ``s`` (``enc(group) .. user`` in ``members``). The length makes it unambiguous:
  no other id's entries start with ``enc(s)``.
- ``under(key, p)``: the entries of the lex ZSET ``key`` that start with ``p``, ``p`` stripped,
  in byte order (UTF-8 never contains the byte 255, so ``[p`` .. ``(p\\255`` holds exactly them).
- ``unlink(forward, backward, id)``: drop every ``enc(id) .. x`` entry of ``forward`` and its
  mirror ``enc(x) .. id`` in ``backward``.
- ``unassign(id)`` / ``unassign_principal(id, principalType)``: remove one app role assignment
  with its three index entries / every assignment of that principal.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

USERS = "gw:{dir}:users"
IDENTITIES = "gw:{dir}:identities"
USER_IDENTITIES = "gw:{dir}:user-identities"
USER_MAILS = "gw:{dir}:user-mails"
MAIL_PREFIX = "gw:{dir}:mail:"
SIGNING_KEYS = "gw:{dir}:signing-keys"
SIGNING_KEY_ORDER = "gw:{dir}:signing-key-order"
SIGNING_KEY_SEQ = "gw:{dir}:signing-key-seq"
META = "gw:{dir}:meta"
USER_IDS = "gw:{dir}:user-ids"
DELETED = "gw:{dir}:deleted"
DELETED_IDS = "gw:{dir}:deleted-ids"
GROUPS = "gw:{dir}:groups"
GROUP_IDS = "gw:{dir}:group-ids"
MEMBERS = "gw:{dir}:members"
MEMBER_OF = "gw:{dir}:member-of"
OWNERS = "gw:{dir}:owners"
OWNER_OF = "gw:{dir}:owner-of"
APP_OWNERS = "gw:{dir}:app-owners"
OWNED_APPS = "gw:{dir}:owned-apps"
ASSIGNMENTS = "gw:{dir}:assignments"
ASSIGNMENT_TRIPLES = "gw:{dir}:assignment-triples"
ASSIGNMENTS_BY_PRINCIPAL = "gw:{dir}:assignments-by-principal"
ASSIGNMENTS_BY_RESOURCE = "gw:{dir}:assignments-by-resource"

# (Lua name, key) in KEYS order for the scripts that start with LUA_DIRECTORY.
_DIRECTORY = (
    ("users", USERS),
    ("identities", IDENTITIES),
    ("user_identities", USER_IDENTITIES),
    ("user_mails", USER_MAILS),
    ("user_ids", USER_IDS),
    ("deleted", DELETED),
    ("deleted_ids", DELETED_IDS),
    ("groups", GROUPS),
    ("group_ids", GROUP_IDS),
    ("members", MEMBERS),
    ("member_of", MEMBER_OF),
    ("owners", OWNERS),
    ("owner_of", OWNER_OF),
    ("app_owners", APP_OWNERS),
    ("owned_apps", OWNED_APPS),
    ("assignments", ASSIGNMENTS),
    ("triples", ASSIGNMENT_TRIPLES),
    ("by_principal", ASSIGNMENTS_BY_PRINCIPAL),
    ("by_resource", ASSIGNMENTS_BY_RESOURCE),
)
DIR_KEYS = tuple(key for _, key in _DIRECTORY)
FIRST_EXTRA_KEY = len(DIR_KEYS) + 1  # the Lua index of the first key after DIR_KEYS

LUA_DIRECTORY = (
    "local K = {"
    + ", ".join(f"{name} = KEYS[{index}]" for index, (name, _) in enumerate(_DIRECTORY, start=1))
    + "}\n"
    + r"""
local function enc(s) return #s .. ':' .. s end
local function under(key, p)
  local found = {}
  for i, entry in ipairs(redis.call('ZRANGEBYLEX', key, '[' .. p, '(' .. p .. '\255')) do
    found[i] = string.sub(entry, #p + 1)
  end
  return found
end
local function unlink(forward, backward, id)
  local p = enc(id)
  for _, other in ipairs(under(forward, p)) do redis.call('ZREM', backward, enc(other) .. id) end
  redis.call('ZREMRANGEBYLEX', forward, '[' .. p, '(' .. p .. '\255')
end
local function unassign(id)
  local doc = redis.call('HGET', K.assignments, id)
  if not doc then return 0 end
  local a = cjson.decode(doc)
  redis.call('HDEL', K.assignments, id)
  redis.call('HDEL', K.triples, enc(a.principalId) .. enc(a.resourceId) .. a.appRoleId)
  redis.call('ZREM', K.by_principal, enc(a.principalId) .. id)
  redis.call('ZREM', K.by_resource, enc(a.resourceId) .. id)
  return 1
end
local function unassign_principal(id, principal_type)
  for _, aid in ipairs(under(K.by_principal, enc(id))) do
    local doc = redis.call('HGET', K.assignments, aid)
    if doc and cjson.decode(doc).principalType == principal_type then unassign(aid) end
  end
end
"""
)


def mail_key(address: str) -> str:
    """The SET of the ids of the users indexed under ``address`` (already lower-cased)."""
    return MAIL_PREFIX + address


def compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class Script:
    source: str
    sha: str


def lua_script(source: str) -> Script:
    return Script(source, hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest())


def directory_script(body: str) -> Script:
    """A script whose ``KEYS`` start with ``DIR_KEYS`` and whose body uses ``LUA_DIRECTORY``."""
    return lua_script(LUA_DIRECTORY + body)
