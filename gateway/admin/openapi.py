"""The admin API's OpenAPI 3.1 document, served at ``/v1.0/$openapi``.

Paths are written here; every schema is generated from ``gateway.admin.models`` (the same models
that validate requests), so the document and the API agree by construction.
"""

from __future__ import annotations

import functools
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import Response

from gateway.admin.caller import DIRECTORY_SCOPE
from gateway.admin.errors import CODES, api_endpoint
from gateway.admin.models import ErrorOut, InvitationCreate, InvitationOut, UserOut
from gateway.http import json_response

_REQUEST_MODELS: tuple[type[BaseModel], ...] = (InvitationCreate,)
_RESPONSE_MODELS: tuple[type[BaseModel], ...] = (InvitationOut, UserOut, ErrorOut)
_DESCRIPTIONS = {
    400: "Malformed JSON or an invalid field (`details` names each field).",
    401: "No access token, or one that is invalid, expired or revoked.",
    403: "The caller may not do this (`innerError.code` says why).",
    404: "The object named in the request does not exist.",
    409: "The address belongs to another object.",
    413: "The body is larger than 64 KiB.",
    415: "The body is not application/json.",
}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status in statuses:
        response = _json(_ref(ErrorOut), f"`{CODES[status]}`: {_DESCRIPTIONS[status]}")
        if status == 401:
            response["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
        responses[str(status)] = response
    return responses


@functools.cache
def document(issuer: str) -> dict[str, Any]:
    _, definitions = models_json_schema(
        [(m, "validation") for m in _REQUEST_MODELS] + [(m, "serialization") for m in _RESPONSE_MODELS],
        ref_template="#/components/schemas/{model}",
    )
    security: list[dict[str, list[str]]] = [{"bearer": []}]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Federation gateway admin API",
            "version": "1.0",
            "description": "Microsoft Graph names and shapes. Callers use an access token of this gateway: "
            f"an app's client_credentials token, or a user token with the `{DIRECTORY_SCOPE}` scope.",
        },
        "servers": [{"url": issuer}],
        "paths": {
            "/v1.0/invitations": {
                "post": {
                    "operationId": "createInvitation",
                    "summary": "Invite a guest (or reset a guest's redemption).",
                    "security": security,
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref(InvitationCreate)}},
                    },
                    "responses": {
                        "201": _json(_ref(InvitationOut), "The invitation, with the invited user's id."),
                        **_errors(400, 401, 403, 404, 409, 413, 415),
                    },
                }
            },
            "/v1.0/me": {
                "get": {
                    "operationId": "getMe",
                    "summary": "The signed-in user's own object.",
                    "security": security,
                    "responses": {"200": _json(_ref(UserOut), "The user."), **_errors(401, 403)},
                }
            },
            "/v1.0/me/revokeSignInSessions": {
                "post": {
                    "operationId": "revokeMySignInSessions",
                    "summary": "End every sign-in of the signed-in user.",
                    "security": security,
                    "responses": {"200": _json(REVOKED, "Revoked."), **_errors(401, 403)},
                }
            },
            "/v1.0/users/{user_id}": {
                "parameters": [USER_ID],
                "get": {
                    "operationId": "getUser",
                    "summary": "One user.",
                    "security": security,
                    "responses": {"200": _json(_ref(UserOut), "The user."), **_errors(401, 403, 404)},
                },
            },
            "/v1.0/users/{user_id}/revokeSignInSessions": {
                "parameters": [USER_ID],
                "post": {
                    "operationId": "revokeSignInSessions",
                    "summary": "End every SSO session and refresh token of a user; tell relying parties.",
                    "security": security,
                    "responses": {"200": _json(REVOKED, "Revoked."), **_errors(401, 403, 404)},
                },
            },
        },
        "components": {
            "schemas": definitions["$defs"],
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An opaque access token (`gwat_…`) from this gateway's /oauth2/token.",
                }
            },
        },
    }


USER_ID = {
    "name": "user_id",
    "in": "path",
    "required": True,
    "description": "The user's object id (a UUID).",
    "schema": {"type": "string", "pattern": "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"},
}
REVOKED = {
    "type": "object",
    "properties": {"@odata.context": {"type": "string"}, "value": {"type": "boolean"}},
    "required": ["value"],
}


@api_endpoint
async def openapi(request: Request) -> Response:
    return json_response(document(request.app.state.runtime.settings.issuer))
