"""The gateway's Prometheus metrics (``prometheus_client``), one set per app.

In one process each app has its own registry. With ``PROMETHEUS_MULTIPROC_DIR`` set (``gateway
serve --workers N`` with N > 1 sets it before the workers start, see ``multiprocess``), values
live in that directory's per-process files and ``exposition`` adds up every worker's.

Names: ``gateway_signins_total{app,connector,result}``, ``gateway_tokens_issued_total{app,kind}``,
``gateway_policy_outcomes_total{policy,outcome}``, ``gateway_upstream_request_seconds{connector,
endpoint}``, ``gateway_http_requests_total{route,status}``, ``gateway_http_request_seconds{route}``,
``gateway_signin_log_dropped_total``. Label values are bounded: configured ids, route templates,
status codes and stable reason codes.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, values
from prometheus_client.multiprocess import MultiProcessCollector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
UPSTREAM_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
MULTIPROCESS = values.ValueClass is not values.MutexValue
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class Metrics:
    """The metric families and a cache of their labelled children for the per-request ones."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.signins = Counter(
            "gateway_signins",
            "Sign-in attempts (one per audit record).",
            ["app", "connector", "result"],
            registry=r,
        )
        self.tokens = Counter(
            "gateway_tokens_issued", "Tokens and assertions issued.", ["app", "kind"], registry=r
        )
        self.policy = Counter(
            "gateway_policy_outcomes", "Policy outcomes of sign-ins.", ["policy", "outcome"], registry=r
        )
        self.upstream = Histogram(
            "gateway_upstream_request_seconds",
            "Upstream IdP HTTP requests by connector and endpoint.",
            ["connector", "endpoint"],
            buckets=UPSTREAM_BUCKETS,
            registry=r,
        )
        self.http_requests = Counter(
            "gateway_http_requests",
            "HTTP requests by route template and status.",
            ["route", "status"],
            registry=r,
        )
        self.http_seconds = Histogram(
            "gateway_http_request_seconds", "HTTP request latency by route template.", ["route"],
            buckets=HTTP_BUCKETS, registry=r,
        )  # fmt: skip
        self.signin_log_dropped = Counter(
            "gateway_signin_log_dropped", "Sign-in log records dropped (writer queue full or store failing).",
            registry=r,
        )  # fmt: skip
        self._requests: dict[tuple[str, int], Counter] = {}
        self._seconds: dict[str, Histogram] = {}

    def observe_request(self, route: str, status: int, seconds: float) -> None:
        """One HTTP request: children are looked up once per (route, status)."""
        counter = self._requests.get((route, status))
        if counter is None:
            counter = self._requests[(route, status)] = self.http_requests.labels(route, str(status))
        counter.inc()
        histogram = self._seconds.get(route)
        if histogram is None:
            histogram = self._seconds[route] = self.http_seconds.labels(route)
        histogram.observe(seconds)

    def exposition(self) -> bytes:
        """The text format of every metric (of every worker in multiprocess mode: the mode
        ``prometheus_client`` chose when it was imported, whatever the environment says now)."""
        if MULTIPROCESS and os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)
