"""``RequestMiddleware``: the one pure-ASGI middleware (no ``BaseHTTPMiddleware``: it costs a task
and queues per request) that every HTTP request passes: it gives the request its id, pins it to a
configuration generation, and counts it.

The id is a trusted, well-formed incoming ``X-Request-Id`` or a fresh one (``context``); it is
in a context variable while the request is handled (logs and the audit record read it there)
and echoed in the ``X-Request-Id`` response header. The request reads one configuration generation
from start to end, whatever a reload installs meanwhile (``Runtime.pin``; ``gateway.reload``).
When the response starts, the request is counted by route template and status
(``gateway_http_requests_total``) and, when it ends, its latency observed
(``gateway_http_request_seconds``).

Pinning is done here rather than in a middleware of its own: each ASGI layer costs every request
a coroutine and a ``send`` wrapper, and this one layer needs the pinned settings anyway (whether
an incoming request id is trusted).
"""

from __future__ import annotations

import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.observability.context import CURRENT, RequestContext, choose_request_id
from gateway.observability.hub import Hub
from gateway.runtime import Runtime

HEADER = b"x-request-id"


def offered_request_id(scope: Scope) -> bytes | None:
    """The incoming ``X-Request-Id`` (its first line), if any."""
    for name, value in scope["headers"]:
        if name == HEADER:
            return value  # type: ignore[no-any-return]
    return None


class RequestMiddleware:
    def __init__(self, app: ASGIApp, hub: Hub) -> None:
        self.app = app
        self.hub = hub

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        hub = self.hub
        runtime = hub.runtime
        config = None if runtime is None else runtime.config
        trusted = config is None or config.settings.observability.trust_request_id
        request_id = choose_request_id(offered_request_id(scope) if trusted else None, trusted)
        status = 500
        header = (HEADER, request_id.encode("ascii"))

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers: Any = message.get("headers", [])
                message = {**message, "headers": [*headers, header]}
            await send(message)

        token = CURRENT.set(RequestContext(request_id, scope, hub))
        pin = None if runtime is None or config is None else runtime.pin(config)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if pin is not None:
                Runtime.unpin(pin)
            CURRENT.reset(token)
            hub.metrics.observe_request(hub.routes.template(scope), status, time.perf_counter() - started)
