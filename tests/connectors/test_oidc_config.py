"""The ``oidc`` connector's configuration model: what it accepts, what it refuses and why."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from idp_connectors.base import ConnectorContext
from idp_connectors.oidc.config import DENIED_AUTHORIZE_PARAMS, OidcConfig
from idp_connectors.oidc.connector import OidcConnector
from idp_connectors.urls import is_loopback_host
from tests.support.memory_state import MemoryState
from tests.support.oidc_idp import NoMail

BASE: dict[str, Any] = {
    "id": "partner-a",
    "type": "oidc",
    "issuer": "https://idp.partner-a.example",
    "client_id": "gw",
    "client_secret": "from-the-environment",
}


def config(**changes: Any) -> OidcConfig:
    data = {**BASE, **changes}
    return OidcConfig.model_validate({k: v for k, v in data.items() if v is not None})


def refusal(**changes: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        config(**changes)
    return str(caught.value)


def test_defaults() -> None:
    c = config()
    assert c.scopes == ["openid", "profile", "email"]
    assert c.allowed_algorithms == ["RS256"]
    assert c.token_endpoint_auth_method == "client_secret_basic"
    assert c.use_userinfo is False
    assert c.trust_email_for_linking is False
    assert c.clock_skew_seconds == 120
    assert (c.forward_prompt, c.forward_max_age, c.forward_acr_values, c.forward_login_hint) == (True,) * 4
    assert c.claims.subject == "sub" and c.claims.home_tenant_id is None and c.claims.device == {}
    assert c.signup_only is False
    assert c.discovery_document_url == "https://idp.partner-a.example/.well-known/openid-configuration"
    assert "from-the-environment" not in repr(c)


def test_discovery_url_with_an_issuer_path_and_an_override() -> None:
    assert (
        config(issuer="https://login.example/tenant/v2.0/").discovery_document_url
        == "https://login.example/tenant/v2.0/.well-known/openid-configuration"
    )
    assert (
        config(discovery_url="https://idp.example/meta").discovery_document_url == "https://idp.example/meta"
    )


def test_unknown_keys_are_refused() -> None:
    assert "extra" in refusal(client_secrets="typo")
    assert "extra" in refusal(claims={"subjct": "sub"})


@pytest.mark.parametrize(
    "issuer",
    [
        "http://idp.partner-a.example",
        "ftp://idp.partner-a.example",
        "https://idp.partner-a.example?x=1",
        "https://idp.partner-a.example#top",
        "https://user:pw@idp.partner-a.example",
        "https://",
        "idp.partner-a.example",
        "https://idp.example:99999",
    ],
)
def test_bad_issuers(issuer: str) -> None:
    assert "issuer" in refusal(issuer=issuer)


@pytest.mark.parametrize(
    "issuer", ["http://127.0.0.1:9000", "http://localhost:8080/realm", "http://[::1]:8000"]
)
def test_http_is_allowed_on_loopback_only(issuer: str) -> None:
    assert config(issuer=issuer).issuer == issuer


def test_loopback_hosts() -> None:
    assert is_loopback_host("127.0.0.2") and is_loopback_host("::1") and is_loopback_host("LOCALHOST")
    assert (
        not is_loopback_host("10.0.0.1")
        and not is_loopback_host("localhost.example")
        and not is_loopback_host(None)
    )


def test_discovery_url_must_be_https() -> None:
    assert "discovery URL" in refusal(discovery_url="http://idp.partner-a.example/meta")


@pytest.mark.parametrize(
    "algorithms", [["none"], ["HS256"], ["RS256", "HS512"], ["ES512"], [], ["RS256", "RS256"]]
)
def test_only_listed_asymmetric_algorithms(algorithms: list[str]) -> None:
    assert "allowed_algorithms" in refusal(allowed_algorithms=algorithms)


def test_several_algorithms_may_be_allowed() -> None:
    assert config(allowed_algorithms=["ES256", "EdDSA", "PS256"]).allowed_algorithms == [
        "ES256",
        "EdDSA",
        "PS256",
    ]


def test_client_authentication_rules() -> None:
    assert "client_secret is required" in refusal(client_secret=None)
    assert "client_secret is required" in refusal(
        client_secret="", token_endpoint_auth_method="client_secret_post"
    )
    assert "`none`" in refusal(token_endpoint_auth_method="none")
    public = config(client_secret=None, token_endpoint_auth_method="none")
    assert public.client_secret is None
    assert "token_endpoint_auth_method" in refusal(token_endpoint_auth_method="private_key_jwt")


@pytest.mark.parametrize(
    ("scopes", "message"),
    [(["profile", "email"], "openid"), (["openid", "a b"], "scope token"), (["openid", "openid"], "twice")],
)
def test_scope_rules(scopes: list[str], message: str) -> None:
    assert message in refusal(scopes=scopes)


@pytest.mark.parametrize("name", sorted(DENIED_AUTHORIZE_PARAMS))
def test_extra_authorize_params_cannot_override_the_protocol(name: str) -> None:
    assert "set by the connector itself" in refusal(extra_authorize_params={name: "x"})


def test_extra_authorize_params_rules() -> None:
    assert config(extra_authorize_params={"response_mode": "form_post", "hd": "x"}).extra_authorize_params
    assert "response_mode" in refusal(extra_authorize_params={"response_mode": "fragment"})
    assert "parameter name" in refusal(extra_authorize_params={"bad name": "x"})


def test_clock_skew_and_timeout_bounds() -> None:
    assert "clock_skew_seconds" in refusal(clock_skew_seconds=-1)
    assert "clock_skew_seconds" in refusal(clock_skew_seconds=3600)
    assert "http_timeout_seconds" in refusal(http_timeout_seconds=0)


def test_claim_mapping_rules() -> None:
    c = config(
        claims={"subject": "oid", "home_tenant_id": "tid", "email": None, "device": {"compliant": "dc"}}
    )
    assert (c.claims.subject, c.claims.home_tenant_id, c.claims.email) == ("oid", "tid", None)
    assert "claim name" in refusal(claims={"device": {"compliant": ""}})
    assert "subject" in refusal(claims={"subject": None})


def test_open_builds_the_connector() -> None:
    ctx = ConnectorContext(
        state=MemoryState(), mail=NoMail(), keyed_hash=lambda p, v: v, tenant_name="Contoso"
    )
    connector = config().open(ctx)
    assert isinstance(connector, OidcConnector)
    assert connector.id == "partner-a"


def test_json_schema_is_exported() -> None:
    schema = OidcConfig.model_json_schema()
    assert schema["additionalProperties"] is False
    assert "issuer" in schema["required"]


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("LocalHost", True),
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("0:0:0:0:0:0:0:1", True),
        ("10.0.0.1", False),
        ("[2001:db8::1]", False),
        ("localhost.example", False),
        ("[::1", False),
        ("", False),
        (None, False),
    ],
)
def test_loopback_hosts_one_rule_for_settings_connectors_and_mail(host: str | None, loopback: bool) -> None:
    """The single ``is_loopback_host`` (the settings, the connectors and the SMTP check use it)."""
    assert is_loopback_host(host) is loopback
