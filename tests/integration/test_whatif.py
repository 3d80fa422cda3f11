"""``gateway.whatif.what_if``: the What-If answer for users, apps, partners and upstream claims.

The settings (``whatif_config``) hold three partner organisations (A: MFA and compliant devices
trusted; B: nothing trusted; C: every user blocked inbound), a named location and six policies:
MFA for guests on ``payroll`` (enabled), a compliant device for ``devices`` (enabled), a block
outside the office for ``hr`` (enabled), MFA for a group on ``hr`` (enabled), a compliant device
everywhere (report-only) and a block everywhere (disabled). Users live in a real SQLite store;
``seed`` adds them. The CLI and admin API tests reuse ``whatif_config`` and ``seed``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gateway.admin.whatif import WhatIfOut
from gateway.settings.models import Settings
from gateway.store.base import Store
from gateway.store.factory import open_store
from gateway.whatif import WhatIfError, WhatIfQuery, what_if
from tests.support.gateway_app import make_settings
from tests.support.inspect_store import snapshot, users

NOW = 1_750_000_000
SECRET = "whatif-client-secret-0123456789"
TENANT_A = "11111111-2222-4333-8444-555555555555"
TENANT_B = "22222222-3333-4444-8555-666666666666"
TENANT_C = "33333333-4444-4555-8666-777777777777"
ISSUER_A, ISSUER_B, ISSUER_C = (f"https://idp.partner-{x}.test" for x in "abc")
GROUP = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
OFFICE_IP, HOME_IP = "203.0.113.7", "198.51.100.20"
POLICY_IDS = [
    "guests-mfa",
    "devices-compliant",
    "hr-office-only",
    "hr-group-mfa",
    "report-device",
    "off-block",
]


def _oidc_connector(letter: str) -> dict[str, Any]:
    return {
        "id": f"partner-{letter}",
        "type": "oidc",
        "issuer": f"https://idp.partner-{letter}.test",
        "client_id": "gateway",
        "client_secret": SECRET,
    }


def _app(app_id: str) -> dict[str, Any]:
    return {
        "id": app_id,
        "name": app_id.title(),
        "oidc": {
            "client_id": app_id,
            "client_secret": SECRET,
            "redirect_uris": [f"https://{app_id}.example/cb"],
        },
    }


def _policy(
    policy_id: str, users: dict[str, Any], apps: list[str], grant: list[str], **extra: Any
) -> dict[str, Any]:
    return {
        "id": policy_id,
        "display_name": policy_id.replace("-", " ").title(),
        "conditions": {
            "users": users,
            "applications": {"include_applications": apps},
            **extra.pop("where", {}),
        },
        "grant_controls": {"built_in_controls": grant},
        **extra,
    }


def whatif_config(*extra_apps: dict[str, Any]) -> dict[str, Any]:
    """Overrides for ``make_settings``: connectors, apps, partners, a named location and the policies."""
    from tests.support.gateway_app import default_config

    blocked = {"access_type": "blocked", "targets": [{"target": "AllUsers", "target_type": "user"}]}
    blocked_apps = {
        "access_type": "blocked",
        "targets": [{"target": "AllApplications", "target_type": "application"}],
    }
    return {
        "connectors": [{"id": "email", "type": "email_otp"}, *(_oidc_connector(x) for x in "abc")],
        "applications": [
            *default_config()["applications"],
            *(_app(a) for a in ("payroll", "devices", "hr")),
            *extra_apps,
        ],
        "cross_tenant_access": {
            "partners": [
                {
                    "tenant_id": TENANT_A,
                    "connector": "partner-a",
                    "inbound_trust": {"mfa_accepted": True, "compliant_device_accepted": True},
                },
                {"tenant_id": TENANT_B, "connector": "partner-b"},
                {
                    "tenant_id": TENANT_C,
                    "connector": "partner-c",
                    "b2b_collaboration_inbound": {"users_and_groups": blocked, "applications": blocked_apps},
                },
            ]
        },
        "named_locations": [{"id": "office", "display_name": "Office", "ip_ranges": ["203.0.113.0/24"]}],
        "conditional_access": [
            _policy("guests-mfa", {"include_users": ["GuestsOrExternalUsers"]}, ["payroll"], ["mfa"]),
            _policy("devices-compliant", {"include_users": ["All"]}, ["devices"], ["compliantDevice"]),
            _policy(
                "hr-office-only",
                {"include_users": ["All"]},
                ["hr"],
                ["block"],
                where={"locations": {"include_locations": ["All"], "exclude_locations": ["office"]}},
            ),
            _policy("hr-group-mfa", {"include_groups": [GROUP]}, ["hr"], ["mfa"]),
            _policy(
                "report-device",
                {"include_users": ["All"]},
                ["All"],
                ["compliantDevice"],
                state="enabledForReportingButNotEnforced",
            ),
            _policy("off-block", {"include_users": ["All"]}, ["All"], ["block"], state="disabled"),
        ],
    }


@dataclass(frozen=True)
class People:
    guest_a: str  # a Guest who came through partner A's connector
    guest_b: str  # through partner B's
    member: str  # a Member signing in with a passcode, in GROUP
    pending: str  # an invited guest who has not redeemed (no upstream identity yet)
    disabled: str  # a disabled guest of partner A


def _user(email: str, user_type: str, identity: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "userType": user_type,
        "creationType": None,
        "accountEnabled": True,
        "displayName": email.split("@")[0].title(),
        "mail": email,
        "otherMails": [],
        "userPrincipalName": email
        if user_type == "Member"
        else email.replace("@", "_") + "#EXT#@contoso.example",
        "identities": [identity],
        "externalUserState": None,
        "externalUserStateChangeDateTime": None,
        "createdDateTime": "2025-01-01T00:00:00Z",
        **extra,
    }


def _federated(issuer: str, subject: str) -> dict[str, str]:
    return {"signInType": "federated", "issuer": issuer, "issuerAssignedId": subject}


async def seed(store: Any) -> People:
    """The users (and GROUP, with the member in it) in ``store``."""
    made = {
        "guest_a": _user("alice@partner-a.example", "Guest", _federated(ISSUER_A, "alice-sub")),
        "guest_b": _user("bob@partner-b.example", "Guest", _federated(ISSUER_B, "bob-sub")),
        "member": _user("mia@contoso.example", "Member", _federated("mail", "mia@contoso.example")),
        "pending": _user(
            "pat@partner-b.example",
            "Guest",
            {"signInType": "userPrincipalName", "issuer": "contoso.example", "issuerAssignedId": "pat"},
        ),
        "disabled": _user(
            "dan@partner-a.example", "Guest", _federated(ISSUER_A, "dan-sub"), accountEnabled=False
        ),
    }
    for user in made.values():
        assert await store.create_user(
            user, [(i["issuer"], i["issuerAssignedId"]) for i in user["identities"]]
        )
    await store.create_group(
        {"id": GROUP, "displayName": "Finance", "createdDateTime": "2025-01-01T00:00:00Z"}
    )
    assert await store.add_group_member(GROUP, made["member"]["id"])
    return People(**{name: user["id"] for name, user in made.items()})


@dataclass
class World:
    settings: Settings
    store: Store
    people: People

    async def ask(self, user: str, app: str, **fields: Any) -> dict[str, Any]:
        answer = await what_if(
            self.settings, self.store, WhatIfQuery(user_id=user, app_id=app, **fields), NOW
        )
        WhatIfOut.model_validate(answer)  # the documented shape, no more and no less
        return answer


@asynccontextmanager
async def world_of(tmp_path: Path, config: dict[str, Any]) -> AsyncIterator[World]:
    settings = make_settings(tmp_path, **config)
    store = open_store(settings.store)
    await store.migrate()
    try:
        yield World(settings, store, await seed(store))
    finally:
        await store.close()


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with world_of(tmp_path, whatif_config()) as running:
        yield running


def applied(answer: dict[str, Any], policy_id: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [p for p in answer["appliedPolicies"] if p["id"] == policy_id]
    assert found, f"{policy_id} did not apply: {answer['notAppliedPolicies']}"
    return found[0]


def not_applied(answer: dict[str, Any]) -> dict[str, str]:
    return {p["id"]: p["reason"] for p in answer["notAppliedPolicies"]}


# -- policies applying or not --------------------------------------------------------------------


async def test_an_untrusted_partner_guest_needs_mfa_here_for_an_mfa_policy(world: World) -> None:
    answer = await world.ask(world.people.guest_b, "payroll", claims={"amr": ["pwd", "mfa"]})
    assert answer["outcome"] == "userActionRequired"
    assert answer["required"] == ["mfa"]
    assert answer["mfaChallenge"] == "resource"
    assert answer["blockReason"] is None
    policy = applied(answer, "guests-mfa")
    assert (policy["result"], policy["reason"], policy["unmet"]) == (
        "userActionRequired",
        "mfa_required",
        ["mfa"],
    )
    assert answer["trust"]["upstreamMfa"] is True and answer["trust"]["mfa"] is False
    assert "mfa_claim_not_trusted" in answer["trust"]["reasons"]
    assert answer["amr"] == ["fed"] and answer["mfaSource"] is None
    assert answer["crossTenantAccess"] == {"allowed": True, "reason": "cross_tenant_access_allowed"}
    assert (answer["homeTenantId"], answer["externalUserType"]) == (TENANT_B, "b2bCollaborationGuest")
    assert answer["crossTenantAccessType"] == "b2bCollaboration"
    assert answer["authenticationRequirement"] == "multiFactorAuthentication"


async def test_a_trusted_partner_guests_home_mfa_satisfies_the_policy(world: World) -> None:
    answer = await world.ask(world.people.guest_a, "payroll", claims={"amr": ["pwd", "mfa"]})
    assert answer["outcome"] == "grant" and answer["required"] == []
    assert applied(answer, "guests-mfa")["result"] == "success"
    assert answer["trust"]["mfa"] is True
    assert "mfa_trusted_from_home" in answer["trust"]["reasons"]
    assert answer["mfaSource"] == "home" and answer["amr"] == ["fed", "mfa"]
    assert answer["acr"] != (await world.ask(world.people.guest_b, "payroll", claims={"amr": ["mfa"]}))["acr"]


async def test_a_trusted_partner_without_mfa_is_asked_at_home(world: World) -> None:
    answer = await world.ask(world.people.guest_a, "payroll", claims={"amr": ["pwd"]})
    assert answer["outcome"] == "userActionRequired" and answer["required"] == ["mfa"]
    assert answer["mfaChallenge"] == "home"
    assert answer["trust"]["upstreamMfa"] is False


async def test_mfa_done_here_satisfies_the_policy(world: World) -> None:
    answer = await world.ask(world.people.guest_b, "payroll", mfa_done_here=True)
    assert answer["outcome"] == "grant"
    assert answer["mfaSource"] == "resource" and "mfa" in answer["amr"] and "otp" in answer["amr"]
    assert answer["trust"]["mfa"] is False  # nothing was trusted from home


async def test_policies_that_do_not_apply_name_their_first_failed_condition(world: World) -> None:
    answer = await world.ask(world.people.member, "payroll", connector_id="email")
    reasons = not_applied(answer)
    assert reasons["guests-mfa"] == "user_not_included"  # a member, not a guest
    assert reasons["devices-compliant"] == "application_not_included"
    assert reasons["hr-group-mfa"] == "application_not_included"  # users matched (group), then the app failed
    assert reasons["off-block"] == "policy_disabled"
    assert answer["outcome"] == "grant"
    assert {p["id"] for p in answer["appliedPolicies"]} == {"report-device"}
    assert sorted(p["id"] for p in answer["appliedPolicies"] + answer["notAppliedPolicies"]) == sorted(
        POLICY_IDS
    )


async def test_a_report_only_policy_is_evaluated_but_never_enforced(world: World) -> None:
    answer = await world.ask(world.people.guest_b, "payroll", mfa_done_here=True)
    policy = applied(answer, "report-device")
    assert policy["state"] == "enabledForReportingButNotEnforced"
    assert (policy["result"], policy["reason"]) == ("reportOnlyFailure", "device_not_compliant")
    assert answer["outcome"] == "grant" and answer["blockReason"] is None


async def test_a_disabled_policy_is_not_evaluated(world: World) -> None:
    answer = await world.ask(world.people.guest_b, "demo")
    off = next(p for p in answer["notAppliedPolicies"] if p["id"] == "off-block")
    assert off == {
        "id": "off-block",
        "displayName": "Off Block",
        "state": "disabled",
        "reason": "policy_disabled",
    }
    assert answer["outcome"] == "grant"  # its block grant is never applied


async def test_group_membership_from_the_store_brings_a_policy_in(world: World) -> None:
    answer = await world.ask(world.people.member, "hr", connector_id="email", ip_address=OFFICE_IP)
    assert applied(answer, "hr-group-mfa")["result"] == "userActionRequired"
    assert answer["outcome"] == "userActionRequired" and answer["required"] == ["mfa"]
    other = await world.ask(world.people.guest_b, "hr", ip_address=OFFICE_IP)
    assert not_applied(other)["hr-group-mfa"] == "user_not_included"
    assert other["outcome"] == "grant"


async def test_the_ip_address_decides_location_conditions(world: World) -> None:
    inside = await world.ask(world.people.guest_b, "hr", ip_address=OFFICE_IP)
    assert not_applied(inside)["hr-office-only"] == "location_excluded"
    for ip in (HOME_IP, None):
        outside = await world.ask(world.people.guest_b, "hr", ip_address=ip)
        assert outside["outcome"] == "block" and outside["blockReason"] == "blocked_by_policy"
        assert applied(outside, "hr-office-only")["result"] == "failure"
        assert outside["required"] == [] and outside["mfaChallenge"] is None


# -- cross-tenant access and trust ---------------------------------------------------------------


async def test_a_blocked_partner_is_refused_before_conditional_access(world: World) -> None:
    answer = await world.ask(world.people.guest_a, "payroll", connector_id="partner-c")
    assert answer["outcome"] == "block"
    assert answer["blockReason"] == "cross_tenant_user_blocked"
    assert answer["crossTenantAccess"] == {"allowed": False, "reason": "cross_tenant_user_blocked"}
    assert answer["homeTenantId"] == TENANT_C
    assert answer["appliedPolicies"] == [] and answer["conditionalAccessStatus"] == "notApplied"
    reasons = not_applied(answer)
    assert reasons.pop("off-block") == "policy_disabled"
    assert set(reasons.values()) == {"cross_tenant_user_blocked"} and len(reasons) == len(POLICY_IDS) - 1


async def test_a_tenant_the_partner_connector_does_not_speak_for_is_refused(world: World) -> None:
    answer = await world.ask(
        world.people.guest_a, "payroll", connector_id="partner-a", home_tenant_id=TENANT_B
    )
    assert answer["outcome"] == "block" and answer["blockReason"] == "home_tenant_mismatch"
    assert answer["crossTenantAccess"] is None and answer["homeTenantId"] is None
    assert answer["amr"] is None and answer["trust"]["mfa"] is False
    assert set(not_applied(answer).values()) == {"home_tenant_mismatch", "policy_disabled"}


async def test_a_device_claim_is_trusted_only_from_a_partner_that_is_trusted_for_it(world: World) -> None:
    claims = {"iscompliant": True}
    untrusted = await world.ask(world.people.guest_b, "devices", claims=claims)
    assert untrusted["outcome"] == "block" and untrusted["blockReason"] == "device_not_compliant"
    assert untrusted["trust"]["upstreamCompliantDevice"] is True
    assert untrusted["trust"]["compliantDevice"] is False
    assert "device_claim_not_trusted" in untrusted["trust"]["reasons"]
    trusted = await world.ask(world.people.guest_a, "devices", claims=claims)
    assert trusted["outcome"] == "grant"
    assert trusted["trust"]["compliantDevice"] is True
    assert "compliant_device_trusted_from_home" in trusted["trust"]["reasons"]
    assert applied(trusted, "report-device")["result"] == "reportOnlySuccess"


async def test_a_member_without_a_home_organisation(world: World) -> None:
    answer = await world.ask(world.people.member, "demo")
    assert answer["connector"] == "email" and answer["connectorChosenBy"] == "identity"
    assert answer["crossTenantAccess"] is None and answer["homeTenantId"] is None
    assert answer["externalUserType"] is None and answer["crossTenantAccessType"] == "none"
    assert answer["trust"]["reasons"] == ["no_home_organisation"]
    assert answer["amr"] == ["otp"]
    claimed = await world.ask(world.people.member, "demo", claims={"amr": ["mfa"]})
    assert claimed["trust"]["reasons"] == ["no_home_organisation", "mfa_claim_not_trusted"]
    assert claimed["trust"]["upstreamMfa"] is True and claimed["trust"]["mfa"] is False
    assert claimed["amr"] == ["otp"] and claimed["mfaSource"] is None


async def test_a_disabled_account_is_refused(world: World) -> None:
    answer = await world.ask(world.people.disabled, "payroll", claims={"amr": ["mfa"]})
    assert answer["outcome"] == "block" and answer["blockReason"] == "account_disabled"
    assert answer["crossTenantAccess"] == {"allowed": True, "reason": "cross_tenant_access_allowed"}
    blocked = await world.ask(world.people.disabled, "payroll", connector_id="partner-c")
    assert blocked["blockReason"] == "cross_tenant_user_blocked"  # the home gate comes first, as at sign-in


# -- choosing the connector ----------------------------------------------------------------------


async def test_the_connector_defaults_to_the_home_partners_then_the_users_identity(world: World) -> None:
    by_partner = await world.ask(world.people.guest_b, "demo", home_tenant_id=TENANT_A)
    assert (by_partner["connector"], by_partner["connectorChosenBy"]) == ("partner-a", "partner")
    assert by_partner["homeTenantId"] == TENANT_A
    by_identity = await world.ask(world.people.guest_a, "demo")
    assert (by_identity["connector"], by_identity["connectorChosenBy"]) == ("partner-a", "identity")
    named = await world.ask(world.people.guest_a, "demo", connector_id="partner-b")
    assert (named["connector"], named["connectorChosenBy"], named["homeTenantId"]) == (
        "partner-b", "request", TENANT_B,
    )  # fmt: skip


async def test_subject_and_oid_claims_reach_inbound_targets(tmp_path: Path) -> None:
    """A partner letting one user in: the claims' ``oid`` (the mapping's ``user_id_claim``) is who the
    rule checks; without it the user cannot be told apart and the rule fails closed."""
    only_one = {"access_type": "allowed", "targets": [{"target": "partner-user-1", "target_type": "user"}]}
    config = whatif_config()
    config["cross_tenant_access"]["partners"][1]["b2b_collaboration_inbound"] = {
        "users_and_groups": only_one,
        "applications": {
            "access_type": "allowed",
            "targets": [{"target": "AllApplications", "target_type": "application"}],
        },
    }
    async with world_of(tmp_path, config) as world:

        async def ask(claims: dict[str, Any]) -> str | None:
            answer = await world.ask(world.people.guest_b, "demo", claims=claims)
            return None if answer["outcome"] == "grant" else str(answer["blockReason"])

        assert await ask({"oid": "partner-user-1"}) is None
        assert await ask({"oid": "partner-user-2"}) == "cross_tenant_user_blocked"
        assert await ask({"sub": "partner-user-1"}) == "cross_tenant_user_blocked"  # no oid: fails closed
        assert await ask({}) == "cross_tenant_user_blocked"


ODD_CLAIMS = [
    {"oid": 5, "groups": {"a": 1}},
    {"groups": "one-group", "oid": "x" * 2000},
    {"iscompliant": [1], "ismanaged": None},
    {"iscompliant": 1.0, "ismanaged": "TRUE"},
    {"amr": [], "acr": "x" * 1024, "auth_time": 0},
    {"nested": {"deep": [[[{"x": None}]]]}, "sub": "s" * 1024},
]


@pytest.mark.parametrize("claims", ODD_CLAIMS)
async def test_claims_the_connectors_would_pass_on_are_answered_like_a_sign_in(
    world: World, claims: dict[str, Any]
) -> None:
    """Claims outside the checked ones are read as a sign-in reads them (wrong types count as absent)."""
    for user, connector in ((world.people.guest_a, "partner-a"), (world.people.member, "email")):
        answer = await world.ask(user, "devices", connector_id=connector, claims=claims)
        assert answer["outcome"] in ("grant", "block", "userActionRequired")


# -- bad input: a clear error, nothing written ---------------------------------------------------

BAD = [
    ({"user_id": str(uuid.uuid4())}, "user_id", "user_not_found", "no user has the id"),
    ({"user_id": "x" * 65}, "user_id", "user_not_found", "(the value given)"),
    ({"app_id": "nope"}, "app_id", "app_not_found", "no application has the id 'nope'; configured: demo"),
    ({"connector_id": "ghost"}, "connector_id", "connector_not_found", "configured: email, partner-a"),
    ({"ip_address": "300.1.2.3"}, "ip_address", "invalid_ip_address", "'300.1.2.3' is not an IP address"),
    ({"ip_address": "10.0.0.1\n"}, "ip_address", "invalid_ip_address", "(the value given) is not an IP"),
    ({"home_tenant_id": "has space"}, "home_tenant_id", "invalid_home_tenant_id", "visible ASCII"),
    ({"claims": {"amr": "mfa"}}, "claims.amr", "invalid_claims", "must be a list of at most 32 strings"),
    ({"claims": {"amr": ["mfa", 1]}}, "claims.amr", "invalid_claims", "must be a list"),
    ({"claims": {"acr": 2}}, "claims.acr", "invalid_claims", "must be a non-empty string"),
    ({"claims": {"sub": ""}}, "claims.sub", "invalid_claims", "must be a non-empty string"),
    ({"claims": {"auth_time": True}}, "claims.auth_time", "invalid_claims", "whole number of seconds"),
    ({"claims": {"auth_time": 1.5}}, "claims.auth_time", "invalid_claims", "whole number of seconds"),
    ({"claims": {"auth_time": NOW + 60}}, "claims.auth_time", "invalid_claims", "is in the future"),
    ({"claims": ["amr"]}, "claims", "invalid_claims", "a JSON object"),
]


@pytest.mark.parametrize(("fields", "field", "reason", "message"), BAD)
async def test_bad_input_is_refused_clearly_and_nothing_is_written(
    world: World, fields: dict[str, Any], field: str, reason: str, message: str
) -> None:
    before = (snapshot(world.settings), users(world.settings))
    query = {"user_id": world.people.guest_b, "app_id": "payroll", **fields}
    with pytest.raises(WhatIfError) as raised:
        await what_if(world.settings, world.store, WhatIfQuery(**query), NOW)
    assert (raised.value.field, raised.value.reason) == (field, reason)
    assert message in raised.value.message, raised.value.message
    assert "\n" not in raised.value.message
    assert (snapshot(world.settings), users(world.settings)) == before


async def test_a_user_without_a_usable_identity_must_name_the_connector(world: World) -> None:
    before = users(world.settings)
    with pytest.raises(WhatIfError) as raised:
        await world.ask(world.people.pending, "payroll")
    assert (raised.value.field, raised.value.reason) == ("connector_id", "connector_required")
    assert "name the connector" in raised.value.message
    assert users(world.settings) == before
    answer = await world.ask(world.people.pending, "payroll", connector_id="partner-b")
    assert answer["outcome"] == "userActionRequired"


async def test_a_tenant_claim_the_connector_maps_is_read_and_checked(tmp_path: Path) -> None:
    """An ``oidc`` connector mapping a tenant claim reports it from the claims; a non-string is refused."""
    config = whatif_config()
    config["connectors"][2]["claims"] = {"home_tenant_id": "tid"}  # partner-b
    async with world_of(tmp_path, config) as world:
        answer = await world.ask(world.people.guest_b, "demo", claims={"tid": TENANT_B})
        assert answer["homeTenantId"] == TENANT_B and answer["blockReason"] is None
        mismatch = await world.ask(world.people.guest_b, "demo", claims={"tid": TENANT_A})
        assert mismatch["blockReason"] == "home_tenant_mismatch"
        before = users(world.settings)
        with pytest.raises(WhatIfError) as raised:
            await world.ask(world.people.guest_b, "demo", claims={"tid": 7})
        assert (raised.value.field, raised.value.reason) == ("claims.tid", "invalid_claims")
        assert "claims.tid must be a tenant id" in raised.value.message
        assert users(world.settings) == before
