"""Enveloped signatures: verification only with the given certificates, the shape rules applied
again at verification, signing in the SAML shape, and certificate vetting."""

from __future__ import annotations

import base64
import copy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import xmlsec
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

from idp_connectors.xmlsecurity import gate, signature
from idp_connectors.xmlsecurity.gate import SAML1, SAML2, GatePolicy, XmlRejected, parse_inbound
from idp_connectors.xmlsecurity.keys import (
    CertificateRejected,
    load_certificates,
    xmlsec_private_key,
    xmlsec_public_key,
)
from idp_connectors.xmlsecurity.signature import is_signed, sign_enveloped, verify_enveloped
from tests.xmlsecurity.samples import (
    NS,
    C,
    KeyPair,
    assertion,
    find,
    make_cert,
    rsa_key,
    rsa_pair,
    saml11_assertion,
    sign_custom,
    to_bytes,
)


def signed_assertion(pair: KeyPair, **kwargs: Any) -> Any:
    element = assertion(**kwargs)
    if isinstance(pair.key, ec.EllipticCurvePrivateKey):
        sign_enveloped(element, pair.key, pair.cert, algorithm="ecdsa-sha256")
    else:
        sign_enveloped(element, pair.key, pair.cert)
    return element


def regated(element: Any, policy: GatePolicy = GatePolicy()) -> Any:
    return parse_inbound(to_bytes(element), policy)


def verify_detail(element: Any, certificates: list[Any], **kwargs: Any) -> str:
    with pytest.raises(XmlRejected) as caught:
        verify_enveloped(element, certificates, **kwargs)
    return caught.value.detail


# --- verification -----------------------------------------------------------------------------


def test_good_rsa_assertion_verifies_and_the_verified_element_is_returned(idp: KeyPair) -> None:
    root = regated(signed_assertion(idp))
    assert verify_enveloped(root, [idp.cert]) is root


def test_good_ecdsa_assertion_verifies(idp_ec: KeyPair, idp: KeyPair) -> None:
    element = assertion()
    sign_enveloped(element, idp_ec.key, idp_ec.cert, algorithm="ecdsa-sha256")
    root = regated(element)
    assert verify_enveloped(root, [idp.cert, idp_ec.cert]) is root


def test_verifies_in_the_tree_it_was_signed_in(idp: KeyPair) -> None:
    element = signed_assertion(idp)
    assert verify_enveloped(element, [idp.cert]) is element


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"alice@example.com</saml:AttributeValue>", b"admin@example.com</saml:AttributeValue>"),
        (b">alice@example.com</saml:NameID>", b">admin@example.com</saml:NameID>"),
        (b'Version="2.0"', b'Version="2.1"'),
    ],
    ids=["attribute value", "NameID", "attribute"],
)
def test_tampered_content_fails(idp: KeyPair, old: bytes, new: bytes) -> None:
    data = to_bytes(signed_assertion(idp))
    assert old in data
    root = parse_inbound(data.replace(old, new))
    assert verify_detail(root, [idp.cert]) == "signature_invalid"


def test_tampered_signature_value_fails(idp: KeyPair) -> None:
    root = regated(signed_assertion(idp))
    value = find(root, "ds:Signature/ds:SignatureValue")
    raw = bytearray(base64.b64decode(value.text))
    raw[10] ^= 1
    value.text = base64.b64encode(bytes(raw)).decode()
    assert verify_detail(root, [idp.cert]) == "signature_invalid"


def test_attacker_certificate_in_key_info_is_never_used(idp: KeyPair, attacker: KeyPair) -> None:
    """CVE-2021-21239: a forged assertion signed by the attacker, their certificate in KeyInfo."""
    forged = signed_assertion(attacker, name_id="admin@example.com")
    embedded = find(forged, "ds:Signature/ds:KeyInfo/ds:X509Data/ds:X509Certificate").text
    assert base64.b64decode(embedded) == attacker.cert.public_bytes(Encoding.DER)
    root = regated(forged)
    assert verify_detail(root, [idp.cert]) == "signature_invalid"
    assert verify_enveloped(root, [attacker.cert]) is root  # the signature itself is sound


