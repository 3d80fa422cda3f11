"""The ``type: saml`` configuration: defaults, and every bad input refused with a clear message."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from idp_connectors.registry import REGISTRY, ConnectorConfig
from idp_connectors.saml.config import EMAIL_CLAIM, SamlConfig
from tests.support.saml_idp import METADATA_URL, SamlTestIdP, key_pair

BASE: dict[str, Any] = {"id": "fabrikam", "type": "saml", "idp_metadata_url": METADATA_URL}


def build(**overrides: Any) -> SamlConfig:
    return SamlConfig.model_validate({**BASE, **overrides})


def refused(match: str, **overrides: Any) -> None:
    with pytest.raises(ValidationError, match=match):
        build(**overrides)


def test_the_registry_knows_the_type() -> None:
    assert REGISTRY["saml"] is SamlConfig
    config = TypeAdapter(ConnectorConfig).validate_python({**BASE, "domains": ["fabrikam.example"]})
    assert isinstance(config, SamlConfig)


def test_defaults_are_the_safe_ones() -> None:
    config = build()
    assert config.want_assertions_signed is True
    assert (config.allow_sha1, config.allow_cbc, config.allow_unsolicited) == (False, False, False)
    assert config.sign_authn_requests is False
    assert config.clock_skew_seconds == 120
    assert config.metadata_refresh_seconds == 86400
    assert config.name_id_format == "persistent"
    assert config.claims.email == EMAIL_CLAIM
    assert config.trust_email_for_linking is False
    assert config.sp_key_pair() is None


def test_unknown_keys_are_refused() -> None:
    refused("metadata_url", metadata_url=METADATA_URL)
    refused("colour", claims={"colour": "x"})


def test_exactly_one_metadata_source() -> None:
    with pytest.raises(ValidationError, match="exactly one of idp_metadata_file and idp_metadata_url"):
        SamlConfig.model_validate({"id": "x", "type": "saml"})
    refused("exactly one of idp_metadata_file and idp_metadata_url", idp_metadata_file="/nonexistent.xml")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://idp.fabrikam.test/metadata", "must use https"),
        ("ftp://idp.fabrikam.test/metadata", "absolute https URL"),
        ("https://user@idp.fabrikam.test/metadata", "user information"),
    ],
)
def test_the_metadata_url_must_be_https(url: str, message: str) -> None:
    refused(message, idp_metadata_url=url)


def test_unsolicited_responses_cannot_be_enabled() -> None:
    refused("unsolicited .* always refused", allow_unsolicited=True)
    assert build(allow_unsolicited=False).allow_unsolicited is False


@pytest.mark.parametrize("skew", [-1, 181])
def test_the_clock_skew_is_at_most_180_seconds(skew: int) -> None:
    refused("clock_skew_seconds", clock_skew_seconds=skew)


def test_only_persistent_name_ids() -> None:
    refused("persistent", name_id_format="transient")


@pytest.mark.parametrize("entity_id", ["not a uri", "relative/path", "", "https://x/" + "a" * 1100])
def test_entity_ids_are_absolute_uris(entity_id: str) -> None:
    refused("absolute URI", sp_entity_id=entity_id)
    refused("absolute URI", idp_entity_id=entity_id)


def test_signing_requests_needs_the_sp_key_pair() -> None:
    refused("sign_authn_requests needs sp_key_file", sign_authn_requests=True)


def test_the_key_and_certificate_go_together() -> None:
    refused("go together", sp_key_file=key_pair("sp").key_file)
    refused("go together", sp_certificate_file=key_pair("sp").cert_file)


def test_a_good_key_pair_is_loaded() -> None:
    sp = key_pair("sp")
    config = build(sp_key_file=sp.key_file, sp_certificate_file=sp.cert_file, sign_authn_requests=True)
    pair = config.sp_key_pair()
    assert pair is not None and pair.certificate == sp.certificate


def test_a_missing_key_file_is_named(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.pem")
    refused(
        f"the SP key file {missing} cannot be read",
        sp_key_file=missing,
        sp_certificate_file=key_pair("sp").cert_file,
    )


def test_a_key_that_does_not_match_the_certificate_is_refused() -> None:
    refused(
        "does not match", sp_key_file=key_pair("sp").key_file, sp_certificate_file=key_pair("idp").cert_file
    )


def test_a_weak_sp_certificate_is_refused() -> None:
    weak = key_pair("sp-weak", 1024)
    refused("2048", sp_key_file=weak.key_file, sp_certificate_file=weak.cert_file)


def test_a_file_that_is_not_a_key_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a key")
    refused(
        "not an unencrypted PEM private key",
        sp_key_file=str(junk),
        sp_certificate_file=key_pair("sp").cert_file,
    )
    refused("not a certificate", sp_key_file=key_pair("sp").key_file, sp_certificate_file=str(junk))


def test_a_metadata_file_is_vetted_when_the_configuration_loads(tmp_path: Path) -> None:
    good = tmp_path / "idp.xml"
    good.write_bytes(SamlTestIdP().metadata_xml())
    config = SamlConfig.model_validate({"id": "x", "type": "saml", "idp_metadata_file": str(good)})
    assert config.idp_metadata_file == str(good)
    bad = tmp_path / "bad.xml"
    bad.write_bytes(b'<!DOCTYPE x [<!ENTITY e "e">]><x/>')
    with pytest.raises(
        ValidationError, match=r"the metadata file .*bad.xml: the IdP metadata was refused by the XML gate"
    ):
        SamlConfig.model_validate({"id": "x", "type": "saml", "idp_metadata_file": str(bad)})
    with pytest.raises(ValidationError, match="cannot be read"):
        SamlConfig.model_validate(
            {"id": "x", "type": "saml", "idp_metadata_file": str(tmp_path / "none.xml")}
        )
    with pytest.raises(ValidationError, match=r"describes no SAML 2\.0 IdP with entityID"):
        SamlConfig.model_validate(
            {"id": "x", "type": "saml", "idp_metadata_file": str(good), "idp_entity_id": "urn:other"}
        )


def test_claim_names_are_checked() -> None:
    refused("not an attribute name", claims={"device": {"compliant": "bad\nname"}})
    refused("email", claims={"email": None})
    assert build(claims={"given_name": None}).claims.given_name is None


def test_replaced_key_files_are_read_again(tmp_path: Path) -> None:
    key, certificate = tmp_path / "sp.key", tmp_path / "sp.crt"
    for name in ("sp", "idp"):
        pair = key_pair(name)
        key.write_bytes(Path(pair.key_file).read_bytes())
        certificate.write_bytes(Path(pair.cert_file).read_bytes())
        loaded = build(sp_key_file=str(key), sp_certificate_file=str(certificate)).sp_key_pair()
        assert loaded is not None and loaded.certificate == pair.certificate
