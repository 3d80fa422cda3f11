"""JSON lines for uvicorn's access log (``uvicorn.access``), with the request id; ``log``, the
cheaper ``Logger.log`` of the records the gateway writes on every sign-in.

uvicorn logs each response as ``'%s - "%s %s HTTP/%s" %d'`` with the arguments (client,
method, path with query, HTTP version, status) while the request is still handled, so the
request id is in the context (``context``). The query string is left out: it may carry codes,
tokens or e-mail addresses.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from gateway.observability.context import request_id

# ``json.dumps`` with an option builds an encoder per call; these write the same text.
JSON_LINE = json.JSONEncoder(ensure_ascii=False)


def log(
    logger: logging.Logger, level: int, msg: str, *args: object, extra: Mapping[str, object] | None = None
) -> None:
    """``logger.log(level, msg, *args, extra=extra)`` without looking up the caller's file, line and
    function in the stack (``findCaller``, a quarter of the cost of a record): the record has
    ``pathname`` ``(unknown file)``, ``lineno`` 0 and ``funcName`` None, as with ``logging._srcfile``
    set to None; no formatter of the gateway writes them. Levels, filters, handlers and
    ``extra`` work as they do for ``Logger.log``."""
    if logger.isEnabledFor(level):
        record = logger.makeRecord(logger.name, level, "(unknown file)", 0, msg, args, None, None, extra)
        logger.handle(record)


class MessageFormatter(logging.Formatter):
    """``logging.Formatter("%(message)s")`` for records that are JSON lines already (the audit
    records): the message as it is, without a format string to apply; the traceback appended as
    ``Formatter`` does, should a record carry one."""

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        if record.exc_info or record.exc_text or record.stack_info:
            return super().format(record)
        return record.message


class AccessJsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        args = record.args
        if isinstance(args, tuple) and len(args) == 5:
            client, method, path, version, status = args
            entry.update(
                client=str(client),
                method=str(method),
                path=str(path).partition("?")[0],
                http_version=str(version),
                status=int(str(status)),
            )
        else:
            entry["message"] = record.getMessage()
        found = request_id()
        if found is not None:
            entry["request_id"] = found
        return JSON_LINE.encode(entry)
