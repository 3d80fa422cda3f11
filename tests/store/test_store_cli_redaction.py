"""``gateway store migrate|backup|restore`` never print a store URL's password: not in what they
report on success, not in their errors (a malformed URL, a non-empty target); and
``redis_urls.redact`` hides it in every URL form, malformed ones included."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.store.factory import open_store
from gateway.store.redis_urls import redact

SECRET = "s3cretPW"


async def cli(*argv: str) -> int:
    """``gateway ARGV`` (the CLI runs its own event loop: in a thread)."""
    return await asyncio.to_thread(main, list(argv))


def with_password(url: str) -> str:
    """``redis://127.0.0.1:PORT/0`` as ``redis://default:SECRET@127.0.0.1:PORT/0`` (a Redis without
    ``requirepass`` accepts any password for its ``nopass`` default user)."""
    return url.replace("redis://", f"redis://default:{SECRET}@", 1)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:s3cretPW@h:6379/0", "redis://***@h:6379/0"),
        ("rediss://user:s3cretPW@h/1", "rediss://***@h/1"),
        ("redis://:s3/cretPW@h/0", "redis://***@h/0"),
        ("redis:/:s3cretPW@h/0", "***@h/0"),
        ("redis://h:6379/0?password=s3cretPW", "redis://h:6379/0?password=***"),
        (
            "redis+sentinel://h1,h2/m?sentinel_password=s3cretPW",
            "redis+sentinel://h1,h2/m?sentinel_password=***",
        ),
        ("sqlite:///var/gateway.db", "sqlite:///var/gateway.db"),
    ],
)
def test_redact_hides_the_password_in_every_form(url: str, shown: str) -> None:
    assert redact(url) == shown
    assert "s3cret" not in redact(url) and "cretPW" not in redact(url)


async def test_a_malformed_store_url_is_refused_without_printing_its_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dump = tmp_path / "gateway.dump"
    assert await cli("store", "backup", str(dump), "--store", f"redis:/:{SECRET}@127.0.0.1/0") == 1
    captured = capsys.readouterr()
    assert "a Redis URL names a host" in captured.err
    assert SECRET not in captured.err + captured.out
    assert not dump.exists()


@pytest.mark.redis
async def test_migrate_backup_and_restore_report_the_store_without_its_password(
    tmp_path: Path, fresh_redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    source = f"sqlite:///{tmp_path}/a.db"
    store = open_store(source)
    try:
        await store.migrate()
        await store.create_user({"id": "u1", "mail": "a@x.example"}, [("iss", "s1")])
    finally:
        await store.close()
    target = with_password(fresh_redis_url)

    assert await cli("store", "migrate", "--from", source, "--to", target) == 0
    migrated = capsys.readouterr()
    assert "migrated" in migrated.out and "***@127.0.0.1" in migrated.out
    assert SECRET not in migrated.out + migrated.err

    assert await cli("store", "migrate", "--from", source, "--to", target) == 1
    refused = capsys.readouterr()
    assert "is not empty" in refused.err
    assert SECRET not in refused.out + refused.err

    dump = tmp_path / "gateway.dump"
    assert await cli("store", "backup", str(dump), "--store", target) == 0
    backed_up = capsys.readouterr()
    assert "backed up" in backed_up.out and SECRET not in backed_up.out + backed_up.err

    assert await cli("store", "restore", str(dump), "--store", target, "--force") == 0
    restored = capsys.readouterr()
    assert "restored" in restored.out and SECRET not in restored.out + restored.err
