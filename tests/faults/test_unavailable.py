"""``gateway.unavailable``: which store errors become a 503, and in which shape, per kind of path.

The store of an in-process gateway (SQLite) is made to fail with one error; each kind of
endpoint is then called: pages get the HTML page, machine endpoints the JSON error, both with
``Retry-After``; an SQLite error other than "locked" stays a 500 (a real fault, not hidden).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from redis.exceptions import BusyLoadingError, ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gateway.unavailable import is_unavailable, wants_json
from tests.support import flows
from tests.support.gateway_app import make_settings, running_app
from tests.support.smtp_server import SmtpServer


def failing(exc: Exception) -> Any:
    async def fail(*args: Any, **kwargs: Any) -> Any:
        raise exc

    return fail


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (sqlite3.OperationalError("database is locked"), True),
        (sqlite3.OperationalError("database table is locked"), True),
        (sqlite3.OperationalError("no such table: users"), False),
        (sqlite3.IntegrityError("UNIQUE constraint failed"), False),
        (RedisTimeoutError("Timeout reading from socket"), True),
        (BusyLoadingError("Redis is loading the dataset in memory"), True),
        (ReadOnlyError("You can't write against a read only replica."), True),
        (ValueError("database is locked"), False),
    ],
)
def test_which_errors_mean_temporarily_unavailable(exc: Exception, expected: bool) -> None:
    assert is_unavailable(exc) is expected


@pytest.mark.parametrize(
    ("path", "json"),
    [
        ("/oauth2/token", True), ("/oauth2/userinfo", True), ("/v1.0/invitations", True),
        ("/healthz/ready", True), ("/oauth2/authorize", False), ("/oauth2/logout", False),
        ("/signin/abc/passcode", False), ("/admin", False),
    ],
)  # fmt: skip
def test_machine_endpoints_answer_json_and_pages_html(path: str, json: bool) -> None:
    assert wants_json(path) is json


async def test_a_locked_sqlite_store_gives_the_page_and_the_json_error(
    tmp_path: Path, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_app(make_settings(tmp_path, smtp_server)) as (app, client):
        path = await flows.start(client, flows.AuthRequest())
        store = app.state.runtime.store
        locked = failing(sqlite3.OperationalError("database is locked"))
        for name in ("get", "put", "consume", "incr", "consume_counted", "apply"):
            monkeypatch.setattr(store, name, locked)
        page = await client.get(path)
        assert page.status_code == 503
        assert page.headers["retry-after"] == "5"
        assert "Temporarily unavailable" in page.text
        token = await flows.exchange(client, flows.AuthRequest(), "c" * 43)
        assert token.status_code == 503, token.text
        assert token.headers["retry-after"] == "5"
        assert token.json() == {
            "error": "temporarily_unavailable",
            "error_description": "the service is temporarily unavailable; try again in a few seconds",
        }


async def test_another_sqlite_error_is_not_hidden_as_a_503(
    tmp_path: Path, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_app(make_settings(tmp_path, smtp_server)) as (app, client):
        path = await flows.start(client, flows.AuthRequest())
        monkeypatch.setattr(
            app.state.runtime.store, "get", failing(sqlite3.OperationalError("disk I/O error"))
        )
        with pytest.raises(sqlite3.OperationalError, match="disk I/O error"):
            await client.get(path)  # in-process the 500 surfaces as the exception itself
