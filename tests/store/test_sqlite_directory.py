"""SQLite-specific behaviour of schema 3 (``sqlite_directory``): the in-place upgrade from schema
2, the rows behind soft delete and links, and where the listing runs."""

from __future__ import annotations

import json
import sqlite3
import threading
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

import gateway.store.sqlite_directory as sqlite_directory
from gateway.store.sqlite import SQLiteStore
from gateway.store.validate_directory import deleted_view

ISS = "https://iss.example"
T0 = 1_700_000_000
NEW_TABLES = {
    "deleted_users",
    "groups",
    "group_members",
    "group_owners",
    "app_owners",
    "app_role_assignments",
}

# What schema 2 (the release before this one) created.
V2_SCHEMA = """
CREATE TABLE artefacts (
    kind TEXT NOT NULL, id TEXT NOT NULL, payload TEXT NOT NULL, grant_id TEXT,
    uses INTEGER NOT NULL DEFAULT 0, expires_at REAL NOT NULL,
    PRIMARY KEY (kind, id)) WITHOUT ROWID;
CREATE INDEX artefacts_grant ON artefacts (grant_id) WHERE grant_id IS NOT NULL;
CREATE INDEX artefacts_expiry ON artefacts (expires_at);
CREATE TABLE counters (
    kind TEXT NOT NULL, id TEXT NOT NULL, value INTEGER NOT NULL, expires_at REAL NOT NULL,
    PRIMARY KEY (kind, id)) WITHOUT ROWID;
CREATE INDEX counters_expiry ON counters (expires_at);
CREATE TABLE users (id TEXT PRIMARY KEY, doc TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE identities (
    issuer TEXT NOT NULL, issuer_assigned_id TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (issuer, issuer_assigned_id)) WITHOUT ROWID;
CREATE INDEX identities_user ON identities (user_id);
CREATE TABLE user_mails (
    mail TEXT NOT NULL, user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (mail, user_id)) WITHOUT ROWID;
CREATE INDEX user_mails_user ON user_mails (user_id);
CREATE TABLE signing_keys (seq INTEGER PRIMARY KEY, kid TEXT NOT NULL UNIQUE, record TEXT NOT NULL);
CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
INSERT INTO meta (name, value) VALUES ('schema_version', '2');
"""
V2_USERS: list[dict[str, Any]] = [
    {"id": "u-b", "mail": "B@x.example", "userType": "Guest", "externalUserState": "Accepted"},
    {"id": "u-a", "mail": "a@x.example", "userType": "Guest", "externalUserState": "PendingAcceptance"},
]


def make_v2_database(path: str) -> None:
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.executescript(V2_SCHEMA)
        for user in V2_USERS:
            conn.execute("INSERT INTO users (id, doc) VALUES (?, ?)", (user["id"], json.dumps(user)))
            conn.execute("INSERT INTO identities VALUES (?, ?, ?)", (ISS, f"sub-{user['id']}", user["id"]))
            conn.execute("INSERT INTO user_mails VALUES (?, ?)", (user["mail"].lower(), user["id"]))


def tables(path: str) -> tuple[str, set[str]]:
    with closing(sqlite3.connect(path)) as conn:
        version = conn.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()[0]
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    return str(version), names


def count(path: str, table: str) -> int:
    with closing(sqlite3.connect(path)) as conn:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


async def test_migrate_upgrades_a_version_2_file_in_place(tmp_path: Path) -> None:
    path = str(tmp_path / "v2.db")
    make_v2_database(path)
    assert tables(path)[0] == "2" and not NEW_TABLES & tables(path)[1]
    store = SQLiteStore(path)
    try:
        await store.migrate()
        version, names = tables(path)
        assert version == "3" and names >= NEW_TABLES
        page, cursor = await store.list_users()
        assert (page, cursor) == ([V2_USERS[1], V2_USERS[0]], None)
        assert await store.find_users_by_mail("b@X.example") == [V2_USERS[0]]
        assert (await store.list_users(external_user_state="Accepted"))[0] == [V2_USERS[0]]
        assert await store.soft_delete_user("u-a", T0) is not None
        await store.create_group({"id": "g1", "displayName": "G"})
        assert await store.add_group_member("g1", "u-b")
        await store.migrate()  # idempotent at version 3: keeps what schema 3 wrote
        assert tables(path)[0] == "3"
        assert await store.get_user("u-a") is None
        assert await store.list_group_members("g1") == ["u-b"]
        assert (await store.list_users(deleted=True))[0][0]["id"] == "u-a"
    finally:
        await store.close()


async def test_link_rows_follow_the_user_and_the_group(sqlite_store: SQLiteStore) -> None:
    s, path = sqlite_store, sqlite_store.path
    assert await s.create_user({"id": "u1", "mail": "u1@x.example"}, [(ISS, "a")])
    await s.create_group({"id": "g1", "displayName": "G"})
    await s.add_group_member("g1", "u1")
    await s.add_group_owner("g1", "u1")
    await s.add_app_owner("app", "u1")
    role = {"id": "a1", "appRoleId": "r", "principalId": "u1", "principalType": "User", "resourceId": "app"}
    assert await s.add_app_role_assignment(role)
    await s.soft_delete_user("u1", T0)
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT user_id, deleted_at FROM deleted_users").fetchall() == [("u1", T0)]
        (doc,) = conn.execute("SELECT doc FROM users WHERE id = 'u1'").fetchone()
    assert json.loads(doc) == {"id": "u1", "mail": "u1@x.example"}  # the document is untouched
    assert await s.delete_user("u1")
    for table in ("users", "identities", "user_mails", "deleted_users", "group_members", "group_owners"):
        assert count(path, table) == 0, table
    assert (count(path, "app_owners"), count(path, "app_role_assignments")) == (0, 0)
    assert await s.delete_group("g1")
    assert count(path, "groups") == 0


async def test_list_users_runs_on_the_worker_thread(
    sqlite_store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A filtered listing may scan every user, so it runs where waiting is fine (ADR 0004)."""
    assert await sqlite_store.create_user({"id": "u1", "userType": "Guest"}, [(ISS, "a")])
    threads: list[int] = []
    original = deleted_view  # the function sqlite_directory imported

    def record_thread(user: Any, at: int) -> Any:
        threads.append(threading.get_ident())
        return original(user, at)

    monkeypatch.setattr(sqlite_directory, "deleted_view", record_thread)
    await sqlite_store.soft_delete_user("u1", T0)  # a write, on the loop
    threads.clear()
    assert [u["id"] for u in (await sqlite_store.list_users(deleted=True, user_type="Guest"))[0]] == ["u1"]
    assert threads and threads[0] != threading.get_ident()
