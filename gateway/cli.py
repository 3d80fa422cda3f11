"""The ``gateway`` command line: check-config, config-schema, serve, keys rotate, and the
directory commands (invite, users list|show|delete|restore) that ``gateway.cli_directory`` implements.

Every command that reads the configuration takes ``--config FILE`` (default ``$GATEWAY_CONFIG``,
then ``config/gateway.yaml``). Exit codes: 0 ok, 1 invalid input or configuration, 2 usage.
Configuration problems go to stderr, one a line: ``FILE:LINE:COL: key.path: message``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gateway.cli_directory import add_commands as add_directory_commands
from gateway.cli_store import add_commands as add_store_commands
from gateway.cli_whatif import add_commands as add_whatif_commands
from gateway.observability.context import request_id
from gateway.observability.logs import JSON_LINE, AccessJsonFormatter, MessageFormatter
from gateway.settings import ConfigError, Settings, load_settings, settings_json_schema

DEFAULT_CONFIG = "config/gateway.yaml"


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, the ``request_id`` of the request being
    handled (when there is one; a record that carries one, as the mail relay's do, has its own) and
    the traceback, if any."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        found = record.__dict__.get("request_id") or request_id()
        if found is not None:
            entry["request_id"] = found
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return JSON_LINE.encode(entry)


LOG_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {"()": JsonFormatter},
        "raw": {"()": MessageFormatter},
        "access": {"()": AccessJsonFormatter},
    },
    "handlers": {
        "json": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"},
        # audit records are JSON lines already (gateway.audit): written as they are
        "raw": {"class": "logging.StreamHandler", "formatter": "raw", "stream": "ext://sys.stderr"},
        "access": {"class": "logging.StreamHandler", "formatter": "access", "stream": "ext://sys.stderr"},
    },
    "loggers": {
        "gateway.audit": {"handlers": ["raw"], "level": "INFO", "propagate": False},
        "uvicorn.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
    },
    "root": {"handlers": ["json"], "level": "INFO"},
}


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit code (argparse's usage errors included, as 2)."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
        command: Callable[[argparse.Namespace, argparse.ArgumentParser], int] = args.command
        return command(args, parser)
    except SystemExit as exc:  # argparse (usage: 2, --help: 0) and uvicorn's startup failures
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description="Identity federation gateway.")
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")
    config = argparse.ArgumentParser(add_help=False)
    config.add_argument(
        "--config", metavar="FILE", help=f"configuration file (default: $GATEWAY_CONFIG or {DEFAULT_CONFIG})"
    )

    check = commands.add_parser("check-config", parents=[config], help="validate a configuration file")
    check.add_argument("file", nargs="?", metavar="FILE", help="the file to check (same as --config)")
    check.set_defaults(command=_check_config)

    schema = commands.add_parser("config-schema", help="print the JSON Schema of the configuration")
    schema.set_defaults(command=_config_schema)

    serve = commands.add_parser("serve", parents=[config], help="run the gateway (HTTP)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    serve.add_argument("--port", type=_port, default=8000, help="TCP port to bind (default: 8000)")
    serve.add_argument("--workers", type=_positive, default=1, help="worker processes (default: 1)")
    serve.set_defaults(command=_serve)

    keys = commands.add_parser("keys", help="manage signing keys").add_subparsers(
        title="keys commands", required=True, metavar="COMMAND"
    )
    rotate = keys.add_parser("rotate", parents=[config], help="publish a new signing key")
    rotate.add_argument(
        "--algorithm", choices=["ES256", "RS256"], help="algorithm of the new key (default: keys.algorithm)"
    )
    rotate.set_defaults(command=_keys_rotate)

    add_directory_commands(commands, config, lambda args: _load(_config_path(args)))
    add_whatif_commands(commands, config, lambda args: _load(_config_path(args)))
    add_store_commands(commands, config, lambda args: _load(_config_path(args)))
    return parser


def _positive(text: str) -> int:
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _port(text: str) -> int:
    value = _integer(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a TCP port from 1 to 65535, not {value}")
    return value


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}") from None


def _config_path(args: argparse.Namespace) -> str:
    return str(args.config or os.environ.get("GATEWAY_CONFIG") or DEFAULT_CONFIG)


def _load(path: str) -> Settings | None:
    try:
        return load_settings(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return None


def _check_config(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.file and args.config and args.file != args.config:
        parser.error("give the file once: as FILE or with --config")
    path = args.file or _config_path(args)
    if _load(path) is None:
        return 1
    print(f"{path}: ok")
    return 0


def _config_schema(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    print(json.dumps(settings_json_schema(), indent=2))
    return 0


def _serve(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    path = _config_path(args)
    settings = _load(path)
    if settings is None:
        return 1
    problem = _bind_problem(args.host, args.port)
    if problem is not None:
        print(f"gateway: cannot listen on {args.host}:{args.port}: {problem}", file=sys.stderr)
        return 1
    from gateway.bootstrap import prepare  # the server's dependencies load only to serve

    prepare(settings)  # schema, dev secret, first signing keys: once, before workers fork
    # absolute, symbolic links kept: a Kubernetes ConfigMap update swaps the link's target directory
    os.environ["GATEWAY_CONFIG"] = str(Path(path).absolute())
    import uvicorn

    from gateway.http_protocol import HeldWriteHttpToolsProtocol
    from gateway.observability.multiprocess import prepare as prepare_metrics

    prepare_metrics(args.workers)  # before the workers start: they all write to one directory
    options: dict[str, Any] = {
        "factory": True,
        "host": args.host,
        "port": args.port,
        "workers": args.workers,
        "loop": "uvloop",
        "http": HeldWriteHttpToolsProtocol,  # httptools's, a response's head and body in one write
        "access_log": settings.observability.access_log,
        "log_config": LOG_CONFIG,
        "timeout_graceful_shutdown": 10,
        # The client address is the socket peer unless http.trusted_proxies says otherwise
        # (gateway.http.client_ip); uvicorn would believe X-Forwarded-For from loopback.
        "proxy_headers": False,
    }
    from gateway.supervisor import sighup_reloads_workers

    with sighup_reloads_workers():  # SIGHUP: each worker reloads its configuration (gateway.reload)
        uvicorn.run("gateway.app:create_app_from_env", **options)
    return 0


def _bind_problem(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be bound right now (in use, not local, unresolvable), or None."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            sock.bind((host, port))
    except OSError as exc:
        return (exc.strerror or str(exc)).lower()
    return None


def _keys_rotate(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    settings = _load(_config_path(args))
    if settings is None:
        return 1
    from gateway.bootstrap import rotate_keys

    algorithm: str = args.algorithm or settings.keys.algorithm
    started = datetime.now(UTC)
    kid = rotate_keys(settings, algorithm)
    signs_from = started + timedelta(seconds=settings.keys.rotation_overlap_seconds)
    print(f"published key {kid} ({algorithm}); it signs from {signs_from.isoformat(timespec='seconds')}")
    return 0
