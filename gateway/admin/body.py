"""Reading an admin API request body: a JSON object of at most 64 KiB, or a clear 4xx.

``Content-Type`` must be ``application/json`` (a ``charset`` parameter, if any, must be utf-8): 415
otherwise. Larger bodies are refused (413) without being read past the limit. The body must be
UTF-8 JSON whose top level is an object, without duplicate keys or ``NaN``/``Infinity``: 400
(``malformed_json``) otherwise; nesting too deep for the parser is malformed too.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from gateway.admin.errors import ApiError

MAX_BODY_BYTES = 64 * 1024


class _Malformed(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _Malformed(f"the key {key!r} appears twice")
        result[key] = value
    return result


def _refuse_constant(name: str) -> Any:
    raise _Malformed(f"{name} is not JSON")


def _malformed(message: str) -> ApiError:
    return ApiError(400, "malformed_json", f"The request body is not a valid JSON object: {message}.")


async def read_json_object(request: Request) -> dict[str, Any]:
    media_type, _, params = request.headers.get("content-type", "").partition(";")
    charset = params.strip().lower()
    if media_type.strip().lower() != "application/json" or charset not in ("", "charset=utf-8"):
        raise ApiError(415, "unsupported_media_type", "Send the body as application/json (UTF-8).")
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
        raise ApiError(413, "body_too_large", f"The request body is larger than {MAX_BODY_BYTES} bytes.")
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY_BYTES:
            raise ApiError(413, "body_too_large", f"The request body is larger than {MAX_BODY_BYTES} bytes.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _malformed("it is not UTF-8") from exc
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_refuse_constant)
    except _Malformed as exc:
        raise _malformed(str(exc)) from exc
    except RecursionError as exc:
        raise _malformed("it is nested too deeply") from exc
    except ValueError as exc:
        raise _malformed("it does not parse") from exc
    if not isinstance(value, dict):
        raise _malformed("the top level must be an object")
    return value
