"""The Response and Assertion builder: schema-valid, signed as configured, hostile values inert.

Every produced document is validated against the SAML 2.0 protocol XSD that pysaml2 bundles
(with xmldsig and xenc), parsed by the same inbound gate an SP-side parser would use, and its
signatures verified with ``idp_connectors.xmlsecurity.signature.verify_enveloped``.
"""

from __future__ import annotations

from typing import Any

import pytest
from lxml import etree
from saml2.xml.schema import validate as validate_saml_schema

from gateway.saml_idp.assertion import (
    ASSERTION_SECONDS,
    NameId,
    ReleaseRefused,
    add_assertion,
    attribute_values,
    build_response,
    seal,
    status_codes,
)
from gateway.settings.saml_app import ReleasedAttribute
from idp_connectors.saml.xmltime import format_instant
from idp_connectors.xmlsecurity.encryption import decrypt_assertion
from idp_connectors.xmlsecurity.gate import DS_SIGNATURE, GatePolicy, XmlRejected, parse_inbound, text_of
from idp_connectors.xmlsecurity.signature import verify_enveloped
from tests.support.saml_idp import key_pair

P = "{urn:oasis:names:tc:SAML:2.0:protocol}"
A = "{urn:oasis:names:tc:SAML:2.0:assertion}"
NS = {"samlp": "urn:oasis:names:tc:SAML:2.0:protocol", "saml": "urn:oasis:names:tc:SAML:2.0:assertion"}
IDP = "https://gateway.example/saml2/metadata"
SP = "https://payroll.example/metadata"
ACS = "https://payroll.example/acs"
NOW = 1_800_000_000
PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"


def attribute(name: str, source: str = "displayName", name_format: str | None = None) -> ReleasedAttribute:
    return ReleasedAttribute(name=name, source=source, name_format=name_format)


def response(
    values: list[tuple[ReleasedAttribute, list[str]]] | None = None,
    *,
    in_response_to: str | None = "_req1",
    name_id: str = "pairwise-sub",
) -> etree._Element:
    document = build_response(issuer=IDP, destination=ACS, in_response_to=in_response_to, now=NOW)
    add_assertion(
        document,
        issuer=IDP,
        sp_entity_id=SP,
        acs_url=ACS,
        in_response_to=in_response_to,
        name_id=NameId(name_id, PERSISTENT, name_qualifier=IDP, sp_name_qualifier=SP),
        now=NOW,
        authn_instant=NOW - 60,
        session_index="sid-1",
        acr="https://refeds.org/profile/mfa",
        attributes=values or [(attribute("displayName", name_format="basic"), ["Ada"])],
    )
    return document


def sealed(document: etree._Element, sign: Any = "assertion", encrypt: bool = False) -> bytes:
    signer = key_pair("gateway-signing")
    return seal(
        document,
        sign=sign,
        key=signer.key,
        certificate=signer.certificate,
        encrypt_for=key_pair("sp").certificate if encrypt else None,
    )


def schema_valid(data: bytes) -> None:
    validate_saml_schema(data.decode("utf-8"))


def gated(data: bytes) -> etree._Element:
    return parse_inbound(data, GatePolicy())


def only(root: etree._Element, path: str) -> etree._Element:
    [found] = root.xpath(path, namespaces=NS)
    assert isinstance(found, etree._Element)
    return found


def test_the_response_has_every_element_the_web_sso_profile_requires() -> None:
    root = gated(sealed(response()))
    assert root.get("Destination") == ACS and root.get("InResponseTo") == "_req1"
    assert (
        only(root, "samlp:Status/samlp:StatusCode").get("Value")
        == "urn:oasis:names:tc:SAML:2.0:status:Success"
    )
    assertion = only(root, "saml:Assertion")
    assert text_of(only(assertion, "saml:Issuer")) == IDP
    name_id = only(assertion, "saml:Subject/saml:NameID")
    assert (text_of(name_id), name_id.get("Format"), name_id.get("SPNameQualifier")) == (
        "pairwise-sub",
        PERSISTENT,
        SP,
    )
    confirmation = only(assertion, "saml:Subject/saml:SubjectConfirmation")
    assert confirmation.get("Method") == "urn:oasis:names:tc:SAML:2.0:cm:bearer"
    data = only(confirmation, "saml:SubjectConfirmationData")
    expires = format_instant(NOW + ASSERTION_SECONDS)
    assert (data.get("Recipient"), data.get("InResponseTo"), data.get("NotOnOrAfter")) == (
        ACS,
        "_req1",
        expires,
    )
    conditions = only(assertion, "saml:Conditions")
    assert (conditions.get("NotBefore"), conditions.get("NotOnOrAfter")) == (format_instant(NOW), expires)
    assert text_of(only(conditions, "saml:AudienceRestriction/saml:Audience")) == SP
    statement = only(assertion, "saml:AuthnStatement")
    assert (statement.get("AuthnInstant"), statement.get("SessionIndex")) == (
        format_instant(NOW - 60),
        "sid-1",
    )
    assert (
        text_of(only(statement, "saml:AuthnContext/saml:AuthnContextClassRef"))
        == "https://refeds.org/profile/mfa"
    )
    assert ASSERTION_SECONDS == 300