def test_key_value_in_key_info_is_never_used(idp: KeyPair, attacker: KeyPair) -> None:
    forged = signed_assertion(attacker)
    key_info = find(forged, "ds:Signature/ds:KeyInfo")
    for child in list(key_info):
        key_info.remove(child)
    numbers = rsa_key(attacker).public_key().public_numbers()
    key_value = etree.SubElement(key_info, f"{{{gate.DS}}}KeyValue")
    rsa_value = etree.SubElement(key_value, f"{{{gate.DS}}}RSAKeyValue")
    etree.SubElement(rsa_value, f"{{{gate.DS}}}Modulus").text = base64.b64encode(
        numbers.n.to_bytes(256, "big")
    ).decode()
    etree.SubElement(rsa_value, f"{{{gate.DS}}}Exponent").text = "AQAB"
    assert verify_detail(regated(forged), [idp.cert]) == "signature_invalid"


def test_certificate_rollover_any_configured_certificate_verifies(idp: KeyPair, attacker: KeyPair) -> None:
    root = regated(signed_assertion(idp))
    assert verify_enveloped(root, [attacker.cert, idp.cert]) is root


def test_no_usable_certificate(idp: KeyPair, idp_ec: KeyPair, weak: KeyPair) -> None:
    root = regated(signed_assertion(idp))
    assert verify_detail(root, []) == "signature_no_key"
    assert verify_detail(root, [idp_ec.cert]) == "signature_no_key"  # EC key for an RSA signature
    assert verify_detail(root, [weak.cert]) == "signature_no_key"  # RSA-1024 never used


def test_unsigned_element(idp: KeyPair) -> None:
    root = regated(assertion())
    assert not is_signed(root)
    assert verify_detail(root, [idp.cert]) == "signature_missing"


def test_signature_must_be_a_direct_child(idp: KeyPair) -> None:
    inner = signed_assertion(idp)
    outer = etree.Element(f"{{{SAML2}}}Advice")
    outer.append(inner)
    wrapper = assertion()
    wrapper.append(outer)
    root = regated(wrapper)
    assert not is_signed(root)
    assert verify_detail(root, [idp.cert]) == "signature_missing"


def test_two_signatures_on_one_element_refused(idp: KeyPair) -> None:
    element = signed_assertion(idp)
    element.insert(2, copy.deepcopy(find(element, "ds:Signature")))
    assert verify_detail(element, [idp.cert]) == "xml_signature_shape"


def test_reference_must_name_the_element_being_verified(idp: KeyPair) -> None:
    element = signed_assertion(idp)
    element.set("ID", "_other")
    assert verify_detail(element, [idp.cert]) == "xml_signature_shape"


def test_reference_must_name_the_id_attribute_the_caller_reads(idp: KeyPair) -> None:
    element = signed_assertion(idp)
    element.set("AssertionID", "_other")
    assert verify_detail(element, [idp.cert], id_attribute="AssertionID") == "signature_reference_mismatch"


def test_element_without_the_id_attribute(idp: KeyPair) -> None:
    element = signed_assertion(idp)
    assert verify_detail(element, [idp.cert], id_attribute="AssertionID") == "xml_signature_shape"


def test_decoy_copy_with_the_same_id_refused_even_without_the_gate(idp: KeyPair) -> None:
    """XSW5/6/8 need two elements with the signed ID; the verifier checks uniqueness itself."""
    element = signed_assertion(idp)
    decoy = copy.deepcopy(element)
    holder = etree.Element("holder")
    holder.append(element)
    holder.append(decoy)
    find(element, "saml:Subject/saml:NameID").text = "admin@example.com"
    assert verify_detail(element, [idp.cert]) == "xml_duplicate_id"


def test_shape_rules_apply_at_verification_too(idp: KeyPair) -> None:
    """A caller that skipped the gate still gets the allow-list (here an XPath transform)."""
    element = assertion()
    sign_custom(element, idp, transforms=(C.TransformEnveloped, C.TransformExclC14N))
    find(element, "ds:Signature/ds:SignedInfo/ds:Reference/ds:Transforms/ds:Transform[2]").set(
        "Algorithm", "http://www.w3.org/TR/1999/REC-xpath-19991116"
    )
    assert verify_detail(element, [idp.cert]) == "xml_transform_not_allowed"


