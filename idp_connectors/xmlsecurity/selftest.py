"""Startup self-test of the in-process XML security: a good assertion verifies, a tampered one fails.

``self_test()`` signs a sample assertion with a throwaway RSA-2048 key, serialises it, passes it
through the inbound gate and verifies it; then changes one attribute value and requires the
verification to FAIL. Any other outcome (including a broken lxml/xmlsec pairing) raises
``RuntimeError``, so the gateway refuses to start rather than accept unverifiable SAML.
"""

from __future__ import annotations

import datetime
import functools
import uuid

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lxml import etree

from idp_connectors.xmlsecurity.gate import SAML2, XmlRejected, parse_inbound, text_of
from idp_connectors.xmlsecurity.signature import sign_enveloped, verify_enveloped

_GOOD = "self-test@example.invalid"
_TAMPERED = "mallory@example.invalid"


@functools.cache
def _throwaway() -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "xmlsecurity self-test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return key, certificate


def _sample() -> bytes:
    key, certificate = _throwaway()
    saml = f"{{{SAML2}}}"
    assertion = etree.Element(saml + "Assertion", nsmap={"saml": SAML2})
    assertion.set("ID", "_" + uuid.uuid4().hex)
    assertion.set("Version", "2.0")
    assertion.set("IssueInstant", "2026-01-01T00:00:00Z")
    etree.SubElement(assertion, saml + "Issuer").text = "urn:gateway:xmlsecurity:self-test"
    subject = etree.SubElement(assertion, saml + "Subject")
    etree.SubElement(subject, saml + "NameID").text = "self-test"
    statement = etree.SubElement(assertion, saml + "AttributeStatement")
    attribute = etree.SubElement(statement, saml + "Attribute", Name="emailaddress")
    etree.SubElement(attribute, saml + "AttributeValue").text = _GOOD
    sign_enveloped(assertion, key, certificate)
    return bytes(etree.tostring(assertion))


def _verifies(data: bytes) -> str | None:
    """The attribute value read from the verified element, or None when verification failed."""
    _, certificate = _throwaway()
    try:
        verified = verify_enveloped(parse_inbound(data), [certificate])
    except XmlRejected:
        return None
    values = verified.xpath("//saml:AttributeValue", namespaces={"saml": SAML2})
    return text_of(values[0]) if len(values) == 1 else None


def self_test() -> None:
    """Raise ``RuntimeError`` unless a good assertion verifies and a tampered one does not."""
    try:
        data = _sample()
        good = _verifies(data)
        tampered_data = data.replace(_GOOD.encode(), _TAMPERED.encode())
        tampered = _verifies(tampered_data) if tampered_data != data else _TAMPERED
    except Exception as exc:  # a broken binding surfaces as anything at all
        raise RuntimeError(f"XML security self-test could not run: {exc!r}") from exc
    if good != _GOOD:
        raise RuntimeError("XML security self-test: a correctly signed assertion did not verify")
    if tampered is not None:
        raise RuntimeError("XML security self-test: a tampered assertion verified")
