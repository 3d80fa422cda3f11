"""``RequestMiddleware``: a pure-ASGI middleware (no ``BaseHTTPMiddleware``: it costs a task and
queues per request) that gives each HTTP request its id and counts it.

The id is a trusted, well-formed incoming ``X-Request-Id`` or a fresh one (``context``); it is
in a context variable while the request is handled (logs and the audit record read it there)
and echoed in the ``X-Request-Id`` response header. When the response starts, the request is
counted by route template and status (``gateway_http_requests_total``) and, when it ends, its
latency observed (``gateway_http_request_seconds``).
"""

from __future__ import annotations

import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.observability.context import CURRENT, RequestContext, choose_request_id
from gateway.observability.hub import Hub

HEADER = b"x-request-id"


class RequestMiddleware:
    def __init__(self, app: ASGIApp, hub: Hub) -> None:
        self.app = app
        self.hub = hub

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        offered = None
        for name, value in scope["headers"]:
            if name == HEADER:
                offered = value
                break
        hub = self.hub
        request_id = choose_request_id(offered, hub.trust_request_id)
        token = CURRENT.set(RequestContext(request_id, scope, hub))
        status = 500
        header = (HEADER, request_id.encode("ascii"))

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers: Any = message.get("headers", [])
                message = {**message, "headers": [*headers, header]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            CURRENT.reset(token)
            hub.metrics.observe_request(hub.routes.template(scope), status, time.perf_counter() - started)