def xpath_signed(idp: KeyPair) -> Any:
    element = assertion()
    signature_node = xmlsec.template.create(element, C.TransformExclC14N, C.TransformRsaSha256, ns="ds")
    element.insert(1, signature_node)
    reference = xmlsec.template.add_reference(signature_node, C.TransformSha256, uri="#" + element.get("ID"))
    transform = xmlsec.template.add_transform(reference, C.TransformXPath)
    etree.SubElement(transform, f"{{{gate.DS}}}XPath").text = "not(ancestor-or-self::ds:Signature)"
    context = xmlsec.SignatureContext()
    context.key = xmlsec_private_key(idp.key, idp.cert)
    context.register_id(element, "ID")
    context.sign(signature_node)
    return element


def test_xmlsec_itself_is_fenced_to_the_allowed_transforms(
    idp: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Second fence: even with the shape check bypassed, xmlsec refuses a transform off the list."""
    element = xpath_signed(idp)
    unrestricted = xmlsec.SignatureContext()
    unrestricted.key = xmlsec_public_key(idp.cert)
    unrestricted.register_id(element, "ID")
    unrestricted.verify(find(element, "ds:Signature"))  # a genuine signature with an XPath transform
    monkeypatch.setattr(signature, "check_signature_shape", lambda sig, policy: "#" + element.get("ID"))
    assert verify_detail(element, [idp.cert]) == "signature_invalid"


def test_sha1_needs_the_policy_at_verification(idp: KeyPair) -> None:
    element = assertion()
    sign_custom(element, idp, method=C.TransformRsaSha1, digest=C.TransformSha1)
    policy = GatePolicy(allow_sha1=True)
    root = regated(element, policy)
    assert verify_detail(root, [idp.cert]) == "xml_algorithm_not_allowed"
    assert verify_enveloped(root, [idp.cert], policy=policy) is root


def test_inclusive_c14n_needs_the_policy_at_verification(idp: KeyPair) -> None:
    element = assertion()
    sign_custom(
        element, idp, c14n=C.TransformInclC14N, transforms=(C.TransformEnveloped, C.TransformInclC14N)
    )
    policy = GatePolicy(allow_inclusive_c14n=True)
    root = regated(element, policy)
    assert verify_detail(root, [idp.cert]) == "xml_transform_not_allowed"
    assert verify_enveloped(root, [idp.cert], policy=policy) is root


def test_saml11_assertion_with_assertion_id(idp: KeyPair) -> None:
    element = saml11_assertion()
    sign_enveloped(
        element, idp.key, idp.cert, id_attribute="AssertionID", insert_after=f"{{{SAML1}}}AttributeStatement"
    )
    assert element[-1].tag == gate.DS_SIGNATURE  # SAML 1.1 schema: the Signature comes last
    root = regated(element)
    assert verify_enveloped(root, [idp.cert], id_attribute="AssertionID") is root
    tampered = parse_inbound(to_bytes(element).replace(b"ImmutableID==", b"OtherID=="))
    assert verify_detail(tampered, [idp.cert], id_attribute="AssertionID") == "signature_invalid"


# --- signing ----------------------------------------------------------------------------------


def test_signature_shape_we_produce(idp: KeyPair) -> None:
    element = signed_assertion(idp)
    children = [etree.QName(child).localname for child in element]
    assert children[:3] == ["Issuer", "Signature", "Subject"]  # SAML schema order: after Issuer
    sig = find(element, "ds:Signature")
    assert find(sig, "ds:SignedInfo/ds:CanonicalizationMethod").get("Algorithm") == gate.EXC_C14N
    assert find(sig, "ds:SignedInfo/ds:SignatureMethod").get("Algorithm") == gate.RSA_SHA256
    references = sig.xpath("ds:SignedInfo/ds:Reference", namespaces=NS)
    assert [ref.get("URI") for ref in references] == ["#" + element.get("ID")]
    transforms = sig.xpath("ds:SignedInfo/ds:Reference/ds:Transforms/ds:Transform/@Algorithm", namespaces=NS)
    assert transforms == [gate.ENVELOPED, gate.EXC_C14N]
    assert find(sig, "ds:SignedInfo/ds:Reference/ds:DigestMethod").get("Algorithm") == gate.SHA256
    certificate = find(sig, "ds:KeyInfo/ds:X509Data/ds:X509Certificate").text
    assert base64.b64decode(certificate) == idp.cert.public_bytes(Encoding.DER)
    gate.check_signature_shape(sig, GatePolicy())


def test_signature_goes_first_without_an_issuer(idp: KeyPair) -> None:
    element = assertion()
    element.remove(find(element, "saml:Issuer"))
    sign_enveloped(element, idp.key, idp.cert)
    assert element[0].tag == gate.DS_SIGNATURE
    assert verify_enveloped(regated(element), [idp.cert]) is not None


@pytest.mark.parametrize(
    "case", ["no id", "already signed", "algorithm mismatch", "foreign certificate", "weak key"]
)
def test_signing_errors_leave_the_element_unchanged(
    case: str, idp: KeyPair, idp_ec: KeyPair, attacker: KeyPair, weak: KeyPair
) -> None:
    element = signed_assertion(idp) if case == "already signed" else assertion()
    if case == "no id":
        del element.attrib["ID"]
    before = to_bytes(element)
    key, cert, algorithm = idp.key, idp.cert, "rsa-sha256"
    if case == "algorithm mismatch":
        key, cert, algorithm = idp_ec.key, idp_ec.cert, "rsa-sha256"
    if case == "foreign certificate":
        cert = attacker.cert
    if case == "weak key":
        key, cert = weak.key, weak.cert
    with pytest.raises(ValueError):  # CertificateRejected is a ValueError
        sign_enveloped(element, key, cert, algorithm=algorithm)  # type: ignore[arg-type]
    assert to_bytes(element) == before


@pytest.mark.skipif(shutil.which("xmlsec1") is None, reason="xmlsec1 binary not installed")
def test_our_signature_verifies_with_the_reference_xmlsec1_binary(idp: KeyPair, tmp_path: Path) -> None:
    document, cert = tmp_path / "signed.xml", tmp_path / "idp.pem"
    document.write_bytes(to_bytes(signed_assertion(idp)))
    cert.write_bytes(idp.cert.public_bytes(Encoding.PEM))
    command = ["xmlsec1", "--verify", "--enabled-key-data", "raw-x509-cert", "--pubkey-cert-pem", str(cert)]
    command += ["--id-attr:ID", "urn:oasis:names:tc:SAML:2.0:assertion:Assertion", str(document)]
    assert subprocess.run(command, capture_output=True, check=False).returncode == 0
    document.write_bytes(document.read_bytes().replace(b">alice@", b">admin@"))
    assert subprocess.run(command, capture_output=True, check=False).returncode != 0


# --- certificates -----------------------------------------------------------------------------


def test_load_certificates_accepts_pem_der_and_metadata_base64(idp: KeyPair, idp_ec: KeyPair) -> None:
    pem_bundle = idp.cert.public_bytes(Encoding.PEM) + idp_ec.cert.public_bytes(Encoding.PEM)
    der = idp.cert.public_bytes(Encoding.DER)
    body = base64.encodebytes(der).decode()  # wrapped lines, as in metadata X509Certificate
    loaded = load_certificates([pem_bundle, der, "\n  " + body, idp.cert.public_bytes(Encoding.PEM).decode()])
    assert loaded == [idp.cert, idp_ec.cert, idp.cert, idp.cert, idp.cert]


def test_rsa_1024_certificate_refused(weak: KeyPair) -> None:
    with pytest.raises(CertificateRejected, match="1024 bits"):
        load_certificates([weak.cert.public_bytes(Encoding.PEM)])


@pytest.mark.parametrize("item", [b"garbage", "not base64 !", b"\x30\x03\x02\x01\x01", "é"])
def test_load_certificates_refuses_garbage(item: bytes | str) -> None:
    with pytest.raises(CertificateRejected):
        load_certificates([item])


def test_load_certificates_wants_an_iterable_of_items(idp: KeyPair) -> None:
    with pytest.raises(TypeError):
        load_certificates(idp.cert.public_bytes(Encoding.PEM))  # type: ignore[arg-type]


def test_other_key_types_refused() -> None:
    key = ec.generate_private_key(ec.SECP256K1())
    with pytest.raises(CertificateRejected, match="secp256k1"):
        load_certificates([make_cert(key).public_bytes(Encoding.PEM)])


def test_fresh_pair_is_independent_of_the_session_keys(idp: KeyPair) -> None:
    other = rsa_pair()
    root = regated(signed_assertion(other))
    assert verify_detail(root, [idp.cert]) == "signature_invalid"
