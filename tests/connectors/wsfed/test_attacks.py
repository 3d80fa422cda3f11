"""The attack catalogue at connector level, on real tokens signed by the test STS.

Every refusal carries its stable code (and, for XML and signature rules, the gate's ``detail``)
and leaves the connector state empty: no replay marker for a token that was not accepted.
Wrapping fixtures are built by moving and copying elements of a genuine signed RSTR
(saml-wsfed-security.md sections 1-5 and 9).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from lxml import etree
from lxml.etree import _Element

from idp_connectors.base import Callback, ConnectorError
from idp_connectors.wsfed.config import EMAIL, IMMUTABLE_ID
from idp_connectors.xmlsecurity.gate import XmlRejected
from idp_connectors.xmlsecurity.signature import sign_enveloped
from tests.support.wsfed_sts import DS, REMOVE, SAML1, SAML2, TRUST, WsFedRelyingParty, shared_signer

NS = {"saml": SAML1, "saml2": SAML2, "t": TRUST, "ds": DS}


async def refused(
    rp: WsFedRelyingParty,
    code: str,
    detail: str | None = None,
    callback: Callback | None = None,
    **request: Any,
) -> ConnectorError:
    with pytest.raises(ConnectorError) as caught:
        await rp.connector.complete(callback or await rp.callback(**request))
    error = caught.value
    assert error.code == code, f"{error.code}: {error}"
    if detail is not None:
        assert isinstance(error, XmlRejected) and error.detail == detail, repr(error)
    assert str(error)
    rp.assert_nothing_persisted()
    return error


def edited(callback: Callback, edit: Callable[[_Element], None]) -> Callback:
    """The same callback with its (genuine, signed) wresult edited as an XML tree."""
    root = etree.fromstring(callback.params["wresult"].encode())
    edit(root)
    params = {**callback.params, "wresult": etree.tostring(root, encoding="unicode")}
    return replace(callback, params=params)


def texted(callback: Callback, edit: Callable[[str], str]) -> Callback:
    return replace(callback, params={**callback.params, "wresult": edit(callback.params["wresult"])})


def the_assertion(root: _Element) -> _Element:
    (assertion,) = root.iterfind(".//saml:Assertion", NS)
    return assertion


def forged_copy(
    assertion: _Element, *, new_id: str | None = "_forged", keep_signature: bool = False
) -> _Element:
    """An unsigned copy saying the user is someone else (optionally keeping the genuine signature)."""
    forged = copy.deepcopy(assertion)
    if new_id is not None:
        forged.set("AssertionID", new_id)
    if not keep_signature:
        for signature in forged.findall("ds:Signature", NS):
            forged.remove(signature)
    for value in forged.iterfind(".//saml:Attribute[@AttributeName='emailaddress']/saml:AttributeValue", NS):
        value.text = "boss@fabrikam.test"
    for value in forged.iterfind(".//saml:Attribute[@AttributeName='ImmutableID']/saml:AttributeValue", NS):
        value.text = "boss-immutable-id"
    return forged


# -- audience, AppliesTo, issuer, lifetime ---------------------------------------------------------


@pytest.mark.parametrize("version", ["1.1", "2.0"])
async def test_wrong_audience(rp: WsFedRelyingParty, version: str) -> None:
    rp.sts.knobs.saml_version = version  # type: ignore[assignment]
    rp.sts.knobs.audience = "https://other-rp.test/"
    rp.sts.knobs.applies_to = REMOVE
    await refused(rp, "audience_mismatch")


async def test_applies_to_disagreeing_with_the_audience(rp: WsFedRelyingParty) -> None:
    rp.sts.knobs.applies_to = "https://other-rp.test/"
    await refused(rp, "applies_to_mismatch")


async def test_applies_to_without_an_address(rp: WsFedRelyingParty) -> None:
    def strip_address(root: _Element) -> None:
        for address in root.iter("{http://www.w3.org/2005/08/addressing}Address"):
            address.getparent().remove(address)

    await refused(rp, "applies_to_mismatch", callback=edited(await rp.callback(), strip_address))


@pytest.mark.parametrize("version", ["1.1", "2.0"])
async def test_wrong_issuer(rp: WsFedRelyingParty, version: str) -> None:
    rp.sts.knobs.saml_version = version  # type: ignore[assignment]
    rp.sts.knobs.issuer = "http://sts.attacker.test/adfs/services/trust"
    await refused(rp, "issuer_mismatch")


@pytest.mark.parametrize("version", ["1.1", "2.0"])
async def test_expired(rp: WsFedRelyingParty, version: str) -> None:
    rp.sts.knobs.saml_version = version  # type: ignore[assignment]
    rp.sts.knobs.lifetime = 600
    callback = await rp.callback()
    rp.clock.advance(600 + 120)  # NotOnOrAfter plus the whole skew
    await refused(rp, "assertion_expired", callback=callback)


async def test_within_the_skew_is_still_valid(rp: WsFedRelyingParty) -> None:
    rp.sts.knobs.lifetime = 600
    callback = await rp.callback()
    rp.clock.advance(600 + 119)
    assert (await rp.connector.complete(callback)).email == "ada@fabrikam.test"


async def test_not_yet_valid(rp: WsFedRelyingParty) -> None:
    rp.sts.knobs.not_before_offset = 121
    await refused(rp, "assertion_not_yet_valid")


async def test_a_token_valid_for_days_is_refused(rp: WsFedRelyingParty) -> None:
    rp.sts.knobs.lifetime = 3 * 86400
    await refused(rp, "assertion_lifetime_too_long")


async def test_no_conditions(rp: WsFedRelyingParty) -> None:
    def drop(assertion: _Element) -> None:
        assertion.remove(assertion.find("saml:Conditions", NS))

    rp.sts.knobs.before_signing = drop
    await refused(rp, "conditions_missing")


async def test_an_unknown_condition(rp: WsFedRelyingParty) -> None:
    def add(assertion: _Element) -> None:
        etree.SubElement(assertion.find("saml:Conditions", NS), f"{{{SAML1}}}Condition")

    rp.sts.knobs.before_signing = add
    await refused(rp, "conditions_unsupported")


# -- signatures ------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.1", "2.0"])
async def test_unsigned(rp: WsFedRelyingParty, version: str) -> None:
    rp.sts.knobs.saml_version = version  # type: ignore[assignment]
    rp.sts.knobs.unsigned = True
    await refused(rp, "xml_rejected", "signature_missing")


@pytest.mark.parametrize("version", ["1.1", "2.0"])
async def test_an_attacker_key_with_its_certificate_in_key_info(rp: WsFedRelyingParty, version: str) -> None:
    rp.sts.knobs.saml_version = version  # type: ignore[assignment]
    rp.sts.knobs.signer = "attacker"
    callback = await rp.callback()
    assert "X509Certificate" in callback.params["wresult"]
    await refused(rp, "xml_rejected", "signature_invalid", callback=callback)


async def test_sha1_is_refused_by_default(rp: WsFedRelyingParty) -> None:
    rp.sts.knobs.sha1 = True
    await refused(rp, "xml_rejected", "xml_algorithm_not_allowed")


async def test_an_edited_value(rp: WsFedRelyingParty) -> None:
    def edit(root: _Element) -> None:
        value = the_assertion(root).find(
            ".//saml:Attribute[@AttributeName='emailaddress']/saml:AttributeValue", NS
        )
        value.text = "boss@fabrikam.test"

    await refused(rp, "xml_rejected", "signature_invalid", callback=edited(await rp.callback(), edit))


async def test_an_xslt_transform(rp: WsFedRelyingParty) -> None:
    def add_xslt(root: _Element) -> None:
        transforms = the_assertion(root).find("ds:Signature/ds:SignedInfo/ds:Reference/ds:Transforms", NS)
        transform = etree.SubElement(transforms, f"{{{DS}}}Transform")
        transform.set("Algorithm", "http://www.w3.org/TR/1999/REC-xslt-19991116")

    await refused(
        rp, "xml_rejected", "xml_transform_not_allowed", callback=edited(await rp.callback(), add_xslt)
    )


async def test_the_signature_covers_the_envelope_not_the_assertion(rp: WsFedRelyingParty) -> None:
    """A valid STS signature over another element (the RSTR) vouches for nothing inside it."""
    key, certificate = shared_signer("sts")

    def sign_the_rstr(root: _Element) -> None:
        root.set("Id", "_rstr")
        sign_enveloped(root, key, certificate, id_attribute="Id", insert_after=None)

    rp.sts.knobs.unsigned = True
    rp.sts.knobs.after_signing = sign_the_rstr
    await refused(rp, "xml_rejected", "signature_missing")


# -- wrapping (XSW) --------------------------------------------------------------------------------


def forged_sibling_before(root: _Element) -> None:
    genuine = the_assertion(root)
    genuine.addprevious(forged_copy(genuine))


def forged_wrapper(root: _Element) -> None:
    genuine = the_assertion(root)
    holder = genuine.getparent()
    forged = forged_copy(genuine)
    holder.replace(genuine, forged)
    advice = etree.Element(f"{{{SAML1}}}Advice")
    advice.append(genuine)
    forged.insert(0, advice)


def genuine_moved_to_an_extension(root: _Element) -> None:
    genuine = the_assertion(root)
    holder = genuine.getparent()
    holder.replace(genuine, forged_copy(genuine))
    extension = etree.SubElement(root, "{urn:attacker}Extension")
    extension.append(genuine)


def forged_after_the_rstr_in_a_collection(root: _Element) -> None:
    genuine = the_assertion(root)
    etree.SubElement(root, "{urn:attacker}Extension").append(forged_copy(genuine))


@pytest.mark.parametrize(
    "attack",
    [
        forged_sibling_before,
        forged_wrapper,
        genuine_moved_to_an_extension,
        forged_after_the_rstr_in_a_collection,
    ],
)
async def test_wrapping_with_a_second_assertion(
    rp: WsFedRelyingParty, attack: Callable[[_Element], None]
) -> None:
    await refused(rp, "xml_rejected", "xml_assertion_count", callback=edited(await rp.callback(), attack))


async def test_forged_in_place_with_the_genuine_signature_and_a_decoy(rp: WsFedRelyingParty) -> None:
    """XSW5/6 shape: the edited assertion keeps its ID and signature; the untouched copy hides elsewhere."""

    def attack(root: _Element) -> None:
        genuine = the_assertion(root)
        genuine.getparent().replace(genuine, forged_copy(genuine, new_id=None, keep_signature=True))
        etree.SubElement(root, "{urn:attacker}Extension").append(genuine)

    await refused(rp, "xml_rejected", "xml_duplicate_id", callback=edited(await rp.callback(), attack))


async def test_decoy_inside_the_signature_object(rp: WsFedRelyingParty) -> None:
    """XSW8 shape: the untouched copy parked in a ds:Object inside the forged assertion's Signature."""

    def attack(root: _Element) -> None:
        genuine = the_assertion(root)
        forged = forged_copy(genuine, new_id=None, keep_signature=True)
        genuine.getparent().replace(genuine, forged)
        decoy = copy.deepcopy(genuine)
        decoy.set("AssertionID", "_decoy")
        etree.SubElement(forged.find("ds:Signature", NS), f"{{{DS}}}Object").append(decoy)

    await refused(rp, "xml_rejected", "xml_signature_shape", callback=edited(await rp.callback(), attack))


