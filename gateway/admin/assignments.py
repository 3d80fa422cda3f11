"""App role assignments and app owners: ``/v1.0/servicePrincipals/{app id}/appRoleAssignedTo``,
``/v1.0/servicePrincipals/{app id}/owners`` and ``/v1.0/users/{id}/appRoleAssignments`` (Graph names).

The service principal's id is the application's YAML ``id``. An assignment's ``appRoleId`` is one of
the app's ``app_roles`` or ``DEFAULT_ACCESS_ROLE_ID`` ("default access", for apps with
``assignment_required`` and no roles to pick). Who may do what:

- assign and unassign, and list an app's assignments: apps with ``AppRoleAssignment.ReadWrite.All``
  / ``Directory.ReadWrite.All``, Global / User Administrators, and the owners of *that* app
  (delegated management). Listing is also open to apps with ``Directory.Read.All``.
- a user's assignments: the same administrators and readers, and the user themselves.
- list, add and remove app owners: administrators only (``Directory.ReadWrite.All`` apps, Global /
  User Administrators); ``Directory.Read.All`` apps may list them.
Every write, and every refused write, leaves an audit record. ``assign`` is also used by the owners'
page (``gateway.ownerpages``), so the page and the API apply the same rules.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from gateway import audit
from gateway.admin.body import read_json_object
from gateway.admin.caller import AdminCaller, authenticate
from gateway.admin.errors import ApiError, api_endpoint
from gateway.admin.graph import graph_user, reference_id
from gateway.admin.models import (
    DEFAULT_ACCESS_ROLE_ID,
    UUID_PATTERN,
    AppRoleAssignmentCreate,
    DirectoryObjectRef,
    field_errors,
)
from gateway.admin.users import refuse_unwritable
from gateway.directory.users import iso
from gateway.http import json_response
from gateway.policy.collaboration import INVITING_ADMIN_ROLES
from gateway.runtime import Runtime
from gateway.settings.models import Application

ASSIGN_WRITE = frozenset({"AppRoleAssignment.ReadWrite.All", "Directory.ReadWrite.All"})
ASSIGN_READ = ASSIGN_WRITE | {"Directory.Read.All"}
OWNER_WRITE = frozenset({"Directory.ReadWrite.All"})
OWNER_READ = OWNER_WRITE | {"Directory.Read.All"}
_UUID = re.compile(UUID_PATTERN)
_NO_CONTENT = {"Cache-Control": "no-store"}


def _audit(
    rt: Runtime, request: Request, action: str, actor: dict[str, str], target: str, result: str, reason: str
) -> None:
    audit.admin_action(
        rt, request, action=action, result=result, actor=actor, target=target[:130], reasons=[reason]
    )


def _denied(what: str) -> ApiError:
    return ApiError(403, "insufficient_privileges", f"The caller may not {what}.")


def _is_admin(caller: AdminCaller, permissions: frozenset[str]) -> bool:
    if caller.policy.kind == "app":
        return bool(caller.policy.app_permissions & permissions)
    return bool(caller.policy.roles & INVITING_ADMIN_ROLES)


async def may_assign(rt: Runtime, caller: AdminCaller, app_id: str) -> bool:
    """Administrators with the permission, or an owner of this app."""
    if _is_admin(caller, ASSIGN_WRITE):
        return True
    return caller.user is not None and str(caller.user["id"]) in await rt.store.list_app_owners(app_id)


def application(rt: Runtime, app_id: str) -> Application:
    app = rt.settings.application(app_id)
    if app is None:
        raise ApiError(404, "app_not_found", f"There is no application {app_id[:64]}.")
    return app


def role_ids(app: Application) -> frozenset[str]:
    return frozenset({DEFAULT_ACCESS_ROLE_ID, *(role.id for role in app.app_roles)})


def graph_assignment(assignment: dict[str, Any]) -> dict[str, Any]:
    names = ("id", "appRoleId", "principalId", "principalType", "principalDisplayName",
             "resourceId", "resourceDisplayName", "createdDateTime")  # fmt: skip
    return {name: assignment[name] for name in names if name in assignment}


async def assign(rt: Runtime, app: Application, principal_id: str, app_role_id: str) -> dict[str, Any]:
    """Store a new assignment of a live user or a group to ``app``; ApiError when refused."""
    if app_role_id not in role_ids(app):
        raise ApiError(
            400, "unknown_app_role",
            f"appRoleId must be one of the app's roles or {DEFAULT_ACCESS_ROLE_ID} (default access).",
        )  # fmt: skip
    valid = _UUID.match(principal_id) is not None
    user = await rt.store.get_user(principal_id) if valid else None
    group = await rt.store.get_group(principal_id) if valid and user is None else None
    principal = user or group
    if principal is None:
        raise ApiError(404, "principal_not_found", f"There is no user or group {principal_id[:64]}.")
    assignment = {
        "id": str(uuid.uuid4()),
        "appRoleId": app_role_id,
        "principalId": principal_id,
        "principalType": "User" if user is not None else "Group",
        "principalDisplayName": principal.get("displayName"),
        "resourceId": app.id,
        "resourceDisplayName": app.name,
        "createdDateTime": iso(rt.now()),
    }
    try:
        added = await rt.store.add_app_role_assignment(assignment)
    except KeyError as exc:
        raise ApiError(404, "principal_not_found", f"There is no user or group {principal_id}.") from exc
    if not added:
        raise ApiError(409, "assignment_exists", "The principal already has this role in this app.")
    return assignment


def _collection(rt: Runtime, assignments: list[dict[str, Any]]) -> Response:
    return json_response(
        {
            "@odata.context": f"{rt.settings.issuer}/v1.0/$metadata#appRoleAssignments",
            "value": [graph_assignment(a) for a in assignments],
        }
    )


@api_endpoint
async def list_assigned_to(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    caller = await authenticate(rt, request)
    app = application(rt, str(request.path_params["app_id"]))
    if not (_is_admin(caller, ASSIGN_READ) or await may_assign(rt, caller, app.id)):
        raise _denied("read this application's assignments")
    return _collection(rt, await rt.store.list_app_role_assignments(resource_id=app.id))


@api_endpoint
async def create_assignment(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    caller = await authenticate(rt, request)
    app_id = str(request.path_params["app_id"])
    target = app_id
    try:
        app = application(rt, app_id)
        if not await may_assign(rt, caller, app.id):
            raise _denied("assign users or groups to this application")
        body = await read_json_object(request)
        refuse_unwritable(body, frozenset(AppRoleAssignmentCreate.model_fields))
        try:
            model = AppRoleAssignmentCreate.model_validate(body)
        except ValidationError as exc:
            raise ApiError(
                400, "invalid_field", "A field is invalid; see details.", details=field_errors(exc)
            ) from exc
        if model.resourceId != app.id:
            raise ApiError(400, "resource_mismatch", "resourceId must be the application in the path.")
        target = f"{app.id}/{model.principalId}"
        assignment = await assign(rt, app, model.principalId, model.appRoleId)
    except ApiError as exc:
        _audit(rt, request, "addAppRoleAssignment", caller.actor, target, "failure", exc.reason)
        raise
    target = f"{app.id}/{assignment['id']}"
    _audit(rt, request, "addAppRoleAssignment", caller.actor, target, "success", "assignment_added")
    location = f"{rt.settings.issuer}/v1.0/servicePrincipals/{app.id}/appRoleAssignedTo/{assignment['id']}"
    return json_response(graph_assignment(assignment), 201, {"Location": location})


@api_endpoint
async def delete_assignment(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    caller = await authenticate(rt, request)
    app_id = str(request.path_params["app_id"])
    assignment_id = str(request.path_params["assignment_id"])
    target = f"{app_id[:64]}/{assignment_id[:64]}"
    try:
        app = application(rt, app_id)
        if not await may_assign(rt, caller, app.id):
            raise _denied("remove assignments of this application")
        assigned = await rt.store.list_app_role_assignments(resource_id=app.id)
        if not any(a["id"] == assignment_id for a in assigned):
            raise ApiError(404, "assignment_not_found", "There is no such assignment to this application.")
        if not await rt.store.remove_app_role_assignment(assignment_id):
            raise ApiError(404, "assignment_not_found", "There is no such assignment to this application.")
    except ApiError as exc:
        _audit(rt, request, "removeAppRoleAssignment", caller.actor, target, "failure", exc.reason)
        raise
    _audit(rt, request, "removeAppRoleAssignment", caller.actor, target, "success", "assignment_removed")
    return Response(status_code=204, headers=_NO_CONTENT)


@api_endpoint
async def list_user_assignments(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    caller = await authenticate(rt, request)
    user_id = str(request.path_params["user_id"])
    own = caller.user is not None and caller.user["id"] == user_id
    if not (own or _is_admin(caller, ASSIGN_READ)):
        raise _denied("read this user's assignments")
    user = await rt.store.get_user(user_id) if _UUID.match(user_id) else None
    if user is None:
        raise ApiError(404, "user_not_found", f"There is no user {user_id[:64]}.")
    return _collection(rt, await rt.store.list_app_role_assignments(principal_id=user_id))


# -- app owners ------------------------------------------------------------------------------------


@api_endpoint
async def list_app_owners(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    caller = await authenticate(rt, request)
    app = application(rt, str(request.path_params["app_id"]))
    if not _is_admin(caller, OWNER_READ):
        raise _denied("read application owners")
    users = [await rt.store.get_user(i) for i in await rt.store.list_app_owners(app.id)]
    return json_response(
        {
            "@odata.context": f"{rt.settings.issuer}/v1.0/$metadata#users",
            "value": [graph_user(u) for u in users if u is not None],
        }
    )


@api_endpoint
async def add_app_owner(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    caller = await authenticate(rt, request)
    app_id = str(request.path_params["app_id"])
    target = app_id[:64]
    try:
        app = application(rt, app_id)
        if not _is_admin(caller, OWNER_WRITE):
            raise _denied("change application owners")
        body = await read_json_object(request)
        refuse_unwritable(body, frozenset({"@odata.id"}))
        try:
            ref = DirectoryObjectRef.model_validate(body)
        except ValidationError as exc:
            raise ApiError(400, "invalid_field", "@odata.id is required.", details=field_errors(exc)) from exc
        user_id = reference_id(rt, ref.odata_id)
        target = f"{app.id}/{user_id}"
        try:
            added = await rt.store.add_app_owner(app.id, user_id)
        except KeyError as exc:
            raise ApiError(404, "user_not_found", f"There is no user {user_id}.") from exc
        if not added:
            raise ApiError(400, "reference_exists", "The user is already an owner.")
    except ApiError as exc:
        _audit(rt, request, "addAppOwner", caller.actor, target, "failure", exc.reason)
        raise
    _audit(rt, request, "addAppOwner", caller.actor, target, "success", "owner_added")
    return Response(status_code=204, headers=_NO_CONTENT)


@api_endpoint
async def remove_app_owner(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    caller = await authenticate(rt, request)
    app_id = str(request.path_params["app_id"])
    user_id = str(request.path_params["user_id"])
    target = f"{app_id[:64]}/{user_id[:64]}"
    try:
        app = application(rt, app_id)
        if not _is_admin(caller, OWNER_WRITE):
            raise _denied("change application owners")
        if not _UUID.match(user_id) or not await rt.store.remove_app_owner(app.id, user_id):
            raise ApiError(404, "reference_not_found", "The user is not an owner.")
    except ApiError as exc:
        _audit(rt, request, "removeAppOwner", caller.actor, target, "failure", exc.reason)
        raise
    _audit(rt, request, "removeAppOwner", caller.actor, target, "success", "owner_removed")
    return Response(status_code=204, headers=_NO_CONTENT)
