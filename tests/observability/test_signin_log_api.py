"""GET /v1.0/auditLogs/signIns: a real sign-in is logged (off the request path), filters, paging,
permission and bad $filter."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from gateway.observability.signin_record import signin_entry
from gateway.runtime import Runtime
from gateway.store.signin_log import SignInEntry
from tests.admin.helpers import ADMIN, Api, _confidential, applications, bearer, config
from tests.support.assertions import Clock
from tests.support.flows import signed_in_tokens
from tests.support.gateway_app import make_settings, running_app
from tests.support.smtp_server import SmtpServer

PATH = "/v1.0/auditLogs/signIns"


@pytest.fixture
async def api(tmp_path: Path, smtp_server: SmtpServer) -> AsyncIterator[Api]:
    apps = [*applications(), _confidential("audit-app", ["AuditLog.Read.All"])]
    settings = make_settings(tmp_path, smtp_server, **config(applications=apps))
    async with running_app(settings, clock=Clock()) as (app, client):
        yield Api(app, client, smtp_server, Clock())


def record(
    rt: Runtime, n: int, *, user: str, app: str = "demo", ok: bool = True, age: float = 0
) -> dict[str, Any]:
    return {
        "event": "signin", "result": "success" if ok else "failure", "time": rt.clock() - 1000 + n - age,
        "app": app, "connector": "email", "user": user, "ip": "203.0.113.7",
        "reason": None if ok else "passcode_wrong", "detail": None, "decisions": [],
        "request_id": f"req-{n}", "conditionalAccessStatus": "notApplied", "crossTenantAccessType": "none",
        "homeTenantId": None, "resourceTenantId": rt.settings.tenant.id,
        "appliedConditionalAccessPolicies": [], "authenticationRequirement": "singleFactorAuthentication",
    }  # fmt: skip


async def seed(api: Api) -> None:
    rt = api.rt
    entries = [
        signin_entry(record(rt, 1, user="u-a"), "Demo app"),
        signin_entry(record(rt, 2, user="u-a", ok=False), "Demo app"),
        signin_entry(record(rt, 3, user="u-b", app="portal"), "Portal"),
        signin_entry(record(rt, 4, user="u-b", ok=False), "Demo app"),
        signin_entry(record(rt, 5, user="u-old", age=40 * 86400), "Demo app"),  # past the 30 days
    ]
    await rt.store.append_signins(entries[:4], 10 * 365 * 86400)
    await rt.store.append_signins(entries[4:], 10 * 365 * 86400)


async def ids(api: Api, token: str, query: str = "") -> list[str]:
    response = await api.client.get(f"{PATH}{query}", headers=bearer(token))
    assert response.status_code == 200, response.text
    return [item["correlationId"] for item in response.json()["value"]]


async def test_a_passcode_signin_is_logged_in_graph_shape(api: Api, smtp_server: SmtpServer) -> None:
    await signed_in_tokens(api.client, smtp_server, "guest@fabrikam.example")
    hub = api.app.state.observability
    await hub.writer.flush()
    response = await api.client.get(PATH, headers=bearer(await api.app_token("audit-app")))
    assert response.status_code == 200
    [item] = response.json()["value"]
    assert item["appId"] == "demo" and item["appDisplayName"] == "Demo app"
    assert item["status"] == {"errorCode": 0, "failureReason": None, "additionalDetails": None}
    assert item["userPrincipalName"] and item["userId"]
    assert item["ipAddress"] == "203.0.113.7"
    assert item["conditionalAccessStatus"] == "notApplied"
    assert item["resourceTenantId"] == api.rt.settings.tenant.id
    assert item["createdDateTime"].endswith("Z")


async def test_filters(api: Api) -> None:
    await seed(api)
    token = await api.app_token("audit-app")
    assert await ids(api, token) == ["req-4", "req-3", "req-2", "req-1"]  # newest first; 40 days old: gone
    assert await ids(api, token, "?$filter=userId eq 'u-a'") == ["req-2", "req-1"]
    assert await ids(api, token, "?$filter=appId eq 'portal'") == ["req-3"]
    assert await ids(api, token, "?$filter=status/errorCode ne 0") == ["req-4", "req-2"]
    assert await ids(api, token, "?$filter=status/errorCode eq 0 and userId eq 'u-b'") == ["req-3"]
    since = (await api.client.get(PATH, headers=bearer(token))).json()["value"][1]["createdDateTime"]
    assert await ids(api, token, f"?$filter=createdDateTime ge {since}") == ["req-4", "req-3"]


async def test_paging_with_next_links(api: Api) -> None:
    await seed(api)
    token = await api.app_token("audit-app")
    url = f"{PATH}?$top=2&$filter=appId eq 'demo'"
    seen: list[str] = []
    while url:
        response = await api.client.get(url, headers=bearer(token))
        assert response.status_code == 200, response.text
        body = response.json()
        seen += [item["correlationId"] for item in body["value"]]
        link = body.get("@odata.nextLink")
        url = f"{urlsplit(link).path}?{urlsplit(link).query}" if link else ""
    assert seen == ["req-4", "req-2", "req-1"]


async def test_global_administrator_reads_other_users_do_not(api: Api) -> None:
    await seed(api)
    admin = await api.user_token(await api.add_user(ADMIN))
    assert len(await ids(api, admin)) == 4
    member = await api.user_token(await api.add_user("someone@contoso.example"))
    for token in (member, await api.app_token("reader-app")):
        refused = await api.client.get(PATH, headers=bearer(token))
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "accessDenied"
        assert refused.json()["error"]["innerError"]["code"] == "insufficient_privileges"
    assert (await api.client.get(PATH)).status_code == 401


@pytest.mark.parametrize(
    "query",
    [
        "$filter=userId eq u-a",
        "$filter=userPrincipalName eq 'x'",
        "$filter=userId eq 'a' or appId eq 'b'",
        "$filter=userId eq 'a' and userId eq 'b'",
        "$filter=createdDateTime ge 2025-13-45T00:00:00Z",
        "$filter=createdDateTime ge yesterday",
        "$filter=status/errorCode eq 1",
        "$top=0",
        "$skiptoken=not-ours",
    ],
)
async def test_bad_queries_get_a_graph_400(api: Api, query: str) -> None:
    response = await api.client.get(f"{PATH}?{query}", headers=bearer(await api.app_token("audit-app")))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalidRequest"
    assert error["innerError"]["code"] in {"unsupported_filter", "invalid_top", "invalid_skiptoken"}
    assert error["message"]


async def test_a_failed_log_write_is_counted_and_nothing_persisted(api: Api) -> None:
    hub = api.app.state.observability
    hub.writer.submit(SignInEntry("bad id", api.rt.clock(), None, None, 0, {}))
    await hub.writer.flush()
    metrics = hub.metrics.exposition().decode()
    assert "gateway_signin_log_dropped_total 1.0" in metrics
    assert await ids(api, await api.app_token("audit-app")) == []
