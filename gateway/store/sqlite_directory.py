"""SQLite side of the directory's listings, soft delete, groups and app links (schema 3).

``SQLiteDirectoryMixin`` gives ``SQLiteStore`` these ``DirectoryStore`` methods; it runs its
work through the store's ``_lookup`` (bounded reads, on the event loop), ``_read`` (reads that
may scan, on the worker thread: ``list_users`` with filters) and ``_write`` (one ``BEGIN
IMMEDIATE`` transaction each), as the rest of the store does.

Tables (``DIRECTORY_SCHEMA``, created by ``migrate``; a schema 2 file gains them empty):

- ``deleted_users`` (user_id PRIMARY KEY -> users, deleted_at epoch seconds): the soft-deleted
  users. The user's document is left as it is; a row here hides it from ``get_user``,
  ``find_user_by_identity``, ``find_users_by_mail``, ``update_user`` and ``add_identity``
  (their SQL in ``sqlite.py`` says ``NOT EXISTS``) and from every listing here.
- ``groups`` (id, JSON doc); ``group_members`` and ``group_owners`` (PRIMARY KEY (group_id,
  user_id), indexed by user_id too, so both directions are index lookups in one table, which
  makes a link and its reverse one row, written atomically).
- ``app_owners`` (PRIMARY KEY (app_id, user_id), indexed by user_id).
- ``app_role_assignments`` (id, principal_id, principal_type, resource_id, app_role_id, JSON
  doc; UNIQUE (principal_id, resource_id, app_role_id), indexed by resource_id).

Link rows reference users and groups with ``ON DELETE CASCADE``, and ``delete_user_rows`` /
``delete_group`` also delete them explicitly; assignments (whose principal is a user or a
group) are deleted explicitly only.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from gateway.store.base import JSON
from gateway.store.validate import check_text, decode
from gateway.store.validate_directory import (
    UserQuery,
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

T = TypeVar("T")
Work = Callable[[sqlite3.Connection, float], T]

PURGE_USERS_BATCH = 100  # hard deletes per transaction in purge_deleted_users

DIRECTORY_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS deleted_users (
        user_id TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
        deleted_at INTEGER NOT NULL) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS deleted_users_at ON deleted_users (deleted_at)",
    "CREATE TABLE IF NOT EXISTS groups (id TEXT PRIMARY KEY, doc TEXT NOT NULL) WITHOUT ROWID",
    """CREATE TABLE IF NOT EXISTS group_members (
        group_id TEXT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
        user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        PRIMARY KEY (group_id, user_id)) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS group_members_user ON group_members (user_id)",
    """CREATE TABLE IF NOT EXISTS group_owners (
        group_id TEXT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
        user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        PRIMARY KEY (group_id, user_id)) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS group_owners_user ON group_owners (user_id)",
    """CREATE TABLE IF NOT EXISTS app_owners (
        app_id TEXT NOT NULL, user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        PRIMARY KEY (app_id, user_id)) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS app_owners_user ON app_owners (user_id)",
    """CREATE TABLE IF NOT EXISTS app_role_assignments (
        id TEXT PRIMARY KEY, principal_id TEXT NOT NULL, principal_type TEXT NOT NULL,
        resource_id TEXT NOT NULL, app_role_id TEXT NOT NULL, doc TEXT NOT NULL,
        UNIQUE (principal_id, resource_id, app_role_id)) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS app_role_assignments_resource ON app_role_assignments (resource_id)",
)

# -- users -----------------------------------------------------------------------------------
GET_USERS = """SELECT id, doc FROM users WHERE id IN (SELECT value FROM json_each(?))
AND NOT EXISTS (SELECT 1 FROM deleted_users WHERE deleted_users.user_id = users.id)"""

LIVE_USER = """SELECT u.doc FROM users u
WHERE u.id = ? AND NOT EXISTS (SELECT 1 FROM deleted_users d WHERE d.user_id = u.id)"""
INSERT_DELETED = "INSERT INTO deleted_users (user_id, deleted_at) VALUES (?, ?)"
GET_DELETED = """SELECT u.doc, d.deleted_at FROM deleted_users d JOIN users u ON u.id = d.user_id
WHERE d.user_id = ?"""
DELETE_DELETED = "DELETE FROM deleted_users WHERE user_id = ?"
PURGE_DUE = "SELECT user_id FROM deleted_users WHERE deleted_at < ? ORDER BY deleted_at LIMIT ?"
DELETE_USER_ROWS = (
    "DELETE FROM identities WHERE user_id = ?",
    "DELETE FROM user_mails WHERE user_id = ?",
    "DELETE FROM group_members WHERE user_id = ?",
    "DELETE FROM group_owners WHERE user_id = ?",
    "DELETE FROM app_owners WHERE user_id = ?",
    "DELETE FROM app_role_assignments WHERE principal_id = ? AND principal_type = 'User'",
    "DELETE FROM deleted_users WHERE user_id = ?",
)
DELETE_USER = "DELETE FROM users WHERE id = ?"

# list_users: one of four sources (live or deleted, by mail or not), then optional filters.
# Each part is constant text, so each of the 16 statements is prepared once per connection.
LIST_LIVE = """SELECT u.id, u.doc, NULL FROM users u WHERE u.id > :after
AND NOT EXISTS (SELECT 1 FROM deleted_users d WHERE d.user_id = u.id)"""
LIST_DELETED = """SELECT u.id, u.doc, d.deleted_at FROM deleted_users d JOIN users u ON u.id = d.user_id
WHERE d.user_id > :after"""
LIST_LIVE_BY_MAIL = """SELECT u.id, u.doc, NULL FROM user_mails m JOIN users u ON u.id = m.user_id
WHERE m.mail = :mail AND m.user_id > :after
AND NOT EXISTS (SELECT 1 FROM deleted_users d WHERE d.user_id = u.id)"""
LIST_DELETED_BY_MAIL = """SELECT u.id, u.doc, d.deleted_at FROM user_mails m
JOIN deleted_users d ON d.user_id = m.user_id JOIN users u ON u.id = m.user_id
WHERE m.mail = :mail AND m.user_id > :after"""
AND_USER_TYPE = " AND json_extract(u.doc, '$.userType') = :user_type"
AND_STATE = " AND json_extract(u.doc, '$.externalUserState') = :state"
# Ordered by the driving table's key, so the plan walks that index (no sort, no scan of users
# to find the few deleted ones).
ORDER_LIVE = " ORDER BY u.id LIMIT :fetch"
ORDER_DELETED = " ORDER BY d.user_id LIMIT :fetch"
ORDER_BY_MAIL = " ORDER BY m.user_id LIMIT :fetch"

# -- groups and links ------------------------------------------------------------------------

INSERT_GROUP = "INSERT INTO groups (id, doc) VALUES (?, ?) ON CONFLICT (id) DO NOTHING"
GET_GROUP = "SELECT doc FROM groups WHERE id = ?"
GROUP_EXISTS = "SELECT 1 FROM groups WHERE id = ?"
LIST_GROUPS = "SELECT id, doc FROM groups WHERE id > ? ORDER BY id LIMIT ?"
UPDATE_GROUP = "UPDATE groups SET doc = ? WHERE id = ?"
DELETE_GROUP_ROWS = (
    "DELETE FROM group_members WHERE group_id = ?",
    "DELETE FROM group_owners WHERE group_id = ?",
    "DELETE FROM app_role_assignments WHERE principal_id = ? AND principal_type = 'Group'",
)
DELETE_GROUP = "DELETE FROM groups WHERE id = ?"


@dataclass(frozen=True, slots=True)
class LinkSQL:
    """The statements of one user link table: (container id, user id) rows."""

    add: str
    remove: str
    users_of: str  # live users linked to a container, sorted
    of_user: str  # containers linked to a live user, sorted


MEMBERS = LinkSQL(
    add="INSERT INTO group_members (group_id, user_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
    remove="DELETE FROM group_members WHERE group_id = ? AND user_id = ?",
    users_of="""SELECT l.user_id FROM group_members l WHERE l.group_id = ?
