"""External collaboration: who may invite, and which guest domains are welcome (b2b-concepts §2.4, §5.5, §6).

Pure functions over plain data. Reason codes are stable strings (README, "Audit records").
Domain lists: `contoso.com` matches that domain only; `*.contoso.com` matches its subdomains
(any depth), not the domain itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from gateway.settings.models import ExternalCollaboration

GLOBAL_ADMINISTRATOR = "Global Administrator"
USER_ADMINISTRATOR = "User Administrator"
GUEST_INVITER = "Guest Inviter"
INVITING_ADMIN_ROLES = frozenset({GLOBAL_ADMINISTRATOR, USER_ADMINISTRATOR})
INVITE_APP_PERMISSIONS = frozenset({"User.Invite.All", "User.ReadWrite.All", "Directory.ReadWrite.All"})


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str


@dataclass(frozen=True)
class Caller:
    """Who calls: a signed-in user (``user_type`` Member or Guest, directory roles) or an app."""

    kind: Literal["user", "app"]
    user_type: str | None = None
    roles: frozenset[str] = frozenset()
    app_permissions: frozenset[str] = frozenset()


def may_invite(caller: Caller, settings: ExternalCollaboration) -> Decision:
    setting = settings.allow_invites_from
    if setting == "none":
        return Decision(False, "invitations_disabled")
    if caller.kind == "app":
        if not caller.app_permissions & INVITE_APP_PERMISSIONS:
            return Decision(False, "app_lacks_invite_permission")
        if setting == "adminsAndGuestInviters":
            return Decision(False, "invitations_limited_to_admins")
        return Decision(True, "app_permission")
    if caller.roles & INVITING_ADMIN_ROLES:
        return Decision(True, "admin_role")
    if GUEST_INVITER in caller.roles:
        return Decision(True, "guest_inviter_role")
    if setting == "adminsAndGuestInviters":
        return Decision(False, "invitations_limited_to_admins")
    if caller.user_type == "Member":
        return Decision(True, "member")
    if setting == "everyone":
        return Decision(True, "everyone_may_invite")
    if settings.guest_user_role == "sameAsMembers":
        return Decision(True, "guest_with_member_rights")
    return Decision(False, "guests_may_not_invite")


def domain_matches(domain: str, patterns: Sequence[str]) -> bool:
    domain = domain.lower()
    for pattern in patterns:
        if pattern.startswith("*."):
            if domain.endswith(pattern[1:]):
                return True
        elif domain == pattern:
            return True
    return False


def guest_domain(
    domain: str, settings: ExternalCollaboration, *, cross_tenant_blocked: bool = False
) -> Decision:
    """§5.5: deny list first; an allow-listed domain passes unless cross-tenant access blocks it
    explicitly; on neither list, cross-tenant access decides."""
    if settings.blocked_domains is not None and domain_matches(domain, settings.blocked_domains):
        return Decision(False, "domain_blocked")
    if settings.allowed_domains is not None and not domain_matches(domain, settings.allowed_domains):
        return Decision(False, "domain_not_allowed")
    if cross_tenant_blocked:
        return Decision(False, "cross_tenant_access_blocked")
    listed = settings.allowed_domains is not None
    return Decision(True, "domain_allowed" if listed else "domain_not_listed")


def may_leave(user_type: str | None, account_enabled: bool, settings: ExternalCollaboration) -> Decision:
    """b2b-concepts §10: guests may leave when allowed and their account is enabled."""
    if user_type != "Guest":
        return Decision(False, "only_guests_leave")
    if not settings.allow_guests_to_leave:
        return Decision(False, "leaving_disabled")
    if not account_enabled:
        return Decision(False, "account_disabled")
    return Decision(True, "guest_may_leave")