async def test_a_signature_moved_onto_a_forged_assertion(rp: WsFedRelyingParty) -> None:
    """The forged assertion carries the genuine Signature, whose Reference names the genuine's ID."""

    def attack(root: _Element) -> None:
        genuine = the_assertion(root)
        forged = forged_copy(genuine)
        forged.append(copy.deepcopy(genuine.find("ds:Signature", NS)))
        genuine.getparent().replace(genuine, forged)

    await refused(rp, "xml_rejected", "xml_signature_shape", callback=edited(await rp.callback(), attack))


async def test_two_signed_assertions(rp: WsFedRelyingParty) -> None:
    rp.sts.knobs.two_assertions = True
    await refused(rp, "xml_rejected", "xml_assertion_count")


async def test_an_encrypted_token(rp: WsFedRelyingParty) -> None:
    def encrypt(root: _Element) -> None:
        genuine = the_assertion(root)
        data = etree.Element("{http://www.w3.org/2001/04/xmlenc#}EncryptedData")
        etree.SubElement(data, "{http://www.w3.org/2001/04/xmlenc#}CipherData").text = "AAAA"
        genuine.getparent().replace(genuine, data)

    await refused(rp, "token_unsupported", callback=edited(await rp.callback(), encrypt))


async def test_not_an_rstr(rp: WsFedRelyingParty) -> None:
    def bare(root: _Element) -> None:
        root.tag = "{urn:attacker}Response"

    await refused(rp, "rstr_invalid", callback=edited(await rp.callback(), bare))


