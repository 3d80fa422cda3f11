"""The ``wsfed`` connector's configuration model: what it accepts, what it refuses and why."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from pydantic import TypeAdapter, ValidationError

from idp_connectors.base import ConnectorContext, PublishesMetadata, RedirectConnector, state_parameter
from idp_connectors.registry import REGISTRY, ConnectorConfig
from idp_connectors.wsfed.config import EMAIL, IMMUTABLE_ID, WsFedConfig
from idp_connectors.wsfed.connector import WsFedConnector
from tests.support.memory_state import MemoryState
from tests.support.oidc_idp import NoMail
from tests.support.wsfed_sts import (
    CALLBACK,
    ENTITY_ID,
    PASSIVE_URL,
    certificate_pem,
    make_signer,
    shared_signer,
)

PEM = certificate_pem(shared_signer("sts")[1])
BASE: dict[str, Any] = {
    "id": "fabrikam",
    "type": "wsfed",
    "passive_sign_in_url": PASSIVE_URL,
    "issuer": ENTITY_ID,
    "signing_certificates": [PEM],
}


def config(**changes: Any) -> WsFedConfig:
    data = {**BASE, **changes}
    return WsFedConfig.model_validate({k: v for k, v in data.items() if v is not None})


def refusal(**changes: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        config(**changes)
    return str(caught.value)


def test_defaults() -> None:
    c = config()
    assert c.realm is None and c.realm_for(CALLBACK) == CALLBACK + "/metadata"
    assert c.allow_sha1 is False
    assert c.clock_skew_seconds == 120
    assert c.trust_email_for_linking is False
    assert c.federation_metadata_url is None and c.metadata_refresh_seconds == 86400
    assert c.claims.immutable_id == IMMUTABLE_ID and c.claims.email == EMAIL
    assert c.claims.home_tenant_id is None and c.claims.device == {}
    assert [cert.public_bytes(serialization.Encoding.PEM).decode() for cert in c.certificates] == [PEM]


def test_a_configured_realm_wins() -> None:
    assert config(realm="urn:contoso:gateway").realm_for(CALLBACK) == "urn:contoso:gateway"


def test_the_registry_knows_the_type() -> None:
    assert REGISTRY["wsfed"] is WsFedConfig
    parsed = TypeAdapter(ConnectorConfig).validate_python(BASE)
    assert isinstance(parsed, WsFedConfig)


def test_open_gives_a_redirect_connector_that_publishes_metadata_and_uses_wctx() -> None:
    ctx = ConnectorContext(
        state=MemoryState(), mail=NoMail(), keyed_hash=lambda p, v: v, tenant_name="Contoso"
    )
    connector = config().open(ctx)
    assert isinstance(connector, WsFedConnector)
    assert isinstance(connector, RedirectConnector)
    assert isinstance(connector, PublishesMetadata)
    assert state_parameter(connector) == "wctx"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"signing_certificates": []}, "give signing_certificates, federation_metadata_url or both"),
        ({"passive_sign_in_url": "http://sts.fabrikam.test/adfs/ls/"}, "must use https"),
        ({"passive_sign_in_url": "sts.fabrikam.test"}, "must be an absolute https URL"),
        ({"federation_metadata_url": "http://sts.fabrikam.test/md.xml"}, "must use https"),
        ({"issuer": "http://sts.fabrikam.test/adfs/services/trust "}, "without white space"),
        ({"issuer": ""}, "without white space"),
        ({"realm": "urn:contoso gateway"}, "without white space"),
        ({"clock_skew_seconds": 181}, "less than or equal to 180"),
        ({"metadata_refresh_seconds": 10}, "greater than or equal to 300"),
        ({"signing_certificate": PEM}, "Extra inputs are not permitted"),
        ({"claims": {"immutableid": IMMUTABLE_ID}}, "Extra inputs are not permitted"),
        ({"claims": {"email": None}}, "Input should be a valid string"),
        ({"claims": {"device": {"compliant": "a\nb"}}}, "is not a claim name"),
        ({"signing_certificates": [PEM, PEM]}, "a certificate is listed twice"),
        (
            {"signing_certificates": ["missing/adfs.pem"]},
            "cannot read the certificate file 'missing/adfs.pem'",
        ),
        (
            {"signing_certificates": ["-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"]},
            "not a usable",
        ),
        ({"signing_certificates": ["QUJD" * 20]}, "not a usable X.509 certificate"),
        ({"domains": ["Fabrikam.test"]}, "is not a lower-case domain name"),
    ],
)
def test_refusals_say_what_is_wrong(changes: dict[str, Any], message: str) -> None:
    assert message in refusal(**changes)


def test_metadata_alone_is_enough() -> None:
    c = config(signing_certificates=[], federation_metadata_url="https://sts.fabrikam.test/md.xml")
    assert c.certificates == ()


def test_certificates_from_a_file_and_as_base64_der(tmp_path: Path) -> None:
    certificate = shared_signer("sts")[1]
    path = tmp_path / "adfs.pem"
    path.write_text(PEM)
    der = base64.b64encode(certificate.public_bytes(serialization.Encoding.DER)).decode()
    assert config(signing_certificates=[str(path)]).certificates == (certificate,)
    assert config(signing_certificates=[der]).certificates == (certificate,)
    assert config(signing_certificates=[der[:64] + "\n" + der[64:]]).certificates == (certificate,)


def test_a_short_rsa_key_is_refused() -> None:
    weak = certificate_pem(make_signer("weak.fabrikam.test", bits=1024)[1])
    message = refusal(signing_certificates=[weak])
    assert "signing_certificates[0] is not a usable X.509 certificate" in message
    assert "2048" in message


def test_a_path_that_looks_like_base64_is_read_as_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # relative paths resolve against the working directory
    relative = "adfs" * 20 + "/signing"
    (tmp_path / ("adfs" * 20)).mkdir()
    (tmp_path / relative).write_text(PEM)
    assert config(signing_certificates=[relative]).certificates == (shared_signer("sts")[1],)


def test_a_file_with_two_certificates_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "two.pem"
    path.write_text(PEM + certificate_pem(shared_signer("attacker")[1]))
    assert "must hold exactly one certificate (found 2)" in refusal(signing_certificates=[str(path)])
