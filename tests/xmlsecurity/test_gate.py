"""The inbound gate: size, DTD/entity, depth, IDs, comments and every signature's shape and
algorithms, all refused before any cryptographic work (saml-wsfed-security.md sections 1, 3-5)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from lxml import etree

from idp_connectors.xmlsecurity import gate
from idp_connectors.xmlsecurity.gate import DS, GatePolicy, XmlRejected, assertions_of, parse_inbound, text_of
from idp_connectors.xmlsecurity.signature import sign_enveloped, verify_enveloped
from tests.xmlsecurity.samples import (
    C,
    KeyPair,
    assertion,
    find,
    response,
    saml11_assertion,
    sign_custom,
    to_bytes,
)


def rejected(data: bytes, policy: GatePolicy = GatePolicy()) -> str:
    with pytest.raises(XmlRejected) as caught:
        parse_inbound(data, policy)
    assert str(caught.value) == gate.GENERIC_MESSAGE  # one message for users, whatever the reason
    return caught.value.detail


@pytest.fixture
def no_lxml(monkeypatch: pytest.MonkeyPatch) -> None:
    """Proves a refusal happened in the pre-check: the consuming parser may not even be built."""

    def boom() -> Any:
        raise AssertionError("the lxml parse was reached")

    monkeypatch.setattr(gate, "_parser", boom)


# --- size, DTD, entities, depth, malformed ---------------------------------------------------


def test_size_cap_is_exact() -> None:
    data = to_bytes(assertion())
    assert parse_inbound(data, GatePolicy(max_bytes=len(data))) is not None
    assert rejected(data, GatePolicy(max_bytes=len(data) - 1)) == "xml_too_large"


def test_default_cap_is_256_kib() -> None:
    padding = b"<x>" + b"a" * (256 * 1024) + b"</x>"
    assert rejected(padding) == "xml_too_large"


DOCTYPES = {
    "bare doctype": b'<!DOCTYPE Response><Response ID="_1"/>',
    "internal entity": b'<!DOCTYPE r [<!ENTITY e "evil">]><r>&e;</r>',
    "billion laughs": (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        + b"".join(
            b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
            for i in range(1, 10)
        )
        + b"]><lolz>&lol9;</lolz>"
    ),
    "xxe file read": b'<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><r>&xxe;</r>',
    "external dtd": b'<!DOCTYPE r SYSTEM "http://127.0.0.1:9/evil.dtd"><r/>',
    "parameter entity": b'<!DOCTYPE r [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]><r/>',
    "utf-16 doctype": (
        '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE r [<!ENTITY e "x">]><r>&e;</r>'.encode("utf-16")
    ),
}


@pytest.mark.parametrize("data", DOCTYPES.values(), ids=DOCTYPES.keys())
def test_doctype_and_entities_refused_before_the_consuming_parse(data: bytes, no_lxml: None) -> None:
    assert rejected(data) == "xml_doctype"


@pytest.mark.parametrize("data", DOCTYPES.values(), ids=DOCTYPES.keys())
def test_lxml_layer_refuses_a_doctype_on_its_own(data: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    """Defence in depth: with the expat pre-check switched off, nothing is expanded or fetched."""
    monkeypatch.setattr(gate, "_precheck", lambda data, depth: None)
    assert rejected(data) in {"xml_doctype", "xml_malformed"}


def test_consuming_parser_never_expands_or_fetches_entities() -> None:
    """The parser configuration itself: entities stay unresolved, the file is never read."""
    root = etree.fromstring(DOCTYPES["xxe file read"], gate._parser())
    assert b"root:" not in etree.tostring(root)
    assert root.getroottree().docinfo.internalDTD is not None  # which parse_inbound then refuses


def nested(depth: int) -> bytes:
    return b"<a>" * depth + b"</a>" * depth


def test_depth_cap_is_exact(no_lxml: None) -> None:
    assert rejected(nested(65)) == "xml_too_deep"
    assert rejected(nested(20_000)) == "xml_too_deep"


def test_depth_at_the_cap_is_fine() -> None:
    assert parse_inbound(nested(64)).tag == "a"
    assert rejected(nested(11), GatePolicy(max_depth=10)) == "xml_too_deep"


@pytest.mark.parametrize(
    "data", [b"", b"   ", b"not xml", b"<a>", b"<a></b>", b"<a>&undefined;</a>", b"<a/><b/>", b"\xff\xfe<"]
)
def test_malformed(data: bytes) -> None:
    assert rejected(data) == "xml_malformed"


def test_unknown_encoding_is_malformed() -> None:
    assert rejected(b'<?xml version="1.0" encoding="bogus"?><a/>') == "xml_malformed"


def test_utf16_without_doctype_is_fine() -> None:
    data = '<?xml version="1.0" encoding="UTF-16"?><a>\u00e9</a>'.encode("utf-16")
    assert text_of(parse_inbound(data)) == "\u00e9"


def test_text_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        parse_inbound("<a/>")  # type: ignore[arg-type]


def test_comments_and_processing_instructions_are_dropped() -> None:
    root = parse_inbound(
        b'<?xml version="1.0"?><a><?xml-stylesheet href="x"?><!-- c --><b>x<!-- y -->z</b></a>'
    )
    assert [child.tag for child in root] == ["b"]
    assert text_of(root[0]) == "xz"


# --- IDs --------------------------------------------------------------------------------------


def test_duplicate_ids_refused() -> None:
    first, second = assertion(assertion_id="_same"), assertion(assertion_id="_same")
    assert rejected(to_bytes(response(first, second))) == "xml_duplicate_id"


def test_duplicate_id_across_attribute_names_refused() -> None:
    doc = response(assertion(assertion_id="_x"), saml11_assertion(assertion_id="_x"))
    assert rejected(to_bytes(doc)) == "xml_duplicate_id"


def test_xml_id_counts_as_an_id() -> None:
    doc = response(assertion(assertion_id="_x"))
    doc.set("{http://www.w3.org/XML/1998/namespace}id", "_x")
    assert rejected(to_bytes(doc)) == "xml_duplicate_id"


# --- reading ----------------------------------------------------------------------------------


def test_comment_injection_in_name_id_reads_the_whole_value_and_still_verifies(idp: KeyPair) -> None:
    """Duo 2018 / CVE-2017-11427: exc-c14n ignores the comment, a naive reader truncates."""
    signed = assertion(name_id="alice@example.com.evil.example")
    sign_enveloped(signed, idp.key, idp.cert)
    data = to_bytes(signed).replace(b"alice@example.com.evil", b"alice@example.com<!---->.evil")
    naive = etree.fromstring(data)
    assert find(naive, "saml:Subject/saml:NameID").text == "alice@example.com"  # what the attack relies on
    root = parse_inbound(data)
    assert verify_enveloped(root, [idp.cert]) is root
    assert text_of(find(root, "saml:Subject/saml:NameID")) == "alice@example.com.evil.example"


def test_text_of_refuses_a_child_element() -> None:
    data = to_bytes(assertion()).replace(b"alice@example.com</saml:NameID>", b"alice<x/>@evil</saml:NameID>")
    root = parse_inbound(data)
    with pytest.raises(XmlRejected) as caught:
        text_of(find(root, "saml:Subject/saml:NameID"))
    assert caught.value.detail == "xml_text_has_children"


def test_text_of_refuses_a_comment_child_when_the_tree_was_not_gated() -> None:
    tree = etree.fromstring(b"<n>alice<!-- c -->@evil</n>")
    with pytest.raises(XmlRejected):
        text_of(tree)


def test_text_of_empty_leaf() -> None:
    assert text_of(etree.fromstring(b"<n/>")) == ""


def test_assertions_of_finds_every_kind_anywhere() -> None:
    hidden = assertion()
    extensions = etree.Element("{urn:oasis:names:tc:SAML:2.0:protocol}Extensions")
    extensions.append(hidden)
    encrypted = etree.Element("{urn:oasis:names:tc:SAML:2.0:assertion}EncryptedAssertion")
    doc = response(assertion(), extensions, encrypted, saml11_assertion())
    found = assertions_of(parse_inbound(to_bytes(doc)))
    assert [etree.QName(el).localname for el in found] == [
        "Assertion",
        "Assertion",
        "EncryptedAssertion",
        "Assertion",
    ]
    assert found[1].getparent().tag.endswith("Extensions")
    single = parse_inbound(to_bytes(assertion()))
    assert assertions_of(single) == [single]


# --- signature shape and algorithms -----------------------------------------------------------

Mutator = Callable[[Any], None]


def ds(local: str) -> str:
    return f"{{{DS}}}{local}"


def set_algorithm(path: str, algorithm: str) -> Mutator:
    def mutate(signature: Any) -> None:
        find(signature, path).set("Algorithm", algorithm)

    return mutate


def add_transform(algorithm: str, child: str | None = None) -> Mutator:
    def mutate(signature: Any) -> None:
        transforms = find(signature, "ds:SignedInfo/ds:Reference/ds:Transforms")
        transform = etree.SubElement(transforms, ds("Transform"), Algorithm=algorithm)
        if child:
            etree.SubElement(transform, child).text = "x"

    return mutate


def replace_transforms(*algorithms: str) -> Mutator:
    def mutate(signature: Any) -> None:
        transforms = find(signature, "ds:SignedInfo/ds:Reference/ds:Transforms")
        for transform in list(transforms):
            transforms.remove(transform)
        for algorithm in algorithms:
            etree.SubElement(transforms, ds("Transform"), Algorithm=algorithm)

    return mutate


def second_reference(signature: Any) -> None:
    signed_info = find(signature, "ds:SignedInfo")
    signed_info.append(etree.fromstring(etree.tostring(find(signed_info, "ds:Reference"))))


def add_object(signature: Any) -> None:
    etree.SubElement(signature, ds("Object")).append(assertion())


def hide_assertion_in_key_info(signature: Any) -> None:
    find(signature, "ds:KeyInfo").append(assertion())


def unknown_child(signature: Any) -> None:
    etree.SubElement(signature, "{urn:evil}Payload")


def set_uri(uri: str) -> Mutator:
    def mutate(signature: Any) -> None:
        find(signature, "ds:SignedInfo/ds:Reference").set("URI", uri)

    return mutate


def drop_transforms(signature: Any) -> None:
    reference = find(signature, "ds:SignedInfo/ds:Reference")
    reference.remove(find(reference, "ds:Transforms"))


EXC = gate.EXC_C14N
XSLT = "http://www.w3.org/TR/1999/REC-xslt-19991116"
XPATH = "http://www.w3.org/TR/1999/REC-xpath-19991116"
XPATH2 = "http://www.w3.org/2002/06/xmldsig-filter2"
BASE64 = DS + "base64"
INCLUSIVE = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
HMAC_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256"

SHAPES: dict[str, tuple[Mutator, str]] = {
    "two references": (second_reference, "xml_signature_shape"),
    "ds:Object": (add_object, "xml_signature_shape"),
    "assertion hidden in KeyInfo": (hide_assertion_in_key_info, "xml_signature_shape"),
    "unknown child of Signature": (unknown_child, "xml_signature_shape"),
    "whole-document reference": (set_uri(""), "xml_signature_shape"),
    "remote reference": (set_uri("http://127.0.0.1:9/x"), "xml_signature_shape"),
    "xpointer reference": (set_uri("#xpointer(/)"), "xml_signature_shape"),
    "no Transforms": (drop_transforms, "xml_signature_shape"),
    "XSLT transform": (add_transform(XSLT, ds("XSLT")), "xml_transform_not_allowed"),
    "XPath transform": (add_transform(XPATH, ds("XPath")), "xml_transform_not_allowed"),
    "XPath Filter 2.0": (replace_transforms(gate.ENVELOPED, XPATH2), "xml_transform_not_allowed"),
    "base64 transform": (replace_transforms(gate.ENVELOPED, BASE64), "xml_transform_not_allowed"),
    "three transforms": (add_transform(gate.ENVELOPED), "xml_transform_not_allowed"),
    "no enveloped transform": (replace_transforms(EXC), "xml_transform_not_allowed"),
    "empty Transforms": (replace_transforms(), "xml_transform_not_allowed"),
    "exc-c14n WithComments transform": (
        replace_transforms(gate.ENVELOPED, gate.EXC_C14N_WITH_COMMENTS),
        "xml_transform_not_allowed",
    ),
    "c14n WithComments method": (
        set_algorithm("ds:SignedInfo/ds:CanonicalizationMethod", gate.EXC_C14N_WITH_COMMENTS),
        "xml_transform_not_allowed",
    ),
    "inclusive c14n method": (
        set_algorithm("ds:SignedInfo/ds:CanonicalizationMethod", INCLUSIVE),
        "xml_transform_not_allowed",
    ),
    "HMAC": (set_algorithm("ds:SignedInfo/ds:SignatureMethod", HMAC_SHA256), "xml_algorithm_not_allowed"),
    "RSA-SHA1": (
        set_algorithm("ds:SignedInfo/ds:SignatureMethod", gate.RSA_SHA1),
        "xml_algorithm_not_allowed",
    ),
    "RSA-MD5": (
        set_algorithm("ds:SignedInfo/ds:SignatureMethod", "http://www.w3.org/2001/04/xmldsig-more#rsa-md5"),
        "xml_algorithm_not_allowed",
    ),
    "SHA-1 digest": (
        set_algorithm("ds:SignedInfo/ds:Reference/ds:DigestMethod", gate.SHA1),
        "xml_algorithm_not_allowed",
    ),
}


@pytest.fixture
def signed(idp: KeyPair) -> Any:
    element = assertion()
    sign_enveloped(element, idp.key, idp.cert)
    return element


@pytest.mark.parametrize(("mutate", "detail"), SHAPES.values(), ids=SHAPES.keys())
def test_signature_shape_refused_by_the_gate(signed: Any, mutate: Mutator, detail: str) -> None:
    mutate(find(signed, "ds:Signature"))
    assert rejected(to_bytes(signed)) == detail


@pytest.mark.parametrize(("mutate", "detail"), SHAPES.values(), ids=SHAPES.keys())
def test_signature_shape_refused_anywhere_in_the_document(signed: Any, mutate: Mutator, detail: str) -> None:
    """Every ds:Signature is checked, not only the one the caller will verify."""
    mutate(find(signed, "ds:Signature"))
    extensions = etree.Element("{urn:oasis:names:tc:SAML:2.0:protocol}Extensions")
    extensions.append(signed)
    assert rejected(to_bytes(response(extensions))) == detail


def test_hmac_refused_even_with_the_sha1_exception(signed: Any) -> None:
    SHAPES["HMAC"][0](find(signed, "ds:Signature"))
    assert rejected(to_bytes(signed), GatePolicy(allow_sha1=True)) == "xml_algorithm_not_allowed"


def test_with_comments_refused_even_with_the_inclusive_exception(signed: Any) -> None:
    SHAPES["c14n WithComments method"][0](find(signed, "ds:Signature"))
    assert rejected(to_bytes(signed), GatePolicy(allow_inclusive_c14n=True)) == "xml_transform_not_allowed"


def test_detached_signature_pointing_at_a_sibling_refused(idp: KeyPair) -> None:
    """The Reference must name the Signature's own parent (enveloped), never another element."""
    victim, carrier = assertion(), assertion()
    doc = response(victim, carrier)
    sign_custom(carrier, idp, uri="#" + victim.get("ID"), register=victim)
    assert rejected(to_bytes(doc)) == "xml_signature_shape"


def test_sha1_signature_allowed_only_as_the_explicit_exception(idp: KeyPair) -> None:
    element = assertion()
    sign_custom(element, idp, method=C.TransformRsaSha1, digest=C.TransformSha1)
    assert rejected(to_bytes(element)) == "xml_algorithm_not_allowed"
    assert parse_inbound(to_bytes(element), GatePolicy(allow_sha1=True)) is not None


def test_inclusive_c14n_allowed_only_as_the_documented_exception(idp: KeyPair) -> None:
    element = assertion()
    sign_custom(
        element, idp, c14n=C.TransformInclC14N, transforms=(C.TransformEnveloped, C.TransformInclC14N)
    )
    assert rejected(to_bytes(element)) == "xml_transform_not_allowed"
    assert parse_inbound(to_bytes(element), GatePolicy(allow_inclusive_c14n=True)) is not None


def test_well_formed_signatures_pass(signed: Any, idp_ec: KeyPair) -> None:
    ec_signed = assertion()
    sign_enveloped(ec_signed, idp_ec.key, idp_ec.cert, algorithm="ecdsa-sha256")
    for element in (signed, ec_signed):
        assert parse_inbound(to_bytes(response(element))) is not None
