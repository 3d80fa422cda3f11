"""``/metrics`` (Prometheus text format, for the networks ``observability.metrics.allow`` names),
``/healthz/live`` (the process answers; no I/O) and ``/healthz/ready`` (the store answers and a
signing key of every algorithm the gateway signs with is loaded and active; otherwise 503 naming
the failed check). ``/metrics`` trusts the socket peer only, never a forwarded address header."""

from __future__ import annotations

import ipaddress
import logging

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.observability.hub import Hub
from gateway.observability.metrics import CONTENT_TYPE
from gateway.runtime import Runtime, signing_algorithms

logger = logging.getLogger("gateway.observability")
NO_STORE = {"Cache-Control": "no-store"}


async def live(request: Request) -> Response:
    return JSONResponse({"status": "ok"}, headers=NO_STORE)


def key_problems(rt: Runtime) -> list[str]:
    """Each algorithm the gateway signs with that has no loaded, active key."""
    now = rt.clock()
    problems = []
    for alg in sorted(signing_algorithms(rt.settings)):
        keys = rt.keys.published_keys(alg)
        if not keys:
            problems.append(f"no {alg} signing key loaded")
        elif not any(key.activates_at <= now for key in keys):
            problems.append(f"no {alg} signing key active yet")
    return problems


async def ready(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    checks: dict[str, str] = {}
    try:
        await rt.store.get("health", "probe")
        checks["store"] = "ok"
    except Exception as exc:
        logger.warning("readiness: store unreachable: %s", exc)
        checks["store"] = "unreachable"
    problems = key_problems(rt)
    checks["keys"] = "; ".join(problems) if problems else "ok"
    failed = [name for name, state in checks.items() if state != "ok"]
    body = {"status": "unavailable" if failed else "ok", "checks": checks, "failed": failed}
    return JSONResponse(body, status_code=503 if failed else 200, headers=NO_STORE)


def _allowed(rt: Runtime, peer: str | None) -> bool:
    if peer is None:
        return False
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in ipaddress.ip_network(net) for net in rt.settings.observability.metrics.allow)


async def metrics(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    hub: Hub = request.app.state.observability
    access = rt.settings.observability.metrics
    if not access.enabled:
        return JSONResponse({"error": "not_found", "message": "Metrics are disabled."}, 404, headers=NO_STORE)
    if not _allowed(rt, request.client.host if request.client else None):
        return JSONResponse(
            {
                "error": "forbidden",
                "message": "This address may not read metrics (see observability.metrics.allow).",
            },
            403,
            headers=NO_STORE,
        )
    return Response(hub.metrics.exposition(), media_type=CONTENT_TYPE, headers=NO_STORE)
