"""What a user holds in one application: group ids, app role values, and whether they are assigned.

Assignments are Graph ``appRoleAssignment`` objects whose ``resourceId`` is our application id
and whose principal is the user or one of the groups the user is a direct member of.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.settings.models import Application
from gateway.store.base import DirectoryStore


@dataclass(frozen=True)
class AppAccess:
    groups: list[str]
    roles: list[str]
    assigned: bool


async def app_access(store: DirectoryStore, app: Application, user_id: str) -> AppAccess:
    groups = await store.list_user_groups(user_id)
    principals = {user_id, *groups}
    assignments = [
        a
        for a in await store.list_app_role_assignments(resource_id=app.id)
        if a.get("principalId") in principals
    ]
    values = {role.id: role.value for role in app.app_roles}
    roles = sorted({values[a["appRoleId"]] for a in assignments if a.get("appRoleId") in values})
    return AppAccess(groups=groups, roles=roles, assigned=bool(assignments))


def needs_access_data(app: Application) -> bool:
    return app.assignment_required or app.claims.groups or app.claims.roles
