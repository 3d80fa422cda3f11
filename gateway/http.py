"""Small HTTP helpers shared by every endpoint: security headers, JSON bodies, forms and query
strings, client address, and the write-behind wrapper for endpoints that make several store writes."""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

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
MAX_FORM_FIELDS = 100
_JSON = json.JSONEncoder(separators=(",", ":"))  # ``json.dumps`` with options builds one per call


def origin(url: str) -> str:
    """``scheme://host[:port]`` of a URL: what a page's CSP ``form-action`` must allow when a form
    submission ends in a redirect there (Chromium applies ``form-action`` to that redirect)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


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
        _JSON.encode(body).encode(),
        status_code=status,
        media_type="application/json",
        headers=merged,
    )


Endpoint = Callable[[Request], Awaitable[Response]]


def write_behind(endpoint: Endpoint) -> Endpoint:
    """Run ``endpoint`` in a write-behind block of the runtime's store (``ArtefactStore.batch``):
    its blind artefact writes go to the store together, in as few round trips as the operations
    between them allow, and all of them before its response is sent."""

    @functools.wraps(endpoint)
    async def batched(request: Request) -> Response:
        async with request.app.state.runtime.store.batch():
            return await endpoint(request)

    return batched


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


class BadForm(Exception):
    """The request body is not a form we accept."""


def parse_urlencoded(text: str, *, max_fields: int | None = None) -> list[tuple[str, str]]:
    """``urllib.parse.parse_qsl(text, keep_blank_values=True, max_num_fields=max_fields)``, in a
    third of the time: the same pairs in the same order (``+`` is a space, percent-escapes are
    UTF-8 with bad sequences replaced, empty fields are skipped, a field without ``=`` has an
    empty value) and the same ``ValueError`` when there are more than ``max_fields`` fields."""
    if not text:
        return []
    if max_fields is not None and text.count("&") + 1 > max_fields:
        raise ValueError("Max number of fields exceeded")
    pairs: list[tuple[str, str]] = []
    for field in text.split("&"):
        if not field:
            continue
        name, _, value = field.partition("=")
        if "+" in name:
            name = name.replace("+", " ")
        if "%" in name:
            name = unquote(name, errors="replace")
        if "+" in value:
            value = value.replace("+", " ")
        if "%" in value:
            value = unquote(value, errors="replace")
        pairs.append((name, value))
    return pairs


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
            parse_urlencoded(body.decode("utf-8"), max_fields=MAX_FORM_FIELDS)
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
