"""Users (Graph names): ``/v1.0/users`` (list: ``$top``, ``$skiptoken``, a simple ``$filter``),
``/v1.0/users/{id}`` (get, patch, delete), ``revokeSignInSessions``, and the deleted items
(``/v1.0/directory/deletedItems/microsoft.graph.user``, ``…/{id}/restore``).

Reading a user needs ``User.Read.All`` / ``User.ReadWrite.All`` / ``Directory.*`` (apps) or an
administrator role (users); anyone may read and revoke themselves through ``/me``. Listing: apps
with a read permission, members, and guests only when the guest access level is ``sameAsMembers``
(b2b-concepts §6). Patching, deleting, restoring and revoking need a write permission or the Global
/ User Administrator role, for one's own object too. ``PATCH`` writes only ``WRITABLE``; any other
key is refused (``read_only_property``), never ignored. Deleting is a soft delete (restorable for 30
days, §10); users deleted longer ago are purged, at most once an hour, when deleted items are listed.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, urlencode

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from gateway import audit
from gateway.admin.body import read_json_object
from gateway.admin.caller import AdminCaller, authenticate
from gateway.admin.errors import ApiError, api_endpoint
from gateway.admin.graph import graph_user
from gateway.admin.models import UserPatch, field_errors
from gateway.directory.revocation import revoke_sign_in_sessions
from gateway.http import json_response
from gateway.invitations.addresses import MAX_ADDRESS
from gateway.policy.collaboration import INVITING_ADMIN_ROLES
from gateway.runtime import Runtime

READ_PERMISSIONS = frozenset(
    {"User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
)
WRITE_PERMISSIONS = frozenset({"User.ReadWrite.All", "Directory.ReadWrite.All"})


def _may(caller: AdminCaller, permissions: frozenset[str]) -> bool:
    if caller.policy.kind == "app":
        return bool(caller.policy.app_permissions & permissions)
    return bool(caller.policy.roles & INVITING_ADMIN_ROLES)


async def _target(
    rt: Runtime, caller: AdminCaller, user_id: str, permissions: frozenset[str]
) -> dict[str, object]:
    own = caller.user is not None and caller.user["id"] == user_id
    if not own and not _may(caller, permissions):
        raise ApiError(403, "insufficient_privileges", "The caller may not do this to that user.")
    user = await rt.store.get_user(user_id) if len(user_id) <= 64 else None
    if user is None:
        raise ApiError(404, "user_not_found", f"There is no user {user_id[:64]}.")
    return user


@api_endpoint
async def get_user(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    caller = await authenticate(rt, request)
    user = await _target(rt, caller, request.path_params["user_id"], READ_PERMISSIONS)
    return json_response(graph_user(dict(user)))


async def _revoke(request: Request, user_id: str) -> Response:
    rt: Runtime = request.app.state.runtime
    caller = await authenticate(rt, request)
    try:
        user = await _target(rt, caller, user_id, WRITE_PERMISSIONS)
    except ApiError as exc:
        audit.admin_action(
            rt,
            request,
            action="revokeSignInSessions",
            result="failure",
            actor=caller.actor,
            target=user_id[:64],
            reasons=[exc.reason],
        )
        raise
    await revoke_sign_in_sessions(rt, dict(user))
    audit.admin_action(
        rt,
        request,
        action="revokeSignInSessions",
        result="success",
        actor=caller.actor,
        target=user_id,
        reasons=["sessions_revoked"],
    )
    return json_response(
        {"@odata.context": f"{rt.settings.issuer}/v1.0/$metadata#Edm.Boolean", "value": True}
    )


@api_endpoint
async def revoke_user(request: Request) -> Response:
    return await _revoke(request, request.path_params["user_id"])


@api_endpoint
async def revoke_me(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    caller = await authenticate(rt, request)
    if caller.user is None:
        raise ApiError(
            403, "app_token_not_allowed", "/me needs a signed-in user's token; an app token has no user."
        )
    return await _revoke(request, str(caller.user["id"]))


# -- listing -------------------------------------------------------------------------------------

MAX_TOP = 999
DEFAULT_TOP = 100
PURGE_AFTER_SECONDS = 30 * 24 * 3600
PURGE_INTERVAL_SECONDS = 3600
_TOP = re.compile(r"^[0-9]{1,3}$")
_CURSOR = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_CLAUSE = re.compile(r"^(mail|externalUserState|userType) eq '([^']*)'$")
_FILTER_VALUES = {
    "externalUserState": frozenset({"PendingAcceptance", "Accepted"}),
    "userType": frozenset({"Guest", "Member"}),
}
_STORE_NAMES = {"mail": "mail", "externalUserState": "external_user_state", "userType": "user_type"}


def _unsupported(message: str) -> ApiError:
    return ApiError(400, "unsupported_filter", message)


def parse_filter(text: str) -> dict[str, str]:
    """``mail eq '…'``, ``externalUserState eq '…'``, ``userType eq '…'`` joined by `` and ``,
    each property at most once -> the ``list_users`` keyword arguments; anything else: 400."""
    if len(text) > 600:
        raise _unsupported("$filter is too long.")
    filters: dict[str, str] = {}
    for clause in text.split(" and "):
        match = _CLAUSE.match(clause.strip())
        if match is None:
            raise _unsupported(
                "Only mail eq '<address>', externalUserState eq 'PendingAcceptance'|'Accepted' and "
                "userType eq 'Guest'|'Member', joined by 'and', are supported."
            )
        name, value = match.groups()
        if _STORE_NAMES[name] in filters:
            raise _unsupported(f"{name} appears more than once in $filter.")
        allowed = _FILTER_VALUES.get(name)
        if (allowed is not None and value not in allowed) or not value or len(value) > MAX_ADDRESS:
            raise _unsupported(f"$filter has an unsupported value for {name}.")
        filters[_STORE_NAMES[name]] = value
    return filters


def page_request(request: Request) -> tuple[int, str | None]:
    """``$top`` (1..999, default 100) and ``$skiptoken`` (the opaque cursor of a nextLink)."""
    top_text = request.query_params.get("$top")
    top = DEFAULT_TOP
    if top_text is not None:
        if _TOP.match(top_text) is None or not 1 <= int(top_text) <= MAX_TOP:
            raise ApiError(400, "invalid_top", f"$top must be an integer from 1 to {MAX_TOP}.")
        top = int(top_text)
    token = request.query_params.get("$skiptoken")
    if token is not None and _CURSOR.match(token) is None:
        raise ApiError(400, "invalid_skiptoken", "$skiptoken is not one this API issued.")
    return top, token


def page_body(
    rt: Runtime, path: str, context: str, value: list[dict[str, Any]], cursor: str | None,
    top: int, params: dict[str, str],
) -> dict[str, Any]:  # fmt: skip
    body: dict[str, Any] = {"@odata.context": f"{rt.settings.issuer}/v1.0/$metadata#{context}"}
    body["value"] = value
    if cursor is not None:
        query = urlencode({**params, "$top": str(top), "$skiptoken": cursor}, quote_via=quote)
        body["@odata.nextLink"] = f"{rt.settings.issuer}/v1.0/{path}?{query}"
    return body


def may_list_directory(rt: Runtime, caller: AdminCaller, permissions: frozenset[str]) -> bool:
    """Apps need a read permission; members may list; guests only with member rights (§6)."""
    if caller.policy.kind == "app":
        return bool(caller.policy.app_permissions & permissions)
    if caller.policy.user_type == "Member":
        return True
    return rt.settings.external_collaboration.guest_user_role == "sameAsMembers"


@api_endpoint
async def list_users(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    caller = await authenticate(rt, request)
    if not may_list_directory(rt, caller, READ_PERMISSIONS):
        raise ApiError(403, "insufficient_privileges", "The caller may not list users.")
    top, after = page_request(request)
    filter_text = request.query_params.get("$filter")
    filters = parse_filter(filter_text) if filter_text is not None else {}
    users, cursor = await rt.store.list_users(
        mail=filters.get("mail"),
        external_user_state=filters.get("external_user_state"),
        user_type=filters.get("user_type"),
        limit=top,
        after=after,
    )
    params = {"$filter": filter_text} if filter_text is not None else {}
    return json_response(page_body(rt, "users", "users", [graph_user(u) for u in users], cursor, top, params))


# -- update and delete ---------------------------------------------------------------------------

WRITABLE = frozenset(UserPatch.model_fields)


def refuse_unwritable(body: dict[str, Any], writable: frozenset[str]) -> None:
    """No mass assignment: a key the endpoint does not write is refused (400), never ignored."""
    extra = sorted(key for key in body if key not in writable)
    if extra:
        details = [
            {"code": "read_only_property", "message": "Not writable here.", "target": k[:64]}
            for k in extra[:20]
        ]
        raise ApiError(
            400, "read_only_property",
            f"Only {', '.join(sorted(writable))} may be written.", details=details,
        )  # fmt: skip


def _invalid(exc: ValidationError) -> ApiError:
    return ApiError(400, "invalid_field", "A field is invalid; see details.", details=field_errors(exc))


async def _write_target(request: Request, action: str) -> tuple[Runtime, AdminCaller, str, dict[str, Any]]:
    """The caller (who needs a write permission or an administrator role, even for themselves)
    and the live user named in the path; a refusal is audited."""
    rt: Runtime = request.app.state.runtime
    caller = await authenticate(rt, request)
    user_id = str(request.path_params["user_id"])
    try:
        if not _may(caller, WRITE_PERMISSIONS):
            raise ApiError(403, "insufficient_privileges", "The caller may not change users.")
        user = await rt.store.get_user(user_id) if len(user_id) <= 64 else None
        if user is None:
            raise ApiError(404, "user_not_found", f"There is no user {user_id[:64]}.")
    except ApiError as exc:
        _audit(rt, request, action, caller, user_id, "failure", exc.reason)
        raise
    return rt, caller, user_id, user


def _audit(
    rt: Runtime, request: Request, action: str, caller: AdminCaller, target: str, result: str, reason: str
) -> None:
    audit.admin_action(
        rt, request, action=action, result=result, actor=caller.actor, target=target[:64], reasons=[reason]
    )


@api_endpoint
async def update_user(request: Request) -> Response:
    rt, caller, user_id, user = await _write_target(request, "updateUser")
    try:
        body = await read_json_object(request)
        refuse_unwritable(body, WRITABLE)
        try:
            patch = UserPatch.model_validate(body)
        except ValidationError as exc:
            raise _invalid(exc) from exc
        if patch.displayName is None and "displayName" in body:
            raise ApiError(400, "invalid_field", "displayName cannot be null.")
        if patch.accountEnabled is None and "accountEnabled" in body:
            raise ApiError(400, "invalid_field", "accountEnabled cannot be null.")
        changes = patch.model_dump(include=set(body))
        if patch.otherMails is not None:
            changes["otherMails"] = list(dict.fromkeys(patch.otherMails))
            for address in changes["otherMails"]:
                holders = await rt.store.find_users_by_mail(address)
                if any(holder["id"] != user_id for holder in holders):
                    raise ApiError(409, "address_in_use", "An address in otherMails belongs to another user.")
    except ApiError as exc:
        _audit(rt, request, "updateUser", caller, user_id, "failure", exc.reason)
        raise
    updated = {**user, **changes}
    await rt.store.update_user(updated)
    reason = "user_updated"
    if changes.get("accountEnabled") is False:
        await revoke_sign_in_sessions(rt, updated)
        reason = "user_disabled"
    _audit(rt, request, "updateUser", caller, user_id, "success", reason)
    return Response(status_code=204, headers={"Cache-Control": "no-store"})


@api_endpoint
async def delete_user(request: Request) -> Response:
    rt, caller, user_id, user = await _write_target(request, "deleteUser")
    await revoke_sign_in_sessions(rt, dict(user))
    if await rt.store.soft_delete_user(user_id, rt.now()) is None:
        _audit(rt, request, "deleteUser", caller, user_id, "failure", "user_not_found")
        raise ApiError(404, "user_not_found", f"There is no user {user_id}.")
    _audit(rt, request, "deleteUser", caller, user_id, "success", "user_soft_deleted")
    return Response(status_code=204, headers={"Cache-Control": "no-store"})


# -- deleted items (b2b-concepts §10: restorable for 30 days) ------------------------------------


async def purge_expired(rt: Runtime) -> int:
    """Remove for good users deleted over 30 days ago; at most once an hour across replicas."""
    if not await rt.store.add("purge-lock", "deleted-users", {}, PURGE_INTERVAL_SECONDS):
        return 0
    return await rt.store.purge_deleted_users(rt.now() - PURGE_AFTER_SECONDS)


@api_endpoint
async def list_deleted_users(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    caller = await authenticate(rt, request)
    if not _may(caller, READ_PERMISSIONS):
        raise ApiError(403, "insufficient_privileges", "The caller may not list deleted users.")
    top, after = page_request(request)
    await purge_expired(rt)
    users, cursor = await rt.store.list_users(deleted=True, limit=top, after=after)
    path = "directory/deletedItems/microsoft.graph.user"
    return json_response(page_body(rt, path, "users", [graph_user(u) for u in users], cursor, top, {}))


@api_endpoint
async def restore_user(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    caller = await authenticate(rt, request)
    object_id = str(request.path_params["object_id"])
    try:
        if not _may(caller, WRITE_PERMISSIONS):
            raise ApiError(403, "insufficient_privileges", "The caller may not restore users.")
        restored = await rt.store.restore_user(object_id) if len(object_id) <= 64 else None
        if restored is None:
            raise ApiError(404, "deleted_item_not_found", f"There is no deleted user {object_id[:64]}.")
    except ApiError as exc:
        _audit(rt, request, "restoreUser", caller, object_id, "failure", exc.reason)
        raise
    _audit(rt, request, "restoreUser", caller, object_id, "success", "user_restored")
    return json_response(graph_user(restored))