AND NOT EXISTS (SELECT 1 FROM deleted_users d WHERE d.user_id = l.user_id) ORDER BY l.user_id""",
    of_user="""SELECT l.group_id FROM group_members l WHERE l.user_id = ?
AND NOT EXISTS (SELECT 1 FROM deleted_users d WHERE d.user_id = l.user_id) ORDER BY l.group_id""",
)
OWNERS = LinkSQL(
    add="INSERT INTO group_owners (group_id, user_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
    remove="DELETE FROM group_owners WHERE group_id = ? AND user_id = ?",
    users_of="""SELECT l.user_id FROM group_owners l WHERE l.group_id = ?
AND NOT EXISTS (SELECT 1 FROM deleted_users d WHERE d.user_id = l.user_id) ORDER BY l.user_id""",
    of_user="""SELECT l.group_id FROM group_owners l WHERE l.user_id = ?
AND NOT EXISTS (SELECT 1 FROM deleted_users d WHERE d.user_id = l.user_id) ORDER BY l.group_id""",
)
APP_OWNERS = LinkSQL(
    add="INSERT INTO app_owners (app_id, user_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
    remove="DELETE FROM app_owners WHERE app_id = ? AND user_id = ?",
    users_of="""SELECT l.user_id FROM app_owners l WHERE l.app_id = ?
