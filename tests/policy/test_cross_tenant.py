"""Cross-tenant access, table-tested: inheritance, the home organisation, inbound access, invitations."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.policy.cross_tenant import (
    MSA_TENANT_ID,
    AccessDecision,
    Inbound,
    ResolvedTrust,
    inbound_access,
    inbound_settings,
    invitation_blocked,
    resolve_home,
    upstream_principal,
)
from gateway.settings.federation import B2BCollaborationInbound, ClaimsMapping
from gateway.settings.models import Settings
from tests.support.gateway_app import default_config, merge

FABRIKAM = "7d0b8a51-3f2e-4c1a-9b6d-0e5f4a3c2b10"  # bound to fabrikam-oidc; trusts MFA
LITWARE = "1c0ffee0-0000-4000-8000-000000000001"  # no connector: reached through Entra (microsoft)
ADATUM = "ada7a000-0000-4000-8000-000000000002"  # bound to adatum-oidc
TAILSPIN = "7a115919-0000-4000-8000-000000000003"  # bound to the passcode connector
NORTHWIND = "0047e000-0000-4000-8000-000000000004"  # shares shared-oidc with WINGTIP
WINGTIP = "0019e000-0000-4000-8000-000000000005"
WOODGROVE = "00d09000-0000-4000-8000-000000000006"  # no partner entry: the default applies
USER = "0b7e3f0a-1111-4222-8333-444455556666"
GROUP = "9f0e1d2c-3b4a-4596-8877-665544332211"


def oidc(connector_id: str) -> dict[str, Any]:
    return {
        "id": connector_id,
        "type": "oidc",
        "issuer": f"https://{connector_id}.example",
        "client_id": "gw",
        "token_endpoint_auth_method": "none",
    }


def everyone(access: str = "allowed") -> dict[str, Any]:
    return {
        "users_and_groups": {
            "access_type": access,
            "targets": [{"target": "AllUsers", "target_type": "user"}],
        },
        "applications": {
            "access_type": access,
            "targets": [{"target": "AllApplications", "target_type": "application"}],
        },
    }


PARTNERS: list[dict[str, Any]] = [
    {
        "tenant_id": FABRIKAM,
        "domains": ["fabrikam.example"],
        "connector": "fabrikam-oidc",
        "inbound_trust": {"mfa_accepted": True},
    },
    {
        "tenant_id": LITWARE,
        "inbound_trust": {"compliant_device_accepted": False, "hybrid_joined_device_accepted": True},
    },
    {"tenant_id": ADATUM, "domains": ["adatum.example"], "connector": "adatum-oidc", "inbound_trust": None},
    {"tenant_id": TAILSPIN, "connector": "email"},
    {"tenant_id": NORTHWIND, "connector": "shared-oidc"},
    {"tenant_id": WINGTIP, "connector": "shared-oidc"},
]


def make_settings(**cross_tenant_access: Any) -> Settings:
    data = merge(default_config(), {"secrets": {"key": "k" * 40}})
    data["connectors"] = [
        data["connectors"][0],
        *(oidc(c) for c in ("fabrikam-oidc", "adatum-oidc", "shared-oidc")),
    ]
    data["applications"] = [*data["applications"], {"id": "payroll", "name": "Payroll"}]
    data["cross_tenant_access"] = {
        "default": {"inbound_trust": {"compliant_device_accepted": True}},
        "partners": PARTNERS,
        **cross_tenant_access,
    }
    return Settings.model_validate(data)


SETTINGS = make_settings()


# -- inbound_settings: a partner entry over the default ----------------------------------------------------


def test_a_tenant_without_an_entry_gets_the_default() -> None:
    inbound = inbound_settings(SETTINGS.cross_tenant_access, WOODGROVE)
    default = SETTINGS.cross_tenant_access.default
    assert inbound == Inbound(
        tenant_id=WOODGROVE,
        partner=None,
        collaboration=default.b2b_collaboration_inbound,
        trust=ResolvedTrust(False, True, False),
        automatic_consent_inbound=False,
        claims_mapping=default.claims_mapping,
        is_service_provider=False,
    )


TRUST_ROWS = [
    ("one-flag-set-the-others-inherit", FABRIKAM, ResolvedTrust(True, True, False)),
    ("a-flag-overrides-the-default-to-false", LITWARE, ResolvedTrust(False, False, True)),
    ("null-trust-inherits-every-flag", ADATUM, ResolvedTrust(False, True, False)),
    ("left-out-trust-inherits-every-flag", TAILSPIN, ResolvedTrust(False, True, False)),
    ("no-entry", WOODGROVE, ResolvedTrust(False, True, False)),
    ("tenant-id-in-upper-case", FABRIKAM.upper(), ResolvedTrust(True, True, False)),
]


@pytest.mark.parametrize(("tenant", "trust"), [r[1:] for r in TRUST_ROWS], ids=[r[0] for r in TRUST_ROWS])
def test_trust_flags_inherit_one_by_one(tenant: str, trust: ResolvedTrust) -> None:
    inbound = inbound_settings(SETTINGS.cross_tenant_access, tenant)
    assert inbound.trust == trust
    assert inbound.tenant_id == tenant.lower()


def test_a_partners_own_parts_override_and_null_parts_inherit() -> None:
    mapping = {"mfa_amr_values": ["hwk"], "user_id_claim": "sub"}
    own = {
        "tenant_id": FABRIKAM,
        "is_service_provider": True,
        "b2b_collaboration_inbound": everyone("blocked"),
        "automatic_user_consent": {"inbound_allowed": True},
        "claims_mapping": mapping,
    }
    settings = make_settings(
        default={
            "automatic_user_consent": {"inbound_allowed": False},
            "claims_mapping": {"groups_claim": "roles"},
        },
        partners=[own, {"tenant_id": ADATUM, "b2b_collaboration_inbound": None, "claims_mapping": None}],
    )
    cta = settings.cross_tenant_access
    fabrikam = inbound_settings(cta, FABRIKAM)
    assert fabrikam.partner is cta.partners[0]
    assert fabrikam.collaboration == B2BCollaborationInbound.model_validate(everyone("blocked"))
    assert fabrikam.automatic_consent_inbound is True
    assert fabrikam.claims_mapping == ClaimsMapping.model_validate(mapping)
    assert fabrikam.is_service_provider is True
    adatum = inbound_settings(cta, ADATUM)
    assert adatum.partner is cta.partners[1]
    assert adatum.collaboration is cta.default.b2b_collaboration_inbound
    assert adatum.automatic_consent_inbound is False
    assert adatum.claims_mapping is cta.default.claims_mapping
    assert adatum.claims_mapping.groups_claim == "roles"
    assert adatum.is_service_provider is False


# -- resolve_home ----------------------------------------------------------------------------------------

# (id, connector id, connector type, home tenant id) -> (home tenant, authoritative, refusal, partner entry?)
Expected = tuple[str | None, bool, str | None, bool]
NO_HOME: Expected = (None, False, None, False)
MISMATCH: Expected = (None, False, "home_tenant_mismatch", False)
HOME_ROWS: list[tuple[str, str, str, str | None, Expected]] = [
    ("1-bound-connector-without-a-tenant-claim", "fabrikam-oidc", "oidc", None, (FABRIKAM, True, None, True)),
    ("1-bound-connector-with-its-tenant", "fabrikam-oidc", "oidc", FABRIKAM, (FABRIKAM, True, None, True)),
    ("1-bound-connector-tenant-in-upper-case", "fabrikam-oidc", "oidc", FABRIKAM.upper(),
     (FABRIKAM, True, None, True)),
    ("1-bound-connector-claiming-another-tenant", "fabrikam-oidc", "oidc", ADATUM, MISMATCH),
    ("1-bound-connector-claiming-personal-accounts", "fabrikam-oidc", "oidc", MSA_TENANT_ID, MISMATCH),
    ("1-shared-connector-tenant-picks-the-partner", "shared-oidc", "oidc", WINGTIP,
     (WINGTIP, True, None, True)),
    ("1-shared-connector-without-a-tenant-is-ambiguous", "shared-oidc", "oidc", None,
     (None, False, "home_tenant_ambiguous", False)),
    ("1-shared-connector-with-a-stranger-tenant", "shared-oidc", "oidc", WOODGROVE, MISMATCH),
    ("1-passcode-bound-to-a-partner-never-speaks-for-it", "email", "email_otp", None,
     (TAILSPIN, False, None, True)),
    ("2-entra-partner-without-a-connector", "entra", "microsoft", LITWARE, (LITWARE, True, None, True)),
    ("2-entra-tenant-without-an-entry", "entra", "microsoft", WOODGROVE, (WOODGROVE, True, None, False)),
    ("2-entra-tenant-in-upper-case", "entra", "microsoft", WOODGROVE.upper(), (WOODGROVE, True, None, False)),
    ("2-entra-claiming-a-partner-bound-elsewhere", "entra", "microsoft", FABRIKAM,
     (FABRIKAM, False, None, True)),
    ("2-entra-personal-account", "entra", "microsoft", MSA_TENANT_ID, NO_HOME),
    ("2-entra-personal-account-upper-case", "entra", "microsoft", MSA_TENANT_ID.upper(), NO_HOME),
    ("2-entra-without-a-tenant", "entra", "microsoft", None, NO_HOME),
    ("2-entra-with-an-empty-tenant", "entra", "microsoft", "", NO_HOME),
    ("2-entra-tenant-that-is-no-uuid", "entra", "microsoft", "contoso", ("contoso", False, None, False)),
    ("2-entra-tenant-with-a-trailing-newline", "entra", "microsoft", WOODGROVE + "\n",
     (WOODGROVE + "\n", False, None, False)),
    ("3-unrelated-oidc-claiming-a-partner", "other-oidc", "oidc", FABRIKAM, (FABRIKAM, False, None, True)),
    ("3-unrelated-oidc-claiming-a-stranger", "other-oidc", "oidc", WOODGROVE,
     (WOODGROVE, False, None, False)),
    ("3-social-claiming-a-partner", "google", "google", LITWARE, (LITWARE, False, None, True)),
    ("3-personal-accounts-through-oidc", "other-oidc", "oidc", MSA_TENANT_ID, NO_HOME),
    ("4-unbound-oidc-without-a-tenant", "other-oidc", "oidc", None, NO_HOME),
    ("4-passcode-without-a-tenant", "passcode", "email_otp", None, NO_HOME),
    ("4-google", "google", "google", None, NO_HOME),
    ("4-facebook", "facebook", "facebook", None, NO_HOME),
]  # fmt: skip


@pytest.mark.parametrize(
    ("connector_id", "connector_type", "tenant", "expected"),
    [r[1:] for r in HOME_ROWS],
    ids=[r[0] for r in HOME_ROWS],
)
def test_resolve_home(
    connector_id: str,
    connector_type: str,
    tenant: str | None,
    expected: tuple[str | None, bool, str | None, bool],
) -> None:
    home_tenant, authoritative, refusal, has_partner = expected
    resolution = resolve_home(
        SETTINGS, connector_id=connector_id, connector_type=connector_type, home_tenant_id=tenant
    )
    assert resolution.refusal == refusal
    if home_tenant is None:
        assert resolution.home is None
        return
    home = resolution.home
    assert home is not None
    assert (home.tenant_id, home.authoritative) == (home_tenant, authoritative)
    assert home.inbound == inbound_settings(SETTINGS.cross_tenant_access, home_tenant)
    assert (home.inbound.partner is not None) == has_partner


# -- upstream_principal ------------------------------------------------------------------------------------

MAPPING = ClaimsMapping()
PRINCIPAL_ROWS: list[tuple[str, dict[str, Any], ClaimsMapping, tuple[str | None, frozenset[str]]]] = [
    ("oid-and-groups", {"oid": USER, "groups": [GROUP, "g2"]}, MAPPING, (USER, frozenset({GROUP, "g2"}))),
    ("nothing", {}, MAPPING, (None, frozenset())),
    ("a-number-is-no-id", {"oid": 42, "groups": [1, None, "g1"]}, MAPPING, (None, frozenset({"g1"}))),
    ("an-empty-id-is-no-id", {"oid": "", "groups": ["", "g1"]}, MAPPING, (None, frozenset({"g1"}))),
    ("an-overlong-id-is-no-id", {"oid": "x" * 1025}, MAPPING, (None, frozenset())),
    ("a-single-group-as-a-string", {"groups": "g1"}, MAPPING, (None, frozenset({"g1"}))),
    ("groups-as-a-mapping-are-ignored", {"groups": {"g1": True}}, MAPPING, (None, frozenset())),
    ("nested-lists-are-ignored", {"groups": [["g1"]]}, MAPPING, (None, frozenset())),
    (
        "mapped-claim-names",
        {"sub": "ann", "oid": USER, "roles": ["r1"], "groups": ["g1"]},
        ClaimsMapping(user_id_claim="sub", groups_claim="roles"),
        ("ann", frozenset({"r1"})),
    ),
]


@pytest.mark.parametrize(
    ("claims", "mapping", "expected"), [r[1:] for r in PRINCIPAL_ROWS], ids=[r[0] for r in PRINCIPAL_ROWS]
)
def test_upstream_principal(
    claims: dict[str, Any], mapping: ClaimsMapping, expected: tuple[str | None, frozenset[str]]
) -> None:
    assert upstream_principal(claims, mapping) == expected


# -- inbound_access ----------------------------------------------------------------------------------------


def rule(access: str, *targets: tuple[str, str]) -> dict[str, Any]:
    return {"access_type": access, "targets": [{"target": t, "target_type": k} for t, k in targets]}


ALL_USERS, ALL_APPS = ("AllUsers", "user"), ("AllApplications", "application")
ALLOWED = AccessDecision(True, "cross_tenant_access_allowed")
USER_BLOCKED = AccessDecision(False, "cross_tenant_user_blocked")
APP_BLOCKED = AccessDecision(False, "cross_tenant_application_blocked")
OTHER_USER = "11111111-2222-4333-8444-555555555555"

U, G, PAYROLL = (USER, "user"), (GROUP, "group"), ("payroll", "application")


def allow(*targets: tuple[str, str]) -> dict[str, Any]:
    return rule("allowed", *targets)


def block(*targets: tuple[str, str]) -> dict[str, Any]:
    return rule("blocked", *targets)


# (id, users rule, apps rule, user id, group ids, app id) -> decision
Row = tuple[str, dict[str, Any], dict[str, Any], str | None, set[str], str | None, AccessDecision]
ACCESS_ROWS: list[Row] = [
    ("allowed-all", allow(ALL_USERS), allow(ALL_APPS), USER, set(), "demo", ALLOWED),
    ("allowed-all-anonymous", allow(ALL_USERS), allow(ALL_APPS), None, set(), "demo", ALLOWED),
    ("blocked-all", block(ALL_USERS), block(ALL_APPS), USER, set(), "demo", USER_BLOCKED),
    ("blocked-all-at-redemption", block(ALL_USERS), block(ALL_APPS), USER, set(), None, USER_BLOCKED),
    ("allowed-user-target-matches", allow(U), allow(ALL_APPS), USER, set(), "demo", ALLOWED),
    ("allowed-user-target-other-user", allow(U), allow(ALL_APPS), OTHER_USER, set(), "demo", USER_BLOCKED),
    ("allowed-user-target-no-user-id", allow(U), allow(ALL_APPS), None, set(), "demo", USER_BLOCKED),
    ("allowed-uuid-targets-ignore-case", allow((USER.upper(), "user")), allow(ALL_APPS), USER, set(), "demo",
     ALLOWED),
    ("allowed-other-ids-keep-case", allow(("Ann", "user")), allow(ALL_APPS), "ann", set(), "demo",
     USER_BLOCKED),
    ("allowed-group-target-member", allow(G), allow(ALL_APPS), USER, {"g0", GROUP.upper()}, "demo", ALLOWED),
    ("allowed-group-target-non-member", allow(G), allow(ALL_APPS), USER, {"g0"}, "demo", USER_BLOCKED),
    ("allowed-a-user-id-is-not-a-group", allow(G), allow(ALL_APPS), GROUP, set(), "demo", USER_BLOCKED),
    ("blocked-user-target-that-user", block(U), block(ALL_APPS), USER, set(), "demo", USER_BLOCKED),
    ("blocked-user-target-other-user", block(U), block(PAYROLL), OTHER_USER, set(), "demo", ALLOWED),
    ("blocked-user-target-no-user-id-fails-closed", block(U), block(PAYROLL), None, set(), "demo",
     USER_BLOCKED),
    ("blocked-group-target-member", block(G), block(PAYROLL), USER, {GROUP}, "demo", USER_BLOCKED),
    ("blocked-group-target-non-member", block(G), block(PAYROLL), USER, {"g0"}, "demo", ALLOWED),
    ("allowed-app-target-that-app", allow(ALL_USERS), allow(PAYROLL), USER, set(), "payroll", ALLOWED),
    ("allowed-app-target-other-app", allow(ALL_USERS), allow(PAYROLL), USER, set(), "demo", APP_BLOCKED),
    ("allowed-app-target-at-redemption", allow(ALL_USERS), allow(PAYROLL), USER, set(), None, ALLOWED),
    ("blocked-app-target-that-app", block(U), block(PAYROLL), OTHER_USER, set(), "payroll", APP_BLOCKED),
    ("blocked-app-target-other-app", block(U), block(PAYROLL), OTHER_USER, set(), "demo", ALLOWED),
    ("blocked-app-target-at-redemption", block(U), block(PAYROLL), OTHER_USER, set(), None, ALLOWED),
    ("the-users-rule-comes-first", block(U), block(PAYROLL), USER, set(), "payroll", USER_BLOCKED),
]  # fmt: skip


@pytest.mark.parametrize(
    ("users", "apps", "user_id", "groups", "app_id", "expected"),
    [r[1:] for r in ACCESS_ROWS],
    ids=[r[0] for r in ACCESS_ROWS],
)
def test_inbound_access(
    users: dict[str, Any],
    apps: dict[str, Any],
    user_id: str | None,
    groups: set[str],
    app_id: str | None,
    expected: AccessDecision,
) -> None:
    collaboration = B2BCollaborationInbound.model_validate({"users_and_groups": users, "applications": apps})
    inbound = Inbound(
        tenant_id=FABRIKAM,
        partner=None,
        collaboration=collaboration,
        trust=ResolvedTrust(False, False, False),
        automatic_consent_inbound=False,
        claims_mapping=ClaimsMapping(),
        is_service_provider=False,
    )
    assert inbound_access(inbound, user_id=user_id, group_ids=groups, app_id=app_id) == expected


# -- invitation_blocked (§5.5) -----------------------------------------------------------------------------


def partner(tenant: str, domain: str, inbound: dict[str, Any] | None) -> dict[str, Any]:
    return {"tenant_id": tenant, "domains": [domain], "b2b_collaboration_inbound": inbound}


SOME_USERS_BLOCKED = {
    "users_and_groups": rule("blocked", (USER, "user")),
    "applications": rule("blocked", ALL_APPS),
}
BLOCKING_DEFAULT = {"default": {"b2b_collaboration_inbound": everyone("blocked")}}
FABRIKAM_BLOCKED = {"partners": [partner(FABRIKAM, "fabrikam.example", everyone("blocked"))]}
ONLY_SOME_ALLOWED = {"users_and_groups": allow(U), "applications": allow(ALL_APPS)}
INVITATION_ROWS: list[tuple[str, dict[str, Any], str, bool]] = [
    ("default-allows", {}, "woodgrove.example", False),
    ("default-does-not-apply-to-a-domain-without-an-organisation", BLOCKING_DEFAULT, "woodgrove.example",
     False),
    ("partner-allows-over-a-blocking-default",
     {**BLOCKING_DEFAULT, "partners": [partner(FABRIKAM, "fabrikam.example", everyone())]},
     "fabrikam.example", False),
    ("partner-blocks-all-over-an-allowing-default", FABRIKAM_BLOCKED, "fabrikam.example", True),
    ("domain-case-does-not-matter", FABRIKAM_BLOCKED, "Fabrikam.EXAMPLE", True),
    ("another-domain-gets-the-default", FABRIKAM_BLOCKED, "eu.fabrikam.example", False),
    ("specific-users-are-checked-at-sign-in",
     {"partners": [partner(FABRIKAM, "fabrikam.example", SOME_USERS_BLOCKED)]}, "fabrikam.example", False),
    ("only-specific-users-allowed-is-no-block",
     {"partners": [partner(FABRIKAM, "fabrikam.example", ONLY_SOME_ALLOWED)]}, "fabrikam.example", False),
    ("a-null-partner-setting-inherits-the-block",
     {**BLOCKING_DEFAULT, "partners": [partner(FABRIKAM, "fabrikam.example", None)]},
     "fabrikam.example", True),
]  # fmt: skip


@pytest.mark.parametrize(
    ("cta", "domain", "blocked"), [r[1:] for r in INVITATION_ROWS], ids=[r[0] for r in INVITATION_ROWS]
)
def test_invitation_blocked(cta: dict[str, Any], domain: str, blocked: bool) -> None:
    data = merge(default_config(), {"secrets": {"key": "k" * 40}, "cross_tenant_access": cta})
    assert invitation_blocked(Settings.model_validate(data), domain) is blocked


@pytest.mark.parametrize(
    ("connector_type", "blocked"), [("oidc", True), ("email_otp", False)], ids=["organisation", "passcode"]
)
def test_a_blocking_default_blocks_invitations_to_a_domain_an_organisation_connector_claims(
    connector_type: str, blocked: bool
) -> None:
    connector: dict[str, Any] = {"id": "woodgrove", "type": connector_type, "domains": ["woodgrove.example"]}
    if connector_type == "oidc":
        connector |= {"issuer": "https://login.woodgrove.example", "client_id": "gw", "client_secret": "s"}
    data = merge(default_config(), {"secrets": {"key": "k" * 40}, "cross_tenant_access": BLOCKING_DEFAULT})
    data["connectors"] = [*data["connectors"], connector]
    assert invitation_blocked(Settings.model_validate(data), "woodgrove.example") is blocked
