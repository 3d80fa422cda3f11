"""The answers Starlette's ``ServerErrorMiddleware`` and ``ExceptionMiddleware`` gave, now given by
``RequestMiddleware`` alone (``gateway.app.Gateway``): byte for byte, with the same request-id
header and metrics, and the exception still raised for the server to log.

- an unhandled exception: ``500 Internal Server Error`` (plain text, no ``X-Request-Id``: it is sent
  outside the request's context), counted as 500, raised again; nothing sent when the response had
  started already;
- an exception with a handler (the store being out of reach), from an endpoint or from the route
  wrapper: the handler's answer, with ``X-Request-Id``;
- Starlette's own ``HTTPException`` s (no route: 404; a route without the method: 405 with
  ``Allow``; an endpoint's own): plain text, with ``X-Request-Id``.

``IndexedRouter`` calls bare async endpoint functions itself; endpoints Starlette runs in a thread and
routes with route middleware still go through Starlette's wrapper.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route

from gateway.app import create_app
from gateway.observability.routes import UNMATCHED
from gateway.routing import direct_endpoint
from tests.observability.test_metrics_health_request_id import sample
from tests.support.gateway_app import make_settings

CLIENT_NET = {"observability": {"metrics": {"allow": ["203.0.113.0/24"]}}}
FRESH_ID = re.compile(r"[0-9a-f]{32}")  # incoming request ids are not trusted by default
TEST_ROUTES = UNMATCHED  # routes added after the app was built have no template in its metrics


class Boom(Exception):
    pass


async def boom(request: Request) -> Response:
    raise Boom("unhandled")


async def locked(request: Request) -> Response:
    raise sqlite3.OperationalError("database is locked")


async def other_operational_error(request: Request) -> Response:
    raise sqlite3.OperationalError("no such table: nowhere")


class LateBoom:
    """A plain ASGI app (a class, so ``Route`` does not wrap it as an endpoint) failing mid-response."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        start = {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
        await send(start)
        raise Boom("after the response started")


