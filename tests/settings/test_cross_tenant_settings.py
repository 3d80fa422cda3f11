"""Cross-tenant access settings: the YAML shape, inheritance defaults and the §5.3 consistency rules.

Every bad input is refused with its key path and a message saying what is allowed, and loading a
refused file writes nothing (no ``var/``, no store).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from gateway.settings.federation import (
    DEFAULT_MFA_ACR_VALUES,
    ClaimsMapping,
    CrossTenantAccess,
    CrossTenantDefault,
    DeviceClaim,
    InboundTrust,
    Partner,
)
from gateway.settings.loader import ConfigError, load_settings, settings_json_schema
from gateway.settings.models import Settings
from tests.support.gateway_app import default_config, merge

FABRIKAM = "7d0b8a51-3f2e-4c1a-9b6d-0e5f4a3c2b10"
OWN_TENANT = "4f5c2b0e-6a71-4c3e-9a8e-2f1d7c9b1a00"
MSA = "9188040d-6c67-4c5b-b112-36a304b66dad"
CTA = "cross_tenant_access"
DEFAULT_INBOUND = f"{CTA}.default.b2b_collaboration_inbound"
PARTNER_INBOUND = f"{CTA}.partners[0].b2b_collaboration_inbound"
NO_SPECIFIC_USERS = (
    "the default covers every organisation, so it cannot name specific users or groups: "
    "use AllUsers, or give the organisation a partner entry"
)
NOT_ASCII = "must be visible ASCII characters, without spaces"


def all_users(access: str = "allowed") -> dict[str, Any]:
    return {"access_type": access, "targets": [{"target": "AllUsers", "target_type": "user"}]}


def all_apps(access: str = "allowed") -> dict[str, Any]:
    return {"access_type": access, "targets": [{"target": "AllApplications", "target_type": "application"}]}


def targets(access: str, *items: tuple[str, str]) -> dict[str, Any]:
    return {"access_type": access, "targets": [{"target": t, "target_type": k} for t, k in items]}


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    yield tmp_path


def load(workdir: Path, data: dict[str, Any]) -> Settings:
    path = workdir / "gateway.yaml"
    with path.open("w") as handle:
        YAML().dump(data, handle)
    return load_settings(path, {})


def problems(workdir: Path, **overrides: Any) -> list[str]:
    """``key.path: message`` of each problem; also proves loading wrote nothing."""
    before = sorted(p.name for p in workdir.iterdir())
    with pytest.raises(ConfigError) as caught:
        load(workdir, merge(default_config(), overrides))
    assert sorted(p.name for p in workdir.iterdir()) == sorted({*before, "gateway.yaml"})
    return [f"{p.key_path}: {p.message}" for p in caught.value.problems]


def default_inbound(users: dict[str, Any], apps: dict[str, Any]) -> dict[str, Any]:
    return {"default": {"b2b_collaboration_inbound": {"users_and_groups": users, "applications": apps}}}


def partner_inbound(users: dict[str, Any], apps: dict[str, Any], **extra: Any) -> dict[str, Any]:
    inbound = {"users_and_groups": users, "applications": apps}
    return {"partners": [{"tenant_id": FABRIKAM, "b2b_collaboration_inbound": inbound, **extra}]}


# -- shape and defaults --------------------------------------------------------------------------------


def test_the_service_default_when_nothing_is_configured() -> None:
    default = CrossTenantAccess().default
    inbound = default.b2b_collaboration_inbound
    assert inbound.users_and_groups.access_type == "allowed"
    assert [(t.target, t.target_type) for t in inbound.users_and_groups.targets] == [("AllUsers", "user")]
    assert inbound.applications.access_type == "allowed"
    assert [(t.target, t.target_type) for t in inbound.applications.targets] == [
        ("AllApplications", "application")
    ]
    assert default.inbound_trust == InboundTrust(
        mfa_accepted=False, compliant_device_accepted=False, hybrid_joined_device_accepted=False
    )
    assert default.automatic_user_consent.inbound_allowed is False
    mapping = default.claims_mapping
    assert mapping.mfa_amr_values == ["mfa"]
    assert (
        mapping.mfa_acr_values
        == DEFAULT_MFA_ACR_VALUES
        == [
            "https://refeds.org/profile/mfa",
            "http://schemas.microsoft.com/claims/multipleauthn",
        ]
    )
    assert mapping.mfa_max_age_seconds is None
    assert mapping.compliant_device == DeviceClaim(claim="iscompliant", values=["true"])
    assert mapping.hybrid_joined_device == DeviceClaim(claim="ismanaged", values=["true"])
    assert (mapping.user_id_claim, mapping.groups_claim) == ("oid", "groups")


def test_defaults_are_not_shared_between_instances() -> None:
    first, second = ClaimsMapping(), ClaimsMapping()
    assert first.mfa_acr_values is not second.mfa_acr_values
    assert first.mfa_acr_values is not DEFAULT_MFA_ACR_VALUES


BRIEF_YAML = f"""\
issuer: http://127.0.0.1:8000
tenant: {{id: {OWN_TENANT}, domain: contoso.example, name: Contoso}}
mail: {{from: Contoso <no-reply@contoso.example>, console: true}}
connectors:
  - {{id: email, type: email_otp}}
  - {{id: fabrikam-oidc, type: oidc, issuer: https://idp.fabrikam.example, client_id: gw,
      token_endpoint_auth_method: none}}
