"""Configuration of observability (``observability:``): who may read ``/metrics``, how long the
sign-in log is kept, whether an incoming ``X-Request-Id`` is taken over, and uvicorn's access log."""

from __future__ import annotations

import ipaddress
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _network(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value, strict=True))
    except ValueError:
        raise ValueError(
            f"{value!r} is not an IP network in CIDR form with no host bits set, e.g. 10.0.0.0/8 or ::1/128"
        ) from None


Network = Annotated[str, AfterValidator(_network)]
LOOPBACK = ("127.0.0.0/8", "::1/128")


class MetricsAccess(_Strict):
    enabled: bool = Field(True, description="Serve Prometheus metrics at /metrics.")
    allow: list[Network] = Field(
        list(LOOPBACK),
        max_length=256,
        description="Client networks (CIDR) that may read /metrics; others get 403. Default: loopback only.",
    )


class Observability(_Strict):
    metrics: MetricsAccess = MetricsAccess()
    signin_log_days: Annotated[int, Field(ge=0, le=365)] = Field(
        30,
        description="Days the sign-in log (GET /v1.0/auditLogs/signIns) keeps a record; 0 keeps none.",
    )
    trust_request_id: bool = Field(
        False,
        description="Take a well-formed incoming X-Request-Id (<= 64 of [A-Za-z0-9._-]) as the request id "
        "(turn on behind a reverse proxy that sets it: any client could otherwise choose the id in the "
        "logs); false: always make a fresh one.",
    )
    access_log: bool = Field(False, description="uvicorn's access log, one JSON line a request (costs CPU).")
