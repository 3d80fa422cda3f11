"""``POST /v1.0/identity/conditionalAccess/evaluate``: the What-If answer over the admin API.

The gateway runs the What-If configuration of ``tests.integration.test_whatif`` plus the admin API's
automation apps and bootstrap administrators (``tests.admin.helpers``) and ``policy-app``, an app
granted ``Policy.Read.All``. Every refusal is checked for its Graph error, its audit record and for
nothing having been written (``Api.assert_unchanged``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from gateway.admin.whatif import WhatIfOut
from tests.admin.conftest import ApiFactory
from tests.admin.helpers import ADMIN, MEMBER, SECRET, USER_ADMIN, Api, applications, assert_error, bearer
from tests.integration.test_whatif import TENANT_B, People, seed, whatif_config

PATH = "/v1.0/identity/conditionalAccess/evaluate"
POLICY_APP = {
    "id": "policy-app",
    "name": "Policy reader",
    "oidc": {
        "client_id": "policy-app",
        "client_secret": SECRET,
        "redirect_uris": ["https://policy-app.example/cb"],
    },
    "api_permissions": ["Policy.Read.All"],
}


@dataclass
class Env:
    api: Api
    people: People
    token: str  # policy-app's

    async def post(self, body: Any, token: str | None = None, **kwargs: Any) -> Any:
        headers = bearer(token or self.token)
        if "content" in kwargs:
            headers["content-type"] = kwargs.pop("content_type", "application/json")
            return await self.api.client.post(PATH, headers=headers, **kwargs)
        return await self.api.client.post(PATH, json=body, headers=headers, **kwargs)


@pytest.fixture
async def env(api_with: ApiFactory, caplog: pytest.LogCaptureFixture) -> AsyncIterator[Env]:
    caplog.set_level(logging.INFO, logger="gateway.audit")
    admin_apps = [app for app in applications() if app["id"] != "demo"]
    async with api_with(**whatif_config(*admin_apps, POLICY_APP)) as api:
        people = await seed(api.rt.store)
        yield Env(api, people, await api.app_token("policy-app"))


def audits(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    records = [json.loads(r.getMessage()) for r in caplog.records if r.name == "gateway.audit"]
    return [r for r in records if r.get("action") == "whatif"]


async def test_an_app_with_policy_read_all_gets_the_answer(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    before = env.api.state()
    response = await env.post(
        {
            "userId": env.people.guest_b,
            "appId": "payroll",
            "claims": {"amr": ["pwd", "mfa"]},
            "ipAddress": "203.0.113.9",
        }
    )
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    answer = WhatIfOut.model_validate(response.json())
    assert answer.outcome == "userActionRequired" and answer.required == ["mfa"]
    assert answer.mfaChallenge == "resource" and answer.homeTenantId == TENANT_B
    assert answer.trust.upstreamMfa and not answer.trust.mfa
    assert {p.id: p.reason for p in answer.notAppliedPolicies}["off-block"] == "policy_disabled"
    env.api.assert_unchanged(before)
    [record] = audits(caplog)
    assert (record["result"], record["target"], record["reasons"]) == (
        "success",
        env.people.guest_b,
        ["evaluated"],
    )
    assert record["actor"] == {"kind": "app", "id": "policy-app"}
    assert record["detail"] == "outcome userActionRequired"


async def test_the_answer_matches_the_cli_and_library_for_refusals(env: Env) -> None:
    blocked = await env.post({"userId": env.people.guest_a, "appId": "payroll", "connectorId": "partner-c"})
    assert blocked.status_code == 200
    assert blocked.json()["outcome"] == "block"
    assert blocked.json()["crossTenantAccess"] == {"allowed": False, "reason": "cross_tenant_user_blocked"}
    mismatch = await env.post(
        {
            "userId": env.people.guest_a,
            "appId": "payroll",
            "connectorId": "partner-a",
            "homeTenantId": TENANT_B,
        }
    )
    assert mismatch.json()["blockReason"] == "home_tenant_mismatch"
    done = await env.post(
        {"userId": env.people.guest_b, "appId": "payroll", "mfaDoneHere": True, "claims": None}
    )
    assert done.json()["outcome"] == "grant" and done.json()["mfaSource"] == "resource"


async def test_a_global_administrator_may_evaluate(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    admin = await env.api.add_user(ADMIN)
    response = await env.post({"userId": env.people.member, "appId": "demo"}, await env.api.user_token(admin))
    assert response.status_code == 200, response.text
    assert response.json()["connector"] == "email"
    assert audits(caplog)[-1]["actor"] == {"kind": "user", "id": admin["id"]}


@pytest.mark.parametrize("who", ["admin-app", "reader-app", USER_ADMIN, MEMBER])
async def test_callers_that_may_not_read_policies_are_refused_before_the_body_is_read(
    env: Env, caplog: pytest.LogCaptureFixture, who: str
) -> None:
    if "@" in who:
        token = await env.api.user_token(await env.api.add_user(who))
    else:
        token = await env.api.app_token(who)
    before = env.api.state()
    response = await env.post(None, token, content=b"{not json")  # a 400 if the body were read
    error = assert_error(response, 403, "accessDenied", "insufficient_privileges")
    assert "Policy.Read.All" in error["message"]
    env.api.assert_unchanged(before)
    assert audits(caplog)[-1]["result"] == "failure"
    assert audits(caplog)[-1]["reasons"] == ["insufficient_privileges"]


async def test_no_token_is_401(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    response = await env.api.client.post(PATH, json={"userId": env.people.member, "appId": "demo"})
    assert_error(response, 401, "unauthenticated", "missing_token")
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert audits(caplog)[-1]["actor"] is None


BAD_BODIES = [
    ({"role": "x"}, "invalid_field", "role", "Extra inputs are not permitted"),
    ({"mfaDoneHere": "true"}, "invalid_field", "mfaDoneHere", "valid boolean"),
    ({"userId": "not-a-uuid"}, "invalid_field", "userId", "should match pattern"),
    ({"claims": ["amr"]}, "invalid_field", "claims", "valid dictionary"),
    ({"userId": "0b6f6d7e-0000-4000-8000-000000000000"}, "user_not_found", "userId", "no user has the id"),
    ({"appId": "nope"}, "app_not_found", "appId", "no application has the id 'nope'"),
    ({"connectorId": "ghost"}, "connector_not_found", "connectorId", "no connector has the id 'ghost'"),
    ({"ipAddress": "300.1.2.3"}, "invalid_ip_address", "ipAddress", "is not an IP address"),
    ({"homeTenantId": "a b"}, "invalid_home_tenant_id", "homeTenantId", "visible ASCII"),
    ({"claims": {"amr": "mfa"}}, "invalid_claims", "claims.amr", "must be a list"),
    ({"claims": {"auth_time": 99999999999}}, "invalid_claims", "claims.auth_time", "is in the future"),
]


@pytest.mark.parametrize(("fields", "reason", "target", "message"), BAD_BODIES)
async def test_bad_bodies_are_400_naming_the_field_and_nothing_is_written(
    env: Env, caplog: pytest.LogCaptureFixture, fields: dict[str, Any], reason: str, target: str, message: str
) -> None:
    before = env.api.state()
    response = await env.post({"userId": env.people.guest_b, "appId": "payroll", **fields})
    error = assert_error(response, 400, "invalidRequest", reason)
    [detail] = [d for d in error["details"] if d["target"] == target]
    assert message in detail["message"], detail
    assert error["message"].startswith(f"{target}: ")
    env.api.assert_unchanged(before)
    record = audits(caplog)[-1]
    assert (record["result"], record["reasons"]) == ("failure", [reason])


async def test_a_user_without_a_usable_identity_is_asked_for_the_connector(env: Env) -> None:
    response = await env.post({"userId": env.people.pending, "appId": "payroll"})
    error = assert_error(response, 400, "invalidRequest", "connector_required")
    assert error["details"][0]["target"] == "connectorId"


@pytest.mark.parametrize(
    ("content", "content_type", "status", "reason"),
    [
        (b"{not json", "application/json", 400, "malformed_json"),
        (b'{"userId": "a", "userId": "b"}', "application/json", 400, "malformed_json"),
        (b"[]", "application/json", 400, "malformed_json"),
        (b"{}", "text/plain", 415, "unsupported_media_type"),
        (b" " * (64 * 1024 + 1), "application/json", 413, "body_too_large"),
    ],
)
async def test_malformed_bodies(
    env: Env, content: bytes, content_type: str, status: int, reason: str
) -> None:
    before = env.api.state()
    response = await env.post(None, content=content, content_type=content_type)
    assert_error(
        response,
        status,
        {400: "invalidRequest", 413: "payloadTooLarge", 415: "unsupportedMediaType"}[status],
        reason,
    )
    env.api.assert_unchanged(before)


async def test_only_post_is_allowed(env: Env) -> None:
    response = await env.api.client.get(PATH, headers=bearer(env.token))
    assert_error(response, 405, "methodNotAllowed", "method_not_allowed")
    assert response.headers["allow"] == "POST"


async def test_the_openapi_document_describes_the_endpoint(env: Env) -> None:
    document = (await env.api.client.get("/v1.0/$openapi")).json()
    operation = document["paths"][PATH]["post"]
    assert operation["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/WhatIfRequest"
    }
    assert set(operation["responses"]) == {"200", "400", "401", "403", "413", "415"}
    schemas = document["components"]["schemas"]
    assert schemas["WhatIfRequest"]["required"] == ["userId", "appId"]
    assert schemas["WhatIfRequest"]["additionalProperties"] is False
    assert "outcome" in schemas["WhatIfOut"]["required"]
