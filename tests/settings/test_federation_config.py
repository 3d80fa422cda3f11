"""Partner, redemption-order and per-app connector settings: cross-references checked at load time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from gateway.settings.loader import ConfigError, load_settings
from tests.support.gateway_app import default_config, merge

PARTNER = "11111111-2222-4333-8444-555555555555"


def problems(tmp_path: Path, **overrides: Any) -> list[str]:
    path = tmp_path / "gateway.yaml"
    with path.open("w") as handle:
        YAML().dump(merge(default_config(), overrides), handle)
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    return [f"{p.key_path}: {p.message}" for p in caught.value.problems]


def test_a_domain_claimed_twice_is_an_error(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        cross_tenant_access={
            "partners": [
                {"tenant_id": PARTNER, "domains": ["fabrikam.example"], "connector": "email"},
                {
                    "tenant_id": PARTNER.replace("1", "9"),
                    "domains": ["fabrikam.example"],
                    "connector": "email",
                },
            ]
        },
    )
    assert found == [
        "cross_tenant_access.partners[1].domains[0]: domain 'fabrikam.example' is already claimed by partner "
        f"{PARTNER}"
    ]


def test_partner_naming_an_unknown_connector(tmp_path: Path) -> None:
    found = problems(
        tmp_path, cross_tenant_access={"partners": [{"tenant_id": PARTNER, "connector": "nope"}]}
    )
    assert found == ["cross_tenant_access.partners[0].connector: unknown connector 'nope'"]


def test_same_partner_twice(tmp_path: Path) -> None:
    found = problems(
        tmp_path, cross_tenant_access={"partners": [{"tenant_id": PARTNER}, {"tenant_id": PARTNER}]}
    )
    assert len(found) == 1 and "has two partner entries" in found[0]


def test_app_allowing_an_unknown_connector(tmp_path: Path) -> None:
    config = default_config()
    config["applications"][0]["allowed_connectors"] = ["email", "gogle"]
    found = problems(tmp_path, applications=config["applications"])
    assert found == ["applications[0].allowed_connectors[1]: unknown connector 'gogle'"]


def test_domains_must_be_lower_case_names(tmp_path: Path) -> None:
    found = problems(
        tmp_path, connectors=[{"id": "email", "type": "email_otp", "domains": ["Fabrikam.Example"]}]
    )
    assert len(found) == 1 and found[0].startswith("connectors[0].domains")


def test_redemption_order_lists_each_source_once(tmp_path: Path) -> None:
    found = problems(
        tmp_path, redemption={"primary_order": ["socialIdentityProviders", "socialIdentityProviders"]}
    )
    assert found == ["redemption.primary_order: a source is listed twice"]


def test_microsoft_account_fallback_needs_a_microsoft_connector(tmp_path: Path) -> None:
    found = problems(tmp_path, redemption={"fallback": "microsoftAccount"})
    assert found == [
        "redemption.fallback: microsoftAccount needs a connector of type microsoft "
        "with accounts personal or both"
    ]
