"""The audit trail: one structured JSON record per sign-in attempt, with every decision and its reason.

Records go to the ``gateway.audit`` logger as a single JSON line each, with the ``request_id`` of
the request being handled (null outside one); sign-in records also feed the metrics and the
sign-in log (``gateway.observability.events``). Reason codes are
stable strings (documented in README.md, "Audit records"); pages and the record use the same ones.
"""

from __future__ import annotations

import logging
import time as _time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from starlette.requests import Request

from gateway.http import client_ip
from gateway.jsontext import sorted_ascii_text
from gateway.observability import events
from gateway.observability.context import request_id
from gateway.observability.logs import log

if TYPE_CHECKING:
    from gateway.runtime import Runtime
    from gateway.settings.models import Settings

logger = logging.getLogger("gateway.audit")


def decision(step: str, outcome: str, reason: str) -> dict[str, str]:
    return {"step": step, "outcome": outcome, "reason": reason}


def _emit(record: dict[str, Any]) -> None:
    if logger.isEnabledFor(logging.INFO):  # encoded only when written
        log(logger, logging.INFO, sorted_ascii_text(record))


def _record(
    rt: Runtime,
    request: Request,
    *,
    result: str,
    app_id: str | None,
    connector_id: str | None,
    user_id: str | None,
    reason: str | None,
    detail: str | None,
    decisions: list[dict[str, str]],
    policy: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Every record has the same keys, so consumers can rely on one shape. ``policy`` holds the
    cross-tenant and conditional-access fields of the reference's sign-in log (b2b-concepts §11),
    filled by ``gateway.signin.policy_step``."""
    policy = policy or {}
    return {
        "homeTenantId": policy.get("homeTenantId"),
        "resourceTenantId": rt.settings.tenant.id,
        "crossTenantAccessType": policy.get("crossTenantAccessType", "none"),
        "conditionalAccessStatus": policy.get("conditionalAccessStatus", "notApplied"),
        "authenticationRequirement": policy.get("authenticationRequirement", "singleFactorAuthentication"),
        "appliedConditionalAccessPolicies": policy.get("appliedConditionalAccessPolicies", []),
        "event": "signin",
        "result": result,
        "time": round(rt.clock(), 3),
        "tenant": rt.settings.tenant.id,
        "app": app_id,
        "connector": connector_id,
        "user": user_id,
        "ip": client_ip(request),
        "reason": reason,
        "detail": detail,
        "decisions": decisions,
        "request_id": request_id(),
    }


def _emit_signin(record: dict[str, Any]) -> None:
    """The record in the log, then to metrics and the sign-in log (``gateway.observability``)."""
    _emit(record)
    events.signin_recorded(record)


def signin_succeeded(
    rt: Runtime,
    app_id: str | None,
    *,
    user_id: str,
    connector_id: str,
    request: Request,
    decisions: list[dict[str, str]],
    policy: Mapping[str, Any] | None = None,
) -> None:
    _emit_signin(
        _record(
            rt,
            request,
            result="success",
            app_id=app_id,
            connector_id=connector_id,
            user_id=user_id,
            reason=None,
            detail=None,
            decisions=decisions,
            policy=policy,
        )
    )


def signin_failed(
    rt: Runtime,
    app_id: str | None,
    *,
    reason: str,
    request: Request,
    detail: str | None = None,
    connector_id: str | None = None,
    user_id: str | None = None,
    decisions: list[dict[str, str]] | None = None,
    policy: Mapping[str, Any] | None = None,
) -> None:
    _emit_signin(
        _record(
            rt,
            request,
            result="failure",
            app_id=app_id,
            connector_id=connector_id,
            user_id=user_id,
            reason=reason,
            detail=detail,
            decisions=decisions or [],
            policy=policy,
        )
    )


OPERATOR: dict[str, str] = {"kind": "operator", "id": "cli"}
"""The actor of actions taken with the command line: the install's operator (no token, no peer)."""


def _admin_record(
    *,
    tenant: str,
    time: float,
    ip: str | None,
    action: str,
    result: str,
    actor: dict[str, str] | None,
    target: str | None,
    reasons: list[str],
    detail: str | None,
) -> None:
    _emit(
        {
            "event": "admin",
            "action": action,
            "result": result,
            "time": round(time, 3),
            "tenant": tenant,
            "actor": actor,
            "target": target,
            "ip": ip,
            "reasons": reasons,
            "detail": detail,
            "request_id": request_id(),
        }
    )


def admin_action(
    rt: Runtime,
    request: Request,
    *,
    action: str,
    result: str,
    actor: dict[str, str] | None,
    target: str | None,
    reasons: list[str],
    detail: str | None = None,
) -> None:
    """One record per admin API action (``invite``, ...): who did it to which object, and why it
    ended so. ``actor`` is ``{"kind": "user"|"app", "id"}`` or None when the caller was not
    authenticated; ``result`` is ``success`` or ``failure``; ``reasons`` are stable codes."""
    _admin_record(
        tenant=rt.settings.tenant.id, time=rt.clock(), ip=client_ip(request), action=action,
        result=result, actor=actor, target=target, reasons=reasons, detail=detail,
    )  # fmt: skip


def operator_action(
    settings: Settings,
    *,
    action: str,
    result: str,
    target: str | None,
    reasons: list[str],
    detail: str | None = None,
    now: float | None = None,
) -> None:
    """``admin_action`` for the command line: the same record, with ``actor`` ``OPERATOR`` and
    ``ip`` null (the operator reaches the store directly, not over HTTP)."""
    _admin_record(
        tenant=settings.tenant.id, time=_time.time() if now is None else now, ip=None, action=action,
        result=result, actor=dict(OPERATOR), target=target, reasons=reasons, detail=detail,
    )  # fmt: skip
