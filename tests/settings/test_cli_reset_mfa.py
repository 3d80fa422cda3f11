"""``gateway users reset-mfa USER_ID``: the operator removes a user's TOTP methods, audited; an unknown
user exits 1 and changes nothing. Runs in-process through ``main`` on a SQLite store under ``tmp_path``."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.cli import main
from gateway.mfa.methods import METHODS_KEY
from gateway.store.factory import open_store
from tests.settings.test_cli_directory import db, write
from tests.support.inspect_store import users

USER_ID = "0b6c1e8e-2c0a-4a39-9d0e-6d3a8c1f0e55"
METHODS = [
    {"id": "m-1", "createdDateTime": "2026-01-01T00:00:00Z", "secret": "v1.sealed-one"},
    {"id": "m-2", "createdDateTime": "2026-01-02T00:00:00Z", "secret": "v1.sealed-two"},
]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GATEWAY_CONFIG", raising=False)
    yield tmp_path


@pytest.fixture
def audit(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="gateway.audit")
    return caplog


def records(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "gateway.audit"]


def add_user(**extra: Any) -> None:
    async def create() -> None:
        store = open_store("sqlite:///var/gateway.db")
        try:
            await store.migrate()
            user = {"id": USER_ID, "userType": "Guest", "mail": "guest@partner.example", **extra}
            assert await store.create_user(user, [("mail", "guest@partner.example")])
        finally:
            await store.close()

    asyncio.run(create())


def test_reset_mfa_removes_every_method_and_is_audited(
    workdir: Path, capsys: pytest.CaptureFixture[str], audit: pytest.LogCaptureFixture
) -> None:
    config = write(workdir)
    add_user(**{METHODS_KEY: METHODS})
    assert main(["users", "reset-mfa", USER_ID, "--config", config]) == 0
    out, err = capsys.readouterr()
    assert (
        out
        == f"removed 2 TOTP method(s) of user {USER_ID}: the next sign-in that needs MFA registers again\n"
    )
    assert err == ""
    [user] = users(db(workdir))
    assert METHODS_KEY not in user and user["mail"] == "guest@partner.example"
    [record] = records(audit)
    assert (record["action"], record["result"], record["actor"], record["target"], record["reasons"]) == (
        "resetSoftwareOathMethods", "success", {"kind": "operator", "id": "cli"}, USER_ID,
        ["authentication_methods_reset"],
    )  # fmt: skip


def test_reset_mfa_of_a_user_without_methods_changes_nothing(
    workdir: Path, capsys: pytest.CaptureFixture[str], audit: pytest.LogCaptureFixture
) -> None:
    config = write(workdir)
    add_user()
    before = users(db(workdir))
    assert main(["users", "reset-mfa", USER_ID, "--config", config]) == 0
    assert capsys.readouterr() == (f"user {USER_ID} has no TOTP method: nothing changed\n", "")
    assert users(db(workdir)) == before
    [record] = records(audit)
    assert (record["result"], record["detail"]) == ("success", "0 removed")


@pytest.mark.parametrize(
    ("key", "shown"),
    [
        ("00000000-0000-4000-8000-000000000009", "00000000-0000-4000-8000-000000000009"),
        ("guest@partner.example", "guest@partner.example"),  # an id is needed, not an address
        ("x" * 65, "x" * 65),
        ("bad\x1bid", "(the value given)"),
    ],
    ids=["unknown", "address", "long", "control"],
)
def test_reset_mfa_of_an_unknown_user_exits_1_and_changes_nothing(
    workdir: Path, capsys: pytest.CaptureFixture[str], audit: pytest.LogCaptureFixture, key: str, shown: str
) -> None:
    config = write(workdir)
    add_user(**{METHODS_KEY: METHODS})
    before = users(db(workdir))
    assert main(["users", "reset-mfa", key, "--config", config]) == 1
    assert capsys.readouterr() == ("", f"gateway: no user has the id {shown}\n")
    assert users(db(workdir)) == before
    [record] = records(audit)
    assert (record["action"], record["result"], record["target"], record["reasons"]) == (
        "resetSoftwareOathMethods", "failure", key[:64], ["user_not_found"],
    )  # fmt: skip


def test_reset_mfa_needs_a_user_id(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write(workdir)
    assert main(["users", "reset-mfa", "--config", config]) == 2
    assert "the following arguments are required: USER_ID" in capsys.readouterr().err