def test_ids_carry_160_random_bits_and_start_with_an_underscore() -> None:
    ids = set()
    for _ in range(20):
        root = response()
        for element in (root, only(root, "saml:Assertion")):
            value = str(element.get("ID"))
            assert value[0] == "_" and len(value) == 41 and int(value[1:], 16) >= 0
            ids.add(value)
    assert len(ids) == 40


def test_an_idp_initiated_response_has_no_in_response_to() -> None:
    root = gated(sealed(response(in_response_to=None)))
    assert root.get("InResponseTo") is None
    assert (
        only(root, "saml:Assertion/saml:Subject/saml:SubjectConfirmation/saml:SubjectConfirmationData").get(
            "InResponseTo"
        )
        is None
    )


@pytest.mark.parametrize("sign", ["assertion", "response", "both"])
def test_each_signing_mode_is_schema_valid_and_verifies(sign: str) -> None:
    data = sealed(response(), sign=sign)
    schema_valid(data)
    root = gated(data)
    assertion = only(root, "saml:Assertion")
    certificate = key_pair("gateway-signing").certificate
    assert (any(c.tag == DS_SIGNATURE for c in root), any(c.tag == DS_SIGNATURE for c in assertion)) == (
        sign in ("response", "both"),
        sign in ("assertion", "both"),
    )
    if sign in ("response", "both"):
        assert verify_enveloped(root, [certificate]) is root
    if sign in ("assertion", "both"):
        assert verify_enveloped(assertion, [certificate]) is assertion
        with pytest.raises(XmlRejected):
            verify_enveloped(assertion, [key_pair("attacker").certificate])


def test_the_signature_is_rsa_sha256_exclusive_c14n_with_one_reference_to_the_element() -> None:
    assertion = only(gated(sealed(response())), "saml:Assertion")
    signature = next(child for child in assertion if child.tag == DS_SIGNATURE)
    ds = {"ds": "http://www.w3.org/2000/09/xmldsig#"}
    assert signature.xpath("ds:SignedInfo/ds:SignatureMethod/@Algorithm", namespaces=ds) == [
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
    ]
    assert signature.xpath("ds:SignedInfo/ds:CanonicalizationMethod/@Algorithm", namespaces=ds) == [
        "http://www.w3.org/2001/10/xml-exc-c14n#"
    ]
    assert signature.xpath("ds:SignedInfo/ds:Reference/@URI", namespaces=ds) == [
        "#" + str(assertion.get("ID"))
    ]
    assert list(assertion).index(signature) == 1  # right after the Issuer, as the schema orders it


def test_a_tampered_signed_assertion_does_not_verify() -> None:
    data = sealed(response([(attribute("displayName", name_format="basic"), ["Ada"])]))
    tampered = data.replace(b">Ada<", b">Eve<")
    assert tampered != data
    with pytest.raises(XmlRejected):
        verify_enveloped(only(gated(tampered), "saml:Assertion"), [key_pair("gateway-signing").certificate])


@pytest.mark.parametrize("sign", ["assertion", "response", "both"])
def test_an_encrypted_assertion_is_schema_valid_and_decrypts_to_a_verifiable_assertion(sign: str) -> None:
    data = sealed(response(), sign=sign, encrypt=True)
    schema_valid(data)
    root = gated(data)
    assert root.xpath("saml:Assertion", namespaces=NS) == []
    encrypted = only(root, "saml:EncryptedAssertion")
    assert b">pairwise-sub<" not in data and b">Ada<" not in data
    certificate = key_pair("gateway-signing").certificate
    if sign in ("response", "both"):
        verify_enveloped(root, [certificate])
    assertion = decrypt_assertion(encrypted, key_pair("sp").key, policy=GatePolicy())
    assert text_of(only(assertion, "saml:Subject/saml:NameID")) == "pairwise-sub"
    if sign in ("assertion", "both"):
        assert verify_enveloped(assertion, [certificate]) is assertion