async def test_two_requested_security_tokens(rp: WsFedRelyingParty) -> None:
    def twice(root: _Element) -> None:
        etree.SubElement(root, f"{{{TRUST}}}RequestedSecurityToken")

    await refused(rp, "rstr_invalid", callback=edited(await rp.callback(), twice))


# -- comment injection, DTDs, entities ------------------------------------------------------------


def split_with_a_comment(element: _Element, at: int) -> None:
    text = element.text
    element.text = text[:at]
    comment = etree.Comment(" injected ")
    comment.tail = text[at:]
    element.append(comment)


async def test_comment_injection_in_an_attribute_value_reads_the_whole_value(rp: WsFedRelyingParty) -> None:
    rp.sts.user.email = "ada@fabrikam.test.attacker.test"

    def inject(root: _Element) -> None:
        for value in root.iterfind(
            ".//saml:Attribute[@AttributeName='emailaddress']/saml:AttributeValue", NS
        ):
            split_with_a_comment(value, len("ada@fabrikam.test"))

    callback = edited(await rp.callback(), inject)
    assert "<!-- injected -->" in callback.params["wresult"]
    identity = await rp.connector.complete(callback)  # comments are not signed: it still verifies
    assert identity.email == "ada@fabrikam.test.attacker.test"
    assert identity.email_verified is False


