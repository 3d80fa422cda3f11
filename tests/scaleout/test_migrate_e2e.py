"""``gateway store migrate`` end to end: an SQLite deployment moves to Redis and nobody notices.

A passcode guest signs in on SQLite with ``offline_access`` (so a refresh token exists); the
gateway stops; ``gateway store migrate --from sqlite:///... --to redis://...`` runs through the
CLI's ``main``; the gateway starts on Redis with the same secrets. The refresh token from before
the migration still refreshes, and the same address signs in again with the same ``sub`` and
``oid``. Then ``gateway store backup`` of that Redis database (taken before anything was used
there) and ``gateway store restore`` into another, empty Redis database pass the same checks.
"""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import httpx
import redis

from gateway import cli
from tests.support import flows
from tests.support.gateway_app import make_settings, running_app
from tests.support.redis_server import flush_db
from tests.support.smtp_server import SmtpServer

GUEST = "moving.guest@fabrikam.example"
OFFLINE = "openid profile email offline_access"
QUICK_RESEND = {"resend_interval_seconds": 0}  # the migrated send counters would hold the next mail back


def claims_of(id_token: str) -> dict[str, Any]:
    """The payload of an ID token the gateway just issued over its own token endpoint."""
    payload = id_token.split(".")[1]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return decoded


def with_db(url: str, db: int) -> str:
    return url.rsplit("/", 1)[0] + f"/{db}"


async def run_cli(*argv: str) -> int:
    """``gateway ARGV`` in-process (on a thread: the command runs its own event loop)."""
    return await asyncio.to_thread(cli.main, list(argv))


async def refresh(client: httpx.AsyncClient, refresh_token: str) -> httpx.Response:
    return await client.post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": "demo"},
    )


async def assert_same_guest(
    settings: Any, smtp: SmtpServer, refresh_token: str, before: dict[str, Any]
) -> None:
    """On the migrated store: the old refresh token refreshes; a new sign-in is the same user."""
    async with running_app(settings) as (_, client):
        refreshed = await refresh(client, refresh_token)
        assert refreshed.status_code == 200, refreshed.text
        assert claims_of(refreshed.json()["id_token"])["sub"] == before["sub"]
        smtp.clear()
        _, tokens = await flows.signed_in_tokens(client, smtp, GUEST, flows.AuthRequest(scope=OFFLINE))
        after = claims_of(tokens["id_token"])
        assert (after["sub"], after["oid"]) == (before["sub"], before["oid"])


async def test_sqlite_to_redis_then_backup_and_restore_keep_the_guest_and_the_refresh_token(
    tmp_path: Path, smtp_server: SmtpServer, fresh_redis_url: str
) -> None:
    sqlite_settings = make_settings(tmp_path, smtp_server, passcode=QUICK_RESEND)
    async with running_app(sqlite_settings) as (_, client):
        _, tokens = await flows.signed_in_tokens(client, smtp_server, GUEST, flows.AuthRequest(scope=OFFLINE))
    assert tokens.get("refresh_token"), tokens
    before = claims_of(tokens["id_token"])

    target = with_db(fresh_redis_url, 0)
    code = await run_cli("store", "migrate", "--from", sqlite_settings.store, "--to", target)
    assert code == 0
    dump = tmp_path / "gateway.dump"
    code = await run_cli("store", "backup", str(dump), "--store", target)
    assert code == 0 and dump.stat().st_mode & 0o777 == 0o600

    await assert_same_guest(
        make_settings(tmp_path, smtp_server, store=target, passcode=QUICK_RESEND),
        smtp_server,
        tokens["refresh_token"],
        before,
    )

    restored = with_db(fresh_redis_url, 1)
    flush_db(restored)
    code = await run_cli("store", "restore", str(dump), "--store", restored)
    assert code == 0
    await assert_same_guest(
        make_settings(tmp_path, smtp_server, store=restored, passcode=QUICK_RESEND),
        smtp_server,
        tokens["refresh_token"],
        before,
    )
    flush_db(restored)


async def test_migrating_into_a_store_that_is_not_empty_is_refused_and_writes_nothing(
    tmp_path: Path, smtp_server: SmtpServer, fresh_redis_url: str
) -> None:
    sqlite_settings = make_settings(tmp_path, smtp_server, passcode=QUICK_RESEND)
    async with running_app(sqlite_settings) as (_, client):
        await flows.signed_in_tokens(client, smtp_server, GUEST)
    code = await run_cli("store", "migrate", "--from", sqlite_settings.store, "--to", fresh_redis_url)
    assert code == 0
    raw = redis.Redis.from_url(fresh_redis_url)
    try:
        before = {key: raw.dump(key) for key in raw.scan_iter()}
        code = await run_cli("store", "migrate", "--from", sqlite_settings.store, "--to", fresh_redis_url)
        assert code == 1
        assert {key: raw.dump(key) for key in raw.scan_iter()} == before
    finally:
        raw.close()
