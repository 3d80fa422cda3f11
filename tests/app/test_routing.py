"""``IndexedRouter`` answers exactly as Starlette's ``Router``: the same route for every path and
method (first full match, else first partial match: 405), and Starlette's own slash redirect and
404 when nothing matches."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Host, Match, Mount, Route, Router

from gateway.app import routes as gateway_routes
from gateway.routing import IndexedRouter, RouteLookup, first_segment
from tests.support.gateway_app import make_settings

METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH")


def _scope(path: str, method: str = "GET") -> dict[str, Any]:
    return {"type": "http", "path": path, "root_path": "", "method": method, "headers": []}


def _chosen(routes: list[BaseRoute] | tuple[BaseRoute, ...], path: str, method: str) -> tuple[Any, ...]:
    """What Starlette's loop picks: the first full match, else the first partial one, else None."""
    partial = None
    for route in routes:
        match, child = route.matches(_scope(path, method))
        if match is Match.FULL:
            return ("full", route, child.get("path_params"))
        if match is Match.PARTIAL and partial is None:
            partial = ("partial", route, child.get("path_params"))
    return partial or ("none",)


def _sample_paths(routes: list[BaseRoute]) -> list[str]:
    paths = {"/", "", "/nope", "/signin", "/signin/", "/signin/abc/nope", "/v1.0", "/v1.0/users"}
    paths.add("/static/x.css")
    for route in routes:
        template = getattr(route, "path", "/")
        concrete = re.sub(r"\{[^}]*\}", "abc", template) or "/"
        paths |= {concrete, concrete + "/", concrete + "\n", concrete + "/x", concrete.rstrip("/") + "x"}
    return sorted(paths)


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> list[BaseRoute]:
    settings = make_settings(Path(tmp_path_factory.mktemp("routing")))
    return list(gateway_routes(settings))


def test_the_candidates_give_starlettes_choice_for_every_gateway_route(table: list[BaseRoute]) -> None:
    lookup = RouteLookup(table)
    tried = 0
    for path in _sample_paths(table):
        candidates = lookup.candidates(path)
        for method in METHODS:
            expected = _chosen(table, path, method)
            if candidates is None:
                continue  # left to Starlette's own loop
            assert _chosen(candidates, path, method) == expected, (path, method)
            tried += 1
    assert tried > 1000
    assert len(lookup.candidates("/oauth2/token") or ()) == 2  # POST, then the CORS preflight
    assert len(lookup.candidates("/signin/abc/passcode") or ()) < 20


async def _ok(request: Request) -> Response:
    return PlainTextResponse(request.scope["route"].path + " " + repr(request.path_params))


def _table() -> list[BaseRoute]:
    inner = [Route("/users/{user_id}", _ok), Route("/users", _ok, methods=["POST"])]
    return [
        Route("/a/{x}", _ok, methods=["POST"]),
        Route("/a/b", _ok),
        Route("/{anything}/c", _ok),
        Route("/d{suffix}", _ok),
        Route("/e", _ok, methods=["PUT"]),
        Route("/e", _ok, methods=["GET"]),
        Mount("/m", routes=inner),
        Host("h.example", app=Router([Route("/h", _ok)])),
        Route("/int/{n:int}", _ok),
        Route("/slash/", _ok),
    ]


def test_first_segments() -> None:
    assert [first_segment(r) for r in _table()] == ["a", "a", None, None, "e", "e", "m", None, "int", "slash"]


async def _answers(router: Router, path: str, method: str) -> tuple[int, str, str | None]:
    app = Starlette()
    app.router = router
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw.example") as client:
        response = await client.request(method, path, follow_redirects=False)
    return response.status_code, response.text, response.headers.get("location")


@pytest.mark.parametrize(
    "path",
    ["/a/b", "/a/z", "/q/c", "/a/c", "/e/c", "/int/c", "/dz", "/d", "/e", "/m/users", "/m/users/7", "/m",
     "/h", "/int/3", "/int/x", "/slash", "/slash/", "/a/b/", "/zzz", "/a/b%0A"],
)  # fmt: skip
@pytest.mark.parametrize("method", ["GET", "POST", "PUT"])
async def test_the_same_http_answers_as_starlettes_router(path: str, method: str) -> None:
    expected = await _answers(Router(_table()), path, method)
    assert await _answers(IndexedRouter(_table()), path, method) == expected


async def test_routes_added_later_are_routed() -> None:
    router = IndexedRouter(_table())
    assert (await _answers(router, "/late", "GET"))[0] == 404
    router.routes.append(Route("/late", _ok))
    assert (await _answers(router, "/late", "GET"))[:2] == (200, "/late {}")
    router.routes = [Route("/other", _ok)]
    assert (await _answers(router, "/other", "GET"))[0] == 200
    assert (await _answers(router, "/a/b", "GET"))[0] == 404
