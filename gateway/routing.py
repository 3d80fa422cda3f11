"""``IndexedRouter``: Starlette's ``Router`` with the same answers, without trying every route.

Starlette's router tries each route in order (a regular expression each) until one matches the
path and method fully; the first partial match (path only) answers 405; no match at all tries the
path with its trailing slash toggled (a redirect) and then answers 404. With some sixty routes,
the sign-in's requests paid for fifteen or more expressions each.

``IndexedRouter`` keeps that exact order and outcome, but only tries the routes that *can* match
the path, found with a dictionary look-up:

- a path that is the literal path of a route (``/oauth2/token``): the routes whose expression
  matches that very path, worked out once when the index is built;
- any other path: the routes that start with the path's first segment (``/signin/{signin_id}``
  for ``/signin/abc``) and those whose first segment is not literal (``/{name}``), in table order.

Every route left out could not have matched, so the first full and first partial match are the
ones Starlette would find. A matched ``Route`` of an async endpoint function is answered by calling
the endpoint here (what Starlette's ``request_response`` does), without that wrapper's own round of
exception handling: the app's middleware (``RequestMiddleware``, or Starlette's
``ExceptionMiddleware``) is the very next layer out and handles an endpoint's exception with the
same handlers; the handler gets a new ``Request`` over the same scope instead of the endpoint's.

Anything else (no match: the slash redirect and 404; a path with a newline, which a literal route's
``$`` also matches; a route type the index does not know, kept in every list; a websocket or
lifespan scope) is left to Starlette's own code. The index is rebuilt when routes are added or
removed (the list's length or identity changed).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette._utils import get_route_path, is_async_callable
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import PARAM_REGEX, BaseRoute, Match, Mount, Route, Router, request_response
from starlette.types import Lifespan, Receive, Scope, Send

ANY_SEGMENT = None
"""The first segment of a route whose first segment is not literal: it may match any path."""


def first_segment(route: BaseRoute) -> str | None:
    """The literal first segment every path ``route`` matches starts with (``"signin"`` for
    ``/signin/{signin_id}``), or ``ANY_SEGMENT`` when there is none (``/{name}``, a root mount)."""
    if isinstance(route, Route):
        template = route.path
    elif isinstance(route, Mount):
        template = route.path + "/{path:path}"  # what ``Mount`` compiles
    else:
        return ANY_SEGMENT
    parameter = PARAM_REGEX.search(template)
    literal = template if parameter is None else template[: parameter.start()]
    if not literal.startswith("/"):
        return ANY_SEGMENT
    segment, slash, _ = literal[1:].partition("/")
    if not slash and parameter is not None:
        return ANY_SEGMENT  # ``/abc{x}``: the segment goes on past the literal text
    return segment


def could_match(route: BaseRoute, path: str) -> bool:
    """Whether ``route`` may match ``path`` (by path alone); routes of unknown types may."""
    if isinstance(route, Route | Mount):
        return route.path_regex.match(path) is not None
    return True


def literal_paths(routes: Sequence[BaseRoute]) -> list[str]:
    return [r.path for r in routes if isinstance(r, Route) and PARAM_REGEX.search(r.path) is None]


async def _probe(request: Request) -> Response:  # pragma: no cover - only its wrapper's code is read
    """An endpoint for ``request_response`` to wrap, so its wrapper's code object can be compared."""
    return Response(status_code=204)


_REQUEST_RESPONSE = request_response(_probe).__code__
"""The code of the ASGI app ``Route`` makes of an endpoint function (``request_response``)."""


def direct_endpoint(route: BaseRoute) -> Any:
    """The async endpoint function of a ``Route`` whose app is Starlette's bare ``request_response``
    wrapper (no route middleware), else None."""
    if type(route) is not Route or getattr(route.app, "__code__", None) is not _REQUEST_RESPONSE:
        return None
    return route.endpoint if is_async_callable(route.endpoint) else None


class RouteLookup:
    """The routes that can match a path, in table order (see the module docstring)."""

    def __init__(self, routes: Sequence[BaseRoute]) -> None:
        segments = [first_segment(route) for route in routes]
        self.exact: dict[str, tuple[BaseRoute, ...]] = {
            path: tuple(r for r in routes if could_match(r, path)) for path in literal_paths(routes)
        }
        self.by_segment: dict[str, tuple[BaseRoute, ...]] = {
            segment: tuple(r for r, s in zip(routes, segments, strict=True) if s in (segment, ANY_SEGMENT))
            for segment in segments
            if segment is not ANY_SEGMENT
        }
        self.elsewhere = tuple(r for r, s in zip(routes, segments, strict=True) if s is ANY_SEGMENT)
        self.endpoints = {id(r): e for r in routes if (e := direct_endpoint(r)) is not None}

    def candidates(self, path: str) -> tuple[BaseRoute, ...] | None:
        """The routes to try for ``path``; None: try them all (a path this index cannot vouch for)."""
        found = self.exact.get(path)
        if found is not None:
            return found
        if not path.startswith("/") or "\n" in path:
            return None
        return self.by_segment.get(path[1:].partition("/")[0], self.elsewhere)


class IndexedRouter(Router):
    """A ``Router`` that tries only the routes that can match (see the module docstring)."""

    _lookup: RouteLookup | None = None
    _indexed: tuple[list[BaseRoute] | None, int] = (None, 0)  # the route list indexed, and its length

    def __init__(self, routes: Sequence[BaseRoute], *, lifespan: Lifespan[Any] | None = None) -> None:
        super().__init__(routes, lifespan=lifespan)  # no router middleware: see ``__call__``

    def lookup(self) -> RouteLookup:
        routes = self.routes
        indexed, length = self._indexed
        if self._lookup is None or indexed is not routes or length != len(routes):
            self._lookup = RouteLookup(routes)
            self._indexed = (routes, len(routes))
        return self._lookup

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        lookup = self.lookup()
        candidates = lookup.candidates(get_route_path(scope)) if scope["type"] == "http" else None
        if candidates is None:
            await super().app(scope, receive, send)
            return
        if "router" not in scope:
            scope["router"] = self
        partial: BaseRoute | None = None
        partial_scope: Scope = {}
        for route in candidates:
            match, child_scope = route.matches(scope)
            if match is Match.FULL:
                scope["route"] = route
                scope.update(child_scope)
                endpoint = lookup.endpoints.get(id(route))
                if endpoint is not None:
                    response = await endpoint(Request(scope, receive, send))
                    await response(scope, receive, send)
                elif type(route) is Route:  # ``Route.handle`` only checks the method again
                    await route.app(scope, receive, send)
                else:
                    await route.handle(scope, receive, send)
                return
            if match is Match.PARTIAL and partial is None:
                partial, partial_scope = route, child_scope
        if partial is not None:
            scope["route"] = partial
            scope.update(partial_scope)
            await partial.handle(scope, receive, send)
            return
        await super().app(scope, receive, send)  # no route matches: Starlette's redirect or 404

    # ``Router.__call__`` only awaits ``middleware_stack``, which is ``app`` itself for a router
    # without middleware (``__init__`` takes none): one coroutine less per request.
    __call__ = app
