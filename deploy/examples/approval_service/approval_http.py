"""HTTP helpers the endpoints share: RFC 9457 problem replies, bounded body reads, media type checks."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

NO_STORE = {"Cache-Control": "no-store"}


class BodyTooLarge(Exception):
    """The request body is longer than the endpoint accepts."""


def problem(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """An ``application/problem+json`` reply (RFC 9457)."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    return JSONResponse(body, status, {**NO_STORE, **(headers or {})}, media_type="application/problem+json")


def media_type(request: Request) -> str:
    """The request's media type, lower-cased, without parameters."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing (``BodyTooLarge``) once it passes ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def cross_site(request: Request) -> bool:
    """True when the browser says (Fetch Metadata) that another site sent this request."""
    return request.headers.get("sec-fetch-site", "").lower() == "cross-site"
