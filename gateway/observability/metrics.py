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
from bisect import bisect_left

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, values
from prometheus_client.multiprocess import MultiProcessCollector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
UPSTREAM_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
MULTIPROCESS = values.ValueClass is not values.MutexValue
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class RequestMeter:
    """What ``counter.inc()`` and ``histogram.observe(seconds)`` do to two labelled children, with
    their values reached once: every HTTP request is counted, and the public calls cost it ten
    Python-level calls (label checks, a linear bucket search) where three suffice. The values are
    ``prometheus_client``'s own (``MutexValue``, or the multiprocess files' values), so the
    exposition is unchanged; ``tests/observability`` compares both ways."""

    def __init__(self, counter: Counter, histogram: Histogram) -> None:
        self._count = counter._value
        self._sum = histogram._sum
        self._buckets = histogram._buckets
        self._bounds = histogram._upper_bounds  # ascending, ending with +Inf

    def observe(self, seconds: float) -> None:
        self._count.inc(1)
        self._sum.inc(seconds)
        self._buckets[bisect_left(self._bounds, seconds)].inc(1)  # the first bound >= seconds


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
        self._meters: dict[tuple[str, int], RequestMeter] = {}

    def observe_request(self, route: str, status: int, seconds: float) -> None:
        """One HTTP request: its meter is made once per (route, status)."""
        meter = self._meters.get((route, status))
        if meter is None:
            meter = self._meters[(route, status)] = RequestMeter(
                self.http_requests.labels(route, str(status)), self.http_seconds.labels(route)
            )
        meter.observe(seconds)

    def exposition(self) -> bytes:
        """The text format of every metric (of every worker in multiprocess mode: the mode
        ``prometheus_client`` chose when it was imported, whatever the environment says now)."""
        if MULTIPROCESS and os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)
