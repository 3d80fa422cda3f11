"""Route templates for metric labels: the template a request matched (``/signin/{signin_id}``), never
its raw path, so label values stay bounded.

Starlette's router leaves the matched endpoint in the scope (``scope["endpoint"]``, the innermost
one under a ``Mount``); ``RouteIndex`` maps each endpoint to its full template, built once from the
app's route table. An endpoint serving several templates is told apart by its paths' patterns.
"""

from __future__ import annotations

import re
from collections.abc import MutableMapping, Sequence
from typing import Any

from starlette.routing import BaseRoute, Mount, Route, compile_path

UNMATCHED = "unmatched"


class RouteIndex:
    def __init__(self, routes: Sequence[BaseRoute]) -> None:
        self._templates: dict[int, list[tuple[str, re.Pattern[str]]]] = {}
        self._keep: list[object] = []  # the endpoints, alive as long as their ids are keys
        self._add(routes, "")

    def _add(self, routes: Sequence[BaseRoute], prefix: str) -> None:
        for route in routes:
            if isinstance(route, Route):
                self._put(route.endpoint, prefix + route.path)
            elif isinstance(route, Mount):
                inner = route.routes
                if inner:
                    self._add(inner, prefix + route.path)
                else:
                    self._put(route.app, prefix + route.path + "/{path:path}")

    def _put(self, endpoint: object, template: str) -> None:
        regex, _, _ = compile_path(template)
        entries = self._templates.setdefault(id(endpoint), [])
        if all(t != template for t, _ in entries):
            entries.append((template, regex))
        self._keep.append(endpoint)

    def template(self, scope: MutableMapping[str, Any]) -> str:
        """The template of the route that handled ``scope``; ``unmatched`` when none did."""
        endpoint = scope.get("endpoint")
        if endpoint is None:
            return UNMATCHED
        entries = self._templates.get(id(endpoint))
        if not entries:
            return UNMATCHED
        if len(entries) == 1:
            return entries[0][0]
        path = scope.get("path", "")
        for template, regex in entries:
            if regex.match(path):
                return template
        return UNMATCHED
