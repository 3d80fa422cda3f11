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
from gateway.admin.models import (
    APP_ID_PATTERN,
    AppRoleAssignmentCollection,
    AppRoleAssignmentCreate,
    AppRoleAssignmentOut,
    DirectoryObjectRef,
    ErrorOut,
    GroupCollection,
    GroupCreate,
    GroupOut,
    GroupPatch,
    InvitationCreate,
    InvitationOut,
    UserCollection,
    UserOut,
    UserPatch,
)
from gateway.admin.whatif import PATH as WHAT_IF_PATH
from gateway.admin.whatif import WhatIfOut, WhatIfRequest
from gateway.http import json_response

_REQUEST_MODELS: tuple[type[BaseModel], ...] = (
    InvitationCreate, UserPatch, GroupCreate, GroupPatch, DirectoryObjectRef, AppRoleAssignmentCreate,
    WhatIfRequest,
)  # fmt: skip
_RESPONSE_MODELS: tuple[type[BaseModel], ...] = (
    InvitationOut, UserOut, UserCollection, GroupOut, GroupCollection, ErrorOut,
    AppRoleAssignmentOut, AppRoleAssignmentCollection, WhatIfOut,
)  # fmt: skip
_DESCRIPTIONS = {
    400: "Malformed JSON or an invalid field (`details` names each field).",
    401: "No access token, or one that is invalid, expired or revoked.",
    403: "The caller may not do this (`innerError.code` says why).",
    404: "The object named in the request does not exist.",
    409: "An address belongs to another object, or the assignment already exists.",
    413: "The body is larger than 64 KiB.",
    415: "The body is not application/json.",
}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _body(model: type[BaseModel]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": _ref(model)}}}


def _op(operation_id: str, summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "operationId": operation_id,
        "summary": summary,
        "security": [{"bearer": []}],
        **extra,
        "responses": responses,
    }


NO_CONTENT = {"204": {"description": "Done."}}


def _directory_paths() -> dict[str, Any]:
    """Users (list, update, delete, restore) and groups with their members and owners."""
    paging = [TOP, SKIPTOKEN]
    related: dict[str, Any] = {}
    for relation, noun in (("members", "member"), ("owners", "owner")):
        title = noun.title()
        related[f"/v1.0/groups/{{group_id}}/{relation}"] = {
            "parameters": [GROUP_ID],
            "get": _op(
                f"listGroup{title}s",
                f"The group's {relation} (users).",
                {"200": _json(_ref(UserCollection), f"The {relation}."), **_errors(401, 403, 404)},
            ),
        }
        related[f"/v1.0/groups/{{group_id}}/{relation}/$ref"] = {
            "parameters": [GROUP_ID],
            "post": _op(
                f"addGroup{title}",
                f"Add a user as {noun} (`@odata.id`: issuer/v1.0/directoryObjects/<id>).",
                {**NO_CONTENT, **_errors(400, 401, 403, 404, 413, 415)},
                requestBody=_body(DirectoryObjectRef),
            ),
        }
        related[f"/v1.0/groups/{{group_id}}/{relation}/{{user_id}}/$ref"] = {
            "parameters": [GROUP_ID, USER_ID],
            "delete": _op(
                f"removeGroup{title}", f"Remove a {noun}.", {**NO_CONTENT, **_errors(401, 403, 404)}
            ),
        }
    return {
        "/v1.0/users": {
            "get": _op(
                "listUsers",
                "A page of users, optionally filtered.",
                {"200": _json(_ref(UserCollection), "A page."), **_errors(400, 401, 403)},
                parameters=[*paging, FILTER],
            ),
        },
        "/v1.0/directory/deletedItems/microsoft.graph.user": {
            "get": _op(
                "listDeletedUsers",
                "Soft-deleted users (restorable for 30 days).",
                {"200": _json(_ref(UserCollection), "A page."), **_errors(400, 401, 403)},
                parameters=paging,
            ),
        },
        "/v1.0/directory/deletedItems/{object_id}/restore": {
            "parameters": [OBJECT_ID],
            "post": _op(
                "restoreDeletedUser",
                "Restore a soft-deleted user.",
                {"200": _json(_ref(UserOut), "The restored user."), **_errors(401, 403, 404)},
            ),
        },
        "/v1.0/groups": {
            "get": _op(
                "listGroups",
                "A page of groups.",
                {"200": _json(_ref(GroupCollection), "A page."), **_errors(400, 401, 403)},
                parameters=paging,
            ),
            "post": _op(
                "createGroup",
                "Create a group.",
                {"201": _json(_ref(GroupOut), "The group."), **_errors(400, 401, 403, 413, 415)},
                requestBody=_body(GroupCreate),
            ),
        },
        "/v1.0/groups/{group_id}": {
            "parameters": [GROUP_ID],
            "get": _op(
                "getGroup",
                "One group.",
                {"200": _json(_ref(GroupOut), "The group."), **_errors(401, 403, 404)},
            ),
            "patch": _op(
                "updateGroup",
                "Change a group's properties.",
                {**NO_CONTENT, **_errors(400, 401, 403, 404, 413, 415)},
                requestBody=_body(GroupPatch),
            ),
            "delete": _op("deleteGroup", "Delete a group.", {**NO_CONTENT, **_errors(401, 403, 404)}),
        },
        **related,
    }


def _assignment_paths() -> dict[str, Any]:
    """App role assignments of an application and of a user, and the application's owners."""
    assignments = _json(_ref(AppRoleAssignmentCollection), "The assignments.")
    return {
        "/v1.0/servicePrincipals/{app_id}/appRoleAssignedTo": {
            "parameters": [APP_ID],
            "get": _op(
                "listAppRoleAssignedTo",
                "The users and groups assigned to the application.",
                {"200": assignments, **_errors(401, 403, 404)},
            ),
            "post": _op(
                "createAppRoleAssignment",
                "Assign a user or group a role of the application (or default access).",
                {
                    "201": _json(_ref(AppRoleAssignmentOut), "The assignment."),
                    **_errors(400, 401, 403, 404, 409, 413, 415),
                },
                requestBody=_body(AppRoleAssignmentCreate),
            ),
        },
        "/v1.0/servicePrincipals/{app_id}/appRoleAssignedTo/{assignment_id}": {
            "parameters": [APP_ID, ASSIGNMENT_ID],
            "delete": _op(
                "deleteAppRoleAssignment", "Remove an assignment.", {**NO_CONTENT, **_errors(401, 403, 404)}
            ),
        },
        "/v1.0/users/{user_id}/appRoleAssignments": {
            "parameters": [USER_ID],
            "get": _op(
                "listUserAppRoleAssignments",
                "The user's direct app role assignments.",
                {"200": assignments, **_errors(401, 403, 404)},
            ),
        },
        "/v1.0/servicePrincipals/{app_id}/owners": {
            "parameters": [APP_ID],
            "get": _op(
                "listAppOwners",
                "The application's owners (users).",
                {"200": _json(_ref(UserCollection), "The owners."), **_errors(401, 403, 404)},
            ),
        },
        "/v1.0/servicePrincipals/{app_id}/owners/$ref": {
            "parameters": [APP_ID],
            "post": _op(
                "addAppOwner",
                "Add a user as owner (`@odata.id`: issuer/v1.0/directoryObjects/<id>).",
                {**NO_CONTENT, **_errors(400, 401, 403, 404, 413, 415)},
                requestBody=_body(DirectoryObjectRef),
            ),
        },
        "/v1.0/servicePrincipals/{app_id}/owners/{user_id}/$ref": {
            "parameters": [APP_ID, USER_ID],
            "delete": _op("removeAppOwner", "Remove an owner.", {**NO_CONTENT, **_errors(401, 403, 404)}),
        },
    }


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
                "patch": _op(
                    "updateUser",
                    "Change a user's writable properties; other keys are refused.",
                    {**NO_CONTENT, **_errors(400, 401, 403, 404, 409, 413, 415)},
                    requestBody=_body(UserPatch),
                ),
                "delete": _op(
                    "deleteUser",
                    "Soft-delete a user (restorable for 30 days); ends their sign-ins.",
                    {**NO_CONTENT, **_errors(401, 403, 404)},
                ),
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
            **_directory_paths(),
            **_assignment_paths(),
            WHAT_IF_PATH: {
                "post": _op(
                    "evaluateConditionalAccess",
                    "What If: the cross-tenant and conditional-access outcome of a sign-in, without one.",
                    {
                        "200": _json(_ref(WhatIfOut), "The policies that apply, those that do not and why."),
                        **_errors(400, 401, 403, 413, 415),
                    },
                    requestBody=_body(WhatIfRequest),
                ),
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
GROUP_ID = {**USER_ID, "name": "group_id", "description": "The group's object id (a UUID)."}
OBJECT_ID = {**USER_ID, "name": "object_id", "description": "The deleted user's object id (a UUID)."}
APP_ID = {
    "name": "app_id",
    "in": "path",
    "required": True,
    "description": "The application's id (its `id` in the YAML).",
    "schema": {"type": "string", "pattern": APP_ID_PATTERN},
}
ASSIGNMENT_ID = {**USER_ID, "name": "assignment_id", "description": "The assignment's id (a UUID)."}
TOP = {
    "name": "$top",
    "in": "query",
    "required": False,
    "description": "Page size, 1 to 999 (default 100).",
    "schema": {"type": "integer", "minimum": 1, "maximum": 999},
}
SKIPTOKEN = {
    "name": "$skiptoken",
    "in": "query",
    "required": False,
    "description": "The opaque token of an `@odata.nextLink`.",
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"},
}
FILTER = {
    "name": "$filter",
    "in": "query",
    "required": False,
    "description": "`mail eq '<address>'`, `externalUserState eq 'PendingAcceptance'|'Accepted'`, "
    "`userType eq 'Guest'|'Member'`, joined by ` and `; anything else: 400 `unsupported_filter`.",
    "schema": {"type": "string", "maxLength": 600},
}
REVOKED = {
    "type": "object",
    "properties": {"@odata.context": {"type": "string"}, "value": {"type": "boolean"}},
    "required": ["value"],
}


@api_endpoint
async def openapi(request: Request) -> Response:
    return json_response(document(request.app.state.runtime.settings.issuer))
