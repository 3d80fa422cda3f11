"""``Metrics.observe_request`` (through ``RequestMeter``, which reaches the children's values once)
leaves exactly what the public ``Counter.inc`` and ``Histogram.observe`` would."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from gateway.observability.metrics import HTTP_BUCKETS, Metrics

OBSERVED = [
    ("/oauth2/token", 200, 0.0004),
    ("/oauth2/token", 200, 0.001),  # on a bound: that bucket (le is inclusive)
    ("/oauth2/token", 400, 0.0025),
    ("/signin/{signin_id}", 200, 0.0031),
    ("/signin/{signin_id}", 200, 10.0),
    ("/signin/{signin_id}", 302, 11.0),  # past the last finite bound: +Inf only
    ("unmatched", 404, 0.0),
]


def _samples(registry: CollectorRegistry) -> list[tuple[str, dict[str, str], float]]:
    return sorted(
        (
            (sample.name, sample.labels, sample.value)
            for family in registry.collect()
            if family.name.startswith("gateway_http_request")
            for sample in family.samples
            if not sample.name.endswith("_created")
        ),
        key=repr,
    )


def test_observe_request_equals_the_public_calls() -> None:
    fast, public = Metrics(), Metrics()
    for route, status, seconds in OBSERVED:
        fast.observe_request(route, status, seconds)
        public.http_requests.labels(route, str(status)).inc()
        public.http_seconds.labels(route).observe(seconds)
    assert _samples(fast.registry) == _samples(public.registry)
    buckets = {
        s[1]["le"]: s[2]
        for s in _samples(fast.registry)
        if s[1].get("route") == "/oauth2/token" and "le" in s[1]
    }
    assert buckets["0.001"] == 2.0 and buckets["0.0025"] == 3.0 and buckets["+Inf"] == 3.0
    assert len(buckets) == len(HTTP_BUCKETS) + 1