applications:
  - {{id: payroll, name: Payroll}}
cross_tenant_access:
  default:
    b2b_collaboration_inbound:
      users_and_groups: {{access_type: allowed, targets: [{{target: AllUsers, target_type: user}}]}}
      applications: {{access_type: allowed, targets: [{{target: payroll, target_type: application}}]}}
    inbound_trust:
      {{mfa_accepted: false, compliant_device_accepted: true, hybrid_joined_device_accepted: false}}
    automatic_user_consent: {{inbound_allowed: false}}
    claims_mapping:
      mfa_amr_values: [mfa, hwk]
      mfa_acr_values: [https://refeds.org/profile/mfa]
      mfa_max_age_seconds: 3600
      compliant_device: {{claim: iscompliant, values: ["true", "yes"]}}
      hybrid_joined_device: null
      user_id_claim: oid
      groups_claim: groups
  partners:
    - tenant_id: {FABRIKAM}
      name: Fabrikam
      domains: [fabrikam.example]
      connector: fabrikam-oidc
      is_service_provider: true
      b2b_collaboration_inbound: null
      inbound_trust: {{mfa_accepted: true}}
      automatic_user_consent: {{inbound_allowed: true}}
      claims_mapping: null
"""


def test_the_documented_shape_loads(workdir: Path) -> None:
    path = workdir / "gateway.yaml"
    path.write_text(BRIEF_YAML)
    cta = load_settings(path, {}).cross_tenant_access
    default = cta.default
    assert [t.target for t in default.b2b_collaboration_inbound.applications.targets] == ["payroll"]
    assert default.inbound_trust.compliant_device_accepted is True
    assert default.claims_mapping.mfa_amr_values == ["mfa", "hwk"]
    assert default.claims_mapping.mfa_max_age_seconds == 3600
    assert default.claims_mapping.compliant_device == DeviceClaim(claim="iscompliant", values=["true", "yes"])
    assert default.claims_mapping.hybrid_joined_device is None
    (partner,) = cta.partners
    assert partner.is_service_provider is True
    assert partner.b2b_collaboration_inbound is None and partner.claims_mapping is None
    assert partner.inbound_trust is not None
    assert partner.inbound_trust.mfa_accepted is True
    assert partner.inbound_trust.compliant_device_accepted is None  # left out: inherits
    assert partner.automatic_user_consent is not None and partner.automatic_user_consent.inbound_allowed


def test_a_partner_entry_needs_only_its_tenant_id() -> None:
    partner = Partner(tenant_id=FABRIKAM)
    assert partner.is_service_provider is False
    assert partner.b2b_collaboration_inbound is None and partner.inbound_trust is None
    assert partner.automatic_user_consent is None and partner.claims_mapping is None


def test_the_json_schema_describes_the_new_keys() -> None:
    schema = json.dumps(settings_json_schema())
    for text in (
        "Trust MFA done at the guest's home organisation.",
        "OIDC `amr` values (RFC 8176) meaning MFA.",
        "null: the default's mfa_accepted.",
        "The partner is a service provider of this organisation (isServiceProvider).",
        "allowed: only the targets get in (everyone else is blocked)",
    ):
        assert text in schema


# -- consistency rules (§5.3) ----------------------------------------------------------------------------

RULES: list[tuple[str, dict[str, Any], list[str]]] = [
    (
        "access-types-conflict",
        partner_inbound(all_users("allowed"), all_apps("blocked")),
        [
            f"{PARTNER_INBOUND}.applications.access_type: must agree with users_and_groups.access_type "
            "(allowed): a pair of allowed and blocked rules conflicts"
        ],
    ),
    (
        "access-types-conflict-in-the-default",
        default_inbound(all_users("blocked"), targets("allowed", ("demo", "application"))),
        [
            f"{DEFAULT_INBOUND}.applications.access_type: must agree with users_and_groups.access_type "
            "(blocked): a pair of allowed and blocked rules conflicts"
        ],
    ),
    (
        "all-users-blocked-but-not-all-apps",
        partner_inbound(all_users("blocked"), targets("blocked", ("demo", "application"))),
        [
            f"{PARTNER_INBOUND}.applications.targets: when all users are blocked every application is "
            "blocked: use AllApplications"
        ],
    ),
    (
        "default-names-a-user",
        default_inbound(targets("allowed", ("0b7e3f0a-1111-4222-8333-444455556666", "user")), all_apps()),
        [f"{DEFAULT_INBOUND}.users_and_groups.targets[0].target: {NO_SPECIFIC_USERS}"],
    ),
    (
        "default-names-a-group",
        default_inbound(targets("blocked", ("g-1", "group")), all_apps("blocked")),
        [f"{DEFAULT_INBOUND}.users_and_groups.targets[0].target: {NO_SPECIFIC_USERS}"],
    ),
    (
        "all-users-as-a-group",
        partner_inbound(targets("allowed", ("AllUsers", "group")), all_apps()),
        [f"{PARTNER_INBOUND}.users_and_groups.targets[0].target_type: AllUsers goes with target_type user"],
    ),
    (
        "all-applications-as-a-user",
        partner_inbound(all_users(), targets("allowed", ("AllApplications", "user"))),
        [
            f"{PARTNER_INBOUND}.applications.targets[0].target_type: AllApplications goes with "
            "target_type application"
        ],
    ),
    (
        "all-users-not-alone",
        partner_inbound(targets("allowed", ("u-1", "user"), ("AllUsers", "user")), all_apps()),
        [
            f"{PARTNER_INBOUND}.users_and_groups.targets[1].target: AllUsers stands alone: it already "
            "covers every user; remove the other targets"
        ],
    ),
    (
        "all-applications-not-alone",
        partner_inbound(
            all_users(), targets("allowed", ("AllApplications", "application"), ("demo", "application"))
        ),
        [
            f"{PARTNER_INBOUND}.applications.targets[0].target: AllApplications stands alone: it already "
            "covers every application; remove the other targets"
        ],
    ),
    (
        "an-app-among-users",
        partner_inbound(targets("allowed", ("u-1", "user"), ("demo", "application")), all_apps()),
        [
            f"{PARTNER_INBOUND}.users_and_groups.targets[1].target_type: users_and_groups takes user and "
            "group targets; applications go under applications"
        ],
    ),
    (
        "a-group-among-apps",
        partner_inbound(all_users(), targets("allowed", ("g-1", "group"))),
        [
            f"{PARTNER_INBOUND}.applications.targets[0].target_type: applications takes application "
            "targets; users and groups go under users_and_groups"
        ],
    ),
    (
        "unknown-application-in-a-partner",
        partner_inbound(all_users(), targets("allowed", ("demo", "application"), ("payrol", "application"))),
        [
            f"{PARTNER_INBOUND}.applications.targets[1].target: unknown application 'payrol'; use an id "
            "from applications[].id or AllApplications"
        ],
    ),
    (
        "unknown-application-in-the-default",
        default_inbound(all_users(), targets("allowed", ("nope", "application"))),
        [
            f"{DEFAULT_INBOUND}.applications.targets[0].target: unknown application 'nope'; use an id "
            "from applications[].id or AllApplications"
        ],
    ),
    (
        "a-target-twice",
        partner_inbound(targets("blocked", ("u-1", "user"), ("u-1", "user")), all_apps("blocked")),
        [f"{PARTNER_INBOUND}.users_and_groups.targets[1]: user target 'u-1' is listed twice"],
    ),
    (
        "a-misspelt-keyword",
        partner_inbound(targets("allowed", ("allusers", "user")), all_apps()),
        [f"{PARTNER_INBOUND}.users_and_groups.targets[0].target: write the keyword as AllUsers"],
    ),
    (
        "an-empty-target",
        partner_inbound(targets("allowed", ("", "user")), all_apps()),
        [f"{PARTNER_INBOUND}.users_and_groups.targets[0].target: must not be empty"],
    ),
    (
        "a-target-with-a-space",
        partner_inbound(targets("allowed", ("u 1", "user")), all_apps()),
        [f"{PARTNER_INBOUND}.users_and_groups.targets[0].target: {NOT_ASCII}"],
    ),
    (
        "no-targets",
        partner_inbound({"access_type": "allowed", "targets": []}, all_apps()),
        [
            f"{PARTNER_INBOUND}.users_and_groups.targets: "
            "List should have at least 1 item after validation, not 0"
        ],
    ),
    (
        "an-unknown-access-type",
        partner_inbound({"access_type": "allow", "targets": all_users()["targets"]}, all_apps()),
        [f"{PARTNER_INBOUND}.users_and_groups.access_type: Input should be 'allowed' or 'blocked'"],
    ),
    (
        "a-partner-for-the-own-tenant",
        {"partners": [{"tenant_id": OWN_TENANT}]},
        [
            f"{CTA}.partners[0].tenant_id: this is the organisation's own tenant id (tenant.id); a partner "
            "is another organisation"
        ],
    ),
    (
        "a-partner-for-personal-accounts",
        {"partners": [{"tenant_id": MSA}]},
        [
            f"{CTA}.partners[0].tenant_id: "
            "this is the tenant of personal Microsoft accounts, not an organisation"
        ],
    ),
    (
        "an-empty-partner-name",
        {"partners": [{"tenant_id": FABRIKAM, "name": ""}]},
        [f"{CTA}.partners[0].name: String should have at least 1 character"],
    ),
]


@pytest.mark.parametrize(("overrides", "expected"), [r[1:] for r in RULES], ids=[r[0] for r in RULES])
def test_consistency_rules(workdir: Path, overrides: dict[str, Any], expected: list[str]) -> None:
    assert problems(workdir, cross_tenant_access=overrides) == expected


def test_every_problem_is_reported_at_once(workdir: Path) -> None:
    found = problems(
        workdir,
        cross_tenant_access={
            "default": {
                "b2b_collaboration_inbound": {"users_and_groups": targets("allowed", ("u-1", "user"))}
            },
            **partner_inbound(
                targets("allowed", ("g-1", "group"), ("demo", "application")), all_apps("blocked")
            ),
        },
    )
    assert found == [
        f"{DEFAULT_INBOUND}.users_and_groups.targets[0].target: {NO_SPECIFIC_USERS}",
        f"{PARTNER_INBOUND}.users_and_groups.targets[1].target_type: users_and_groups takes user and group "
        "targets; applications go under applications",
        f"{PARTNER_INBOUND}.applications.access_type: must agree with users_and_groups.access_type "
        "(allowed): a pair of allowed and blocked rules conflicts",
    ]


def test_specific_users_groups_and_apps_are_fine_in_a_partner_entry(workdir: Path) -> None:
    data = merge(
        default_config(),
        {
            "cross_tenant_access": partner_inbound(
                targets("blocked", ("0B7E3F0A-1111-4222-8333-444455556666", "user"), ("g-1", "group")),
                targets("blocked", ("demo", "application")),
            )
        },
    )
    inbound = load(workdir, data).cross_tenant_access.partners[0].b2b_collaboration_inbound
    assert inbound is not None
    assert [t.target for t in inbound.users_and_groups.targets] == [
        "0B7E3F0A-1111-4222-8333-444455556666",
        "g-1",
    ]


def test_all_blocked_is_a_valid_default(workdir: Path) -> None:
    data = merge(
        default_config(), {"cross_tenant_access": default_inbound(all_users("blocked"), all_apps("blocked"))}
    )
    rule = load(workdir, data).cross_tenant_access.default.b2b_collaboration_inbound.users_and_groups
    assert rule.access_type == "blocked"


# -- trust flags, consent, claims mapping ------------------------------------------------------------------

MAPPING_ROWS: list[tuple[str, dict[str, Any], list[str]]] = [
    (
        "an-amr-value-twice",
        {"mfa_amr_values": ["mfa", "hwk", "mfa"]},
        ["claims_mapping.mfa_amr_values[2]: value 'mfa' is listed twice"],
    ),
    ("an-empty-amr-value", {"mfa_amr_values": [""]}, ["claims_mapping.mfa_amr_values[0]: must not be empty"]),
    (
        "an-acr-value-with-a-space",
        {"mfa_acr_values": ["urn:a b"]},
        [f"claims_mapping.mfa_acr_values[0]: {NOT_ASCII}"],
    ),
    (
        "an-acr-value-twice",
        {"mfa_acr_values": ["https://refeds.org/profile/mfa", "https://refeds.org/profile/mfa"]},
        ["claims_mapping.mfa_acr_values[1]: value 'https://refeds.org/profile/mfa' is listed twice"],
    ),
    (
        "a-zero-max-age",
        {"mfa_max_age_seconds": 0},
        ["claims_mapping.mfa_max_age_seconds: Input should be greater than 0"],
    ),
    (
        "device-values-empty",
        {"compliant_device": {"claim": "iscompliant", "values": []}},
        ["claims_mapping.compliant_device.values: List should have at least 1 item after validation, not 0"],
    ),
    (
        "device-value-twice-in-another-case",
        {"compliant_device": {"claim": "iscompliant", "values": ["true", "TRUE"]}},
        ["claims_mapping.compliant_device.values[1]: value 'TRUE' is listed twice"],
    ),
    (
        "a-blank-device-value",
        {"hybrid_joined_device": {"claim": "ismanaged", "values": ["  "]}},
        ["claims_mapping.hybrid_joined_device.values[0]: must not be empty"],
    ),
    (
        "a-padded-device-value",
        {"hybrid_joined_device": {"claim": "ismanaged", "values": [" true"]}},
        ["claims_mapping.hybrid_joined_device.values[0]: must not start or end with spaces"],
    ),
    (
        "an-empty-device-claim-name",
        {"compliant_device": {"claim": ""}},
        ["claims_mapping.compliant_device.claim: must not be empty"],
    ),
    ("an-empty-user-id-claim", {"user_id_claim": ""}, ["claims_mapping.user_id_claim: must not be empty"]),
    (
        "a-groups-claim-with-a-space",
        {"groups_claim": "my groups"},
        [f"claims_mapping.groups_claim: {NOT_ASCII}"],
    ),
    (
        "an-unknown-mapping-key",
        {"mfa_amr_value": ["mfa"]},
        [
            "claims_mapping.mfa_amr_value: unknown key `mfa_amr_value`; did you mean `mfa_amr_values`? "
            "allowed keys: mfa_amr_values, mfa_acr_values, mfa_max_age_seconds, compliant_device, "
            "hybrid_joined_device, user_id_claim, groups_claim"
        ],
    ),
]


@pytest.mark.parametrize(
    ("mapping", "expected"), [r[1:] for r in MAPPING_ROWS], ids=[r[0] for r in MAPPING_ROWS]
)
@pytest.mark.parametrize("where", ["default", "partner"])
def test_claims_mapping_problems(
    workdir: Path, where: str, mapping: dict[str, Any], expected: list[str]
) -> None:
    overrides: dict[str, Any]
    if where == "default":
        overrides = {"default": {"claims_mapping": mapping}}
        prefix = f"{CTA}.default."
    else:
        overrides = {"partners": [{"tenant_id": FABRIKAM, "claims_mapping": mapping}]}
        prefix = f"{CTA}.partners[0]."
    assert problems(workdir, cross_tenant_access=overrides) == [prefix + line for line in expected]


TRUST_ROWS: list[tuple[str, dict[str, Any], list[str]]] = [
    (
        "a-default-trust-flag-cannot-be-null",
        {"default": {"inbound_trust": {"mfa_accepted": None}}},
        [f"{CTA}.default.inbound_trust.mfa_accepted: must be a boolean (true or false)"],
    ),
    (
        "a-misspelt-trust-flag",
        {"partners": [{"tenant_id": FABRIKAM, "inbound_trust": {"mfa_accept": True}}]},
        [
            f"{CTA}.partners[0].inbound_trust.mfa_accept: unknown key `mfa_accept`; did you mean "
            "`mfa_accepted`? allowed keys: mfa_accepted, compliant_device_accepted, "
            "hybrid_joined_device_accepted"
        ],
    ),
    (
        "a-trust-flag-that-is-not-a-boolean",
        {"partners": [{"tenant_id": FABRIKAM, "inbound_trust": {"compliant_device_accepted": "sometimes"}}]},
        [f"{CTA}.partners[0].inbound_trust.compliant_device_accepted: must be a boolean (true or false)"],
    ),
    (
        "consent-cannot-be-null-in-the-default",
        {"default": {"automatic_user_consent": None}},
        [
            f"{CTA}.default.automatic_user_consent: must be a mapping; allowed keys: inbound_allowed",
        ],
    ),
    (
        "automatic-redemption-is-per-partner-only",
        {"default": {"automatic_user_consent": {"inbound_allowed": True}}},
        [
            f"{CTA}.default.automatic_user_consent.inbound_allowed: automatic redemption is agreed with one "
            "organisation at a time: set it in that organisation's partner entry (the default's is false "
            "and read-only)",
        ],
    ),
    (
        "an-unknown-partner-key",
        {"partners": [{"tenant_id": FABRIKAM, "is_service_provder": True}]},
        [
            f"{CTA}.partners[0].is_service_provder: unknown key `is_service_provder`; did you mean "
            "`is_service_provider`? allowed keys: tenant_id, name, domains, connector, is_service_provider, "
            "b2b_collaboration_inbound, inbound_trust, automatic_user_consent, claims_mapping"
        ],
    ),
]


@pytest.mark.parametrize(
    ("overrides", "expected"), [r[1:] for r in TRUST_ROWS], ids=[r[0] for r in TRUST_ROWS]
)
def test_trust_and_consent_problems(workdir: Path, overrides: dict[str, Any], expected: list[str]) -> None:
    assert problems(workdir, cross_tenant_access=overrides) == expected


def test_the_models_are_frozen() -> None:
    default = CrossTenantDefault()
    with pytest.raises(ValueError, match="frozen"):
        default.inbound_trust.mfa_accepted = True  # type: ignore[misc]


# -- through the loader: file, line and column -------------------------------------------------------------

PLACED = """\
issuer: http://127.0.0.1:8000
tenant: {id: 4f5c2b0e-6a71-4c3e-9a8e-2f1d7c9b1a00, domain: contoso.example, name: Contoso}
mail: {from: Contoso <no-reply@contoso.example>, console: true}
connectors:
  - {id: email, type: email_otp}
applications:
  - {id: payroll, name: Payroll}
cross_tenant_access:
  default:
    b2b_collaboration_inbound:
      users_and_groups:
        access_type: allowed
        targets:
          - {target: AllUsers, target_type: user}
      applications:
        access_type: blocked
        targets:
          - {target: payroll, target_type: application}
  partners:
    - tenant_id: 7d0b8a51-3f2e-4c1a-9b6d-0e5f4a3c2b10
      b2b_collaboration_inbound:
        users_and_groups: {access_type: blocked, targets: [{target: u-1, target_type: user}]}
        applications:
          access_type: blocked
          targets:
            - {target: payroll, target_type: application}
            - {target: pay-roll, target_type: application}
"""


def test_check_config_places_each_problem(workdir: Path) -> None:
    path = workdir / "gateway.yaml"
    path.write_text(PLACED)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, {})
    assert [str(p) for p in caught.value.problems] == [
        f"{path}:16:22: {DEFAULT_INBOUND}.applications.access_type: must agree with "
        "users_and_groups.access_type (allowed): a pair of allowed and blocked rules conflicts"
    ]
    path.write_text(
        PLACED.replace("access_type: blocked\n        targets:", "access_type: allowed\n        targets:")
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(path, {})
    assert [str(p) for p in caught.value.problems] == [
        f"{path}:27:24: {PARTNER_INBOUND}.applications.targets[1].target: unknown application 'pay-roll'; "
        "use an id from applications[].id or AllApplications"
    ]
    assert sorted(p.name for p in workdir.iterdir()) == ["gateway.yaml"]  # nothing persisted
