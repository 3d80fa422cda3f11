"""Reading a whole SQLite store into a ``transfer.Dump``, as one consistent snapshot.

The file is read on a connection of its own, in one read transaction (WAL: writers carry on, the
snapshot does not move), in a worker thread. Table layout: ``sqlite.py`` and ``sqlite_directory.py``.
"""

from __future__ import annotations

import asyncio
import sqlite3

from gateway.store.sqlite import SQLiteStore
from gateway.store.transfer import Dump
from gateway.store.validate import decode

READS = {
    "meta": "SELECT name, value FROM meta WHERE name != 'schema_version' ORDER BY name",
    "keys": "SELECT record FROM signing_keys ORDER BY seq",
    "users": """SELECT users.id, users.doc, deleted_users.deleted_at FROM users
        LEFT JOIN deleted_users ON deleted_users.user_id = users.id ORDER BY users.id""",
    "identities": """SELECT user_id, issuer, issuer_assigned_id FROM identities
        ORDER BY user_id, issuer, issuer_assigned_id""",
    "groups": "SELECT doc FROM groups ORDER BY id",
    "members": "SELECT group_id, user_id FROM group_members ORDER BY group_id, user_id",
    "owners": "SELECT group_id, user_id FROM group_owners ORDER BY group_id, user_id",
    "app_owners": "SELECT app_id, user_id FROM app_owners ORDER BY app_id, user_id",
    "assignments": "SELECT doc FROM app_role_assignments ORDER BY id",
    "artefacts": """SELECT kind, id, payload, grant_id, uses, expires_at FROM artefacts
        WHERE expires_at > ? ORDER BY kind, id""",
    "counters": "SELECT kind, id, value, expires_at FROM counters WHERE expires_at > ? ORDER BY kind, id",
}


def _read(path: str, now: float) -> Dump:
    conn = sqlite3.connect(path, timeout=5.0, isolation_level=None)
    try:
        conn.execute("BEGIN")
        dump = Dump()
        dump.meta = {str(name): str(value) for name, value in conn.execute(READS["meta"])}
        dump.signing_keys = [decode(record) for (record,) in conn.execute(READS["keys"])]
        pairs: dict[str, list[list[str]]] = {}
        for user_id, issuer, assigned in conn.execute(READS["identities"]):
            pairs.setdefault(str(user_id), []).append([str(issuer), str(assigned)])
        for user_id, doc, deleted_at in conn.execute(READS["users"]):
            dump.users.append(
                {
                    "user": decode(doc),
                    "identities": pairs.get(str(user_id), []),
                    "deleted_at": None if deleted_at is None else int(deleted_at),
                }
            )
        dump.groups = [decode(doc) for (doc,) in conn.execute(READS["groups"])]
        dump.group_members = [(str(g), str(u)) for g, u in conn.execute(READS["members"])]
        dump.group_owners = [(str(g), str(u)) for g, u in conn.execute(READS["owners"])]
        dump.app_owners = [(str(a), str(u)) for a, u in conn.execute(READS["app_owners"])]
        dump.assignments = [decode(doc) for (doc,) in conn.execute(READS["assignments"])]
        for kind, id, payload, grant_id, uses, expires_at in conn.execute(READS["artefacts"], (now,)):
            dump.artefacts.append(
                {
                    "kind": str(kind),
                    "id": str(id),
                    "payload": decode(payload),
                    "grant_id": grant_id,
                    "uses": int(uses),
                    "expires_at": float(expires_at),
                }
            )
        for kind, id, value, expires_at in conn.execute(READS["counters"], (now,)):
            dump.counters.append(
                {"kind": str(kind), "id": str(id), "value": int(value), "expires_at": float(expires_at)}
            )
        conn.execute("COMMIT")
        return dump
    finally:
        conn.close()


async def read_sqlite(store: SQLiteStore, now: float) -> Dump:
    """Everything in ``store``'s file (migrated first, so every table exists)."""
    await store.migrate()
    return await asyncio.to_thread(_read, store.path, now)
