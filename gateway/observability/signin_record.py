"""An audit record of a sign-in as a Graph ``signIn`` (the sign-in log the admin API serves).

Mapping (``gateway.audit`` record -> Graph): ``time`` -> ``createdDateTime``; ``user`` ->
``userId``; ``app`` -> ``appId`` (``appDisplayName`` from the configuration); ``ip`` ->
``ipAddress``; ``result``/``reason``/``detail`` -> ``status {errorCode, failureReason,
additionalDetails}`` (``errorCode`` 0 for success, else ``error_code(reason)``, a stable number
per reason code); ``request_id`` -> ``correlationId`` and ``originalRequestId``; ``connector``
-> ``identityProvider``; the policy fields (``conditionalAccessStatus``,
``appliedConditionalAccessPolicies``, ``crossTenantAccessType``, ``homeTenantId``,
``resourceTenantId``, ``authenticationRequirement``) as they are. ``userPrincipalName`` and
``userDisplayName`` are filled by the writer from the directory, off the request's path.
"""

from __future__ import annotations

import uuid
import zlib
from datetime import UTC, datetime
from typing import Any

from gateway.store.signin_log import SignInEntry


def error_code(reason: str | None) -> int:
    """A failure's ``errorCode``: 10000..99999, the same for the same reason code on every install."""
    return 10000 + zlib.crc32((reason or "unknown").encode()) % 90000


def iso(time: float) -> str:
    return datetime.fromtimestamp(time, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def signin_entry(record: dict[str, Any], app_name: str | None) -> SignInEntry:
    """The log entry of one ``event: signin`` audit record."""
    failed = record.get("result") != "success"
    code = error_code(record.get("reason")) if failed else 0
    entry_id = str(uuid.uuid4())
    user_id = record.get("user")
    app_id = record.get("app")
    doc: dict[str, Any] = {
        "id": entry_id,
        "createdDateTime": iso(float(record["time"])),
        "userId": user_id,
        "userPrincipalName": None,
        "userDisplayName": None,
        "appId": app_id,
        "appDisplayName": app_name,
        "ipAddress": record.get("ip"),
        "clientAppUsed": "Browser",
        "isInteractive": True,
        "correlationId": record.get("request_id"),
        "originalRequestId": record.get("request_id"),
        "identityProvider": record.get("connector"),
        "status": {
            "errorCode": code,
            "failureReason": record.get("reason") if failed else None,
            "additionalDetails": record.get("detail"),
        },
        "conditionalAccessStatus": record.get("conditionalAccessStatus"),
        "appliedConditionalAccessPolicies": record.get("appliedConditionalAccessPolicies", []),
        "authenticationRequirement": record.get("authenticationRequirement"),
        "crossTenantAccessType": record.get("crossTenantAccessType"),
        "homeTenantId": record.get("homeTenantId"),
        "resourceTenantId": record.get("resourceTenantId"),
    }
    return SignInEntry(
        id=entry_id,
        time=float(record["time"]),
        user_id=user_id if isinstance(user_id, str) and user_id else None,
        app_id=app_id if isinstance(app_id, str) and app_id else None,
        error_code=code,
        doc=doc,
    )
