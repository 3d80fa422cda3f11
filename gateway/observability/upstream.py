"""Upstream request latency (``gateway_upstream_request_seconds{connector,endpoint}``): a wrapper
around the transport of the runtime's shared httpx client, so connectors need no change.

``connector``: the ``{connector_id}`` of the gateway route being handled (``/callback/{connector_id}``:
token, userinfo and key requests of a callback), else the connector whose configuration names the
request's host (discovery and metadata fetched while a sign-in begins), else ``other`` (e.g. back-
channel logout). ``endpoint``: host and path, no query (the upstream's fixed endpoints). The time
runs until the response headers arrive; requests that fail (connection refused, timeout) are
observed too.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from gateway.observability.context import CURRENT
from gateway.observability.metrics import Metrics

OTHER = "other"
MAX_ENDPOINT = 120


def connector_hosts(connectors: Iterable[Any]) -> dict[str, str]:
    """Host -> connector id, from every URL-valued field of each connector's configuration (the
    first connector naming a host keeps it)."""
    hosts: dict[str, str] = {}
    for config in connectors:
        for value in _strings(config.model_dump(mode="json")):
            if value.startswith(("https://", "http://")):
                host = urlsplit(value).hostname
                if host:
                    hosts.setdefault(host.lower(), str(config.id))
    return hosts


def _strings(value: object) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


class TimedTransport(httpx.AsyncBaseTransport):
    """Wraps the client's transport: times each request, success or failure."""

    def __init__(self, inner: httpx.AsyncBaseTransport, metrics: Metrics, hosts: Mapping[str, str],
                 connectors: Iterable[str]) -> None:  # fmt: skip
        self._inner = inner
        self._metrics = metrics
        self._hosts = dict(hosts)
        self._connectors = frozenset(connectors)

    def _connector(self, host: str) -> str:
        found = CURRENT.get()
        if found is not None:
            named = found.scope.get("path_params", {}).get("connector_id")
            if named in self._connectors:
                return str(named)
        return self._hosts.get(host.lower(), OTHER)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        started = time.perf_counter()
        try:
            return await self._inner.handle_async_request(request)
        finally:
            url = request.url
            endpoint = f"{url.host}{url.path}"[:MAX_ENDPOINT]
            self._metrics.upstream.labels(self._connector(url.host), endpoint).observe(
                time.perf_counter() - started
            )

    async def aclose(self) -> None:
        await self._inner.aclose()


def install(
    client: httpx.AsyncClient, metrics: Metrics, hosts: Mapping[str, str], connectors: Iterable[str]
) -> None:
    """Time every request ``client`` sends from now on (idempotent)."""
    transport = client._transport  # httpx has no public setter; the wrapper keeps its pool
    if not isinstance(transport, TimedTransport):
        client._transport = TimedTransport(transport, metrics, hosts, connectors)
