"""Home-realm discovery, table-tested: one row per case, input -> connector and reason code."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.policy.home_realm import RealmIndex, Route, build_index, discover
from gateway.settings.models import Settings
from tests.support.gateway_app import default_config, merge

PARTNER = "11111111-2222-4333-8444-555555555555"


def index(**overrides: Any) -> RealmIndex:
    data = merge(default_config(), {"secrets": {"key": "k" * 40}})
    return build_index(Settings.model_validate(merge(data, overrides)))


def fake_index(**fields: Any) -> RealmIndex:
    """An index built by hand, for connector types whose modules arrive later (google, microsoft, saml)."""
    from gateway.policy.home_realm import Claim

    base: dict[str, Any] = {
        "domains": {
            "fabrikam.example": Claim("azureActiveDirectory", "fabrikam", PARTNER),
            "adatum.example": Claim("externalFederation", "adatum-saml", None),
        },
        "connector_types": {
            "email": "email_otp",
            "fabrikam": "oidc",
            "adatum-saml": "saml",
            "google": "google",
            "msa": "microsoft",
        },
        "google": "google",
        "passcode": "email",
        "microsoft_account": "msa",
        "primary_order": ("azureActiveDirectory", "externalFederation", "socialIdentityProviders"),
        "fallback": "defaultConfiguredIdp",
    }
    base.update(fields)
    return RealmIndex(**base)


ROWS: list[tuple[str, dict[str, Any], dict[str, Any], Route]] = [
    (
        "partner domain goes to the partner's IdP",
        {},
        {"email": "ann@fabrikam.example"},
        Route("fabrikam", "partner_domain", PARTNER),
    ),
    (
        "domain match is case-insensitive",
        {},
        {"email": "Ann@Fabrikam.Example"},
        Route("fabrikam", "partner_domain", PARTNER),
    ),
    (
        "subdomains do not match a claimed domain",
        {},
        {"email": "ann@eu.fabrikam.example"},
        Route("email", "fallback_passcode"),
    ),
    (
        "federated domain goes to its SAML connector",
        {},
        {"email": "bo@adatum.example"},
        Route("adatum-saml", "connector_domain"),
    ),
    ("gmail goes to Google", {}, {"email": "cy@gmail.com"}, Route("google", "gmail_address")),
    ("googlemail goes to Google", {}, {"email": "cy@googlemail.com"}, Route("google", "gmail_address")),
    (
        "gmail without a Google connector falls back",
        {"google": None},
        {"email": "cy@gmail.com"},
        Route("email", "fallback_passcode"),
    ),
    (
        "unknown domain falls back to the passcode",
        {},
        {"email": "dee@example.org"},
        Route("email", "fallback_passcode"),
    ),
    (
        "no passcode connector: default fallback is MSA",
        {"passcode": None},
        {"email": "dee@example.org"},
        Route("msa", "fallback_microsoft_account"),
    ),
    (
        "fallback microsoftAccount",
        {"fallback": "microsoftAccount"},
        {"email": "dee@example.org"},
        Route("msa", "fallback_microsoft_account"),
    ),
    (
        "fallback emailOneTimePasscode without passcode connector",
        {"fallback": "emailOneTimePasscode", "passcode": None},
        {"email": "dee@example.org"},
        Route(None, "no_identity_provider"),
    ),
    (
        "idp_hint wins",
        {},
        {"email": "ann@fabrikam.example", "idp_hint": "google"},
        Route("google", "idp_hint"),
    ),
    (
        "unknown idp_hint is ignored",
        {},
        {"email": "ann@fabrikam.example", "idp_hint": "nope"},
        Route("fabrikam", "partner_domain", PARTNER),
    ),
    (
        "idp_hint the app does not accept is ignored",
        {},
        {"email": "dee@example.org", "idp_hint": "google", "allowed": {"email"}},
        Route("email", "fallback_passcode"),
    ),
    (
        "domain_hint routes without an email",
        {},
        {"domain_hint": "fabrikam.example"},
        Route("fabrikam", "partner_domain", PARTNER),
    ),
    (
        "the email's domain beats domain_hint",
        {},
        {"email": "cy@gmail.com", "domain_hint": "fabrikam.example"},
        Route("google", "gmail_address"),
    ),
    (
        "claimed domain of a connector the app refuses is refused, not rerouted",
        {},
        {"email": "ann@fabrikam.example", "allowed": {"email"}},
        Route(None, "connector_not_allowed_for_app", PARTNER),
    ),
    (
        "gmail with Google not accepted falls back",
        {},
        {"email": "cy@gmail.com", "allowed": {"email"}},
        Route("email", "fallback_passcode"),
    ),
    (
        "primary order without federation skips the SAML domain",
        {"primary_order": ("azureActiveDirectory",)},
        {"email": "bo@adatum.example"},
        Route("email", "fallback_passcode"),
    ),
    (
        "primary order without social skips Google",
        {"primary_order": ("externalFederation",)},
        {"email": "cy@gmail.com"},
        Route("email", "fallback_passcode"),
    ),
    (
        "nothing accepted at all",
        {},
        {"email": "dee@example.org", "allowed": set()},
        Route(None, "no_identity_provider"),
    ),
    ("no email, no hints: fallback", {}, {}, Route("email", "fallback_passcode")),
]


@pytest.mark.parametrize(("case", "index_fields", "inputs", "expected"), ROWS, ids=[r[0] for r in ROWS])
def test_discover(case: str, index_fields: dict[str, Any], inputs: dict[str, Any], expected: Route) -> None:
    assert discover(fake_index(**index_fields), **inputs) == expected


def test_index_from_settings_routes_partner_domains_to_their_connector() -> None:
    realm = index(
        connectors=[{"id": "email", "type": "email_otp", "domains": ["passcode-only.example"]}],
        cross_tenant_access={
            "partners": [{"tenant_id": PARTNER, "domains": ["fabrikam.example"], "connector": "email"}]
        },
    )
    assert discover(realm, email="ann@fabrikam.example") == Route("email", "partner_domain", PARTNER)
    # email_otp is no federation category: its domains do not route.
    assert discover(realm, email="x@passcode-only.example") == Route("email", "fallback_passcode")


def test_a_thousand_partner_domains_are_one_dictionary_lookup() -> None:
    partners = [
        {
            "tenant_id": f"{i:08x}-2222-4333-8444-555555555555",
            "domains": [f"p{i}.example"],
            "connector": "email",
        }
        for i in range(1000)
    ]
    realm = index(cross_tenant_access={"partners": partners})
    assert len(realm.domains) == 1000
    assert discover(realm, email="z@p999.example").partner_tenant_id == "000003e7-2222-4333-8444-555555555555"
