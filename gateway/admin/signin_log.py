"""The sign-in log: ``GET /v1.0/auditLogs/signIns`` (Graph ``signIn`` objects, newest first).

Needs ``AuditLog.Read.All`` (apps) or the Global Administrator role (users). ``$top`` (1..999,
default 100) and ``$skiptoken`` page as the other listings do (``@odata.nextLink``). ``$filter``
takes a small subset of OData, clauses joined by `` and ``, each property at most once:
``userId eq '<id>'``, ``appId eq '<id>'``, ``createdDateTime ge <ISO 8601 UTC, e.g.
2025-01-31T00:00:00Z>``, ``status/errorCode eq 0`` (successes) or ``status/errorCode ne 0``
(failures); anything else is a 400 (``unsupported_filter``). Records older than
``observability.signin_log_days`` are never served.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import Response

from gateway.admin.caller import authenticate
from gateway.admin.errors import ApiError, api_endpoint
from gateway.admin.users import page_body, page_request
from gateway.http import json_response
from gateway.policy.collaboration import GLOBAL_ADMINISTRATOR
from gateway.runtime import Runtime
from gateway.store.signin_log import CURSOR, SignInQuery

READ_PERMISSIONS = frozenset({"AuditLog.Read.All"})
_CLAUSE = re.compile(
    r"^(?:(userId|appId) eq '([^']{1,1024})'"
    r"|createdDateTime ge ([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?Z)"
    r"|status/errorCode (eq|ne) 0)$"
)
SUPPORTED = (
    "Only userId eq '<id>', appId eq '<id>', createdDateTime ge <yyyy-mm-ddThh:mm:ssZ> and "
    "status/errorCode eq 0 | ne 0, joined by 'and', are supported."
)


def _unsupported(message: str) -> ApiError:
    return ApiError(400, "unsupported_filter", message)


def parse_filter(text: str) -> SignInQuery:
    """The ``$filter`` subset (module docstring) as a ``SignInQuery``; anything else: 400."""
    if len(text) > 2200:
        raise _unsupported("$filter is too long.")
    fields: dict[str, object] = {}
    for clause in text.split(" and "):
        match = _CLAUSE.match(clause.strip())
        if match is None:
            raise _unsupported(SUPPORTED)
        name, value, since, operator = match.groups()
        if name is not None:
            key, parsed = ("user_id" if name == "userId" else "app_id"), value
        elif since is not None:
            key = "since"
            try:
                parsed = datetime.fromisoformat(since.replace("Z", "+00:00")).astimezone(UTC).timestamp()
            except ValueError:
                raise _unsupported(f"createdDateTime {since} is not a valid date and time.") from None
        else:
            key, parsed = "succeeded", operator == "eq"
        if key in fields:
            raise _unsupported(f"{'status/errorCode' if key == 'succeeded' else name or 'createdDateTime'} "
                               "appears more than once in $filter.")  # fmt: skip
        fields[key] = parsed
    return SignInQuery(**fields)  # type: ignore[arg-type]


def _may_read(caller_roles: frozenset[str], kind: str, permissions: frozenset[str]) -> bool:
    if kind == "app":
        return bool(permissions & READ_PERMISSIONS)
    return GLOBAL_ADMINISTRATOR in caller_roles


@api_endpoint
async def list_signins(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    caller = await authenticate(rt, request)
    if not _may_read(caller.policy.roles, caller.policy.kind, caller.policy.app_permissions):
        raise ApiError(
            403,
            "insufficient_privileges",
            "Reading sign-in logs needs AuditLog.Read.All or Global Administrator.",
        )
    top, after = page_request(request)
    if after is not None and CURSOR.match(after) is None:
        raise ApiError(400, "invalid_skiptoken", "$skiptoken is not one this API issued.")
    filter_text = request.query_params.get("$filter")
    query = parse_filter(filter_text) if filter_text is not None else SignInQuery()
    days = rt.settings.observability.signin_log_days
    oldest = rt.clock() - days * 86400
    if query.since is None or query.since < oldest:
        query = SignInQuery(query.user_id, query.app_id, oldest, query.succeeded)
    entries, cursor = await rt.store.list_signins(query, limit=top, after=after)
    params = {"$filter": filter_text} if filter_text is not None else {}
    return json_response(
        page_body(rt, "auditLogs/signIns", "auditLogs/signIns", entries, cursor, top, params)
    )