HOSTILE = [
    "<b>bold</b>",
    '"]]><saml:Attribute Name="role"><saml:AttributeValue>admin</saml:AttributeValue></saml:Attribute>',
    "a & b &amp; <!-- c --> <?pi x?>",
    "<![CDATA[x]]>",
    "Zoë 🦄 \u202e",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_a_hostile_attribute_value_is_text_and_adds_no_element(value: str) -> None:
    data = sealed(response([(attribute("displayName", name_format="basic"), [value])]))
    schema_valid(data)
    root = gated(data)
    [value_element] = root.xpath("//saml:AttributeValue", namespaces=NS)
    assert text_of(value_element) == value
    assert len(root.xpath("//saml:Attribute", namespaces=NS)) == 1
    assert root.xpath("//*[local-name()='b']") == []
    verify_enveloped(only(root, "saml:Assertion"), [key_pair("gateway-signing").certificate])


@pytest.mark.parametrize(
    "value", ["bell\x07", "nul\x00", "esc\x1b[31m", "nel\x85", "del\x7f", "lone\ud800", "nonchar\ufffe"]
)
def test_an_attribute_value_with_a_control_character_is_refused(value: str) -> None:
    with pytest.raises(ReleaseRefused, match="displayName"):
        response([(attribute("displayName", name_format="basic"), [value])])


def test_a_name_id_with_a_control_character_is_refused() -> None:
    with pytest.raises(ReleaseRefused, match="NameID"):
        response(name_id="user\x0b")


def test_multi_valued_and_empty_attributes() -> None:
    values = [
        (attribute("groups", "groups"), ["g1", "g2"]),
        (attribute("urn:oid:2.5.4.42", "givenName"), []),
    ]
    root = gated(sealed(response(values)))
    [group] = root.xpath("//saml:Attribute", namespaces=NS)
    assert group.get("Name") == "groups"
    assert group.get("NameFormat") == "urn:oasis:names:tc:SAML:2.0:attrname-format:basic"
    assert [text_of(v) for v in group] == ["g1", "g2"]


def test_without_any_value_there_is_no_attribute_statement() -> None:
    root = gated(sealed(response([(attribute("displayName"), [])])))
    assert root.xpath("//saml:AttributeStatement", namespaces=NS) == []


@pytest.mark.parametrize(
    ("status", "codes"),
    [
        ("RequestDenied", ("Responder", "RequestDenied")),
        ("NoPassive", ("Responder", "NoPassive")),
        ("urn:oasis:names:tc:SAML:2.0:status:AuthnFailed", ("Responder", "AuthnFailed")),
        ("InvalidNameIDPolicy", ("Requester", "InvalidNameIDPolicy")),
        ("Responder", ("Responder", None)),
    ],
)
def test_an_error_response_carries_its_status_codes_and_is_signed(
    status: str, codes: tuple[str, str | None]
) -> None:
    document = build_response(
        issuer=IDP, destination=ACS, in_response_to="_r", now=NOW, status=status, message="No."
    )
    data = sealed(document)
    schema_valid(data)
    root = gated(data)
    top = only(root, "samlp:Status/samlp:StatusCode")
    second = top.xpath("samlp:StatusCode/@Value", namespaces=NS)
    prefix = "urn:oasis:names:tc:SAML:2.0:status:"
    assert (top.get("Value"), second[0] if second else None) == (
        prefix + codes[0],
        None if codes[1] is None else prefix + codes[1],
    )
    assert text_of(only(root, "samlp:Status/samlp:StatusMessage")) == "No."
    assert root.xpath("saml:Assertion", namespaces=NS) == []
    verify_enveloped(root, [key_pair("gateway-signing").certificate])


def test_an_unknown_status_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"not a SAML 2\.0 status code"):
        status_codes("Denied")


def test_attribute_sources() -> None:
    user = {
        "id": "oid-1",
        "mail": "ada@example.com",
        "displayName": "Ada",
        "accountEnabled": True,
        "otherMails": ["a", "b"],
    }

    def values(source: str, **extra: Any) -> list[str]:
        arguments: dict[str, Any] = {
            "user": user,
            "tenant_id": "tid",
            "groups": None,
            "roles": None,
            "amr": ["fed", "mfa"],
            "auth_claims": {"mfa_source": "home", "device_compliant": True},
        }
        return attribute_values(source, **{**arguments, **extra})

    assert values("mail") == ["ada@example.com"]
    assert values("id") == ["oid-1"]
    assert values("tenantId") == ["tid"]
    assert values("surname") == []
    assert values("groups") == [] and values("groups", groups=["g"]) == ["g"]
    assert values("roles", roles=["Reader"]) == ["Reader"]
    assert values("amr") == ["fed", "mfa"]
    assert values("mfa_source") == ["home"]
    assert values("device_compliant") == ["true"]
    assert values("device_hybrid_joined") == []
    assert values("otherMails") == ["a", "b"]
