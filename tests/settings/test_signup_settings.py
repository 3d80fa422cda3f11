"""user_flows[] and api_connectors[]: attribute types, page order, connectors at the two steps, and the
problems ``gateway check-config`` reports with their line and key path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.settings import ConfigError, load_settings
from gateway.settings.signup import extension_name, extensions_app_id

HEAD = """\
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
  - id: demo
    name: Demo app
    oidc: {client_id: demo, redirect_uris: [http://127.0.0.1:8000/demo/callback]}
    user_flow: default
"""

FLOWS = """\
api_connectors:
  - id: approvals
    target_url: https://approvals.contoso.example/api/check
    authentication:
      basic: {username: gateway, password: s3cret}
user_flows:
  - id: default
    identity_providers: [email]
    attributes:
      - {name: displayName, required: true}
      - {name: loyaltyNumber, type: Int, label: {en: Loyalty number, fr: Numéro de fidélité}}
      - {name: newsletter, type: Boolean}
    api_connectors:
      post_federation_signup: approvals
      post_attribute_collection: approvals
"""


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    yield tmp_path


def problems(workdir: Path, text: str) -> list[str]:
    path = workdir / "gateway.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert sorted(p.name for p in workdir.iterdir()) == ["gateway.yaml"], "loading must create nothing"
    return [str(p).removeprefix(f"{path.parent}/") for p in caught.value.problems]


def test_a_flow_with_attributes_in_page_order_and_both_connectors_loads(workdir: Path) -> None:
    path = workdir / "gateway.yaml"
    path.write_text(HEAD + FLOWS, encoding="utf-8")
    settings = load_settings(path)
    flow = settings.user_flow("default")
    assert flow is not None and flow.name == "B2X_1_default" and flow.collects
    assert [a.name for a in flow.attributes] == ["displayName", "loyaltyNumber", "newsletter"]
    assert [a.custom for a in flow.attributes] == [False, True, True]
    assert flow.api_connectors.post_federation_signup == "approvals"
    [connector] = settings.api_connectors
    assert connector.timeout_seconds == 20 and connector.retries == 1  # the reference's numbers


def test_custom_attributes_are_named_after_the_extensions_app(workdir: Path) -> None:
    path = workdir / "gateway.yaml"
    path.write_text(HEAD + FLOWS, encoding="utf-8")
    derived = load_settings(path)
    app_id = extensions_app_id(derived)
    assert len(app_id) == 32 and "-" not in app_id
    assert extension_name(derived, "loyaltyNumber") == f"extension_{app_id}_loyaltyNumber"
    assert extensions_app_id(load_settings(path)) == app_id  # stable
    path.write_text(
        HEAD.replace(
            "  name: Contoso\n",
            "  name: Contoso\n  extensions_app_id: 0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0\n",
        )
        + FLOWS,
        encoding="utf-8",
    )
    assert extension_name(load_settings(path), "x") == "extension_0f1e2d3c4b5a69788796a5b4c3d2e1f0_x"


def test_a_flow_without_attributes_or_connectors_collects_nothing(workdir: Path) -> None:
    path = workdir / "gateway.yaml"
    path.write_text(HEAD + "user_flows:\n  - {id: default, identity_providers: [email]}\n", encoding="utf-8")
    flow = load_settings(path).user_flow("default")
    assert flow is not None and not flow.collects


CASES = [
    (
        "{name: newsletter, type: Boolean}",
        "{name: newsletter}",
        "gateway.yaml:27:9: user_flows[0].attributes[2]: 'newsletter' is not a "
        "built-in attribute (displayName,",
    ),
    (
        "{name: displayName, required: true}",
        "{name: displayName, type: String}",
        "gateway.yaml:25:9: user_flows[0].attributes[0]: 'displayName' is a "
        "built-in attribute: it takes no type",
    ),
    (
        "type: Boolean}",
        "type: Float}",
        "gateway.yaml:27:34: user_flows[0].attributes[2].type: Input should be 'String', 'Boolean' or 'Int'",
    ),
    (
        "{name: newsletter, type: Boolean}",
        "{name: loyaltyNumber, type: Int}",
        "gateway.yaml:22:5: user_flows[0]: attribute 'loyaltyNumber' is listed twice",
    ),
    (
        "post_attribute_collection: approvals",
        "post_attribute_collection: aproovals",
        "gateway.yaml:30:34: "
        "user_flows[0].api_connectors.post_attribute_collection: unknown API connector 'aproovals'",
    ),
    (
        "      post_attribute_collection: approvals\n",
        "      post_attribute_colection: approvals\n",
        "gateway.yaml:30:7: "
        "user_flows[0].api_connectors.post_attribute_colection: unknown key `post_attribute_colection`; "
        "did you mean `post_attribute_collection`?",
    ),
    (
        "identity_providers: [email]",
        "identity_providers: [google]",
        "gateway.yaml:23:26: user_flows[0].identity_providers[0]: unknown connector 'google'",
    ),
    (
        "https://approvals.contoso.example/api/check",
        "http://approvals.contoso.example/api/check",
        "gateway.yaml:17:5: api_connectors[0]: target_url must be https (http only on a loopback address)",
    ),
    (
        "      basic: {username: gateway, password: s3cret}\n",
        "      basic: {username: gateway, password: s3cret}\n      client_certificate: {pkcs12: gw.pfx}\n",
        "gateway.yaml:20:7: api_connectors[0].authentication: give exactly one "
        "of basic or client_certificate",
    ),
    (
        "      basic: {username: gateway, password: s3cret}\n",
        "      client_certificate: {certificate: gw.pem}\n",
        "gateway.yaml:20:27: "
        "api_connectors[0].authentication.client_certificate: "
        "a PEM client certificate needs both certificate and key",
    ),
    (
        "{name: loyaltyNumber, type: Int, label: {en: Loyalty number, fr: Numéro de fidélité}}",
        "{name: loyaltyNumber, type: Int, label: {EN: Loyalty number}}",
        "gateway.yaml:26:54: user_flows[0].attributes[1].label.EN: String should match pattern",
    ),
]


@pytest.mark.parametrize(("old", "new", "expected"), CASES)
def test_bad_flows_and_connectors_are_reported_at_their_line(
    workdir: Path, old: str, new: str, expected: str
) -> None:
    text = HEAD + FLOWS
    assert old in text
    found = problems(workdir, text.replace(old, new, 1))
    assert any(p.startswith(expected) for p in found), found


def test_one_custom_attribute_has_one_type_across_flows(workdir: Path) -> None:
    second = (
        "  - id: other\n    identity_providers: [email]\n"
        "    attributes: [{name: loyaltyNumber, type: String}]\n"
    )
    found = problems(workdir, HEAD + FLOWS + second)
    assert any(
        p.startswith(
            "gateway.yaml:33:46: user_flows[1].attributes[0].type: custom "
            "attribute 'loyaltyNumber' has type Int "
            "in another flow"
        )
        for p in found
    ), found


def test_api_connector_ids_are_unique(workdir: Path) -> None:
    twice = FLOWS.replace(
        "user_flows:",
        "  - id: approvals\n    target_url: https://b.example/x\n"
        "    authentication: {basic: {username: a, password: b}}\nuser_flows:",
    )
    found = problems(workdir, HEAD + twice)
    assert any("api_connectors[1].id: duplicate id 'approvals'" in p for p in found), found
