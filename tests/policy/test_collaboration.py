"""External collaboration decisions, table-tested."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.policy.collaboration import (
    GLOBAL_ADMINISTRATOR,
    GUEST_INVITER,
    USER_ADMINISTRATOR,
    Caller,
    Decision,
    domain_matches,
    guest_domain,
    may_invite,
    may_leave,
)
from gateway.settings.models import ExternalCollaboration

MEMBER = Caller("user", "Member")
GUEST = Caller("user", "Guest")
ADMIN = Caller("user", "Member", frozenset({GLOBAL_ADMINISTRATOR}))
USER_ADMIN = Caller("user", "Member", frozenset({USER_ADMINISTRATOR}))
INVITER_GUEST = Caller("user", "Guest", frozenset({GUEST_INVITER}))
APP = Caller("app", app_permissions=frozenset({"User.Invite.All"}))
APP_NO_PERMISSION = Caller("app", app_permissions=frozenset({"User.Read.All"}))

INVITE_ROWS: list[tuple[str, Caller, dict[str, Any], Decision]] = [
    ("everyone: a guest may invite", GUEST, {}, Decision(True, "everyone_may_invite")),
    ("everyone: a member may invite", MEMBER, {}, Decision(True, "member")),
    ("everyone: an app with User.Invite.All", APP, {}, Decision(True, "app_permission")),
    (
        "an app without an invite permission",
        APP_NO_PERMISSION,
        {},
        Decision(False, "app_lacks_invite_permission"),
    ),
    (
        "members setting: a member",
        MEMBER,
        {"allow_invites_from": "adminsGuestInvitersAndAllMembers"},
        Decision(True, "member"),
    ),
    (
        "members setting: a limited guest",
        GUEST,
        {"allow_invites_from": "adminsGuestInvitersAndAllMembers"},
        Decision(False, "guests_may_not_invite"),
    ),
    (
        "members setting: a guest with member rights",
        GUEST,
        {"allow_invites_from": "adminsGuestInvitersAndAllMembers", "guest_user_role": "sameAsMembers"},
        Decision(True, "guest_with_member_rights"),
    ),
    (
        "members setting: an app",
        APP,
        {"allow_invites_from": "adminsGuestInvitersAndAllMembers"},
        Decision(True, "app_permission"),
    ),
    (
        "admins setting: a member",
        MEMBER,
        {"allow_invites_from": "adminsAndGuestInviters"},
        Decision(False, "invitations_limited_to_admins"),
    ),
    (
        "admins setting: a global admin",
        ADMIN,
        {"allow_invites_from": "adminsAndGuestInviters"},
        Decision(True, "admin_role"),
    ),
    (
        "admins setting: a user admin",
        USER_ADMIN,
        {"allow_invites_from": "adminsAndGuestInviters"},
        Decision(True, "admin_role"),
    ),
    (
        "admins setting: a guest inviter",
        INVITER_GUEST,
        {"allow_invites_from": "adminsAndGuestInviters"},
        Decision(True, "guest_inviter_role"),
    ),
    (
        "admins setting: an app is refused",
        APP,
        {"allow_invites_from": "adminsAndGuestInviters"},
        Decision(False, "invitations_limited_to_admins"),
    ),
    (
        "none: even a global admin",
        ADMIN,
        {"allow_invites_from": "none"},
        Decision(False, "invitations_disabled"),
    ),
    ("none: an app", APP, {"allow_invites_from": "none"}, Decision(False, "invitations_disabled")),
]


@pytest.mark.parametrize(
    ("case", "caller", "settings", "expected"), INVITE_ROWS, ids=[r[0] for r in INVITE_ROWS]
)
def test_may_invite(case: str, caller: Caller, settings: dict[str, Any], expected: Decision) -> None:
    assert may_invite(caller, ExternalCollaboration(**settings)) == expected


DOMAIN_ROWS: list[tuple[str, str, dict[str, Any], bool, Decision]] = [
    (
        "no lists: cross-tenant access decides (allowed)",
        "fabrikam.example",
        {},
        False,
        Decision(True, "domain_not_listed"),
    ),
    (
        "no lists: cross-tenant access blocks",
        "fabrikam.example",
        {},
        True,
        Decision(False, "cross_tenant_access_blocked"),
    ),
    (
        "deny list hit",
        "fabrikam.example",
        {"blocked_domains": ["fabrikam.example"]},
        False,
        Decision(False, "domain_blocked"),
    ),
    (
        "deny list wins over cross-tenant allow",
        "x.fabrikam.example",
        {"blocked_domains": ["*.fabrikam.example"]},
        False,
        Decision(False, "domain_blocked"),
    ),
    (
        "deny wildcard does not cover the apex",
        "fabrikam.example",
        {"blocked_domains": ["*.fabrikam.example"]},
        False,
        Decision(True, "domain_not_listed"),
    ),
    (
        "allow list hit",
        "fabrikam.example",
        {"allowed_domains": ["fabrikam.example"]},
        False,
        Decision(True, "domain_allowed"),
    ),
    (
        "allow list hit, but cross-tenant access blocks explicitly",
        "fabrikam.example",
        {"allowed_domains": ["fabrikam.example"]},
        True,
        Decision(False, "cross_tenant_access_blocked"),
    ),
    (
        "allow list miss",
        "evil.example",
        {"allowed_domains": ["fabrikam.example"]},
        False,
        Decision(False, "domain_not_allowed"),
    ),
    (
        "allow list: subdomain needs a wildcard",
        "eu.fabrikam.example",
        {"allowed_domains": ["fabrikam.example"]},
        False,
        Decision(False, "domain_not_allowed"),
    ),
    (
        "allow wildcard covers deep subdomains",
        "a.b.fabrikam.example",
        {"allowed_domains": ["*.fabrikam.example"]},
        False,
        Decision(True, "domain_allowed"),
    ),
    (
        "matching ignores case",
        "FABRIKAM.example",
        {"blocked_domains": ["fabrikam.example"]},
        False,
        Decision(False, "domain_blocked"),
    ),
    (
        "a suffix is not a subdomain",
        "notfabrikam.example",
        {"blocked_domains": ["*.fabrikam.example"]},
        False,
        Decision(True, "domain_not_listed"),
    ),
]


@pytest.mark.parametrize(
    ("case", "domain", "settings", "xtap_blocked", "expected"), DOMAIN_ROWS, ids=[r[0] for r in DOMAIN_ROWS]
)
def test_guest_domain(
    case: str, domain: str, settings: dict[str, Any], xtap_blocked: bool, expected: Decision
) -> None:
    assert (
        guest_domain(domain, ExternalCollaboration(**settings), cross_tenant_blocked=xtap_blocked) == expected
    )


def test_both_lists_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="not both"):
        ExternalCollaboration(allowed_domains=["a.example"], blocked_domains=["b.example"])


def test_domain_patterns_are_validated() -> None:
    with pytest.raises(ValueError):
        ExternalCollaboration(blocked_domains=["*fabrikam.example"])
    assert domain_matches("x.a.example", ["*.a.example"])


@pytest.mark.parametrize(
    ("user_type", "enabled", "settings", "expected"),
    [
        ("Guest", True, {}, Decision(True, "guest_may_leave")),
        ("Guest", True, {"allow_guests_to_leave": False}, Decision(False, "leaving_disabled")),
        ("Guest", False, {}, Decision(False, "account_disabled")),
        ("Member", True, {}, Decision(False, "only_guests_leave")),
    ],
)
def test_may_leave(user_type: str, enabled: bool, settings: dict[str, Any], expected: Decision) -> None:
    assert may_leave(user_type, enabled, ExternalCollaboration(**settings)) == expected
