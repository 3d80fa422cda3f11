"""The audit trail: one structured JSON record per sign-in attempt, with every decision and its reason.

Records go to the ``gateway.audit`` logger as a single JSON line each. Reason codes are
stable strings (documented in README.md, "Audit records"); pages and the record use the same ones.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from starlette.requests import Request

from gateway.http import client_ip

if TYPE_CHECKING:
    from gateway.runtime import Runtime

logger = logging.getLogger("gateway.audit")


def decision(step: str, outcome: str, reason: str) -> dict[str, str]:
    return {"step": step, "outcome": outcome, "reason": reason}


def _emit(record: dict[str, Any]) -> None:
    if logger.isEnabledFor(logging.INFO):
        logger.info(json.dumps(record, separators=(",", ":"), sort_keys=True))


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
) -> dict[str, Any]:
    """Every record has the same keys, so consumers can rely on one shape."""
    return {
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
    }


def signin_succeeded(
    rt: Runtime,
    app_id: str | None,
    *,
    user_id: str,
    connector_id: str,
    request: Request,
    decisions: list[dict[str, str]],
) -> None:
    _emit(
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
) -> None:
    _emit(
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
        )
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
    _emit(
        {
            "event": "admin",
            "action": action,
            "result": result,
            "time": round(rt.clock(), 3),
            "tenant": rt.settings.tenant.id,
            "actor": actor,
            "target": target,
            "ip": client_ip(request),
            "reasons": reasons,
            "detail": detail,
        }
    )
