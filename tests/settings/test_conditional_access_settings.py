"""Conditional-access configuration: named locations, agreements and policies, each bad input placed."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from gateway.settings import ConfigError, load_settings, settings_json_schema
from tests.support.gateway_app import default_config, merge

# Line numbers below are 1-based, as printed; BASE has 12 lines, so appended text starts at line 13.
BASE = """\
issuer: http://127.0.0.1:8000
tenant:
  id: 4f5c2b0e-6a71-4c3e-9a8e-2f1d7c9b1a00
  domain: contoso.example
  name: Contoso
mail:
  from: Contoso <no-reply@contoso.example>
  console: true
connectors:
  - {id: email, type: email_otp}
applications:
  - {id: demo, name: Demo app, oidc: {client_id: demo, redirect_uris: ["http://127.0.0.1:8000/demo/callback"]}}
"""

EXAMPLE = """\
named_locations:
  - {id: office, display_name: Head office, ip_ranges: [203.0.113.0/24, "2001:db8::/32"], is_trusted: true}
terms_of_use:
  - {id: guest-terms, display_name: Guest terms, url: https://contoso.example/terms, version: "2026-01"}
conditional_access:
  - id: guests-mfa
    display_name: Guests need MFA
    state: enabled
    conditions:
      users:
        include_users: [All]
        exclude_users: []
        include_groups: []
        exclude_groups: []
        include_guests_or_external_users:
          guest_or_external_user_types: [b2bCollaborationGuest, b2bCollaborationMember]
          external_tenants: {membership_kind: all}
        exclude_guests_or_external_users: null
      applications: {include_applications: [All], exclude_applications: []}
      locations: {include_locations: [All], exclude_locations: [office]}
    grant_controls: {operator: OR, built_in_controls: [mfa], terms_of_use: [guest-terms]}
    session_controls:
      sign_in_frequency: {is_enabled: true, type: hours, value: 4, frequency_interval: timeBased}
"""


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    yield tmp_path


def placed(workdir: Path, text: str) -> list[str]:
    """The rendered problems of BASE + ``text``; also proves loading left the directory untouched."""
    path = workdir / "gateway.yaml"
    path.write_text(BASE + text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, {})
    assert sorted(p.name for p in workdir.iterdir()) == ["gateway.yaml"]  # nothing persisted
    return [str(p).removeprefix(f"{path}:") for p in caught.value.problems]


def test_the_documented_example_loads(workdir: Path) -> None:
    path = workdir / "gateway.yaml"
    path.write_text(BASE + EXAMPLE, encoding="utf-8")
    settings = load_settings(path, {})
    (office,) = settings.named_locations
    assert office.networks() == (
        ipaddress.ip_network("203.0.113.0/24"),
        ipaddress.ip_network("2001:db8::/32"),
    )
    assert office.is_trusted
    assert settings.terms_of_use[0].version == "2026-01"
    (policy,) = settings.conditional_access
    assert policy.state == "enabled"
    guests = policy.conditions.users.include_guests_or_external_users
    assert guests is not None and guests.external_tenants.membership_kind == "all"
    assert policy.grant_controls is not None and policy.grant_controls.operator == "OR"
    frequency = policy.session_controls.sign_in_frequency if policy.session_controls else None
    assert frequency is not None and frequency.period_seconds == 4 * 3600
    assert frequency.authentication_type == "primaryAndSecondaryAuthentication"


def test_the_default_config_has_no_policies(workdir: Path) -> None:
    path = workdir / "gateway.yaml"
    path.write_text(BASE + "conditional_access: []\n", encoding="utf-8")
    settings = load_settings(path, {})
    assert (settings.conditional_access, settings.named_locations, settings.terms_of_use) == ([], [], [])


def test_shape_errors_are_placed_and_say_what_is_allowed(workdir: Path) -> None:
    found = placed(
        workdir,
        """\
named_locations:
  - {id: lab, display_name: Lab, ip_ranges: [203.0.113.5/24, 300.1.1.1, "2001:db8::1/32"]}
  - {id: AllTrusted, display_name: X, ip_ranges: [10.0.0.0/8, 10.0.0.0/8]}
terms_of_use:
  - {id: plain, display_name: P, url: http://contoso.example/terms, version: "v 1"}
conditional_access:
  - id: two
    display_name: Two
    state: on
    conditions:
      users: {include_users: [all], exclude_users: [None]}
      applications: {include_applications: [demo, All]}
      locations: {include_locations: [office], exclude_locations: [All]}
    grant_controls: {operator: XOR, built_in_controls: [block, mfa]}
    session_controls:
      sign_in_frequency: {type: hours, value: 24}
""",
    )
    users = "conditional_access[0].conditions.users"
    ranges = "named_locations[0].ip_ranges"
    assert found == [
        f"14:46: {ranges}[0]: '203.0.113.5/24' has host bits set; did you mean 203.0.113.0/24?",
        f"14:62: {ranges}[1]: '300.1.1.1' is not an IPv4 or IPv6 address range (CIDR)",
        f"14:73: {ranges}[2]: '2001:db8::1/32' has host bits set; did you mean 2001:db8::/32?",
        "15:10: named_locations[1].id: AllTrusted is a reserved location name; choose another id",
        "15:50: named_locations[1].ip_ranges: '10.0.0.0/8' is listed twice",
        "17:39: terms_of_use[0].url: must use https (http is allowed only for loopback addresses)",
        "17:78: terms_of_use[0].version: 'v 1' must be 1 to 64 letters, digits, '.', '_' or '-', "
        "starting with a letter or digit",
        "21:12: conditional_access[0].state: Input should be 'enabled', 'disabled' or "
        "'enabledForReportingButNotEnforced'",
        f"23:31: {users}.include_users[0]: 'all' is neither a directory user id (a lower-case UUID) "
        "nor one of All, None, GuestsOrExternalUsers",
        f"23:52: {users}.exclude_users: exclude_users takes user ids or GuestsOrExternalUsers, not None",
        "24:44: conditional_access[0].conditions.applications.include_applications: "
        "All stands alone in include_applications: it cannot be combined with other values",
        "25:67: conditional_access[0].conditions.locations.exclude_locations: "
        "exclude_locations takes AllTrusted or named location ids, not All",
        "26:32: conditional_access[0].grant_controls.operator: Input should be 'AND' or 'OR'",
        "26:56: conditional_access[0].grant_controls.built_in_controls: "
        "block stands alone in built_in_controls: it cannot be combined with other values",
        "28:26: conditional_access[0].session_controls.sign_in_frequency: "
        "value must be 1 to 23 hours (use type days for longer periods)",
    ]


def test_references_and_duplicate_ids_are_checked(workdir: Path) -> None:
    found = placed(
        workdir,
        """\
named_locations:
  - {id: office, display_name: Head office, ip_ranges: [203.0.113.0/24]}
  - {id: office, display_name: Again, ip_ranges: [10.0.0.0/8]}
terms_of_use:
  - {id: guest-terms, display_name: Guest terms, url: https://contoso.example/terms, version: "2026-01"}
  - {id: guest-terms, display_name: Guest terms, url: https://contoso.example/terms, version: "2026-02"}
conditional_access:
  - id: one
    display_name: One
    conditions:
      users: {include_users: [All]}
      applications: {include_applications: [demo, payroll], exclude_applications: [ghost]}
      locations: {include_locations: [AllTrusted, home], exclude_locations: [office, away]}
    grant_controls: {operator: AND, built_in_controls: [mfa], terms_of_use: [guest-terms, nope]}
  - id: one
    display_name: One again
    conditions:
      users: {include_users: [All]}
      applications: {include_applications: [All]}
    grant_controls: {built_in_controls: [block]}
""",
    )
    where = "conditional_access[0].conditions"
    assert found == [
        "15:10: named_locations[1].id: duplicate id 'office'",
        "18:10: terms_of_use[1].id: duplicate id 'guest-terms'",
        f"24:51: {where}.applications.include_applications[1]: unknown application 'payroll'",
        f"24:84: {where}.applications.exclude_applications[0]: unknown application 'ghost'",
        f"25:51: {where}.locations.include_locations[1]: unknown named location 'home'",
        f"25:86: {where}.locations.exclude_locations[1]: unknown named location 'away'",
        "26:91: conditional_access[0].grant_controls.terms_of_use[1]: "
        "unknown agreement 'nope' (see terms_of_use)",
        "27:9: conditional_access[1].id: duplicate id 'one'",
    ]


# --- one bad input at a time: key path and message --------------------------------------------------

TENANT = "7d0b8a51-3f2e-4c1a-9b6d-0e5f4a3c2b10"
GROUP = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"


def a_policy(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "p",
        "display_name": "P",
        "conditions": {
            "users": {"include_users": ["All"]},
            "applications": {"include_applications": ["All"]},
        },
        "grant_controls": {"built_in_controls": ["mfa"]},
    }
    return merge(base, changes)


def users(**condition: Any) -> dict[str, Any]:
    policy = a_policy()
    policy["conditions"]["users"] = condition
    return policy


def guests(**condition: Any) -> dict[str, Any]:
    types = {"guest_or_external_user_types": ["b2bCollaborationGuest"]}
    return users(include_users=["All"], include_guests_or_external_users={**types, **condition})


def frequency(**control: Any) -> dict[str, Any]:
    return a_policy(session_controls={"sign_in_frequency": control})


def grant(**controls: Any) -> dict[str, Any]:
    policy = a_policy()
    policy["grant_controls"] = controls
    return policy


def apps(**condition: Any) -> dict[str, Any]:
    policy = a_policy()
    policy["conditions"]["applications"] = condition
    return policy


def ca(policy: dict[str, Any]) -> dict[str, Any]:
    return {"conditional_access": [policy]}


P = "conditional_access[0]"
U = f"{P}.conditions.users"
GU = f"{U}.include_guests_or_external_users"
A = f"{P}.conditions.applications"
G = f"{P}.grant_controls"
F = f"{P}.session_controls.sign_in_frequency"
SLUG = "must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"
AT_LEAST_ONE = "List should have at least 1 item after validation, not 0"
GUEST_TYPES = (
    "Input should be 'internalGuest', 'b2bCollaborationGuest', 'b2bCollaborationMember', "
    "'b2bDirectConnectUser', 'otherExternalUser' or 'serviceProvider'"
)
ROWS: list[tuple[str, dict[str, Any], str]] = [
    (
        "no controls at all",
        ca({**a_policy(), "grant_controls": None}),
        f"{P}: a policy needs grant_controls, session_controls or both",
    ),
    (
        "a typo'd key",
        ca({**a_policy(), "grant_control": {}}),
        f"{P}.grant_control: unknown key `grant_control`; did you mean `grant_controls`? allowed keys: "
        "id, display_name, state, conditions, grant_controls, session_controls",
    ),
    (
        "conditions need applications",
        ca({**a_policy(), "conditions": {"users": {"include_users": ["All"]}}}),
        f"{P}.conditions: missing required key `applications`",
    ),
    ("a policy id is a slug", ca(a_policy(id="guests mfa")), f"{P}.id: 'guests mfa' {SLUG}"),
    (
        "a display name without control characters",
        ca(a_policy(display_name="Guests\n")),
        f"{P}.display_name: must not start or end with spaces or contain control characters",
    ),
    (
        "an unknown guest type",
        ca(users(include_guests_or_external_users={"guest_or_external_user_types": ["none"]})),
        f"{GU}.guest_or_external_user_types[0]: {GUEST_TYPES}",
    ),
    (
        "no guest types",
        ca(users(include_guests_or_external_users={"guest_or_external_user_types": []})),
        f"{GU}.guest_or_external_user_types: {AT_LEAST_ONE}",
    ),
    (
        "a guest type twice",
        ca(guests(guest_or_external_user_types=["internalGuest", "internalGuest"])),
        f"{GU}.guest_or_external_user_types: 'internalGuest' is listed twice",
    ),
    (
        "enumerated without members",
        ca(guests(external_tenants={"membership_kind": "enumerated"})),
        f"{GU}.external_tenants: membership_kind enumerated needs at least one tenant id in members",
    ),
    (
        "all with members",
        ca(guests(external_tenants={"membership_kind": "all", "members": [TENANT]})),
        f"{GU}.external_tenants: members is allowed only with membership_kind enumerated",
    ),
    (
        "a member that is no tenant id",
        ca(guests(external_tenants={"membership_kind": "enumerated", "members": ["fabrikam.example"]})),
        f"{GU}.external_tenants.members[0]: 'fabrikam.example' is not a tenant id (a lower-case UUID)",
    ),
    (
        "nobody included",
        ca(users(exclude_users=["GuestsOrExternalUsers"])),
        f"{U}: include someone: set include_users, include_groups or include_guests_or_external_users",
    ),
    (
        "None with groups",
        ca(users(include_users=["None"], include_groups=[GROUP])),
        f"{U}: include_users None stands alone: remove include_groups and include_guests_or_external_users",
    ),
    (
        "All mixed with a user id",
        ca(users(include_users=["All", GROUP])),
        f"{U}.include_users: All stands alone in include_users: it cannot be combined with other values",
    ),
    (
        "a user listed twice",
        ca(users(include_users=[GROUP, GROUP])),
        f"{U}.include_users: '{GROUP}' is listed twice",
    ),
    (
        "exclude All",
        ca(users(include_users=["All"], exclude_users=["All"])),
        f"{U}.exclude_users: exclude_users takes user ids or GuestsOrExternalUsers, not All",
    ),
    (
        "a group id that is no id",
        ca(users(include_groups=["Sales"])),
        f"{U}.include_groups[0]: 'Sales' is not a directory group id (a lower-case UUID)",
    ),
    (
        "exclude_applications None",
        ca(apps(include_applications=["All"], exclude_applications=["None"])),
        f"{A}.exclude_applications: exclude_applications takes application ids, not None",
    ),
    (
        "no applications included",
        ca(apps(include_applications=[])),
        f"{A}.include_applications: {AT_LEAST_ONE}",
    ),
    (
        "location All mixed",
        ca(a_policy(conditions={"locations": {"include_locations": ["All", "AllTrusted"]}})),
        f"{P}.conditions.locations.include_locations: All stands alone in include_locations: "
        "it cannot be combined with other values",
    ),
    ("an empty grant", ca(grant()), f"{G}: a grant needs at least one of built_in_controls or terms_of_use"),
    (
        "block with terms",
        ca(grant(operator="AND", built_in_controls=["block"], terms_of_use=["t"])),
        f"{G}: block stands alone: it cannot be combined with terms_of_use",
    ),
    (
        "two controls without an operator",
        ca(grant(built_in_controls=["mfa", "compliantDevice"])),
        f"{G}: operator (AND or OR) is required with more than one control or agreement",
    ),
    (
        "a control guests cannot use",
        ca(grant(built_in_controls=["passwordChange"])),
        f"{G}.built_in_controls[0]: Input should be 'block', 'mfa', 'compliantDevice' or "
        "'domainJoinedDevice'",
    ),
    (
        "a control twice",
        ca(grant(operator="AND", built_in_controls=["mfa", "mfa"])),
        f"{G}.built_in_controls: 'mfa' is listed twice",
    ),
    (
        "timeBased without a value",
        ca(frequency(type="hours")),
        f"{F}: frequency_interval timeBased needs type (days or hours) and value",
    ),
    (
        "everyTime with a period",
        ca(frequency(frequency_interval="everyTime", type="days", value=1)),
        f"{F}: frequency_interval everyTime takes no type or value",
    ),
    (
        "zero hours",
        ca(frequency(type="hours", value=0)),
        f"{F}: value must be 1 to 23 hours (use type days for longer periods)",
    ),
    ("366 days", ca(frequency(type="days", value=366)), f"{F}: value must be 1 to 365 days"),
    (
        "an unknown authentication type",
        ca(frequency(type="days", value=1, authentication_type="primaryAuthentication")),
        f"{F}.authentication_type: Input should be 'primaryAndSecondaryAuthentication' or "
        "'secondaryAuthentication'",
    ),
    (
        "empty session controls",
        ca(a_policy(session_controls={})),
        f"{P}.session_controls: set at least one session control (sign_in_frequency), "
        "or leave session_controls out",
    ),
    (
        "a location without ranges",
        {"named_locations": [{"id": "x", "display_name": "X", "ip_ranges": []}]},
        f"named_locations[0].ip_ranges: {AT_LEAST_ONE}",
    ),
    (
        "location id All",
        {"named_locations": [{"id": "All", "display_name": "X", "ip_ranges": ["10.0.0.0/8"]}]},
        "named_locations[0].id: All is a reserved location name; choose another id",
    ),
    (
        "an agreement needs a version",
        {"terms_of_use": [{"id": "t", "display_name": "T", "url": "https://contoso.example/t"}]},
        "terms_of_use[0]: missing required key `version`",
    ),
]


@pytest.mark.parametrize(("overrides", "expected"), [pytest.param(*row[1:], id=row[0]) for row in ROWS])
def test_one_bad_input(workdir: Path, overrides: dict[str, Any], expected: str) -> None:
    path = workdir / "gateway.yaml"
    with path.open("w") as handle:
        YAML().dump(merge(default_config(), overrides), handle)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, {})
    assert [f"{p.key_path}: {p.message}" for p in caught.value.problems] == [expected]
    assert sorted(p.name for p in workdir.iterdir()) == ["gateway.yaml"]  # nothing persisted


def test_loopback_http_terms_and_ipv6_ranges_are_accepted(workdir: Path) -> None:
    path = workdir / "gateway.yaml"
    text = (
        "named_locations:\n"
        '  - {id: v6, display_name: V6, ip_ranges: ["2001:DB8:0:0::/64", 192.0.2.7]}\n'
        "terms_of_use:\n"
        "  - {id: local, display_name: Local terms, url: http://127.0.0.1:8000/terms, version: v1.0}\n"
    )
    path.write_text(BASE + text, encoding="utf-8")
    settings = load_settings(path, {})
    assert settings.named_locations[0].ip_ranges == ["2001:db8::/64", "192.0.2.7/32"]  # canonical form
    assert settings.terms_of_use[0].url == "http://127.0.0.1:8000/terms"


def test_every_field_is_described_in_the_schema() -> None:
    defs = settings_json_schema()["$defs"]
    models = [
        "NamedLocation",
        "Agreement",
        "ExternalTenants",
        "GuestsOrExternalUsers",
        "UserConditions",
        "ApplicationConditions",
        "LocationConditions",
        "Conditions",
        "GrantControls",
        "SignInFrequency",
        "SessionControls",
        "ConditionalAccessPolicy",
    ]
    undescribed = [
        f"{model}.{name}"
        for model in models
        for name, field in defs[model]["properties"].items()
        if not field.get("description")
    ]
    assert undescribed == []
    assert defs["ConditionalAccessPolicy"]["additionalProperties"] is False
