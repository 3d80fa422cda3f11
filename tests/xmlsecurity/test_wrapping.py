"""The XSW families (saml-wsfed-security.md section 2) against the rule of section 1, applied the way
the SAML and WS-Fed connectors apply it: gate, exactly one assertion as a direct child, verify it,
read identity only from the element the verifier returned."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from lxml import etree

from idp_connectors.xmlsecurity.gate import (
    DS,
    SAML2,
    SAML2P,
    XmlRejected,
    assertions_of,
    parse_inbound,
    text_of,
)
from idp_connectors.xmlsecurity.signature import sign_enveloped, verify_enveloped
from tests.xmlsecurity.samples import KeyPair, assertion, find, response, to_bytes


def consume(data: bytes, certificates: list[Any]) -> str:
    """What a connector does with a Response: the NameID, or XmlRejected."""
    root = parse_inbound(data)
    found = assertions_of(root)
    if len(found) != 1 or found[0].getparent() is not root:
        raise XmlRejected("xml_assertion_count")
    verified = verify_enveloped(found[0], certificates)
    return text_of(find(verified, "saml:Subject/saml:NameID"))


@pytest.fixture
def genuine(idp: KeyPair) -> Any:
    """A signed Response carrying a signed Assertion for alice."""
    signed_assertion = assertion(name_id="alice@example.com")
    sign_enveloped(signed_assertion, idp.key, idp.cert)
    doc = response(signed_assertion)
    sign_enveloped(doc, idp.key, idp.cert)
    return parse_inbound(to_bytes(doc))


def the_assertion(doc: Any) -> Any:
    return find(doc, "saml:Assertion")


def forge(element: Any, name_id: str = "admin@example.com") -> Any:
    find(element, "saml:Subject/saml:NameID").text = name_id
    return element


def unsigned_forgery(assertion_id: str | None = None) -> Any:
    forged = assertion(name_id="admin@example.com", assertion_id=assertion_id)
    return forged


def forged_outer(doc: Any) -> Any:
    """A copy of the Response with new IDs, an unsigned forged assertion and the genuine
    Response signature kept (its Reference still names the genuine Response)."""
    outer = copy.deepcopy(doc)
    outer.set("ID", "_forged_response")
    forged = forge(the_assertion(outer))
    forged.set("ID", "_forged_assertion")
    forged.remove(find(forged, "ds:Signature"))
    return outer


def xsw1(doc: Any) -> Any:
    """Hidden signed Response inside the Signature (ds:Object); the outer one is forged."""
    outer = forged_outer(doc)
    etree.SubElement(find(outer, "ds:Signature"), f"{{{DS}}}Object").append(copy.deepcopy(doc))
    return outer


def xsw2(doc: Any) -> Any:
    """Hidden signed Response beside the Signature (detached); the outer one is forged."""
    outer = forged_outer(doc)
    find(outer, "ds:Signature").addprevious(copy.deepcopy(doc))
    return outer


def xsw3(doc: Any) -> Any:
    """An unsigned forged assertion before the signed one."""
    the_assertion(doc).addprevious(unsigned_forgery())
    return doc


def xsw3_same_id(doc: Any) -> Any:
    the_assertion(doc).addprevious(unsigned_forgery(the_assertion(doc).get("ID")))
    return doc


def xsw4(doc: Any) -> Any:
    """An unsigned forged assertion wrapping the signed one."""
    signed = the_assertion(doc)
    wrapper = unsigned_forgery()
    signed.addprevious(wrapper)
    wrapper.append(signed)
    return doc


def xsw5(doc: Any) -> Any:
    """Edited in place, with an untouched copy (same ID) parked as a Response child."""
    signed = the_assertion(doc)
    decoy = copy.deepcopy(signed)
    forge(signed)
    doc.append(decoy)
    return doc


def xsw6(doc: Any) -> Any:
    """Edited in place, with the untouched copy inside its own Signature."""
    signed = the_assertion(doc)
    decoy = copy.deepcopy(signed)
    forge(signed)
    find(signed, "ds:Signature/ds:KeyInfo").append(decoy)
    return doc


def xsw7(doc: Any) -> Any:
    """A forged assertion smuggled through open content (Extensions), found first by tag name."""
    extensions = etree.Element(f"{{{SAML2P}}}Extensions")
    extensions.append(unsigned_forgery())
    find(doc, "samlp:Status").addprevious(extensions)
    return doc


def xsw8(doc: Any) -> Any:
    """Edited in place, with the untouched copy inside a ds:Object of its Signature."""
    signed = the_assertion(doc)
    decoy = copy.deepcopy(signed)
    forge(signed)
    etree.SubElement(find(signed, "ds:Signature"), f"{{{DS}}}Object").append(decoy)
    return doc


def signed_plus_unsigned(doc: Any) -> Any:
    """crewjam/saml CVE-2022-41912: several assertions, only one signed."""
    doc.append(unsigned_forgery())
    return doc


def assertion_in_advice(doc: Any) -> Any:
    advice = etree.SubElement(the_assertion(doc), f"{{{SAML2}}}Advice")
    advice.append(unsigned_forgery())
    return doc


def unsigned_only(doc: Any) -> Any:
    signed = the_assertion(doc)
    signed.addprevious(unsigned_forgery())
    doc.remove(signed)
    return doc


ATTACKS: dict[str, tuple[Callable[[Any], Any], set[str]]] = {
    "XSW1 hidden signed response in ds:Object": (xsw1, {"xml_signature_shape"}),
    "XSW2 hidden signed response beside the signature": (xsw2, {"xml_signature_shape"}),
    "XSW3 forged sibling before the signed assertion": (xsw3, {"xml_assertion_count"}),
    "XSW3 forged sibling with the same ID": (xsw3_same_id, {"xml_duplicate_id"}),
    "XSW4 forged wrapper assertion": (xsw4, {"xml_assertion_count"}),
    "XSW5 decoy copy as a response child": (xsw5, {"xml_duplicate_id"}),
    "XSW6 decoy copy inside the signature": (xsw6, {"xml_signature_shape", "xml_duplicate_id"}),
    "XSW7 forged assertion in Extensions": (xsw7, {"xml_assertion_count"}),
    "XSW8 decoy copy in ds:Object": (xsw8, {"xml_signature_shape", "xml_duplicate_id"}),
    "signed plus unsigned assertions": (signed_plus_unsigned, {"xml_assertion_count"}),
    "assertion in Advice": (assertion_in_advice, {"xml_assertion_count", "signature_invalid"}),
    "only an unsigned assertion": (unsigned_only, {"signature_missing"}),
}


def test_the_genuine_response_is_accepted(genuine: Any, idp: KeyPair) -> None:
    assert consume(to_bytes(genuine), [idp.cert]) == "alice@example.com"


@pytest.mark.parametrize(("attack", "details"), ATTACKS.values(), ids=ATTACKS.keys())
def test_wrapping_attack_refused(
    genuine: Any, idp: KeyPair, attack: Callable[[Any], Any], details: set[str]
) -> None:
    data = to_bytes(attack(genuine))
    assert b"admin@example.com" in data  # the forgery is really in the document
    with pytest.raises(XmlRejected) as caught:
        consume(data, [idp.cert])
    assert caught.value.detail in details