@asynccontextmanager
async def gateway(
    tmp_path: Path, *, raise_app_exceptions: bool, **overrides: Any
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(make_settings(tmp_path, **CLIENT_NET, **overrides))
    app.router.routes.extend(
        [
            Route("/test/boom", boom),
            Route("/test/locked", locked),
            Route("/test/other-operational-error", other_operational_error),
            Route("/test/late-boom", LateBoom()),
        ]
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(
            app=app, client=("203.0.113.7", 50000), raise_app_exceptions=raise_app_exceptions
        )
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client:
            yield client


async def test_an_unhandled_exception_is_a_plain_500_and_raised_again(tmp_path: Path) -> None:
    async with gateway(tmp_path, raise_app_exceptions=False) as client:
        response = await client.get("/test/boom")
        other = await client.get("/test/other-operational-error")  # its handler raises it again
        metrics = (await client.get("/metrics")).text
    for answer in (response, other):
        assert answer.status_code == 500
        assert answer.content == b"Internal Server Error"
        assert answer.headers.raw == [
            (b"content-length", b"21"),
            (b"content-type", b"text/plain; charset=utf-8"),
        ]
    assert sample(metrics, "gateway_http_requests_total", route=TEST_ROUTES, status="500") == 2.0
    async with gateway(tmp_path, raise_app_exceptions=True) as client:
        with pytest.raises(Boom):
            await client.get("/test/boom")
        with pytest.raises(sqlite3.OperationalError):
            await client.get("/test/other-operational-error")


async def test_an_exception_after_the_response_started_sends_nothing_more(tmp_path: Path) -> None:
    async with gateway(tmp_path, raise_app_exceptions=False) as client:
        response = await client.get("/test/late-boom")
        metrics = (await client.get("/metrics")).text
    assert response.status_code == 200
    assert FRESH_ID.fullmatch(response.headers["x-request-id"])
    assert response.content == b""
    assert sample(metrics, "gateway_http_requests_total", route=TEST_ROUTES, status="200") == 1.0
    async with gateway(tmp_path, raise_app_exceptions=True) as client:
        with pytest.raises(Boom):
            await client.get("/test/late-boom")


async def test_a_handled_exception_gets_its_handlers_answer_with_the_request_id(tmp_path: Path) -> None:
    async with gateway(tmp_path, raise_app_exceptions=True) as client:
        page = await client.get("/test/locked")
        api = await client.post("/oauth2/token", data={"grant_type": "client_credentials"})
        metrics = (await client.get("/metrics")).text
    assert page.status_code == 503
    assert page.headers["retry-after"].isdigit()
    assert FRESH_ID.fullmatch(page.headers["x-request-id"])
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    assert sample(metrics, "gateway_http_requests_total", route=TEST_ROUTES, status="503") == 1.0
    assert api.status_code in (400, 401)  # an ordinary answer still passes untouched
    assert "x-request-id" in api.headers


async def test_starlettes_http_exceptions_are_plain_text_with_the_request_id(tmp_path: Path) -> None:
    async with gateway(tmp_path, raise_app_exceptions=True) as client:
        missing = await client.get("/no/such/path")
        wrong_method = await client.delete("/oauth2/token")
    assert missing.status_code == 404
    assert missing.content == b"Not Found"
    assert missing.headers.raw[:-1] == [
        (b"content-length", b"9"),
        (b"content-type", b"text/plain; charset=utf-8"),
    ]
    assert missing.headers.raw[-1][0] == b"x-request-id"
    assert wrong_method.status_code == 405
    assert wrong_method.content == b"Method Not Allowed"
    assert wrong_method.headers.raw[:-1] == [
        (b"allow", b"POST"),
        (b"content-length", b"18"),
        (b"content-type", b"text/plain; charset=utf-8"),
    ]
    assert FRESH_ID.fullmatch(wrong_method.headers.raw[-1][1].decode())


async def test_an_endpoints_http_exception_is_answered_as_before(tmp_path: Path) -> None:
    """The demo routes raise ``HTTPException(404)`` themselves while the demo is off."""
    async with gateway(tmp_path, raise_app_exceptions=True, demo={"enabled": False}) as client:
        response = await client.get("/demo")
    assert response.status_code == 404
    assert response.content == b"Not Found"
    assert [name for name, _ in response.headers.raw] == [b"content-length", b"content-type", b"x-request-id"]


def sync_boom(request: Request) -> Response:
    raise Boom("in a thread")


class Stamp:
    """Route middleware: adds a header, so a route that has some is seen to go through it."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def stamped(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message["headers"], (b"x-stamp", b"1")]
            await send(message)

        await self.app(scope, receive, stamped)


async def hello(request: Request) -> Response:
    return PlainTextResponse("hello")


def test_only_bare_async_endpoint_functions_are_called_directly() -> None:
    assert direct_endpoint(Route("/a", hello)) is hello
    assert direct_endpoint(Route("/a", sync_boom)) is None  # Starlette runs it in a thread
    assert direct_endpoint(Route("/a", LateBoom())) is None  # an ASGI app of its own
    assert direct_endpoint(Route("/a", hello, middleware=[Middleware(Stamp)])) is None
    assert direct_endpoint(Mount("/a", routes=[Route("/b", hello)])) is None


async def test_other_routes_still_go_through_starlettes_wrapper(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path))
    app.router.routes.extend(
        [Route("/test/sync-boom", sync_boom), Route("/test/stamped", hello, middleware=[Middleware(Stamp)])]
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client:
            failed = await client.get("/test/sync-boom")
            stamped = await client.get("/test/stamped")
    assert failed.status_code == 500
    assert failed.content == b"Internal Server Error"
    assert stamped.text == "hello"
    assert stamped.headers["x-stamp"] == "1"
    assert FRESH_ID.fullmatch(stamped.headers["x-request-id"])


def test_the_gateway_refuses_middleware_it_would_leave_out(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path, **CLIENT_NET))
    app.add_middleware(GZipMiddleware)
    with pytest.raises(RuntimeError, match="RequestMiddleware alone"):
        app.build_middleware_stack()
