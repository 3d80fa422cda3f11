"""``gateway store migrate|backup|restore``: copying a whole store between backends and files.

``migrate --to URL [--from URL] [--force]`` copies the store of ``--from`` (default: the
configuration's ``store:``) into ``--to``; ``backup FILE`` writes the configured store (or
``--store URL``) to a JSON-lines dump; ``restore FILE [--force]`` writes a dump into it. What is
copied, the dump format and the idempotence rules are in ``gateway.store.transfer``. A target that
already holds anything is refused unless ``--force``; the dump file is checked whole before
anything is written; both print what they wrote. Exit codes: 0 ok, 1 invalid input (bad URL or
file, non-empty target, unreachable store, conflicting target), 2 usage. Store URLs are printed
with their passwords replaced by ``***`` (``redis_urls.redact``), in messages and errors alike.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import sqlite3
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from redis.exceptions import RedisError

from gateway.settings import Settings
from gateway.store.base import Store
from gateway.store.factory import open_store, sqlite_path
from gateway.store.redis_urls import redact
from gateway.store.transfer import Dump, DumpError, dump_lines, parse_lines, read_store, write_store

SettingsLoader = Callable[[argparse.Namespace], Settings | None]
StoreFailure = (DumpError, ValueError, TypeError, KeyError, RuntimeError, OSError, RedisError, sqlite3.Error)


class CommandError(Exception):
    """A failure to report on stderr with exit code 1."""


def add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    config: argparse.ArgumentParser,
    load: SettingsLoader,
) -> None:
    """Register ``store migrate|backup|restore``; ``load`` reads the configuration of ``--config``."""
    store = commands.add_parser("store", help="copy, back up and restore the store").add_subparsers(
        title="store commands", required=True, metavar="COMMAND"
    )
    migrate = store.add_parser(
        "migrate",
        parents=[config],
        help="copy the whole store into another one (e.g. SQLite to Redis)",
        description="Copy the directory, signing keys, install metadata and live artefacts to another store.",
    )
    migrate.add_argument(
        "--from", dest="source", metavar="URL", help="store to copy (default: the config's store)"
    )
    migrate.add_argument("--to", dest="target", required=True, metavar="URL", help="store to copy into")
    migrate.add_argument("--force", action="store_true", help="write into a target that is not empty")
    migrate.set_defaults(command=functools.partial(_migrate, load))

    backup = store.add_parser("backup", parents=[config], help="write the store to a JSON-lines dump file")
    backup.add_argument("file", metavar="FILE", help="the dump file to write (mode 0600)")
    backup.add_argument("--store", metavar="URL", help="store to back up (default: the config's store)")
    backup.add_argument("--force", action="store_true", help="replace FILE if it exists")
    backup.set_defaults(command=functools.partial(_backup, load))

    restore = store.add_parser("restore", parents=[config], help="write a dump file into the store")
    restore.add_argument("file", metavar="FILE", help="a dump written by `gateway store backup`")
    restore.add_argument("--store", metavar="URL", help="store to restore into (default: the config's store)")
    restore.add_argument("--force", action="store_true", help="write into a store that is not empty")
    restore.set_defaults(command=functools.partial(_restore, load))


def _store_url(given: str | None, args: argparse.Namespace, load: SettingsLoader) -> str:
    if given:
        return given
    settings = load(args)
    if settings is None:
        raise CommandError("")  # the configuration's problems are printed already
    return settings.store


def _redacted_errors(url: str, work: Callable[[], Store | None]) -> Store | None:
    """``work()``, its ValueError (which quotes ``url``) re-raised with ``url``'s password hidden."""
    try:
        return work()
    except ValueError as exc:
        raise ValueError(str(exc).replace(url, redact(url))) from None


def _open(url: str, *, must_exist: bool) -> Store:
    """The store of ``url``; a SQLite file that must exist is not created."""
    if url.lower().startswith("sqlite:") and must_exist and not sqlite_path(url).is_file():
        raise CommandError(f"store {redact(url)}: no such SQLite file {sqlite_path(url)}")
    store = _redacted_errors(url, lambda: open_store(url))
    assert store is not None
    return store


def _summary(counts: dict[str, int]) -> str:
    return ", ".join(f"{count} {name}" for name, count in counts.items())


async def _into(url: str, dump: Dump, force: bool) -> dict[str, int]:
    target = _open(url, must_exist=False)
    try:
        if not force and not (await read_store(target)).empty():
            raise CommandError(f"store {redact(url)} is not empty; pass --force to write into it anyway")
        return await write_store(target, dump)
    finally:
        await target.close()


async def _read(url: str) -> Dump:
    source = _open(url, must_exist=True)
    try:
        return await read_store(source)
    finally:
        await source.close()


def _run(work: Callable[[], object]) -> int:
    try:
        work()
    except CommandError as exc:
        if str(exc):
            print(f"gateway: {exc}", file=sys.stderr)
        return 1
    except StoreFailure as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 1
    return 0


def _migrate(load: SettingsLoader, args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    def work() -> None:
        source = _store_url(args.source, args, load)
        if source == args.target:
            raise CommandError("--from and --to name the same store")
        for url in (source, args.target):
            open_store_check(url)

        async def copy() -> dict[str, int]:
            return await _into(args.target, await _read(source), args.force)

        print(f"migrated {redact(source)} -> {redact(args.target)}: {_summary(asyncio.run(copy()))}")

    return _run(work)


def open_store_check(url: str) -> None:
    """ValueError for a store URL ``open_store`` would refuse (nothing is opened or created); the
    message never shows the URL's password."""
    from gateway.store.redis_urls import CLUSTER_SCHEMES, SENTINEL_SCHEMES, parse_target

    def check() -> None:
        scheme = url.split("://", 1)[0].lower() if "://" in url else ""
        if scheme == "sqlite":
            sqlite_path(url)
        elif scheme in SENTINEL_SCHEMES or scheme in CLUSTER_SCHEMES:
            parse_target(url)
        elif scheme not in ("redis", "rediss"):
            open_store(url)  # raises with the supported forms

    _redacted_errors(url, check)


def _backup(load: SettingsLoader, args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    def work() -> None:
        url = _store_url(args.store, args, load)
        open_store_check(url)
        path = Path(args.file)
        if path.exists() and not args.force:
            raise CommandError(f"{path} exists; pass --force to replace it")
        dump = asyncio.run(_read(url))
        _write_private(path, dump)
        print(f"backed up {redact(url)} to {path}: {_summary(dump.counts())}")

    return _run(work)


def _write_private(path: Path, dump: Dump) -> None:
    """Write the dump next to ``path`` with mode 0600, then rename it into place (never half a file)."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or Path("."))
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            for line in dump_lines(dump):
                out.write(line + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _restore(load: SettingsLoader, args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    def work() -> None:
        path = Path(args.file)
        try:
            with path.open(encoding="utf-8") as handle:
                dump = parse_lines(handle, str(path))
        except UnicodeDecodeError:
            raise CommandError(f"{path}: not UTF-8 text, not a gateway store dump") from None
        url = _store_url(args.store, args, load)
        open_store_check(url)
        written = asyncio.run(_into(url, dump, args.force))
        print(f"restored {path} into {redact(url)}: {_summary(written)}")

    return _run(work)
