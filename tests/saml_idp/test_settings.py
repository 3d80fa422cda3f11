"""``applications[].saml``: defaults, every refused value with its key path, nothing else accepted."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from ruamel.yaml import YAML

from gateway.settings.loader import ConfigError, load_settings
from tests.saml_idp.conftest import SP_CERTIFICATE
from tests.support.gateway_app import default_config, merge
from tests.support.saml_idp import key_pair

ENTITY = "https://payroll.example/saml"
ACS = "https://payroll.example/saml/acs"


def app(**saml: Any) -> dict[str, Any]:
    return {"id": "payroll", "name": "Payroll", "saml": {"entity_id": ENTITY, "acs_urls": [ACS], **saml}}


def write(tmp_path: Path, applications: list[dict[str, Any]]) -> Path:
    path = tmp_path / "gateway.yaml"
    data = merge(default_config(), {"demo": {"enabled": False}})
    data["applications"] = applications
    with path.open("w") as handle:
        YAML().dump(data, handle)
    return path


def problems(tmp_path: Path, *applications: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, list(applications)))
    return [f"{p.key_path}: {p.message}" for p in caught.value.problems]


def one_problem(tmp_path: Path, **saml: Any) -> str:
    [found] = problems(tmp_path, app(**saml))
    return found


def test_the_defaults(tmp_path: Path) -> None:
    saml = load_settings(write(tmp_path, [app()])).applications[0].saml
    assert saml is not None
    assert saml.name_id_format == "persistent" and saml.sign == "assertion" and saml.attributes == []
    assert not saml.encrypt_assertion and not saml.require_signed_requests and saml.certificate() is None
    assert saml.slo_url is None and not saml.idp_initiated.enabled


def test_the_documented_example_loads(tmp_path: Path) -> None:
    example = app(
        name_id_format="email",
        attributes=[
            {"name": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress", "source": "mail"},
            {"name": "displayName", "source": "displayName", "name_format": "basic"},
        ],
        sign="both",
        encrypt_assertion=True,
        sp_certificate=SP_CERTIFICATE,
        require_signed_requests=True,
        slo_url="https://payroll.example/saml/slo",
        idp_initiated={"enabled": True, "target": "https://payroll.example/home"},
    )
    saml = load_settings(write(tmp_path, [example])).applications[0].saml
    assert saml is not None
    assert [a.name_format_uri for a in saml.attributes] == [
        "urn:oasis:names:tc:SAML:2.0:attrname-format:uri",
        "urn:oasis:names:tc:SAML:2.0:attrname-format:basic",
    ]
    assert saml.certificate() == key_pair("sp").certificate


def test_the_sp_certificate_may_be_a_file(tmp_path: Path) -> None:
    saml = load_settings(write(tmp_path, [app(sp_certificate=key_pair("sp").cert_file)])).applications[0].saml
    assert saml is not None and saml.certificate() == key_pair("sp").certificate


def _ec_certificate_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ec")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


@pytest.mark.parametrize(
    ("saml", "expected"),
    [
        ({"entity_id": "payroll"}, "applications[0].saml.entity_id: an entity id is an absolute URI"),
        ({"entity_id": "https://x.example/a b"}, "an entity id is an absolute URI"),
        ({"acs_urls": []}, "applications[0].saml.acs_urls: List should have at least 1 item"),
        ({"acs_urls": ["http://payroll.example/acs"]}, "applications[0].saml.acs_urls[0]: must use https"),
        ({"acs_urls": [ACS, ACS]}, "each ACS URL is listed once"),
        ({"acs_urls": ["https://payroll.example/acs#frag"]}, "must not contain a fragment"),
        ({"name_id_format": "transient"}, "saml.name_id_format: Input should be 'persistent'"),
        ({"sign": "none"}, "applications[0].saml.sign: Input should be 'assertion', 'response' or 'both'"),
        ({"require_signed_requests": True}, "require_signed_requests needs sp_certificate"),
        ({"encrypt_assertion": True}, "encrypt_assertion needs sp_certificate"),
        ({"encrypt_assertion": True, "sp_certificate": "EC"}, "needs an RSA sp_certificate"),
        ({"sp_certificate": "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n"},
         "applications[0].saml.sp_certificate: not a certificate"),
        ({"sp_certificate": "WEAK"}, "RSA key of 1024 bits"),
        ({"sp_certificate": "TWO"}, "exactly one certificate is needed, not 2"),
        ({"sp_certificate": "/nonexistent/sp.pem"}, "/nonexistent/sp.pem cannot be read"),
        ({"slo_url": "ftp://payroll.example/slo"}, "applications[0].saml.slo_url: must be an absolute"),
        ({"slo_url": "https://payroll.example/slo"},
         "applications[0].saml.slo_url: slo_url needs sp_certificate: single logout messages must be signed "
         "(SAML Profiles 4.4.4)"),
        ({"slo_url": "https://payroll.example/slo", "sp_certificate": "/nonexistent/sp.pem"},
         "applications[0].saml.sp_certificate: the certificate file /nonexistent/sp.pem cannot be read"),
        ({"idp_initiated": {"enabled": True}}, "applications[0].saml.idp_initiated: enabled needs a target"),
        ({"idp_initiated": {"enabled": True, "target": "https://payroll.example/" + "x" * 60}},
         "the target is sent as RelayState: at most 80 bytes"),
        ({"idp_initiated": {"enabled": True, "target": "/relative"}}, "must be an absolute http(s) URL"),
        ({"attributes": [{"name": "mail", "source": "password"}]}, "saml.attributes[0].source"),
        ({"attributes": [{"name": "mail", "source": "mail", "name_format": "uri"}]},
         "name_format uri needs an absolute URI as name"),
        ({"attributes": [{"name": "e mail", "source": "mail", "name_format": "basic"}]},
         "name_format basic needs a name of letters"),
        ({"attributes": [{"name": "bad\u0007name", "source": "mail", "name_format": "unspecified"}]},
         "no control characters"),
        ({"attributes": [{"name": "mail", "source": "mail"}, {"name": "mail", "source": "displayName"}]},
         "each attribute name is released once"),
        ({"attributes": [{"name": "mail", "source": "mail", "extra": 1}]},
         "applications[0].saml.attributes[0].extra: unknown key `extra`"),
        ({"audience": ENTITY}, "applications[0].saml.audience: unknown key `audience`"),
    ],
)  # fmt: skip
def test_bad_values_are_refused_with_their_key_path(
    tmp_path: Path, saml: dict[str, Any], expected: str
) -> None:
    if saml.get("sp_certificate") == "EC":
        saml = {**saml, "sp_certificate": _ec_certificate_pem()}
    if saml.get("sp_certificate") == "WEAK":
        weak = key_pair("weak", 1024).certificate.public_bytes(serialization.Encoding.PEM).decode()
        saml = {**saml, "sp_certificate": weak}
    if saml.get("sp_certificate") == "TWO":
        saml = {**saml, "sp_certificate": SP_CERTIFICATE + SP_CERTIFICATE}
    found = one_problem(tmp_path, **saml)
    assert expected in found, found


def test_an_ec_certificate_may_verify_signed_requests(tmp_path: Path) -> None:
    saml = load_settings(
        write(tmp_path, [app(sp_certificate=_ec_certificate_pem(), require_signed_requests=True)])
    )
    assert saml.applications[0].saml is not None


def test_an_entity_id_names_one_application(tmp_path: Path) -> None:
    second = {**app(), "id": "payroll-2", "name": "Payroll 2"}
    assert problems(tmp_path, app(), second) == [
        f"applications[1].saml.entity_id: entity id '{ENTITY}' is already used by application 'payroll'"
    ]


def test_a_config_error_names_the_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, [app(sign="none")])
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    [problem] = caught.value.problems
    assert str(path) in str(caught.value) and problem.line is not None and problem.line > 1


def test_an_slo_url_without_a_certificate_is_refused_at_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, [app(slo_url="https://payroll.example/saml/slo")])
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    [problem] = caught.value.problems
    [line] = [
        n for n, text in enumerate(path.read_text().splitlines(), 1) if text.strip().startswith("slo_url:")
    ]
    assert (problem.line, problem.key_path) == (line, "applications[0].saml.slo_url")
    assert f"{path}:{line}:" in str(caught.value)
    assert "slo_url needs sp_certificate: single logout messages must be signed (SAML Profiles 4.4.4)" in str(
        caught.value
    )
