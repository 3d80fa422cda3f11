"""Group and app-role claims (opt-in per app) and apps that require assignment."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.admin.conftest import ApiFactory
from tests.admin.helpers import Api, applications
from tests.support import flows

GUEST = "guest@fabrikam.example"
READER = "7d9e0c3a-1b2c-4d5e-8f90-0a1b2c3d4e5f"
EDITOR = "8e0f1d4b-2c3d-4e6f-9a01-1b2c3d4e5f60"
GROUP = "5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d"


def app(app_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": app_id,
        "name": app_id.title(),
        "oidc": {"client_id": app_id, "redirect_uris": [f"https://{app_id}.example/cb"]},
        "app_roles": [
            {"id": READER, "value": "Reader", "display_name": "Reader"},
            {"id": EDITOR, "value": "Editor", "display_name": "Editor"},
        ],
        **fields,
    }


@pytest.fixture
async def api(api_with: ApiFactory) -> AsyncIterator[Api]:
    apps = [
        *applications(),
        app("claims", claims={"groups": True, "roles": True}),
        app("gated", assignment_required=True),
    ]
    async with api_with(applications=apps) as running:
        yield running


async def guest_id(api: Api) -> str:
    await flows.sign_in(api.client, api.smtp, GUEST)  # signs up and leaves an SSO session
    [user] = [u for u in api.state().users.values() if u.get("mail") == GUEST]
    return str(user["id"])


async def assign(api: Api, principal: str, principal_type: str, resource: str, role: str) -> None:
    assert await api.rt.store.add_app_role_assignment(
        {
            "id": f"{principal[:8]}-{role[:4]}-4000-8000-{resource.ljust(12, '0')[:12]}",
            "appRoleId": role,
            "principalId": principal,
            "principalType": principal_type,
            "resourceId": resource,
            "createdDateTime": "2026-11-26T00:00:00Z",
        }
    )


async def id_token_claims(api: Api, client_id: str) -> dict[str, Any]:
    req = (
        flows.AuthRequest()
        if client_id == "demo"
        else flows.AuthRequest(client_id=client_id, redirect_uri=f"https://{client_id}.example/cb")
    )
    response = await api.client.get(f"/oauth2/authorize?{req.query()}")  # SSO: straight back with a code
    query = flows.query_of(response.headers["location"])
    tokens = (await flows.exchange(api.client, req, query["code"])).json()
    keys = KeySet.import_key_set((await api.client.get("/oauth2/jwks")).json())
    return dict(jwt.decode(tokens["id_token"], keys, algorithms=["ES256"]).claims)


async def test_groups_and_roles_claims_direct_and_through_a_group(api: Api) -> None:
    user_id = await guest_id(api)
    await api.rt.store.create_group(
        {"id": GROUP, "displayName": "Editors", "createdDateTime": "2026-11-26T00:00:00Z"}
    )
    assert await api.rt.store.add_group_member(GROUP, user_id)
    await assign(api, user_id, "User", "claims", READER)
    await assign(api, GROUP, "Group", "claims", EDITOR)
    claims = await id_token_claims(api, "claims")
    assert claims["groups"] == [GROUP]
    assert claims["roles"] == ["Editor", "Reader"]


async def test_claims_are_opt_in(api: Api) -> None:
    await guest_id(api)
    claims = await id_token_claims(api, "demo")
    assert "groups" not in claims and "roles" not in claims


async def test_an_app_that_requires_assignment_refuses_unassigned_users(api: Api) -> None:
    user_id = await guest_id(api)
    req = flows.AuthRequest(client_id="gated", redirect_uri="https://gated.example/cb")
    refused = await api.client.get(f"/oauth2/authorize?{req.query()}")
    query = flows.query_of(refused.headers["location"])
    assert query["error"] == "access_denied" and "code" not in query and query["state"] == req.state
    await assign(api, user_id, "User", "gated", READER)
    allowed = await api.client.get(f"/oauth2/authorize?{req.query()}")
    assert "code" in flows.query_of(allowed.headers["location"])
