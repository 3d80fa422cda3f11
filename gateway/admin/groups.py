"""``/v1.0/groups``: groups, their members and owners (Graph names and ``$ref`` shapes).

Who may do what:
- read (list, get, members, owners): apps with ``Group.Read.All`` / ``Group.ReadWrite.All`` /
  ``Directory.*``, members, and guests whose access level is ``sameAsMembers``; a ``limited`` guest
  may read one group and its members but not list groups (b2b-concepts §6); ``restricted``: nothing.
- create, edit, delete, and manage owners: apps with ``Group.ReadWrite.All`` /
  ``Directory.ReadWrite.All``, or Global / User Administrators.
- add and remove members: those, and the owners of *that* group (delegated management).
Bodies take only the properties of ``GroupCreate``; anything else is refused (``read_only_property``).
Every write, and every refused write, leaves an audit record.
"""

from __future__ import annotations

import re
import uuid
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from gateway import audit
from gateway.admin.body import read_json_object
from gateway.admin.caller import AdminCaller, authenticate
from gateway.admin.errors import ApiError, api_endpoint
from gateway.admin.graph import graph_user, reference_id
from gateway.admin.models import (
    UUID_PATTERN,
    DirectoryObjectRef,
    GroupCreate,
    GroupOut,
    GroupPatch,
    field_errors,
)
from gateway.admin.users import may_list_directory, page_body, page_request, refuse_unwritable
from gateway.directory.users import iso
from gateway.http import json_response
from gateway.policy.collaboration import INVITING_ADMIN_ROLES
from gateway.runtime import Runtime

