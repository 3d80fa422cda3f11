"""Graph-shaped errors for the admin API, and the wrapper every ``/v1.0`` endpoint runs in.

Body: ``{"error": {"code", "message", "innerError": {"code", "request-id", "date"[,
"client-request-id"]}[, "details": [{"code", "message", "target"}]]}}``. ``code`` is one of a few
stable, Graph-style values chosen by HTTP status (``CODES``); ``innerError.code`` is the stable
reason (the same snake_case codes as the audit record, e.g. ``domain_blocked``); ``details`` names
each invalid field. Every response carries ``request-id`` (and echoes a well-formed
``client-request-id``) and is never cached.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.http import json_response

CODES = {
    400: "invalidRequest",
    401: "unauthenticated",
    403: "accessDenied",
    404: "itemNotFound",
    405: "methodNotAllowed",
    409: "conflict",
    413: "payloadTooLarge",
    415: "unsupportedMediaType",
}
_CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

Endpoint = Callable[[Request], Awaitable[Response]]


class ApiError(Exception):
    """A refusal the caller can act on: ``status`` is 4xx; ``reason`` a stable snake_case code."""

    def __init__(
        self,
        status: int,
        reason: str,
        message: str,
        *,
        details: list[dict[str, str]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message
        self.details = details or []
        self.headers = dict(headers or {})

    @property
    def code(self) -> str:
        return CODES[self.status]


def _now(request: Request) -> float:
    runtime = getattr(request.app.state, "runtime", None)
    return float(runtime.clock()) if runtime is not None else datetime.now(UTC).timestamp()


def error_body(request: Request, exc: ApiError) -> dict[str, Any]:
    inner: dict[str, str] = {
        "code": exc.reason,
        "request-id": request.state.request_id,
        "date": datetime.fromtimestamp(_now(request), UTC).strftime("%Y-%m-%dT%H:%M:%S"),
    }
    client_request_id = getattr(request.state, "client_request_id", None)
    if client_request_id:
        inner["client-request-id"] = client_request_id
    error: dict[str, Any] = {"code": exc.code, "message": exc.message, "innerError": inner}
    if exc.details:
        error["details"] = exc.details
    return {"error": error}


def api_endpoint(handler: Endpoint) -> Endpoint:
    """Request ids, and ``ApiError`` turned into its Graph-shaped response."""

    async def endpoint(request: Request) -> Response:
        request.state.request_id = str(uuid.uuid4())
        offered = request.headers.get("client-request-id", "")
        request.state.client_request_id = offered if _CLIENT_REQUEST_ID.match(offered) else None
        try:
            response = await handler(request)
        except ApiError as exc:
            response = json_response(error_body(request, exc), exc.status, exc.headers)
        response.headers["request-id"] = request.state.request_id
        if request.state.client_request_id:
            response.headers["client-request-id"] = request.state.client_request_id
        return response

    endpoint.__name__ = handler.__name__
    endpoint.__doc__ = handler.__doc__
    return endpoint