AND NOT EXISTS (SELECT 1 FROM deleted_users d WHERE d.user_id = l.user_id) ORDER BY l.user_id""",
    of_user="""SELECT l.app_id FROM app_owners l WHERE l.user_id = ?
AND NOT EXISTS (SELECT 1 FROM deleted_users d WHERE d.user_id = l.user_id) ORDER BY l.app_id""",
)

# -- app role assignments --------------------------------------------------------------------

INSERT_ASSIGNMENT = """INSERT INTO app_role_assignments
(id, principal_id, principal_type, resource_id, app_role_id, doc) VALUES (?, ?, ?, ?, ?, ?)"""
TRIPLE_EXISTS = """SELECT 1 FROM app_role_assignments
WHERE principal_id = ? AND resource_id = ? AND app_role_id = ?"""
ASSIGNMENT_EXISTS = "SELECT 1 FROM app_role_assignments WHERE id = ?"
DELETE_ASSIGNMENT = "DELETE FROM app_role_assignments WHERE id = ?"
LIST_ASSIGNMENTS = """SELECT a.doc FROM app_role_assignments a WHERE NOT (a.principal_type = 'User'
AND EXISTS (SELECT 1 FROM deleted_users d WHERE d.user_id = a.principal_id))"""
AND_RESOURCE = " AND a.resource_id = :resource"
AND_PRINCIPAL = " AND a.principal_id = :principal"
ASSIGNMENTS_END = " ORDER BY a.id"


def delete_user_rows(conn: sqlite3.Connection, user_id: str) -> bool:
    """Hard-delete a user (live or soft-deleted) with everything that names it: identities, mail
    index entries, memberships, ownerships, its assignments, its deletion state. In the caller's
    transaction; False when there was no such user."""
    for statement in DELETE_USER_ROWS:
        conn.execute(statement, (user_id,))
    return conn.execute(DELETE_USER, (user_id,)).rowcount == 1


def _user_query_sql(query: UserQuery) -> str:
    if query.mail is not None:
        sql, order = (LIST_DELETED_BY_MAIL if query.deleted else LIST_LIVE_BY_MAIL), ORDER_BY_MAIL
    elif query.deleted:
        sql, order = LIST_DELETED, ORDER_DELETED
    else:
        sql, order = LIST_LIVE, ORDER_LIVE
    if query.user_type is not None:
        sql += AND_USER_TYPE
    if query.external_user_state is not None:
        sql += AND_STATE
    return sql + order


def _rows(conn: sqlite3.Connection, sql: str, params: tuple[object, ...]) -> list[Any]:
    return conn.execute(sql, params).fetchall()


def _exists(conn: sqlite3.Connection, sql: str, params: tuple[object, ...]) -> bool:
    return bool(conn.execute(sql, params).fetchall())


def _require_live_user(conn: sqlite3.Connection, user_id: str) -> None:
    if not _exists(conn, LIVE_USER, (user_id,)):
        raise KeyError(f"no user with id {user_id!r}")


def _require_group(conn: sqlite3.Connection, group_id: str) -> None:
    if not _exists(conn, GROUP_EXISTS, (group_id,)):
        raise KeyError(f"no group with id {group_id!r}")


class _Host(Protocol):
    """What the mixin uses of ``SQLiteStore``."""

    async def _lookup(self, work: Work[T]) -> T: ...

    async def _read(self, work: Work[T]) -> T: ...

    async def _write(self, work: Work[T]) -> T: ...


async def _add_link(host: _Host, sql: LinkSQL, container: str, container_id: str, user_id: str) -> bool:
    check_link(container, container_id, user_id)

    def work(conn: sqlite3.Connection, now: float) -> bool:
        if container == "group":
            _require_group(conn, container_id)
        _require_live_user(conn, user_id)
        return conn.execute(sql.add, (container_id, user_id)).rowcount == 1

    return await host._write(work)


async def _remove_link(host: _Host, sql: LinkSQL, container: str, container_id: str, user_id: str) -> bool:
    check_link(container, container_id, user_id)

    def work(conn: sqlite3.Connection, now: float) -> bool:
        return conn.execute(sql.remove, (container_id, user_id)).rowcount == 1

    return await host._write(work)


async def _linked(host: _Host, statement: str, what: str, id: str) -> list[str]:
    check_text(what, id)

    def work(conn: sqlite3.Connection, now: float) -> list[str]:
        return [str(row[0]) for row in _rows(conn, statement, (id,))]

    return await host._lookup(work)


class SQLiteDirectoryMixin:
    """The schema 3 ``DirectoryStore`` methods of ``SQLiteStore``; see the module docstring."""

    # -- users -----------------------------------------------------------------------------

    async def get_users(self: _Host, user_ids: Sequence[str]) -> dict[str, JSON]:
        ids = json.dumps(check_user_ids(user_ids))  # one parameter: the statement text stays constant

        def work(conn: sqlite3.Connection, now: float) -> dict[str, JSON]:
            return {user_id: decode(doc) for user_id, doc in conn.execute(GET_USERS, (ids,)).fetchall()}

        return await self._lookup(work)

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
        sql = _user_query_sql(query)
        params = {
            "after": query.after or "",
            "mail": query.mail,
            "user_type": query.user_type,
            "state": query.external_user_state,
            "fetch": query.fetch,
        }

        def work(conn: sqlite3.Connection, now: float) -> list[tuple[str, JSON]]:
            found: list[tuple[str, JSON]] = []
            for user_id, doc, deleted_at in conn.execute(sql, params).fetchall():
                user = decode(doc)
                found.append((user_id, user if deleted_at is None else deleted_view(user, deleted_at)))
            return found

        return page_of(await self._read(work), query.limit)

    async def soft_delete_user(self: _Host, user_id: str, now: int) -> JSON | None:
        check_text("user id", user_id)
        at = check_epoch("now", now)

        def work(conn: sqlite3.Connection, _: float) -> JSON | None:
            row = conn.execute(LIVE_USER, (user_id,)).fetchone()
            if row is None:
                return None
            conn.execute(INSERT_DELETED, (user_id, at))
            return deleted_view(decode(row[0]), at)

        return await self._write(work)

    async def restore_user(self: _Host, user_id: str) -> JSON | None:
        check_text("user id", user_id)

        def work(conn: sqlite3.Connection, now: float) -> JSON | None:
            row = conn.execute(GET_DELETED, (user_id,)).fetchone()
            if row is None:
                return None
            conn.execute(DELETE_DELETED, (user_id,))
            return decode(row[0])

        return await self._write(work)

    async def get_deleted_user(self: _Host, user_id: str) -> JSON | None:
        check_text("user id", user_id)

        def work(conn: sqlite3.Connection, now: float) -> JSON | None:
            rows = _rows(conn, GET_DELETED, (user_id,))
            return deleted_view(decode(rows[0][0]), rows[0][1]) if rows else None

        return await self._lookup(work)

    async def purge_deleted_users(self: _Host, older_than: int) -> int:
        before = check_epoch("older_than", older_than)

        def work(conn: sqlite3.Connection, now: float) -> tuple[int, bool]:
            due = [user_id for (user_id,) in conn.execute(PURGE_DUE, (before, PURGE_USERS_BATCH))]
            removed = sum(delete_user_rows(conn, user_id) for user_id in due)
            return removed, len(due) == PURGE_USERS_BATCH

        total = 0
        while True:  # bounded transactions; let the loop run between them
            removed, more = await self._write(work)
            total += removed
            if not more:
                return total
            await asyncio.sleep(0)

    # -- groups ----------------------------------------------------------------------------

    async def create_group(self: _Host, group: JSON) -> None:
        group_id, doc = check_group(group)

        def work(conn: sqlite3.Connection, now: float) -> None:
            if conn.execute(INSERT_GROUP, (group_id, doc)).rowcount != 1:
                raise ValueError(f"a group with id {group_id!r} already exists")

        await self._write(work)

    async def get_group(self: _Host, group_id: str) -> JSON | None:
        check_text("group id", group_id)

        def work(conn: sqlite3.Connection, now: float) -> JSON | None:
            rows = _rows(conn, GET_GROUP, (group_id,))
            return decode(rows[0][0]) if rows else None

        return await self._lookup(work)

    async def list_groups(
        self: _Host, *, limit: int = 100, after: str | None = None
    ) -> tuple[list[JSON], str | None]:
        check_page(limit, after)

        def work(conn: sqlite3.Connection, now: float) -> list[tuple[str, JSON]]:
            rows = _rows(conn, LIST_GROUPS, (after or "", limit + 1))
            return [(group_id, decode(doc)) for group_id, doc in rows]

        return page_of(await self._lookup(work), limit)

    async def update_group(self: _Host, group: JSON) -> None:
        group_id, doc = check_group(group)

        def work(conn: sqlite3.Connection, now: float) -> None:
            if conn.execute(UPDATE_GROUP, (doc, group_id)).rowcount != 1:
                raise KeyError(f"no group with id {group_id!r}")

        await self._write(work)

    async def delete_group(self: _Host, group_id: str) -> bool:
        check_text("group id", group_id)

        def work(conn: sqlite3.Connection, now: float) -> bool:
            for statement in DELETE_GROUP_ROWS:
                conn.execute(statement, (group_id,))
            return conn.execute(DELETE_GROUP, (group_id,)).rowcount == 1

        return await self._write(work)

    async def add_group_member(self: _Host, group_id: str, user_id: str) -> bool:
        return await _add_link(self, MEMBERS, "group", group_id, user_id)

    async def remove_group_member(self: _Host, group_id: str, user_id: str) -> bool:
        return await _remove_link(self, MEMBERS, "group", group_id, user_id)

    async def list_group_members(self: _Host, group_id: str) -> list[str]:
        return await _linked(self, MEMBERS.users_of, "group id", group_id)

    async def add_group_owner(self: _Host, group_id: str, user_id: str) -> bool:
        return await _add_link(self, OWNERS, "group", group_id, user_id)

    async def remove_group_owner(self: _Host, group_id: str, user_id: str) -> bool:
        return await _remove_link(self, OWNERS, "group", group_id, user_id)

    async def list_group_owners(self: _Host, group_id: str) -> list[str]:
        return await _linked(self, OWNERS.users_of, "group id", group_id)

    async def list_user_groups(self: _Host, user_id: str) -> list[str]:
        return await _linked(self, MEMBERS.of_user, "user id", user_id)

    async def list_owned_groups(self: _Host, user_id: str) -> list[str]:
        return await _linked(self, OWNERS.of_user, "user id", user_id)

    # -- applications ----------------------------------------------------------------------

    async def add_app_owner(self: _Host, app_id: str, user_id: str) -> bool:
        return await _add_link(self, APP_OWNERS, "app", app_id, user_id)

    async def remove_app_owner(self: _Host, app_id: str, user_id: str) -> bool:
        return await _remove_link(self, APP_OWNERS, "app", app_id, user_id)

    async def list_app_owners(self: _Host, app_id: str) -> list[str]:
        return await _linked(self, APP_OWNERS.users_of, "app id", app_id)

    async def list_owned_apps(self: _Host, user_id: str) -> list[str]:
        return await _linked(self, APP_OWNERS.of_user, "user id", user_id)

    async def add_app_role_assignment(self: _Host, assignment: JSON) -> bool:
        a = check_assignment(assignment)

        def work(conn: sqlite3.Connection, now: float) -> bool:
            if a.principal_type == "User":
                _require_live_user(conn, a.principal_id)
            else:
                _require_group(conn, a.principal_id)
            if _exists(conn, TRIPLE_EXISTS, (a.principal_id, a.resource_id, a.app_role_id)):
                return False
            if _exists(conn, ASSIGNMENT_EXISTS, (a.id,)):
                raise ValueError(f"an app role assignment with id {a.id!r} already exists")
            conn.execute(
                INSERT_ASSIGNMENT,
                (a.id, a.principal_id, a.principal_type, a.resource_id, a.app_role_id, a.doc),
            )
            return True

        return await self._write(work)

    async def remove_app_role_assignment(self: _Host, assignment_id: str) -> bool:
        check_text("app role assignment id", assignment_id)

        def work(conn: sqlite3.Connection, now: float) -> bool:
            return conn.execute(DELETE_ASSIGNMENT, (assignment_id,)).rowcount == 1

        return await self._write(work)

    async def list_app_role_assignments(
        self: _Host, *, resource_id: str | None = None, principal_id: str | None = None
    ) -> list[JSON]:
        sql = LIST_ASSIGNMENTS
        if resource_id is not None:
            check_text("resource id", resource_id)
            sql += AND_RESOURCE
        if principal_id is not None:
            check_text("principal id", principal_id)
            sql += AND_PRINCIPAL
        sql += ASSIGNMENTS_END
        params = {"resource": resource_id, "principal": principal_id}

        def work(conn: sqlite3.Connection, now: float) -> list[JSON]:
            return [decode(doc) for (doc,) in conn.execute(sql, params).fetchall()]

        return await (
            self._read(work) if resource_id is None and principal_id is None else self._lookup(work)
        )
