"""``/saml2/metadata`` and the signing certificates: schema-valid, every published RS256 key listed.

A key created by ``rotate`` is announced (listed) before it signs; the certificate of each key is
self-signed, deterministic, named after the tenant and valid from the key's creation for ten years.
"""

from __future__ import annotations

import base64
import datetime
from importlib.resources import files

import pytest
import saml2.data.schemas
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from lxml import etree
from saml2.xml.schema import _create_xml_schema_validator, validate

from gateway.saml_idp import certificates
from gateway.saml_idp.certificates import certificate_for, published_certificates, serial_number, signer
from gateway.tokens.keys import rotate
from tests.saml_idp.conftest import Idp
from tests.support.gateway_app import ISSUER

MD = {"md": "urn:oasis:names:tc:SAML:2.0:metadata", "ds": "http://www.w3.org/2000/09/xmldsig#"}
METADATA_SCHEMA = _create_xml_schema_validator(
    str(files(saml2.data.schemas).joinpath("saml-schema-metadata-2.0.xsd"))
)


async def metadata(idp: Idp) -> etree._Element:
    answer = await idp.client.get("/saml2/metadata")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/samlmetadata+xml")
    assert answer.headers["cache-control"] == "public, max-age=3600"
    validate(answer.text, METADATA_SCHEMA)
    return etree.fromstring(answer.content)


def listed_certificates(root: etree._Element) -> list[x509.Certificate]:
    values = root.xpath(
        "md:IDPSSODescriptor/md:KeyDescriptor[@use='signing']/ds:KeyInfo/ds:X509Data/ds:X509Certificate/text()",
        namespaces=MD,
    )
    return [x509.load_der_x509_certificate(base64.b64decode(str(value))) for value in values]


async def test_the_metadata_describes_the_idp(idp: Idp) -> None:
    root = await metadata(idp)
    assert root.get("entityID") == f"{ISSUER}/saml2/metadata"
    [descriptor] = root.xpath("md:IDPSSODescriptor", namespaces=MD)
    assert descriptor.get("WantAuthnRequestsSigned") == "false"
    assert descriptor.get("protocolSupportEnumeration") == "urn:oasis:names:tc:SAML:2.0:protocol"
    sso = {
        (s.get("Binding"), s.get("Location"))
        for s in descriptor.xpath("md:SingleSignOnService", namespaces=MD)
    }
    assert sso == {
        ("urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect", f"{ISSUER}/saml2/sso"),
        ("urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST", f"{ISSUER}/saml2/sso"),
    }
    [slo] = descriptor.xpath("md:SingleLogoutService", namespaces=MD)
    assert (slo.get("Binding"), slo.get("Location")) == (
        "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect",
        f"{ISSUER}/saml2/slo",
    )
    assert descriptor.xpath("md:NameIDFormat/text()", namespaces=MD) == [
        "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
        "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
        "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified",
    ]
    assert listed_certificates(root) == [signer(idp.rt)[1]]


async def test_pysaml2_reads_the_metadata(idp: Idp) -> None:
    sp = idp.sp("payroll")
    await sp.load_idp_metadata()
    assert sp.idp_entity_id == f"{ISSUER}/saml2/metadata"
    assert sp.sso_url == f"{ISSUER}/saml2/sso"


async def test_a_rotated_key_is_announced_before_it_signs_and_a_retired_one_leaves(idp: Idp) -> None:
    rt = idp.rt
    old_certificate = signer(rt)[1]
    await rotate(rt.store, rt.box, "RS256", rt.now(), overlap_seconds=3600, retire_after_seconds=600)
    assert await rt.keys.refresh(rt.store)
    listed = listed_certificates(await metadata(idp))
    assert len(listed) == 2 and listed[0] == old_certificate
    assert signer(rt)[1] == old_certificate, "the new key must not sign before its activation"
    upcoming = listed[1]
    idp.clock.advance(3601)
    assert signer(rt)[1] == upcoming
    idp.clock.advance(600)
    await rt.keys.refresh(rt.store)
    assert listed_certificates(await metadata(idp)) == [upcoming]


async def test_each_certificate_is_self_signed_and_derived_from_its_key(idp: Idp) -> None:
    [key] = idp.rt.keys.published_keys("RS256")
    certificate = certificate_for(key, "Contoso")
    assert certificate.subject == certificate.issuer
    assert certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "Contoso"
    assert certificate.serial_number == serial_number(key.kid) > 0
    start = datetime.datetime.fromtimestamp(key.created_at, datetime.UTC)
    assert certificate.not_valid_before_utc == start
    assert certificate.not_valid_after_utc - start == datetime.timedelta(days=3652)
    public = certificate.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    assert public.public_numbers() == certificates.private_key(key).public_key().public_numbers()
    assert certificate.signature_hash_algorithm is not None
    public.verify(
        certificate.signature,
        certificate.tbs_certificate_bytes,
        padding.PKCS1v15(),
        certificate.signature_hash_algorithm,
    )


async def test_the_certificate_is_deterministic_so_every_replica_publishes_the_same(idp: Idp) -> None:
    [key] = idp.rt.keys.published_keys("RS256")
    first = certificate_for(key, "Contoso").public_bytes(Encoding.DER)
    certificates._cache.clear()
    assert certificate_for(key, "Contoso").public_bytes(Encoding.DER) == first
    assert published_certificates(idp.rt)[0].public_bytes(Encoding.DER) == first


async def test_an_es256_key_has_no_saml_certificate(idp: Idp) -> None:
    [key] = idp.rt.keys.published_keys("ES256")
    with pytest.raises(ValueError, match="not an RS256 key"):
        certificates.private_key(key)
