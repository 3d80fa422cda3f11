"""Trusted facts, table-tested: what an upstream says about MFA and devices, and what of it counts here."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.policy.cross_tenant import HomeOrganisation, resolve_home
from gateway.policy.trust import NO_FACTS, TrustedFacts, trusted_facts, upstream_says_mfa
from gateway.settings.federation import ClaimsMapping
from gateway.settings.models import Settings
from idp_connectors.base import UpstreamIdentity
from tests.support.gateway_app import default_config, merge

NOW = 1_750_000_000
FABRIKAM = "7d0b8a51-3f2e-4c1a-9b6d-0e5f4a3c2b10"  # bound to fabrikam-oidc: trusts MFA and compliant devices
LITWARE = "1c0ffee0-0000-4000-8000-000000000001"  # through Entra: trusts MFA (10 min) and hybrid join
WOODGROVE = "00d09000-0000-4000-8000-000000000006"  # no entry: the default trusts nothing
REFEDS_MFA = "https://refeds.org/profile/mfa"
MS_MFA = "http://schemas.microsoft.com/claims/multipleauthn"


def make_settings() -> Settings:
    data = merge(default_config(), {"secrets": {"key": "k" * 40}})
    data["connectors"].append(
        {
            "id": "fabrikam-oidc",
            "type": "oidc",
            "issuer": "https://idp.fabrikam.example",
            "client_id": "gw",
            "token_endpoint_auth_method": "none",
        }
    )
    data["cross_tenant_access"] = {
        "partners": [
            {
                "tenant_id": FABRIKAM,
                "connector": "fabrikam-oidc",
                "inbound_trust": {"mfa_accepted": True, "compliant_device_accepted": True},
            },
            {
                "tenant_id": LITWARE,
                "inbound_trust": {"mfa_accepted": True, "hybrid_joined_device_accepted": True},
                "claims_mapping": {
                    "mfa_amr_values": ["mfa", "hwk"],
                    "mfa_acr_values": [],
                    "mfa_max_age_seconds": 600,
                    "compliant_device": None,
                    "hybrid_joined_device": {"claim": "trustType", "values": ["ServerAD", "1"]},
                },
            },
        ]
    }
    return Settings.model_validate(data)


SETTINGS = make_settings()
TYPES = {"fabrikam-oidc": "oidc", "other-oidc": "oidc", "entra": "microsoft", "email": "email_otp"}


def home_of(connector_id: str, tenant: str | None) -> HomeOrganisation | None:
    resolution = resolve_home(
        SETTINGS, connector_id=connector_id, connector_type=TYPES[connector_id], home_tenant_id=tenant
    )
    assert resolution.refusal is None
    return resolution.home


def identity(connector_id: str, tenant: str | None, **fields: Any) -> UpstreamIdentity:
    return UpstreamIdentity(
        connector_id=connector_id,
        issuer=f"https://{connector_id}.example",
        subject="s-1",
        home_tenant_id=tenant,
        **fields,
    )


def facts(
    mfa: bool,
    compliant: bool,
    hybrid: bool,
    said_mfa: bool,
    said_compliant: bool,
    said_hybrid: bool,
    *,
    reasons: tuple[str, ...],
) -> TrustedFacts:
    """Trusted (mfa, compliant, hybrid), then what the upstream said, then the reasons."""
    return TrustedFacts(mfa, compliant, hybrid, said_mfa, said_compliant, said_hybrid, reasons)


FAB, OTHER, ENTRA = ("fabrikam-oidc", FABRIKAM), ("other-oidc", FABRIKAM), ("entra", FABRIKAM)
LIT, WOOD, PASSCODE = ("entra", LITWARE), ("entra", WOODGROVE), ("email", None)
T, F = True, False
TRUSTED_MFA = ("mfa_trusted_from_home",)
UNTRUSTED_MFA = ("mfa_claim_not_trusted",)
NOTHING = facts(F, F, F, F, F, F, reasons=())
DEVICE_ONLY = ("device_claim_not_trusted",)

# (id, (connector, tenant), identity fields) -> facts
ROWS: list[tuple[str, tuple[str, str | None], dict[str, Any], TrustedFacts]] = [
    ("mfa-amr-trusted", FAB, {"amr": ("pwd", "mfa")}, facts(T, F, F, T, F, F, reasons=TRUSTED_MFA)),
    ("mfa-refeds-acr-trusted", FAB, {"acr": REFEDS_MFA}, facts(T, F, F, T, F, F, reasons=TRUSTED_MFA)),
    ("mfa-microsoft-acr-trusted", FAB, {"acr": MS_MFA}, facts(T, F, F, T, F, F, reasons=TRUSTED_MFA)),
    ("password-only", FAB, {"amr": ("pwd",), "acr": "urn:single"}, NOTHING),
    ("amr-values-are-case-sensitive", FAB, {"amr": ("MFA",)}, NOTHING),
    ("amr-from-an-unrelated-connector", OTHER, {"amr": ("mfa",)},
     facts(F, F, F, T, F, F, reasons=("home_not_authoritative", *UNTRUSTED_MFA))),
    ("acr-from-an-unrelated-connector", OTHER, {"acr": REFEDS_MFA},
     facts(F, F, F, T, F, F, reasons=("home_not_authoritative", *UNTRUSTED_MFA))),
    ("amr-from-entra-for-a-partner-bound-elsewhere", ENTRA, {"amr": ("mfa",)},
     facts(F, F, F, T, F, F, reasons=("home_not_authoritative", *UNTRUSTED_MFA))),
    ("mfa-from-a-tenant-the-default-does-not-trust", WOOD, {"amr": ("mfa",)},
     facts(F, F, F, T, F, F, reasons=UNTRUSTED_MFA)),
    ("mfa-without-a-home-organisation", PASSCODE, {"amr": ("mfa",)},
     facts(F, F, F, T, F, F, reasons=("no_home_organisation", *UNTRUSTED_MFA))),
    ("nothing-claimed-without-a-home", PASSCODE, {},
     facts(F, F, F, F, F, F, reasons=("no_home_organisation",))),
    ("partner-mapping-amr-value", LIT, {"amr": ("hwk",), "auth_time": NOW - 10},
     facts(T, F, F, T, F, F, reasons=TRUSTED_MFA)),
    ("partner-mapping-drops-the-acr-values", LIT, {"acr": REFEDS_MFA, "auth_time": NOW},
     NOTHING),
    ("max-age-exactly-reached", LIT, {"amr": ("mfa",), "auth_time": NOW - 600},
     facts(T, F, F, T, F, F, reasons=TRUSTED_MFA)),
    ("max-age-exceeded", LIT, {"amr": ("mfa",), "auth_time": NOW - 601},
     facts(F, F, F, F, F, F, reasons=("upstream_mfa_too_old",))),
    ("max-age-without-auth-time", LIT, {"amr": ("mfa",)},
     facts(F, F, F, F, F, F, reasons=("upstream_mfa_too_old",))),
    ("compliant-device-string-true", FAB, {"raw_claims": {"iscompliant": "true"}},
     facts(F, T, F, F, T, F, reasons=("compliant_device_trusted_from_home",))),
    ("compliant-device-any-case", FAB, {"raw_claims": {"iscompliant": "TRUE"}},
     facts(F, T, F, F, T, F, reasons=("compliant_device_trusted_from_home",))),
    ("compliant-device-json-true", FAB, {"raw_claims": {"iscompliant": True}},
     facts(F, T, F, F, T, F, reasons=("compliant_device_trusted_from_home",))),
    ("compliant-device-from-the-device-claims", FAB, {"device": {"iscompliant": "true"}},
     facts(F, T, F, F, T, F, reasons=("compliant_device_trusted_from_home",))),
    ("raw-claims-come-before-the-device-claims", FAB,
     {"raw_claims": {"iscompliant": "false"}, "device": {"iscompliant": "true"}}, NOTHING),
    ("compliant-device-false", FAB, {"raw_claims": {"iscompliant": False}}, NOTHING),
    ("compliant-device-a-list-is-no", FAB, {"raw_claims": {"iscompliant": ["true"]}},
     NOTHING),
    ("compliant-device-null-is-no", FAB, {"raw_claims": {"iscompliant": None}}, NOTHING),
    ("device-forged-by-an-unrelated-connector", OTHER,
     {"raw_claims": {"iscompliant": "true", "ismanaged": True}},
     facts(F, F, F, F, T, T, reasons=("home_not_authoritative", *DEVICE_ONLY))),
    ("hybrid-join-not-trusted-by-the-partner", FAB, {"raw_claims": {"ismanaged": "true"}},
     facts(F, F, F, F, F, T, reasons=DEVICE_ONLY)),
    ("hybrid-join-mapped-value", LIT, {"raw_claims": {"trustType": "serverad"}},
     facts(F, F, T, F, F, T, reasons=("hybrid_joined_device_trusted_from_home",))),
    ("hybrid-join-mapped-number", LIT, {"raw_claims": {"trustType": 1}},
     facts(F, F, T, F, F, T, reasons=("hybrid_joined_device_trusted_from_home",))),
    ("hybrid-join-unmapped-value", LIT, {"raw_claims": {"trustType": "Workplace", "ismanaged": "true"}},
     NOTHING),
    ("a-null-device-mapping-never-says-yes", LIT, {"raw_claims": {"iscompliant": "true"}},
     NOTHING),
    ("everything-trusted-at-once", FAB,
     {"amr": ("mfa",), "raw_claims": {"iscompliant": "true", "ismanaged": "true"}},
     facts(T, T, F, T, T, T,
           reasons=("mfa_trusted_from_home", "compliant_device_trusted_from_home", *DEVICE_ONLY))),
]  # fmt: skip


@pytest.mark.parametrize(("source", "fields", "expected"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_trusted_facts(
    source: tuple[str, str | None], fields: dict[str, Any], expected: TrustedFacts
) -> None:
    connector_id, tenant = source
    upstream = identity(connector_id, tenant, **fields)
    assert trusted_facts(upstream, home_of(connector_id, tenant), NOW) == expected


def test_without_a_home_the_given_default_mapping_reads_the_claims() -> None:
    upstream = identity("email", None, amr=("hwk",), raw_claims={"managed": "yes"})
    mapping = ClaimsMapping(
        mfa_amr_values=["hwk"], hybrid_joined_device={"claim": "managed", "values": ["yes"]}
    )
    assert trusted_facts(upstream, None, NOW) == facts(F, F, F, F, F, F, reasons=("no_home_organisation",))
    assert trusted_facts(upstream, None, NOW, default_mapping=mapping) == facts(
        F,
        F,
        F,
        T,
        F,
        T,
        reasons=("no_home_organisation", "mfa_claim_not_trusted", "device_claim_not_trusted"),
    )


def test_no_facts_is_nothing_at_all() -> None:
    assert facts(F, F, F, F, F, F, reasons=()) == NO_FACTS


MFA_ROWS: list[tuple[str, dict[str, Any], dict[str, Any], tuple[bool, str | None]]] = [
    ("amr", {"amr": ("mfa",)}, {}, (True, None)),
    ("acr", {"acr": MS_MFA}, {}, (True, None)),
    ("neither", {"amr": ("pwd",), "acr": "urn:x"}, {}, (False, None)),
    ("an-acr-value-in-amr-does-not-count", {"amr": (REFEDS_MFA,)}, {}, (False, None)),
    ("an-amr-value-in-acr-does-not-count", {"acr": "mfa"}, {}, (False, None)),
    ("fresh", {"amr": ("mfa",), "auth_time": NOW - 60}, {"mfa_max_age_seconds": 60}, (True, None)),
    ("stale", {"amr": ("mfa",), "auth_time": NOW - 61}, {"mfa_max_age_seconds": 60},
     (False, "upstream_mfa_too_old")),
    ("no-auth-time", {"acr": MS_MFA}, {"mfa_max_age_seconds": 60}, (False, "upstream_mfa_too_old")),
    ("not-mfa-needs-no-auth-time", {"amr": ("pwd",)}, {"mfa_max_age_seconds": 60}, (False, None)),
    ("any-age-without-a-maximum", {"amr": ("mfa",), "auth_time": 0}, {}, (True, None)),
    ("a-mapping-without-values", {"amr": ("mfa",), "acr": MS_MFA},
     {"mfa_amr_values": [], "mfa_acr_values": []}, (False, None)),
]  # fmt: skip


@pytest.mark.parametrize(
    ("fields", "mapping", "expected"), [r[1:] for r in MFA_ROWS], ids=[r[0] for r in MFA_ROWS]
)
def test_upstream_says_mfa(
    fields: dict[str, Any], mapping: dict[str, Any], expected: tuple[bool, str | None]
) -> None:
    upstream = identity("fabrikam-oidc", None, **fields)
    assert upstream_says_mfa(upstream, ClaimsMapping.model_validate(mapping), NOW) == expected
