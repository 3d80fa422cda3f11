"""Conditional access evaluation, table-tested: conditions, grants, sign-in frequency, combining policies."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from gateway.policy.conditional_access import Context, Evaluation, Subject, evaluate
from gateway.settings.conditional_access import Agreement, ConditionalAccessPolicy, NamedLocation

NOW = 1_800_000_000
HOUR = 3600
FABRIKAM = "7d0b8a51-3f2e-4c1a-9b6d-0e5f4a3c2b10"
WINGTIP = "0c2f9d4e-8b7a-4e6d-a5c3-1f2e3d4c5b6a"
MEMBER_ID = "11111111-1111-4111-8111-111111111111"
GUEST_ID = "22222222-2222-4222-8222-222222222222"
OTHER_ID = "33333333-3333-4333-8333-333333333333"
SALES = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
CONTRACTORS = "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb"

OFFICE = NamedLocation(
    id="office", display_name="Head office", ip_ranges=["203.0.113.0/24", "2001:db8::/32"], is_trusted=True
)
LAB = NamedLocation(id="lab", display_name="Lab", ip_ranges=["198.51.100.0/24"])
LOCATIONS = [OFFICE, LAB]
GUEST_TERMS = Agreement(
    id="guest-terms", display_name="Guest terms", url="https://contoso.example/terms", version="2026-01"
)
NDA = Agreement(id="nda", display_name="NDA", url="https://contoso.example/nda", version="v2")
AGREEMENTS = [GUEST_TERMS, NDA]

MEMBER = Subject(MEMBER_ID, frozenset({SALES}), None, None)
GUEST = Subject(GUEST_ID, frozenset({CONTRACTORS}), "b2bCollaborationGuest", FABRIKAM)
GUEST_MEMBER = Subject(OTHER_ID, frozenset(), "b2bCollaborationMember", WINGTIP)
LOCAL_GUEST = Subject(OTHER_ID, frozenset(), "internalGuest", None)
DIRECT_CONNECT = Subject(None, frozenset(), "b2bDirectConnectUser", FABRIKAM)

EVERYONE = {"include_users": ["All"]}
MFA = {"built_in_controls": ["mfa"]}


def context(**changes: Any) -> Context:
    base = Context(
        app_id="demo",
        client_ip="192.0.2.10",
        mfa=False,
        compliant_device=False,
        hybrid_joined_device=False,
        accepted_terms={},
        auth_time=NOW - 60,
        mfa_time=None,
        signin_started_at=NOW - 30,
        now=NOW,
    )
    return dataclasses.replace(base, **changes)


def policy(
    pid: str = "p1",
    *,
    state: str = "enabled",
    users: dict[str, Any] | None = None,
    apps: dict[str, Any] | None = None,
    locations: dict[str, Any] | None = None,
    grant: dict[str, Any] | None = None,
    session: dict[str, Any] | None = None,
) -> ConditionalAccessPolicy:
    conditions: dict[str, Any] = {
        "users": EVERYONE if users is None else users,
        "applications": {"include_applications": ["All"]} if apps is None else apps,
    }
    if locations is not None:
        conditions["locations"] = locations
    data: dict[str, Any] = {
        "id": pid,
        "display_name": f"Policy {pid}",
        "state": state,
        "conditions": conditions,
    }
    if grant is not None or session is None:
        data["grant_controls"] = MFA if grant is None else grant
    if session is not None:
        data["session_controls"] = {"sign_in_frequency": session}
    return ConditionalAccessPolicy.model_validate(data)


def run(policies: list[ConditionalAccessPolicy], subject: Subject = GUEST, **changes: Any) -> Evaluation:
    return evaluate(policies, LOCATIONS, AGREEMENTS, subject, context(**changes))


# --- which policies apply: users -> applications -> locations, first failed condition reported ---------

APPLIED = ("userActionRequired", "mfa_required")
NOT_INCLUDED = ("notApplied", "user_not_included")
EXCLUDED = ("notApplied", "user_excluded")
APP_NOT_INCLUDED = ("notApplied", "application_not_included")
NOT_HERE = ("notApplied", "location_not_included")
EXCLUDED_HERE = ("notApplied", "location_excluded")


def users(**condition: Any) -> dict[str, Any]:
    return {"users": condition}


def types(*listed: str, members: list[str] | None = None) -> dict[str, Any]:
    """A guests-or-external-users condition: these types, from all tenants or the listed ones."""
    tenants = (
        {"membership_kind": "all"}
        if members is None
        else {"membership_kind": "enumerated", "members": members}
    )
    return {"guest_or_external_user_types": list(listed), "external_tenants": tenants}


def apps(*included: str, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"apps": {"include_applications": list(included), "exclude_applications": list(exclude)}}


def at(*included: str, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"locations": {"include_locations": list(included), "exclude_locations": list(exclude)}}


def ip(address: str | None) -> dict[str, Any]:
    return {"client_ip": address}


GUEST_TYPE = types("b2bCollaborationGuest")
ANYWHERE_BUT_OFFICE = at("All", exclude=("office",))

APPLICABILITY: list[tuple[str, Subject, dict[str, Any], dict[str, Any], tuple[str, str]]] = [
    ("All covers a member", MEMBER, {}, {}, APPLIED),
    ("All covers a guest", GUEST, {}, {}, APPLIED),
    ("All covers a direct-connect user without a directory id", DIRECT_CONNECT, {}, {}, APPLIED),
    ("None covers nobody", GUEST, users(include_users=["None"]), {}, NOT_INCLUDED),
    ("a listed user id", GUEST, users(include_users=[GUEST_ID]), {}, APPLIED),
    ("another user id", GUEST, users(include_users=[MEMBER_ID]), {}, NOT_INCLUDED),
    (
        "GuestsOrExternalUsers covers a guest",
        GUEST,
        users(include_users=["GuestsOrExternalUsers"]),
        {},
        APPLIED,
    ),
    (
        "GuestsOrExternalUsers leaves out a member",
        MEMBER,
        users(include_users=["GuestsOrExternalUsers"]),
        {},
        NOT_INCLUDED,
    ),
    ("a group the user is in", MEMBER, users(include_groups=[SALES]), {}, APPLIED),
    ("a group the user is not in", GUEST, users(include_groups=[SALES]), {}, NOT_INCLUDED),
    (
        "excluded group wins over All",
        GUEST,
        users(include_users=["All"], exclude_groups=[CONTRACTORS]),
        {},
        EXCLUDED,
    ),
    (
        "excluded id wins over the same id",
        GUEST,
        users(include_users=[GUEST_ID], exclude_users=[GUEST_ID]),
        {},
        EXCLUDED,
    ),
    (
        "excluding GuestsOrExternalUsers keeps members",
        MEMBER,
        users(include_users=["All"], exclude_users=["GuestsOrExternalUsers"]),
        {},
        APPLIED,
    ),
    (
        "excluding GuestsOrExternalUsers drops a guest",
        GUEST,
        users(include_users=["All"], exclude_users=["GuestsOrExternalUsers"]),
        {},
        EXCLUDED,
    ),
    (
        "guest type listed, all tenants",
        GUEST,
        users(include_guests_or_external_users=GUEST_TYPE),
        {},
        APPLIED,
    ),
    (
        "guest type not listed",
        GUEST_MEMBER,
        users(include_guests_or_external_users=GUEST_TYPE),
        {},
        NOT_INCLUDED,
    ),
    (
        "a member is no guest type",
        MEMBER,
        users(include_guests_or_external_users=types("internalGuest", "otherExternalUser")),
        {},
        NOT_INCLUDED,
    ),
    (
        "enumerated tenants include the guest's home",
        GUEST,
        users(include_guests_or_external_users=types("b2bCollaborationGuest", members=[WINGTIP, FABRIKAM])),
        {},
        APPLIED,
    ),
    (
        "enumerated tenants leave out the guest's home",
        GUEST,
        users(include_guests_or_external_users=types("b2bCollaborationGuest", members=[WINGTIP])),
        {},
        NOT_INCLUDED,
    ),
    (
        "a guest without a home tenant never matches enumerated tenants",
        LOCAL_GUEST,
        users(include_guests_or_external_users=types("internalGuest", members=[FABRIKAM])),
        {},
        NOT_INCLUDED,
    ),
    (
        "an excluded guest type from one tenant wins over All",
        DIRECT_CONNECT,
        users(
            include_users=["All"],
            exclude_guests_or_external_users=types("b2bDirectConnectUser", members=[FABRIKAM]),
        ),
        {},
        EXCLUDED,
    ),
    ("the app is not included", GUEST, apps("payroll"), {}, APP_NOT_INCLUDED),
    ("the app is included by id", GUEST, apps("payroll", "demo"), {}, APPLIED),
    ("include_applications None", GUEST, apps("None"), {}, APP_NOT_INCLUDED),
    (
        "the app is excluded",
        GUEST,
        apps("All", exclude=("demo",)),
        {},
        ("notApplied", "application_excluded"),
    ),
    (
        "users are checked before applications",
        GUEST,
        {**users(include_users=[MEMBER_ID]), **apps("payroll")},
        {},
        NOT_INCLUDED,
    ),
    (
        "applications are checked before locations",
        GUEST,
        {**apps("payroll"), **at("lab")},
        {},
        APP_NOT_INCLUDED,
    ),
    ("location All covers an unknown address", GUEST, at("All"), ip(None), APPLIED),
    ("inside a named IPv4 range", GUEST, at("office"), ip("203.0.113.200"), APPLIED),
    ("inside a named IPv6 range", GUEST, at("office"), ip("2001:db8:4::1"), APPLIED),
    ("outside the included location", GUEST, at("office"), ip("203.0.114.1"), NOT_HERE),
    ("an unknown address matches no named location", GUEST, at("office", "lab"), ip(None), NOT_HERE),
    ("AllTrusted covers a trusted range", GUEST, at("AllTrusted"), ip("2001:db8::7"), APPLIED),
    ("AllTrusted leaves out an untrusted range", GUEST, at("AllTrusted"), ip("198.51.100.9"), NOT_HERE),
    (
        "excluded trusted locations",
        GUEST,
        at("All", exclude=("AllTrusted",)),
        ip("203.0.113.5"),
        EXCLUDED_HERE,
    ),
    (
        "excluded wins over the same included",
        GUEST,
        at("lab", exclude=("lab",)),
        ip("198.51.100.9"),
        EXCLUDED_HERE,
    ),
    ("an unknown address is not excluded", GUEST, ANYWHERE_BUT_OFFICE, ip(None), APPLIED),
    (
        "an unparsable address counts as unknown",
        GUEST,
        ANYWHERE_BUT_OFFICE,
        ip("203.0.113.5, 10.0.0.1"),
        APPLIED,
    ),
    (
        "an IPv4-mapped IPv6 address matches as IPv4",
        GUEST,
        ANYWHERE_BUT_OFFICE,
        ip("::ffff:203.0.113.5"),
        EXCLUDED_HERE,
    ),
    ("an IPv6 address against an IPv4 range", GUEST, at("lab"), ip("2001:db8::1"), NOT_HERE),
    (
        "a disabled policy is not evaluated",
        GUEST,
        {"state": "disabled"},
        {},
        ("notEnabled", "policy_disabled"),
    ),
]


@pytest.mark.parametrize(
    ("subject", "shape", "changes", "expected"),
    [pytest.param(*row[1:], id=row[0]) for row in APPLICABILITY],
)
def test_which_policies_apply(
    subject: Subject, shape: dict[str, Any], changes: dict[str, Any], expected: tuple[str, str]
) -> None:
    (result,) = run([policy(**shape)], subject, **changes).results
    assert (result.result, result.reason) == expected
    if result.result == "notApplied":
        assert result.enforced_grant_controls == () and result.unmet == ()


# --- grant controls -------------------------------------------------------------------------------

TERMS_ID = "terms:guest-terms"
ACCEPTED = {"guest-terms": "2026-01"}

Expected = tuple[str, str, tuple[str, ...]]


def grant_of(*controls: str, operator: str | None = None) -> dict[str, Any]:
    """A grant from control names; ``terms:<id>`` names an agreement."""
    built_in = [c for c in controls if not c.startswith("terms:")]
    terms = [c.removeprefix("terms:") for c in controls if c.startswith("terms:")]
    grant: dict[str, Any] = {"built_in_controls": built_in, "terms_of_use": terms}
    return grant if operator is None else {**grant, "operator": operator}


def all_of(*controls: str) -> dict[str, Any]:
    return grant_of(*controls, operator="AND")


def any_of(*controls: str) -> dict[str, Any]:
    return grant_of(*controls, operator="OR")


def ok(reason: str = "grant_satisfied") -> Expected:
    return ("success", reason, ())


def ask(reason: str, *unmet: str) -> Expected:
    return ("userActionRequired", reason, unmet)


def fail(reason: str, *unmet: str) -> Expected:
    return ("failure", reason, unmet)


NDA_ID = "terms:nda"
DEVICES = ("compliantDevice", "domainJoinedDevice")
GRANTS: list[tuple[str, dict[str, Any], dict[str, Any], Expected]] = [
    ("block", grant_of("block"), {"mfa": True}, fail("blocked_by_policy", "block")),
    ("mfa missing", MFA, {}, ask("mfa_required", "mfa")),
    ("mfa satisfied", MFA, {"mfa": True}, ok()),
    (
        "compliant device, no trusted claim",
        grant_of("compliantDevice"),
        {"mfa": True},
        fail("device_not_compliant", "compliantDevice"),
    ),
    ("compliant device trusted", grant_of("compliantDevice"), {"compliant_device": True}, ok()),
    (
        "hybrid-joined device, no trusted claim",
        grant_of("domainJoinedDevice"),
        {"compliant_device": True},
        fail("device_not_hybrid_joined", "domainJoinedDevice"),
    ),
    ("terms never accepted", grant_of(TERMS_ID), {}, ask("terms_required", TERMS_ID)),
    (
        "terms accepted in an older version",
        grant_of(TERMS_ID),
        {"accepted_terms": {"guest-terms": "2025-06"}},
        ask("terms_required", TERMS_ID),
    ),
    ("terms accepted in the current version", grant_of(TERMS_ID), {"accepted_terms": ACCEPTED}, ok()),
    ("AND: mfa and terms missing", all_of("mfa", TERMS_ID), {}, ask("mfa_required", "mfa", TERMS_ID)),
    ("AND: terms missing after mfa", all_of("mfa", TERMS_ID), {"mfa": True}, ask("terms_required", TERMS_ID)),
    (
        "AND: an untrusted device fails despite mfa",
        all_of("mfa", "compliantDevice"),
        {"mfa": True},
        fail("device_not_compliant", "compliantDevice"),
    ),
    (
        "AND: a device control fails the whole grant",
        all_of("mfa", "compliantDevice"),
        {},
        fail("device_not_compliant", "mfa", "compliantDevice"),
    ),
    (
        "AND: everything met",
        all_of("mfa", "compliantDevice", TERMS_ID),
        {"mfa": True, "compliant_device": True, "accepted_terms": ACCEPTED},
        ok(),
    ),
    ("OR: a trusted device is enough", any_of("mfa", "compliantDevice"), {"compliant_device": True}, ok()),
    (
        "OR: asks for the first actionable control",
        any_of("compliantDevice", "mfa", TERMS_ID),
        {},
        ask("mfa_required", "mfa"),
    ),
    (
        "OR: terms come after built-in controls",
        any_of("domainJoinedDevice", NDA_ID, TERMS_ID),
        {},
        ask("terms_required", NDA_ID),
    ),
    (
        "OR: only device controls, none trusted",
        any_of(*DEVICES),
        {"mfa": True},
        fail("device_not_compliant", *DEVICES),
    ),
    ("OR: one of two agreements accepted", any_of(TERMS_ID, NDA_ID), {"accepted_terms": {"nda": "v2"}}, ok()),
]


@pytest.mark.parametrize(
    ("grant", "changes", "expected"), [pytest.param(*row[1:], id=row[0]) for row in GRANTS]
)
def test_grant_controls(
    grant: dict[str, Any], changes: dict[str, Any], expected: tuple[str, str, tuple[str, ...]]
) -> None:
    (result,) = run([policy(grant=grant)], **changes).results
    assert (result.result, result.reason, result.unmet) == expected


def test_an_agreement_missing_from_the_configuration_fails_closed() -> None:
    evaluation = evaluate(
        [policy(grant={"terms_of_use": ["guest-terms"]})],
        LOCATIONS,
        [NDA],
        GUEST,
        context(accepted_terms=ACCEPTED),
    )
    (result,) = evaluation.results
    assert (result.result, result.reason, result.unmet) == ("failure", "terms_unavailable", (TERMS_ID,))
    assert evaluation.blocked and evaluation.block_reason == "terms_unavailable"


def test_enforced_controls_name_the_policy_controls() -> None:
    grant = {"operator": "AND", "built_in_controls": ["mfa"], "terms_of_use": ["guest-terms"]}
    session = {"type": "hours", "value": 4}
    (result,) = run([policy(grant=grant, session=session)], mfa=True, accepted_terms=ACCEPTED).results
    assert result.enforced_grant_controls == ("mfa", "termsOfUse:guest-terms")
    assert result.enforced_session_controls == ("signInFrequency",)
    assert (result.policy_id, result.display_name, result.state) == ("p1", "Policy p1", "enabled")


# --- sign-in frequency -----------------------------------------------------------------------------

FOUR_HOURS = {"type": "hours", "value": 4}
SECONDARY = {"type": "hours", "value": 4, "authentication_type": "secondaryAuthentication"}
EVERY_TIME = {"frequency_interval": "everyTime"}
EVERY_TIME_MFA = {"frequency_interval": "everyTime", "authentication_type": "secondaryAuthentication"}

SESSION_OK = ok("session_controls_satisfied")
REAUTHENTICATE = ask("sign_in_frequency_reauthentication", "reauthentication")
FRESH_MFA = ask("sign_in_frequency_mfa", "mfa")


def signed_in(seconds_ago: int, **changes: Any) -> dict[str, Any]:
    return {"auth_time": NOW - seconds_ago, **changes}


def mfa_done(seconds_ago: int) -> dict[str, Any]:
    return {"mfa": True, "mfa_time": NOW - seconds_ago}


FREQUENCY: list[tuple[str, dict[str, Any] | None, dict[str, Any], dict[str, Any], Expected]] = [
    ("signed in an hour ago, 4 hours allowed", None, FOUR_HOURS, signed_in(HOUR), SESSION_OK),
    ("signed in 5 hours ago, 4 hours allowed", None, FOUR_HOURS, signed_in(5 * HOUR), REAUTHENTICATE),
    ("exactly at the limit", None, FOUR_HOURS, signed_in(4 * HOUR), SESSION_OK),
    ("one second past the limit", None, FOUR_HOURS, signed_in(4 * HOUR + 1), REAUTHENTICATE),
    (
        "days: two days old, one allowed",
        None,
        {"type": "days", "value": 1},
        signed_in(48 * HOUR),
        REAUTHENTICATE,
    ),
    ("secondary: MFA an hour ago", None, SECONDARY, signed_in(10 * HOUR, **mfa_done(HOUR)), SESSION_OK),
    ("secondary: never did MFA", None, SECONDARY, {}, FRESH_MFA),
    ("secondary: the grant's MFA is too old", MFA, SECONDARY, mfa_done(5 * HOUR), FRESH_MFA),
    ("everyTime: signed in before this sign-in (SSO)", None, EVERY_TIME, signed_in(31), REAUTHENTICATE),
    ("everyTime: signed in during this sign-in", None, EVERY_TIME, signed_in(30), SESSION_OK),
    ("everyTime secondary: MFA from an earlier sign-in", None, EVERY_TIME_MFA, mfa_done(60), FRESH_MFA),
    ("everyTime secondary: MFA during this sign-in", None, EVERY_TIME_MFA, mfa_done(5), SESSION_OK),
    (
        "a disabled frequency control is ignored",
        None,
        {**FOUR_HOURS, "is_enabled": False},
        signed_in(50 * HOUR),
        SESSION_OK,
    ),
    (
        "a grant action and reauthentication",
        MFA,
        FOUR_HOURS,
        signed_in(5 * HOUR),
        ask("mfa_required", "mfa", "reauthentication"),
    ),
    (
        "a satisfied grant still needs reauthentication",
        MFA,
        FOUR_HOURS,
        signed_in(5 * HOUR, mfa=True),
        REAUTHENTICATE,
    ),
    (
        "block is not softened by a frequency",
        grant_of("block"),
        FOUR_HOURS,
        signed_in(5 * HOUR),
        fail("blocked_by_policy", "block"),
    ),
]


@pytest.mark.parametrize(
    ("grant", "session", "changes", "expected"), [pytest.param(*row[1:], id=row[0]) for row in FREQUENCY]
)
def test_sign_in_frequency(
    grant: dict[str, Any] | None,
    session: dict[str, Any],
    changes: dict[str, Any],
    expected: tuple[str, str, tuple[str, ...]],
) -> None:
    (result,) = run([policy(grant=grant, session=session)], **changes).results
    assert (result.result, result.reason, result.unmet) == expected


# --- the whole evaluation: report-only, several policies, status, authentication requirement --------


def block(pid: str, **shape: Any) -> ConditionalAccessPolicy:
    return policy(pid, grant=grant_of("block"), **shape)


def needs(pid: str, grant: dict[str, Any], **shape: Any) -> ConditionalAccessPolicy:
    return policy(pid, grant=grant, **shape)


REPORT_ONLY = "enabledForReportingButNotEnforced"
DEVICE = grant_of("compliantDevice")
TERMS = grant_of(TERMS_ID)
MFA_OR_TERMS = any_of("mfa", TERMS_ID)
NOBODY = {"include_users": ["None"]}
SINGLE, MULTI = "singleFactorAuthentication", "multiFactorAuthentication"
ASKED = "userActionRequired"

Outcome = tuple[bool, str | None, tuple[str, ...], str, str]


def untouched(requirement: str = SINGLE) -> Outcome:
    """No enforced policy applied."""
    return (False, None, (), "notApplied", requirement)


def passed(requirement: str, *required: str) -> Outcome:
    return (False, None, required, "success", requirement)


def blocked(reason: str, requirement: str) -> Outcome:
    return (True, reason, (), "failure", requirement)


# (id, policies, context changes, per-policy results, (blocked, block_reason, required, status, requirement))
COMBINED: list[tuple[str, list[ConditionalAccessPolicy], dict[str, Any], list[str], Outcome]] = [
    ("no policies", [], {}, [], untouched()),
    (
        "report-only block never blocks",
        [block("b", state=REPORT_ONLY)],
        {},
        ["reportOnlyFailure"],
        untouched(),
    ),
    (
        "report-only MFA never asks",
        [needs("m", MFA, state=REPORT_ONLY)],
        {},
        ["reportOnlyInterrupted"],
        untouched(),
    ),
    (
        "report-only satisfied",
        [needs("m", MFA, state=REPORT_ONLY)],
        {"mfa": True},
        ["reportOnlySuccess"],
        untouched(),
    ),
    (
        "report-only not applied",
        [block("b", state=REPORT_ONLY, users=NOBODY)],
        {},
        ["reportOnlyNotApplied"],
        untouched(),
    ),
    (
        "report-only block beside an enforced MFA policy",
        [block("b", state=REPORT_ONLY), needs("m", MFA)],
        {"mfa": True},
        ["reportOnlyFailure", "success"],
        passed(MULTI),
    ),
    (
        "MFA and terms from two policies",
        [needs("m", MFA), needs("t", TERMS)],
        {},
        [ASKED, ASKED],
        passed(MULTI, "mfa", TERMS_ID),
    ),
    (
        "the same action from two policies is asked once",
        [needs("m1", MFA), needs("m2", all_of("mfa", NDA_ID))],
        {"accepted_terms": {"nda": "v2"}},
        [ASKED, ASKED],
        passed(MULTI, "mfa"),
    ),
    (
        "a block wins; nothing is asked",
        [needs("m", MFA), block("b")],
        {},
        [ASKED, "failure"],
        blocked("blocked_by_policy", MULTI),
    ),
    (
        "the first failure is the block reason",
        [needs("d", DEVICE), block("b")],
        {},
        ["failure", "failure"],
        blocked("device_not_compliant", SINGLE),
    ),
    (
        "a disabled block is ignored",
        [block("b", state="disabled"), needs("m", MFA)],
        {},
        ["notEnabled", ASKED],
        passed(MULTI, "mfa"),
    ),
    (
        "only disabled and not-applied policies",
        [block("b", state="disabled"), block("n", users=NOBODY)],
        {},
        ["notEnabled", "notApplied"],
        untouched(),
    ),
    (
        "an OR grant takes the action another policy needs anyway",
        [needs("o", MFA_OR_TERMS), needs("t", TERMS)],
        {},
        [ASKED, ASKED],
        passed(SINGLE, TERMS_ID),
    ),
    (
        "OR grants share one action",
        [needs("o", MFA_OR_TERMS), needs("p", any_of("compliantDevice", TERMS_ID))],
        {},
        [ASKED, ASKED],
        passed(SINGLE, TERMS_ID),
    ),
    (
        "an OR grant met by a device does not demand MFA",
        [needs("o", any_of("mfa", "compliantDevice"))],
        {"mfa": True, "compliant_device": True},
        ["success"],
        passed(SINGLE),
    ),
    (
        "an OR grant met only by MFA demands MFA",
        [needs("o", any_of("mfa", "compliantDevice"))],
        {"mfa": True},
        ["success"],
        passed(MULTI),
    ),
    (
        "a secondary frequency demands MFA",
        [policy("f", session=SECONDARY)],
        mfa_done(60),
        ["success"],
        passed(MULTI),
    ),
    (
        "a satisfied terms policy is single factor",
        [needs("t", TERMS)],
        {"accepted_terms": ACCEPTED},
        ["success"],
        passed(SINGLE),
    ),
    (
        "a not-applied MFA policy does not raise the requirement",
        [needs("m", MFA, apps={"include_applications": ["payroll"]})],
        {},
        ["notApplied"],
        untouched(),
    ),
]


@pytest.mark.parametrize(
    ("policies", "changes", "results", "expected"), [pytest.param(*row[1:], id=row[0]) for row in COMBINED]
)
def test_policies_combine(
    policies: list[ConditionalAccessPolicy],
    changes: dict[str, Any],
    results: list[str],
    expected: tuple[Any, ...],
) -> None:
    evaluation = run(policies, **changes)
    assert [r.result for r in evaluation.results] == results
    assert [r.policy_id for r in evaluation.results] == [p.id for p in policies]
    assert (
        evaluation.blocked,
        evaluation.block_reason,
        evaluation.required,
        evaluation.status,
        evaluation.authentication_requirement,
    ) == expected


def test_report_only_results_match_what_enforcement_would_do() -> None:
    shapes: list[dict[str, Any]] = [MFA, DEVICE, TERMS]
    for shape in shapes:
        enforced = run([needs("x", shape)]).results[0]
        reported = run([needs("x", shape, state=REPORT_ONLY)]).results[0]
        assert (reported.reason, reported.unmet) == (enforced.reason, enforced.unmet)
        assert (
            reported.result
            == {
                "userActionRequired": "reportOnlyInterrupted",
                "failure": "reportOnlyFailure",
            }[enforced.result]
        )


def test_a_member_passes_a_guests_only_block() -> None:
    guests_blocked = block("g", users={"include_users": ["GuestsOrExternalUsers"]})
    assert run([guests_blocked], MEMBER).blocked is False
    assert run([guests_blocked], GUEST).blocked is True
