"""``RequestMiddleware``: the one middleware (pure ASGI: no ``BaseHTTPMiddleware``, which costs a
task and queues per request) that every HTTP request passes: it gives the request its id, pins it to
a configuration generation, counts it, and does the work of Starlette's two standard middlewares.

The id is a trusted, well-formed incoming ``X-Request-Id`` or a fresh one (``context``); it is
in a context variable while the request is handled (logs and the audit record read it there)
and echoed in the ``X-Request-Id`` response header. The request reads one configuration generation
from start to end, whatever a reload installs meanwhile (``Runtime.pin``; ``gateway.reload``).
When the response starts, the request is counted by route template and status
(``gateway_http_requests_total``) and, when it ends, its latency observed
(``gateway_http_request_seconds``).

Starlette wraps an app's middleware in ``ServerErrorMiddleware`` (outermost: an unhandled exception
becomes a plain ``500 Internal Server Error`` if no response started, and is raised again for the
server to log) and ``ExceptionMiddleware`` (innermost: the app's exception handlers, and
``HTTPException`` as a plain-text answer). Each ASGI layer costs every request a coroutine and a
``send`` wrapper per message, so ``gateway.app.Gateway`` builds this middleware alone and it does
both jobs itself, in the same places: a handled exception's response gets the ``X-Request-Id``
header and is counted with its status; the 500 is sent after the request's context is left, without
the header, and counted as 500. Other scopes (lifespan) go through Starlette's own two middlewares.
Pinning is done here rather than in a middleware of its own for the same reason (and this layer
needs the pinned settings anyway: whether an incoming request id is trusted).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from starlette._utils import is_async_callable
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException, WebSocketException
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import Request
from starlette.types import ASGIApp, ExceptionHandler, Message, Receive, Scope, Send

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
    def __init__(
        self, app: ASGIApp, hub: Hub, *, exception_handlers: Mapping[Any, ExceptionHandler] | None = None
    ) -> None:
        """``exception_handlers``: the app's, keyed by exception class or status code as Starlette
        takes them (``500`` or ``Exception``: the handler of unhandled exceptions)."""
        self.app = app
        self.hub = hub
        self.error_handler: ExceptionHandler | None = None
        others: dict[Any, ExceptionHandler] = {}
        for key, handler in (exception_handlers or {}).items():  # split as ``Starlette`` does
            if key in (500, Exception):
                self.error_handler = handler
            else:
                others[key] = handler
        errors = ExceptionMiddleware(app, handlers=others)
        self.server_errors = ServerErrorMiddleware(errors, handler=self.error_handler)
        """Starlette's own stack, for the scopes other than HTTP."""
        self.exception_handlers: dict[Any, ExceptionHandler] = {
            HTTPException: errors.http_exception,
            WebSocketException: errors.websocket_exception,
            **{k: v for k, v in others.items() if not isinstance(k, int)},
        }
        self.status_handlers = {k: v for k, v in others.items() if isinstance(k, int)}
        self.handlers = (self.exception_handlers, self.status_handlers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.server_errors(scope, receive, send)
            return
        status: int | None = None  # the response's, once it started
        try:  # ``ServerErrorMiddleware``'s net covers everything below
            started = time.perf_counter()
            hub = self.hub
            runtime = hub.runtime
            config = None if runtime is None else runtime.config
            trusted = config is None or config.settings.observability.trust_request_id
            request_id = choose_request_id(offered_request_id(scope) if trusted else None, trusted)
            header = (HEADER, request_id.encode("ascii"))

            async def send_with_id(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = int(message["status"])
                    headers: Any = message.get("headers", [])
                    message = {**message, "headers": [*headers, header]}
                await send(message)

            scope["starlette.exception_handlers"] = self.handlers  # for the routes' own handling
            token = CURRENT.set(RequestContext(request_id, scope, hub))
            pin = None if runtime is None or config is None else runtime.pin(config)
            try:
                await self.app(scope, receive, send_with_id)
            except Exception as exc:  # ``ExceptionMiddleware``'s part: raises what no handler takes
                await self._handle(exc, scope, receive, send_with_id, started=status is not None)
            finally:
                if pin is not None:
                    Runtime.unpin(pin)
                CURRENT.reset(token)
                seconds = time.perf_counter() - started
                hub.metrics.observe_request(hub.routes.template(scope), status or 500, seconds)
        except Exception as exc:  # ``ServerErrorMiddleware``'s part
            response = await self._server_error(Request(scope), exc)
            if status is None:
                await response(scope, receive, send)
            raise

    async def _handle(
        self, exc: Exception, scope: Scope, receive: Receive, send: Send, *, started: bool
    ) -> None:
        """Answer ``exc`` with the app's handler for it (as ``starlette``'s ``ExceptionMiddleware``);
        raise it again when there is none."""
        handler: Any = None  # Starlette's handler type is HTTP's or WebSocket's; this is HTTP
        if isinstance(exc, HTTPException):
            handler = self.status_handlers.get(exc.status_code)
        if handler is None:
            for cls in type(exc).__mro__:
                if cls in self.exception_handlers:
                    handler = self.exception_handlers[cls]
                    break
        if handler is None:
            raise exc
        if started:
            raise RuntimeError("Caught handled exception, but response already started.") from exc
        request = Request(scope, receive, send)
        if is_async_callable(handler):
            response = await handler(request, exc)
        else:
            response = await run_in_threadpool(handler, request, exc)
        if response is not None:
            await response(scope, receive, send)
        exc.__traceback__ = None  # reused exception instances accumulate tracebacks across requests

    async def _server_error(self, request: Request, exc: Exception) -> Any:
        handler: Any = self.error_handler
        if handler is None:
            return self.server_errors.error_response(request, exc)
        if is_async_callable(handler):
            return await handler(request, exc)
        return await run_in_threadpool(handler, request, exc)
