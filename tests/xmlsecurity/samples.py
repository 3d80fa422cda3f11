"""Builders for the XML-security tests: keys and certificates, SAML 2.0 / 1.1 documents made with
lxml (never string templates), and signatures in shapes our signer refuses to make (SHA-1,
inclusive C14N, extra transforms) made directly on the xmlsec binding."""

from __future__ import annotations

import datetime
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from lxml import etree

from idp_connectors.xmlsecurity.gate import DS, SAML1, SAML2, SAML2P, XENC
from idp_connectors.xmlsecurity.keys import PrivateKey, xmlsec_private_key

C = xmlsec.constants
NS = {"saml": SAML2, "samlp": SAML2P, "saml1": SAML1, "ds": DS, "xenc": XENC}


@dataclass(frozen=True)
class KeyPair:
    key: PrivateKey
    cert: x509.Certificate


def make_cert(key: PrivateKey, common_name: str = "idp.example") -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )


def rsa_pair(bits: int = 2048, common_name: str = "idp.example") -> KeyPair:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return KeyPair(key, make_cert(key, common_name))


def ec_pair(common_name: str = "idp.example") -> KeyPair:
    key = ec.generate_private_key(ec.SECP256R1())
    return KeyPair(key, make_cert(key, common_name))


def rsa_key(pair: KeyPair) -> rsa.RSAPrivateKey:
    assert isinstance(pair.key, rsa.RSAPrivateKey)
    return pair.key


def new_id() -> str:
    return "_" + secrets.token_hex(16)


def _q(namespace: str, local: str) -> str:
    return f"{{{namespace}}}{local}"


def assertion(
    *,
    assertion_id: str | None = None,
    issuer: str = "https://idp.example/saml",
    name_id: str = "alice@example.com",
    attributes: dict[str, Sequence[str]] | None = None,
) -> Any:
    """A SAML 2.0 Assertion (Issuer, Subject/NameID, AttributeStatement) as its own root."""
    root = etree.Element(_q(SAML2, "Assertion"), nsmap={"saml": SAML2})
    root.set("ID", assertion_id or new_id())
    root.set("Version", "2.0")
    root.set("IssueInstant", "2026-01-01T00:00:00Z")
    etree.SubElement(root, _q(SAML2, "Issuer")).text = issuer
    subject = etree.SubElement(root, _q(SAML2, "Subject"))
    name = etree.SubElement(subject, _q(SAML2, "NameID"))
    name.set("Format", "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent")
    name.text = name_id
    statement = etree.SubElement(root, _q(SAML2, "AttributeStatement"))
    for attribute_name, values in (attributes or {"emailaddress": ["alice@example.com"]}).items():
        attribute = etree.SubElement(statement, _q(SAML2, "Attribute"), Name=attribute_name)
        for value in values:
            etree.SubElement(attribute, _q(SAML2, "AttributeValue")).text = value
    return root


def response(*children: Any, response_id: str | None = None) -> Any:
    """A samlp:Response holding ``children`` (assertions or anything else) after Issuer and Status."""
    root = etree.Element(_q(SAML2P, "Response"), nsmap={"samlp": SAML2P, "saml": SAML2})
    root.set("ID", response_id or new_id())
    root.set("Version", "2.0")
    root.set("IssueInstant", "2026-01-01T00:00:00Z")
    etree.SubElement(root, _q(SAML2, "Issuer")).text = "https://idp.example/saml"
    status = etree.SubElement(root, _q(SAML2P, "Status"))
    etree.SubElement(status, _q(SAML2P, "StatusCode"), Value="urn:oasis:names:tc:SAML:2.0:status:Success")
    for child in children:
        root.append(child)
    return root


def saml11_assertion(*, assertion_id: str | None = None, name_identifier: str = "ImmutableID==") -> Any:
    root = etree.Element(_q(SAML1, "Assertion"), nsmap={"saml": SAML1})
    root.set("AssertionID", assertion_id or new_id())
    root.set("MajorVersion", "1")
    root.set("MinorVersion", "1")
    root.set("Issuer", "http://sts.example/adfs/services/trust")
    statement = etree.SubElement(root, _q(SAML1, "AttributeStatement"))
    subject = etree.SubElement(statement, _q(SAML1, "Subject"))
    etree.SubElement(subject, _q(SAML1, "NameIdentifier")).text = name_identifier
    return root


def sign_custom(
    element: Any,
    pair: KeyPair,
    *,
    c14n: Any = C.TransformExclC14N,
    method: Any = C.TransformRsaSha256,
    digest: Any = C.TransformSha256,
    transforms: Sequence[Any] = (C.TransformEnveloped, C.TransformExclC14N),
    id_attribute: str = "ID",
    uri: str | None = None,
    position: int = 1,
    register: Any = None,
) -> Any:
    """A real signature in any shape xmlsec can make (for the shapes our signer refuses)."""
    signature = xmlsec.template.create(element, c14n, method, ns="ds")
    element.insert(position, signature)
    reference = xmlsec.template.add_reference(
        signature, digest, uri=uri if uri is not None else "#" + element.get(id_attribute)
    )
    for transform in transforms:
        xmlsec.template.add_transform(reference, transform)
    key_info = xmlsec.template.ensure_key_info(signature)
    xmlsec.template.x509_data_add_certificate(xmlsec.template.add_x509_data(key_info))
    context = xmlsec.SignatureContext()
    context.key = xmlsec_private_key(pair.key, pair.cert)
    context.register_id(element if register is None else register, id_attribute)
    context.sign(signature)
    return signature


def to_bytes(element: Any) -> bytes:
    return bytes(etree.tostring(element))


def find(element: Any, path: str) -> Any:
    """XPath, not ``find``: lxml's ElementPath can miss nodes xmlsec created (names not interned)."""
    found = element.xpath(path, namespaces=NS)
    assert found, path
    return found[0]