GROUP_READ = frozenset(
    {"Group.Read.All", "Group.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
)
GROUP_WRITE = frozenset({"Group.ReadWrite.All", "Directory.ReadWrite.All"})
GROUP_PROPERTIES = tuple(GroupOut.model_fields)
_UUID = re.compile(UUID_PATTERN)
_NO_CONTENT = {"Cache-Control": "no-store"}
M = TypeVar("M", bound=BaseModel)


def graph_group(group: dict[str, Any]) -> dict[str, Any]:
    return {name: group[name] for name in GROUP_PROPERTIES if name in group}


def _may_write(caller: AdminCaller) -> bool:
    if caller.policy.kind == "app":
        return bool(caller.policy.app_permissions & GROUP_WRITE)
    return bool(caller.policy.roles & INVITING_ADMIN_ROLES)


def _may_read_one(rt: Runtime, caller: AdminCaller) -> bool:
    if may_list_directory(rt, caller, GROUP_READ):
        return True
    return caller.policy.kind == "user" and rt.settings.external_collaboration.guest_user_role == "limited"


def _audit(
    rt: Runtime, request: Request, action: str, caller: AdminCaller, target: str, result: str, reason: str
) -> None:
    audit.admin_action(
        rt, request, action=action, result=result, actor=caller.actor, target=target[:130], reasons=[reason]
    )


def _denied(what: str) -> ApiError:
    return ApiError(403, "insufficient_privileges", f"The caller may not {what}.")


async def _group(rt: Runtime, group_id: str) -> dict[str, Any]:
    group = await rt.store.get_group(group_id) if _UUID.match(group_id) else None
    if group is None:
        raise ApiError(404, "group_not_found", f"There is no group {group_id[:64]}.")
    return group


async def _body(request: Request, model: type[M]) -> tuple[dict[str, Any], M]:
    body = await read_json_object(request)
    refuse_unwritable(body, frozenset(model.model_fields))
    try:
        parsed = model.model_validate(body)
    except ValidationError as exc:
        raise ApiError(
            400, "invalid_field", "A field is invalid; see details.", details=field_errors(exc)
        ) from exc
    for name in ("displayName", "securityEnabled", "mailEnabled"):
        if name in body and body[name] is None:
            raise ApiError(400, "invalid_field", f"{name} cannot be null.")
    return body, parsed


@api_endpoint
async def create_group(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    caller = await authenticate(rt, request)
    try:
        if not _may_write(caller):
            raise _denied("create groups")
        body, model = await _body(request, GroupCreate)
    except ApiError as exc:
        _audit(rt, request, "createGroup", caller, "", "failure", exc.reason)
        raise
    group = {
        "securityEnabled": True,
        "mailEnabled": False,
        "description": None,
        **model.model_dump(include=set(body), exclude_none=True),
        "id": str(uuid.uuid4()),
        "createdDateTime": iso(rt.now()),
    }
    await rt.store.create_group(group)
    _audit(rt, request, "createGroup", caller, group["id"], "success", "group_created")
    headers = {"Location": f"{rt.settings.issuer}/v1.0/groups/{group['id']}"}
    return json_response(graph_group(group), 201, headers)


@api_endpoint
async def list_groups(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    caller = await authenticate(rt, request)
    if not may_list_directory(rt, caller, GROUP_READ):
        raise _denied("list groups")
    top, after = page_request(request)
    groups, cursor = await rt.store.list_groups(limit=top, after=after)
    return json_response(page_body(rt, "groups", "groups", [graph_group(g) for g in groups], cursor, top, {}))


@api_endpoint
async def get_group(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    caller = await authenticate(rt, request)
    if not _may_read_one(rt, caller):
        raise _denied("read groups")
    return json_response(graph_group(await _group(rt, request.path_params["group_id"])))


@api_endpoint
async def update_group(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    caller = await authenticate(rt, request)
    group_id = str(request.path_params["group_id"])
    try:
        if not _may_write(caller):
            raise _denied("change groups")
        group = await _group(rt, group_id)
        body, model = await _body(request, GroupPatch)
    except ApiError as exc:
        _audit(rt, request, "updateGroup", caller, group_id, "failure", exc.reason)
        raise
    await rt.store.update_group({**group, **model.model_dump(include=set(body))})
    _audit(rt, request, "updateGroup", caller, group_id, "success", "group_updated")
    return Response(status_code=204, headers=_NO_CONTENT)


@api_endpoint
async def delete_group(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    caller = await authenticate(rt, request)
    group_id = str(request.path_params["group_id"])
    try:
        if not _may_write(caller):
            raise _denied("delete groups")
        await _group(rt, group_id)
        if not await rt.store.delete_group(group_id):
            raise ApiError(404, "group_not_found", f"There is no group {group_id}.")
    except ApiError as exc:
        _audit(rt, request, "deleteGroup", caller, group_id, "failure", exc.reason)
        raise
    _audit(rt, request, "deleteGroup", caller, group_id, "success", "group_deleted")
    return Response(status_code=204, headers=_NO_CONTENT)


# -- members and owners --------------------------------------------------------------------------


async def _may_manage(rt: Runtime, caller: AdminCaller, group_id: str, relation: str) -> bool:
    if _may_write(caller):
        return True
    if relation != "members" or caller.user is None:
        return False
    return str(caller.user["id"]) in await rt.store.list_group_owners(group_id)


async def _list_related(request: Request, relation: str) -> Response:
    rt: Runtime = request.app.state.runtime
    caller = await authenticate(rt, request)
    if not _may_read_one(rt, caller):
        raise _denied(f"read group {relation}")
    group = await _group(rt, request.path_params["group_id"])
    store = rt.store
    ids = await (store.list_group_owners if relation == "owners" else store.list_group_members)(group["id"])
    users = [user for user in [await store.get_user(i) for i in ids] if user is not None]
    return json_response(
        {
            "@odata.context": f"{rt.settings.issuer}/v1.0/$metadata#users",
            "value": [graph_user(u) for u in users],
        }
    )


async def _add_related(request: Request, relation: str) -> Response:
    rt: Runtime = request.app.state.runtime
    caller = await authenticate(rt, request)
    group_id = str(request.path_params["group_id"])
    action = "addOwner" if relation == "owners" else "addMember"
    target = group_id
    try:
        await _group(rt, group_id)
        if not await _may_manage(rt, caller, group_id, relation):
            raise _denied(f"change the {relation} of this group")
        body = await read_json_object(request)
        refuse_unwritable(body, frozenset({"@odata.id"}))
        try:
            ref = DirectoryObjectRef.model_validate(body)
        except ValidationError as exc:
            raise ApiError(400, "invalid_field", "@odata.id is required.", details=field_errors(exc)) from exc
        user_id = reference_id(rt, ref.odata_id)
        target = f"{group_id}/{user_id}"
        add = rt.store.add_group_owner if relation == "owners" else rt.store.add_group_member
        try:
            added = await add(group_id, user_id)
        except KeyError as exc:
            raise ApiError(404, "user_not_found", f"There is no user {user_id}.") from exc
        if not added:
            raise ApiError(400, "reference_exists", f"The user is already one of the {relation}.")
    except ApiError as exc:
        _audit(rt, request, action, caller, target, "failure", exc.reason)
        raise
    _audit(rt, request, action, caller, target, "success", f"{relation[:-1]}_added")
    return Response(status_code=204, headers=_NO_CONTENT)


async def _remove_related(request: Request, relation: str) -> Response:
    rt: Runtime = request.app.state.runtime
    caller = await authenticate(rt, request)
    group_id = str(request.path_params["group_id"])
    user_id = str(request.path_params["user_id"])
    action = "removeOwner" if relation == "owners" else "removeMember"
    target = f"{group_id[:64]}/{user_id[:64]}"
    try:
        await _group(rt, group_id)
        if not await _may_manage(rt, caller, group_id, relation):
            raise _denied(f"change the {relation} of this group")
        remove = rt.store.remove_group_owner if relation == "owners" else rt.store.remove_group_member
        if not _UUID.match(user_id) or not await remove(group_id, user_id):
            raise ApiError(404, "reference_not_found", f"The user is not one of the {relation}.")
    except ApiError as exc:
        _audit(rt, request, action, caller, target, "failure", exc.reason)
        raise
    _audit(rt, request, action, caller, target, "success", f"{relation[:-1]}_removed")
    return Response(status_code=204, headers=_NO_CONTENT)


@api_endpoint
async def list_members(request: Request) -> Response:
    return await _list_related(request, "members")


@api_endpoint
async def list_owners(request: Request) -> Response:
    return await _list_related(request, "owners")


@api_endpoint
async def add_member(request: Request) -> Response:
    return await _add_related(request, "members")


@api_endpoint
async def add_owner(request: Request) -> Response:
    return await _add_related(request, "owners")


@api_endpoint
async def remove_member(request: Request) -> Response:
    return await _remove_related(request, "members")


@api_endpoint
async def remove_owner(request: Request) -> Response:
    return await _remove_related(request, "owners")