async def test_comment_injection_in_the_name_identifier_reads_the_whole_value(rp: WsFedRelyingParty) -> None:
    rp.sts.user.name_identifier = "boss.attacker"
    rp.sts.knobs.claims = {IMMUTABLE_ID: REMOVE}
    rp.configure(claims={"immutable_id": None})

    def inject(root: _Element) -> None:
        for identifier in root.iterfind(".//saml:NameIdentifier", NS):
            split_with_a_comment(identifier, len("boss"))

    identity = await rp.connector.complete(edited(await rp.callback(), inject))
    assert identity.subject == "boss.attacker"


async def test_a_value_with_a_child_element_is_refused(rp: WsFedRelyingParty) -> None:
    def stuff(assertion: _Element) -> None:
        value = assertion.find(".//saml:Attribute[@AttributeName='ImmutableID']/saml:AttributeValue", NS)
        etree.SubElement(value, "{urn:attacker}Part").text = "more"

    rp.sts.knobs.before_signing = stuff
    await refused(rp, "xml_rejected", "xml_text_has_children")


XXE = '<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
LAUGHS = '<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'


@pytest.mark.parametrize(
    "edit",
    [
        lambda text: XXE + text.replace("ada@fabrikam.test", "&xxe;"),
        lambda text: LAUGHS + text.replace("ada@fabrikam.test", "&b;"),
        lambda text: "<!DOCTYPE r>" + text,
    ],
    ids=["xxe", "entity-expansion", "doctype"],
)
async def test_doctypes_and_entities(rp: WsFedRelyingParty, edit: Callable[[str], str]) -> None:
    await refused(rp, "xml_rejected", "xml_doctype", callback=texted(await rp.callback(), edit))


async def test_malformed_xml(rp: WsFedRelyingParty) -> None:
    await refused(rp, "xml_rejected", "xml_malformed", callback=texted(await rp.callback(), lambda t: t[:-5]))


# -- claims and statements -----------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.1", "2.0"])
@pytest.mark.parametrize(
    ("claims", "code"),
    [
        ({IMMUTABLE_ID: REMOVE}, "immutable_id_missing"),
        ({IMMUTABLE_ID: " "}, "immutable_id_missing"),
        ({EMAIL: REMOVE}, "email_missing"),
        ({IMMUTABLE_ID: ["one", "two"]}, "claim_invalid"),
        ({EMAIL: ["ada@fabrikam.test", "bob@fabrikam.test"]}, "claim_invalid"),
        ({EMAIL: "not-an-address"}, "claim_invalid"),
        ({IMMUTABLE_ID: "x" * 1025}, "claim_invalid"),
        ({IMMUTABLE_ID: "line\nbreak"}, "claim_invalid"),
    ],
)
async def test_required_claims(
    rp: WsFedRelyingParty, version: str, claims: dict[str, Any], code: str
) -> None:
    rp.sts.knobs.saml_version = version  # type: ignore[assignment]
    rp.sts.knobs.claims = claims
    await refused(rp, code)


