"""The OpenAPI document at /v1.0/$openapi, and a bounded schemathesis run against the in-process app.

Schemathesis drives the ASGI app directly (no sockets) on its own event-loop thread, so this test is
synchronous: the app's lifespan runs there and is shut down at the end. Positive and negative
examples (25 each per operation) must never get a 5xx, and every response must match the document
(status code, content type, headers, body schema); negative examples must be refused with a 4xx.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from gateway.admin.models import InvitationOut, UserOut
from gateway.app import create_app
from tests.admin.helpers import ADMIN, SECRET, Api, bearer, body, config
from tests.support.gateway_app import make_settings
from tests.support.smtp_server import SmtpServer

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


async def test_the_document_is_openapi_3_1_with_generated_schemas(api: Api) -> None:
    response = await api.client.get("/v1.0/$openapi")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"] == "3.1.0"
    assert set(document["paths"]) == {
        "/v1.0/invitations",
        "/v1.0/me",
        "/v1.0/me/revokeSignInSessions",
        "/v1.0/users/{user_id}",
        "/v1.0/users/{user_id}/revokeSignInSessions",
        "/v1.0/users",
        "/v1.0/directory/deletedItems/microsoft.graph.user",
        "/v1.0/directory/deletedItems/{object_id}/restore",
        "/v1.0/groups",
        "/v1.0/groups/{group_id}",
        "/v1.0/groups/{group_id}/members",
        "/v1.0/groups/{group_id}/members/$ref",
        "/v1.0/groups/{group_id}/members/{user_id}/$ref",
        "/v1.0/groups/{group_id}/owners",
        "/v1.0/groups/{group_id}/owners/$ref",
        "/v1.0/groups/{group_id}/owners/{user_id}/$ref",
        "/v1.0/servicePrincipals/{app_id}/appRoleAssignedTo",
        "/v1.0/servicePrincipals/{app_id}/appRoleAssignedTo/{assignment_id}",
        "/v1.0/users/{user_id}/appRoleAssignments",
        "/v1.0/servicePrincipals/{app_id}/owners",
        "/v1.0/servicePrincipals/{app_id}/owners/$ref",
        "/v1.0/servicePrincipals/{app_id}/owners/{user_id}/$ref",
        "/v1.0/identity/conditionalAccess/evaluate",
    }
    schemas = document["components"]["schemas"]
    assert {"InvitationCreate", "InvitationOut", "UserOut", "ErrorOut"} <= set(schemas)
    create = schemas["InvitationCreate"]
    assert create["required"] == ["invitedUserEmailAddress", "inviteRedirectUrl"]
    assert "pattern" in create["properties"]["invitedUserEmailAddress"]
    assert set(document["paths"]["/v1.0/invitations"]["post"]["responses"]) == {
        "201", "400", "401", "403", "404", "409", "413", "415",
    }  # fmt: skip


async def test_responses_match_the_response_models(api: Api) -> None:
    """The 201 and 200 bodies validate against the models the document's schemas come from."""
    response = await api.invite(await api.app_token(), body(sendInvitationMessage=False))
    InvitationOut.model_validate(response.json())
    me = await api.client.get("/v1.0/me", headers=bearer(await api.user_token(await api.add_user(ADMIN))))
    UserOut.model_validate(me.json())


def test_schemathesis_finds_no_server_error_and_no_drift(tmp_path: Path, smtp_server: SmtpServer) -> None:
    app = create_app(make_settings(tmp_path, smtp_server, **config()))
    try:
        schema = schemathesis.openapi.from_asgi("/v1.0/$openapi", app)
        with asgi.get_client(cast(Any, app)) as client:
            response = client.post(
                "/oauth2/token", data={"grant_type": "client_credentials"}, auth=("admin-app", SECRET)
            )
            assert response.status_code == 200, response.text
            auth = bearer(response.json()["access_token"])

        def run(mode: GenerationMode, checks: list[Any]) -> None:
            @given(case=schema.as_strategy(generation_mode=mode, headers=auth))
            @settings(
                max_examples=25, deadline=None, database=None, derandomize=True,
                suppress_health_check=list(HealthCheck),
            )  # fmt: skip
            def exercise(case: Any) -> None:
                case.call_and_validate(headers=auth, checks=checks)

            exercise()

        run(GenerationMode.POSITIVE, CHECKS)
        run(GenerationMode.NEGATIVE, [*CHECKS, negative_data_rejection])
    finally:
        asgi.shutdown_lifespans()
