"""JSON lines for uvicorn's access log (``uvicorn.access``), with the request id.

uvicorn logs each response as ``'%s - "%s %s HTTP/%s" %d'`` with the arguments (client,
method, path with query, HTTP version, status) while the request is still handled, so the
request id is in the context (``context``). The query string is left out: it may carry codes,
tokens or e-mail addresses.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from gateway.observability.context import request_id


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
        return json.dumps(entry, ensure_ascii=False)
