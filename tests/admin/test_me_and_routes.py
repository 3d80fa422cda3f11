"""GET /v1.0/me, and what the /v1.0 tree answers for unknown paths and methods."""

from __future__ import annotations

from tests.admin.helpers import ADMIN, Api, assert_error, bearer


async def test_me_is_the_signed_in_user_graph_shaped(api: Api) -> None:
    admin = await api.add_user(ADMIN, internalNote="never shown")
    response = await api.client.get("/v1.0/me", headers=bearer(await api.user_token(admin)))
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    me = response.json()
    assert me == {k: v for k, v in admin.items() if k != "internalNote"}
    assert me["id"] == admin["id"] and me["userType"] == "Member"


async def test_me_needs_a_user_token(api: Api) -> None:
    response = await api.client.get("/v1.0/me", headers=bearer(await api.app_token()))
    assert_error(response, 403, "accessDenied", "app_token_not_allowed")
    assert_error(await api.client.get("/v1.0/me"), 401, "unauthenticated", "missing_token")


async def test_me_needs_directory_access(api: Api) -> None:
    token = await api.user_token(await api.add_user(ADMIN), scopes=("openid", "profile"))
    assert_error(
        await api.client.get("/v1.0/me", headers=bearer(token)), 403, "accessDenied", "insufficient_scope"
    )


async def test_unknown_paths_and_methods_are_graph_errors(api: Api) -> None:
    assert_error(await api.client.get("/v1.0/nothing/here"), 404, "itemNotFound", "resource_not_found")
    response = await api.client.get("/v1.0/invitations")
    assert_error(response, 405, "methodNotAllowed", "method_not_allowed")
    assert response.headers["allow"] == "POST"
    response = await api.client.delete("/v1.0/me")
    assert_error(response, 405, "methodNotAllowed", "method_not_allowed")
    assert response.headers["allow"] == "GET, HEAD"


async def test_a_client_request_id_is_echoed_only_when_well_formed(api: Api) -> None:
    response = await api.client.get("/v1.0/me", headers={"client-request-id": "abc-123"})
    assert response.headers["client-request-id"] == "abc-123"
    assert response.json()["error"]["innerError"]["client-request-id"] == "abc-123"
    response = await api.client.get("/v1.0/me", headers={"client-request-id": "<script>"})
    assert "client-request-id" not in response.headers
    assert "client-request-id" not in response.json()["error"]["innerError"]
