"""The ``/v1.0`` routes: each path answers its methods, anything else a Graph-shaped 404 or 405."""

from __future__ import annotations

import re
from collections.abc import Mapping

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from gateway.admin.assignments import (
    add_app_owner,
    create_assignment,
    delete_assignment,
    list_app_owners,
    list_assigned_to,
    list_user_assignments,
    remove_app_owner,
)
from gateway.admin.errors import ApiError, Endpoint, api_endpoint
from gateway.admin.groups import (
    add_member,
    add_owner,
    create_group,
    delete_group,
    get_group,
    list_groups,
    list_members,
    list_owners,
    remove_member,
    remove_owner,
    update_group,
)
from gateway.admin.invitations import create_invitation
from gateway.admin.me import me
from gateway.admin.openapi import openapi
from gateway.admin.signin_log import list_signins
from gateway.admin.users import (
    delete_user,
    get_user,
    list_deleted_users,
    list_users,
    restore_user,
    revoke_me,
    revoke_user,
    update_user,
)
from gateway.admin.whatif import evaluate

ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def methods(handlers: Mapping[str, Endpoint]) -> Endpoint:
    """One endpoint for every method: the handler for it (HEAD as GET), else 405 with ``Allow``."""
    table = dict(handlers)
    if "GET" in table:
        table.setdefault("HEAD", table["GET"])
    allow = ", ".join(sorted(table))

    @api_endpoint
    async def refuse(request: Request) -> Response:
        raise ApiError(
            405, "method_not_allowed", f"{request.method} is not allowed here; use {allow}.",
            headers={"Allow": allow},
        )  # fmt: skip

    async def dispatch(request: Request) -> Response:
        return await table.get(request.method, refuse)(request)

    return dispatch


@api_endpoint
async def not_found(request: Request) -> Response:
    raise ApiError(404, "resource_not_found", f"There is no resource at {request.url.path}.")


ROUTES = [
    Mount(
        "/v1.0",
        routes=[
            Route("/invitations", methods({"POST": create_invitation}), methods=ALL_METHODS),
            Route("/me", methods({"GET": me}), methods=ALL_METHODS),
            Route("/me/revokeSignInSessions", methods({"POST": revoke_me}), methods=ALL_METHODS),
            Route("/users", methods({"GET": list_users}), methods=ALL_METHODS),
            Route(
                "/users/{user_id}",
                methods({"GET": get_user, "PATCH": update_user, "DELETE": delete_user}),
                methods=ALL_METHODS,
            ),
            Route(
                "/users/{user_id}/revokeSignInSessions", methods({"POST": revoke_user}), methods=ALL_METHODS
            ),
            Route(
                "/directory/deletedItems/microsoft.graph.user",
                methods({"GET": list_deleted_users}),
                methods=ALL_METHODS,
            ),
            Route(
                "/directory/deletedItems/{object_id}/restore",
                methods({"POST": restore_user}),
                methods=ALL_METHODS,
            ),
            Route("/groups", methods({"GET": list_groups, "POST": create_group}), methods=ALL_METHODS),
            Route(
                "/groups/{group_id}",
                methods({"GET": get_group, "PATCH": update_group, "DELETE": delete_group}),
                methods=ALL_METHODS,
            ),
            Route("/groups/{group_id}/members", methods({"GET": list_members}), methods=ALL_METHODS),
            Route("/groups/{group_id}/members/$ref", methods({"POST": add_member}), methods=ALL_METHODS),
            Route(
                "/groups/{group_id}/members/{user_id}/$ref",
                methods({"DELETE": remove_member}),
                methods=ALL_METHODS,
            ),
            Route("/groups/{group_id}/owners", methods({"GET": list_owners}), methods=ALL_METHODS),
            Route("/groups/{group_id}/owners/$ref", methods({"POST": add_owner}), methods=ALL_METHODS),
            Route(
                "/groups/{group_id}/owners/{user_id}/$ref",
                methods({"DELETE": remove_owner}),
                methods=ALL_METHODS,
            ),
            Route(
                "/users/{user_id}/appRoleAssignments",
                methods({"GET": list_user_assignments}),
                methods=ALL_METHODS,
            ),
            Route(
                "/servicePrincipals/{app_id}/appRoleAssignedTo",
                methods({"GET": list_assigned_to, "POST": create_assignment}),
                methods=ALL_METHODS,
            ),
            Route(
                "/servicePrincipals/{app_id}/appRoleAssignedTo/{assignment_id}",
                methods({"DELETE": delete_assignment}),
                methods=ALL_METHODS,
            ),
            Route(
                "/servicePrincipals/{app_id}/owners", methods({"GET": list_app_owners}), methods=ALL_METHODS
            ),
            Route(
                "/servicePrincipals/{app_id}/owners/$ref",
                methods({"POST": add_app_owner}),
                methods=ALL_METHODS,
            ),
            Route(
                "/servicePrincipals/{app_id}/owners/{user_id}/$ref",
                methods({"DELETE": remove_app_owner}),
                methods=ALL_METHODS,
            ),
            Route("/identity/conditionalAccess/evaluate", methods({"POST": evaluate}), methods=ALL_METHODS),
            Route("/auditLogs/signIns", methods({"GET": list_signins}), methods=ALL_METHODS),
            Route("/$openapi", methods({"GET": openapi}), methods=ALL_METHODS),
            Route("/{rest:path}", not_found, methods=ALL_METHODS),
        ],
    )
]


def _match_line_breaks(route: Mount | Route) -> None:
    """Starlette's path patterns use ``.``, which stops at a line break: a ``%0A`` in a path would
    slip past the mount and the catch-all and get a plain-text 404. Let them match it too."""
    route.path_regex = re.compile(route.path_regex.pattern, re.DOTALL)


for _route in [ROUTES[0], *ROUTES[0].routes]:
    if isinstance(_route, Mount | Route):
        _match_line_breaks(_route)
