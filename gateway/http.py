"""Small HTTP helpers shared by every endpoint: security headers, JSON bodies, forms, client address."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import Response

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action {form_action}; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

MAX_FORM_BYTES = 64 * 1024


def page_headers(form_action: str = "") -> dict[str, str]:
    """Headers for every HTML page: never cached, never framed, no inline script."""
    headers = dict(PAGE_HEADERS)
    sources = f"'self' {form_action}" if form_action else "'self'"
    headers["Content-Security-Policy"] = headers["Content-Security-Policy"].format(form_action=sources)
    return headers


def json_response(
    body: Mapping[str, Any],
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    *,
    cache: bool = False,
) -> Response:
    merged = {} if cache else dict(NO_STORE)
    if headers:
        merged.update(headers)
    return Response(
        json.dumps(body, separators=(",", ":")).encode(),
        status_code=status,
        media_type="application/json",
        headers=merged,
    )


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


class BadForm(Exception):
    """The request body is not a form we accept."""


async def read_form(request: Request, *, max_bytes: int = MAX_FORM_BYTES) -> FormData:
    """A urlencoded form of at most ``max_bytes`` and 100 fields, however the body is framed."""
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise BadForm("the body must be application/x-www-form-urlencoded")
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > max_bytes):
        raise BadForm("the body is too large")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise BadForm("the body is too large")
    try:
        pairs: list[tuple[str, str | UploadFile]] = list(
            parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=100)
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadForm("the body is not a valid form") from exc
    return FormData(pairs)


def single_values(items: Iterable[tuple[str, Any]]) -> tuple[dict[str, str], str | None]:
    """Every parameter's first value, and the first name that is repeated, if any.

    RFC 6749 3.1 / 3.2: request parameters MUST NOT be included more than once. All parameters
    are kept even past a repeated one, so an error can still carry the request's ``state``.
    """
    values: dict[str, str] = {}
    repeated: str | None = None
    for key, value in items:
        if key not in values:
            values[key] = str(value)
        elif repeated is None:
            repeated = key
    return values, repeated


async def request_parameters(
    request: Request, *, max_bytes: int = MAX_FORM_BYTES
) -> tuple[dict[str, str], str | None]:
    """The query (GET) or urlencoded form (POST) parameters, as ``single_values`` returns them.

    Endpoints that take both (authorization, logout, upstream callbacks) read them here; a bad
    form body raises ``BadForm``.
    """
    if request.method == "POST":
        return single_values((await read_form(request, max_bytes=max_bytes)).multi_items())
    return single_values(request.query_params.multi_items())