@pytest.mark.parametrize(
    ("knobs", "version"),
    [
        ({"name_identifier": REMOVE}, "1.1"),
        ({"name_format": "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"}, "2.0"),
        ({"name_format": "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"}, "1.1"),
    ],
)
async def test_name_identifier_mode_needs_a_persistent_identifier(
    rp: WsFedRelyingParty, knobs: dict[str, Any], version: str
) -> None:
    rp.configure(claims={"immutable_id": None})
    rp.sts.knobs.saml_version = version  # type: ignore[assignment]
    for name, value in knobs.items():
        setattr(rp.sts.knobs, name, value)
    await refused(rp, "subject_missing")


@pytest.mark.parametrize("version", ["1.1", "2.0"])
async def test_no_authentication_statement(rp: WsFedRelyingParty, version: str) -> None:
    rp.sts.knobs.saml_version = version  # type: ignore[assignment]
    rp.sts.knobs.authn_statement = False
    await refused(rp, "authn_statement_missing")


async def test_statements_about_different_subjects(rp: WsFedRelyingParty) -> None:
    def other(assertion: _Element) -> None:
        assertion.find(
            "saml:AuthenticationStatement/saml:Subject/saml:NameIdentifier", NS
        ).text = "someone-else"

    rp.sts.knobs.before_signing = other
    await refused(rp, "subject_mismatch")


@pytest.mark.parametrize("version", ["1.1", "2.0"])
async def test_a_holder_of_key_token(rp: WsFedRelyingParty, version: str) -> None:
    rp.sts.knobs.saml_version = version  # type: ignore[assignment]
    rp.sts.knobs.confirmation_method = f"urn:oasis:names:tc:SAML:{version[0]}.0:cm:holder-of-key"
    await refused(rp, "subject_confirmation_invalid")


async def test_a_saml2_bearer_confirmation_for_another_recipient(rp: WsFedRelyingParty) -> None:
    rp.sts.knobs.saml_version = "2.0"
    rp.sts.knobs.recipient = "https://other-rp.test/callback"
    await refused(rp, "subject_confirmation_invalid")


async def test_a_malformed_instant(rp: WsFedRelyingParty) -> None:
    def bad(assertion: _Element) -> None:
        assertion.find("saml:Conditions", NS).set("NotOnOrAfter", "tomorrow")

    rp.sts.knobs.before_signing = bad
    await refused(rp, "assertion_invalid")


async def test_a_stale_sign_in_when_a_fresh_one_was_asked(rp: WsFedRelyingParty) -> None:
    rp.sts.knobs.auth_age = 7200
    rp.sts.knobs.ignore_wfresh = True
    await refused(rp, "max_age_exceeded", prompt="login")


async def test_a_sign_in_older_than_max_age(rp: WsFedRelyingParty) -> None:
    rp.sts.knobs.auth_age = 1200
    await refused(rp, "max_age_exceeded", max_age=600)


# -- replay ---------------------------------------------------------------------------------------


async def test_replay_is_refused_and_only_the_first_use_left_a_marker(rp: WsFedRelyingParty) -> None:
    callback = await rp.callback()
    await rp.connector.complete(callback)
    markers = rp.replay_markers()
    assert len(markers) == 1
    with pytest.raises(ConnectorError) as caught:
        await rp.connector.complete(callback)
    assert caught.value.code == "assertion_replayed"
    assert rp.replay_markers() == markers
    assert len(rp.state.entries) == 1


async def test_a_replay_through_another_callback_state_is_refused(rp: WsFedRelyingParty) -> None:
    """The same wresult posted back with another (fresh, valid) sign-in's wctx."""
    first = await rp.callback()
    await rp.connector.complete(first)
    second = await rp.begin()
    replayed = Callback(
        params={**first.params, "wctx": second.state["wctx"]},
        state=second.state,
        callback_url=first.callback_url,
    )
    with pytest.raises(ConnectorError) as caught:
        await rp.connector.complete(replayed)
    assert caught.value.code == "assertion_replayed"
    assert len(rp.state.entries) == 1
