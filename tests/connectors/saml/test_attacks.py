"""The attack catalogue at connector level (saml-wsfed-security.md §1-5, §7): every fixture is a genuine
signed (or encrypted) response from the pysaml2 IdP, then moved, duplicated or edited the way the
attack does it. Each is refused with its code, and the connector writes nothing."""

from __future__ import annotations

import base64
import copy
from collections.abc import Callable

import pytest
from lxml import etree

from tests.connectors.saml.conftest import NS, edited, refused, rejected, response_of, with_response
from tests.support.saml_idp import (
    AES128_CBC,
    REMOVE,
    RSA_1_5,
    TRIPLE_DES,
    ServiceProvider,
    key_pair,
)

SAML = NS["saml"]
SAMLP = NS["samlp"]
DS = NS["ds"]
NAME_ID = "7f3c9a2e-5b1d-4e8f-a6c0-fabrikam-0001"


def forge(element: etree._Element) -> None:
    """What an attacker wants the SP to read: someone else's NameID and email."""
    for name_id in element.iter(f"{{{SAML}}}NameID"):
        name_id.text = "victim-admin-0001"
    for value in element.iter(f"{{{SAML}}}AttributeValue"):
        if value.text == "alice@fabrikam.example":
            value.text = "admin@fabrikam.example"


def signature(element: etree._Element) -> etree._Element:
    found = element.find("ds:Signature", NS)
    assert found is not None
    return found


def unsigned_copy(element: etree._Element) -> etree._Element:
    clone = copy.deepcopy(element)
    clone.remove(signature(clone))
    return clone


def assertion(root: etree._Element) -> etree._Element:
    found = root.find("saml:Assertion", NS)
    assert found is not None
    return found


# -- XSW1-XSW8 (On Breaking SAML; SAML Raider's variants) ----------------------------------------


def xsw1(root: etree._Element) -> None:
    """Hidden signed Response: a copy of the genuine Response inside the Signature, forged outer one."""
    genuine = unsigned_copy(root)
    forge(root)
    root.set("ID", "_evil_response")
    signature(root).append(genuine)


def xsw2(root: etree._Element) -> None:
    """Hidden signed Response beside the Signature (a detached-looking signature)."""
    genuine = unsigned_copy(root)
    forge(root)
    root.set("ID", "_evil_response")
    signature(root).addprevious(genuine)


def xsw3(root: etree._Element) -> None:
    """A forged unsigned sibling assertion before the signed one."""
    signed = assertion(root)
    evil = unsigned_copy(signed)
    forge(evil)
    evil.set("ID", "_evil_assertion")
    signed.addprevious(evil)


def xsw4(root: etree._Element) -> None:
    """A forged unsigned assertion wrapping the signed one."""
    signed = assertion(root)
    evil = unsigned_copy(signed)
    forge(evil)
    evil.set("ID", "_evil_assertion")
    root.append(evil)
    evil.append(signed)


def xsw5(root: etree._Element) -> None:
    """The signed assertion edited in place, an untouched unsigned copy appended to the Response."""
    evil = assertion(root)
    genuine = unsigned_copy(evil)
    forge(evil)
    root.append(genuine)
    evil.set("ID", "_evil_assertion")


def xsw6(root: etree._Element) -> None:
    """The signed assertion edited in place, the untouched copy inside its Signature."""
    evil = assertion(root)
    genuine = unsigned_copy(evil)
    forge(evil)
    signature(evil).append(genuine)
    evil.set("ID", "_evil_assertion")


def xsw7(root: etree._Element) -> None:
    """A forged assertion smuggled through open content (samlp:Extensions)."""
    signed = assertion(root)
    extensions = etree.Element(f"{{{SAMLP}}}Extensions")
    signed.addprevious(extensions)
    evil = unsigned_copy(signed)
    forge(evil)
    extensions.append(evil)


def xsw8(root: etree._Element) -> None:
    """The signed assertion edited in place (same ID), the untouched copy in a ds:Object."""
    evil = assertion(root)
    genuine = unsigned_copy(evil)
    forge(evil)
    etree.SubElement(signature(evil), f"{{{DS}}}Object").append(genuine)


ASSERTION_XSW = [
    (xsw3, "xml_assertion_count"),
    (xsw4, "xml_assertion_count"),
    (xsw5, "xml_signature_shape"),
    (xsw6, "xml_signature_shape"),
    (xsw7, "xml_duplicate_id"),
    (xsw8, "xml_duplicate_id"),
]


@pytest.mark.parametrize(("attack", "detail"), [(xsw1, "xml_duplicate_id"), (xsw2, "xml_duplicate_id")])
async def test_response_signature_wrapping_is_refused(
    sp: ServiceProvider, attack: Callable[[etree._Element], None], detail: str
) -> None:
    sp.configure(want_assertions_signed=False)  # the Response signature is what vouches here
    sp.idp.knobs.sign_assertion = False
    await rejected(sp, edited(await sp.callback(), attack), detail)


@pytest.mark.parametrize(("attack", "detail"), ASSERTION_XSW)
async def test_assertion_signature_wrapping_is_refused(
    sp: ServiceProvider, attack: Callable[[etree._Element], None], detail: str
) -> None:
    sp.idp.knobs.sign_response = False  # only the assertion signature vouches
    await rejected(sp, edited(await sp.callback(), attack), detail)


@pytest.mark.parametrize(("attack", "detail"), ASSERTION_XSW)
async def test_assertion_signature_wrapping_is_refused_under_a_signed_response_too(
    sp: ServiceProvider, attack: Callable[[etree._Element], None], detail: str
) -> None:
    await rejected(sp, edited(await sp.callback(), attack), detail)


def with_unique_ids(attack: Callable[[etree._Element], None]) -> Callable[[etree._Element], None]:
    """``attack``, then the copies of a duplicated ID renamed (all but the signed holder): the
    duplicate-ID rule no longer fires, so the family's own defence has to."""

    def apply(root: etree._Element) -> None:
        attack(root)
        holders: dict[str, list[etree._Element]] = {}
        for element in root.iter(etree.Element):
            for name in ("ID", "Id"):
                if (value := element.get(name)) is not None:
                    holders.setdefault(value, []).append(element)
        for value, elements in holders.items():
            keep = next((e for e in elements if e.find("ds:Signature", NS) is not None), elements[0])
            for index, element in enumerate(e for e in elements if e is not keep):
                element.set("ID" if element.get("ID") == value else "Id", f"{value}-copy{index}")

    return apply


@pytest.mark.parametrize(
    ("attack", "detail", "signed"),
    [
        (xsw1, "xml_signature_shape", "response"),
        (xsw2, "xml_signature_shape", "response"),
        (xsw3, "xml_assertion_count", "assertion"),
        (xsw4, "xml_assertion_count", "assertion"),
        (xsw5, "xml_signature_shape", "assertion"),
        (xsw6, "xml_signature_shape", "assertion"),
        (xsw7, "xml_assertion_count", "assertion"),
        (xsw8, "xml_signature_shape", "assertion"),
    ],
)
async def test_each_wrapping_family_meets_its_own_rule(
    sp: ServiceProvider, attack: Callable[[etree._Element], None], detail: str, signed: str
) -> None:
    if signed == "response":
        sp.configure(want_assertions_signed=False)
    sp.idp.knobs.sign_assertion = signed == "assertion"
    sp.idp.knobs.sign_response = signed == "response"
    await rejected(sp, edited(await sp.callback(), with_unique_ids(attack)), detail)


async def test_the_wrapping_fixtures_are_genuine(sp: ServiceProvider) -> None:
    """Without the attack, the same responses are accepted (so the refusals above are the attacks')."""
    sp.idp.knobs.sign_response = False
    assert (await sp.sign_in()).subject == NAME_ID
    sp.configure(want_assertions_signed=False)
    sp.idp.knobs.sign_response = True
    sp.idp.knobs.sign_assertion = False
    assert (await sp.sign_in()).subject == NAME_ID


async def test_an_edited_signed_assertion_is_refused(sp: ServiceProvider) -> None:
    sp.idp.knobs.sign_response = False
    await rejected(sp, edited(await sp.callback(), lambda root: forge(assertion(root))), "signature_invalid")


async def test_an_edited_signed_response_is_refused(sp: ServiceProvider) -> None:
    sp.configure(want_assertions_signed=False)
    sp.idp.knobs.sign_assertion = False
    await rejected(sp, edited(await sp.callback(), lambda root: forge(assertion(root))), "signature_invalid")


async def test_a_stripped_assertion_signature_is_refused(sp: ServiceProvider) -> None:
    sp.idp.knobs.sign_response = False

    def strip(root: etree._Element) -> None:
        signed = assertion(root)
        signed.remove(signature(signed))
        forge(signed)

    await refused(sp, edited(await sp.callback(), strip), "assertion_not_signed")
    sp.assert_nothing_persisted()


async def test_a_signed_plus_an_unsigned_assertion_is_refused(sp: ServiceProvider) -> None:
    """crewjam/saml CVE-2022-41912: several assertions of which only one is signed."""

    def add_unsigned(root: etree._Element) -> None:
        evil = unsigned_copy(assertion(root))
        forge(evil)
        evil.set("ID", "_evil_assertion")
        root.append(evil)

    sp.idp.knobs.sign_response = False
    await rejected(sp, edited(await sp.callback(), add_unsigned), "xml_assertion_count")


async def test_an_assertion_hidden_in_the_status_detail_is_refused(sp: ServiceProvider) -> None:
    def hide(root: etree._Element) -> None:
        status = root.find("samlp:Status", NS)
        detail = etree.SubElement(status, f"{{{SAMLP}}}StatusDetail")
        evil = unsigned_copy(assertion(root))
        evil.set("ID", "_evil_assertion")
        detail.append(evil)

    sp.idp.knobs.sign_response = False
    await rejected(sp, edited(await sp.callback(), hide), "xml_assertion_count")


# -- comment injection (Duo 2018, CVE-2017-11427) ------------------------------------------------


async def test_a_comment_in_the_name_id_does_not_shorten_the_identity(sp: ServiceProvider) -> None:
    callback = await sp.callback()
    xml = response_of(callback).decode()
    assert xml.count(NAME_ID) == 1
    # Exclusive C14N drops comments, so the IdP's signature still verifies over the split text.
    xml = xml.replace(NAME_ID, "7f3c9a2e-5b1d-4e8f-a6c0-fabrikam<!-- cut -->-0001")
    identity = await sp.connector.complete(with_response(callback, xml))
    assert identity.subject == NAME_ID  # the whole value, not "7f3c9a2e-5b1d-4e8f-a6c0-fabrikam"


async def test_a_comment_splitting_a_signed_email_reads_the_whole_signed_value(sp: ServiceProvider) -> None:
    callback = await sp.callback()
    xml = response_of(callback).decode()
    xml = xml.replace(">alice@fabrikam.example<", ">alice@fabrikam<!-- .evil.test -->.example<")
    identity = await sp.connector.complete(with_response(callback, xml))
    assert identity.email == "alice@fabrikam.example"


# -- DTD, entities, XSLT, algorithms, keys -------------------------------------------------------

DOCTYPES = {
    "doctype": "<!DOCTYPE samlp:Response [<!ELEMENT samlp:Response ANY>]>",
    "xxe": '<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>',
    "billion_laughs": (
        '<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
        '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>'
    ),
    "external_dtd": '<!DOCTYPE r SYSTEM "https://attacker.test/evil.dtd">',
}


@pytest.mark.parametrize("name", list(DOCTYPES))
async def test_any_doctype_is_refused_before_anything_else(sp: ServiceProvider, name: str) -> None:
    callback = await sp.callback()
    xml = response_of(callback).decode()
    body = xml.split("?>", 1)[1] if xml.startswith("<?xml") else xml
    if name == "xxe":
        body = body.replace(NAME_ID, "&xxe;")
    if name == "billion_laughs":
        body = body.replace(NAME_ID, "&d;")
    await rejected(
        sp, with_response(callback, '<?xml version="1.0"?>' + DOCTYPES[name] + body), "xml_doctype"
    )


async def test_an_xslt_transform_is_refused_before_any_cryptography(sp: ServiceProvider) -> None:
    def add_xslt(root: etree._Element) -> None:
        transforms = signature(assertion(root)).find("ds:SignedInfo/ds:Reference/ds:Transforms", NS)
        xslt = etree.SubElement(transforms, f"{{{DS}}}Transform")
        xslt.set("Algorithm", "http://www.w3.org/TR/1999/REC-xslt-19991116")
        sheet = etree.SubElement(xslt, "{http://www.w3.org/1999/XSL/Transform}stylesheet")
        sheet.set("version", "1.0")

    await rejected(sp, edited(await sp.callback(), add_xslt), "xml_transform_not_allowed")


async def test_sha1_is_refused_by_default(sp: ServiceProvider) -> None:
    sp.idp.knobs.sha1 = True
    await rejected(sp, await sp.callback(), "xml_algorithm_not_allowed")


async def test_an_attacker_key_with_its_certificate_in_key_info_is_refused(sp: ServiceProvider) -> None:
    sp.idp.knobs.attacker_key = True
    callback = await sp.callback()
    key_info = etree.fromstring(response_of(callback)).find(".//ds:KeyInfo//ds:X509Certificate", NS)
    assert key_info.text == key_pair("attacker").cert_body  # the attacker's certificate is offered
    await rejected(sp, callback, "signature_invalid")
    assert sp.calls("metadata") == 2  # one read again for a possible rollover, then fail closed
    await rejected(sp, await sp.callback(), "signature_invalid")
    assert sp.calls("metadata") == 2  # at most once a minute


async def test_key_info_is_never_used_so_swapping_it_changes_nothing(sp: ServiceProvider) -> None:
    def swap(root: etree._Element) -> None:
        for certificate in root.iter(f"{{{DS}}}X509Certificate"):
            certificate.text = key_pair("attacker").cert_body

    sp.idp.knobs.sign_response = False  # a Response signature would cover the assertion's KeyInfo
    identity = await sp.connector.complete(edited(await sp.callback(), swap))
    assert identity.subject == NAME_ID


# -- encrypted assertions -----------------------------------------------------------------------


def flip_cipher(root: etree._Element) -> None:
    value = root.find("saml:EncryptedAssertion/xenc:EncryptedData/xenc:CipherData/xenc:CipherValue", NS)
    data = bytearray(base64.b64decode("".join(value.text.split())))
    data[len(data) // 2] ^= 0x01
    value.text = base64.b64encode(bytes(data)).decode()


async def test_a_tampered_encrypted_assertion_is_refused_generically(sp: ServiceProvider) -> None:
    sp.idp.knobs.encrypt = True
    sp.idp.knobs.sign_response = False
    await rejected(sp, edited(await sp.callback(), flip_cipher), "decryption_failed")


async def test_a_tampered_encrypted_assertion_under_a_signed_response_fails_the_signature_first(
    sp: ServiceProvider,
) -> None:
    sp.idp.knobs.encrypt = True
    await rejected(sp, edited(await sp.callback(), flip_cipher), "signature_invalid")


@pytest.mark.parametrize(
    ("knob", "value"),
    [("key_transport", RSA_1_5), ("data_encryption", TRIPLE_DES), ("data_encryption", AES128_CBC)],
)
async def test_weak_encryption_is_refused(sp: ServiceProvider, knob: str, value: str) -> None:
    sp.idp.knobs.encrypt = True
    setattr(sp.idp.knobs, knob, value)
    await rejected(sp, await sp.callback(), "decryption_failed")


async def test_aes_cbc_is_accepted_only_as_the_configured_exception(sp: ServiceProvider) -> None:
    sp.configure(allow_cbc=True)
    sp.idp.knobs.encrypt = True
    sp.idp.knobs.data_encryption = AES128_CBC
    identity = await sp.sign_in()
    assert identity.subject == NAME_ID


async def test_an_encrypted_assertion_whose_inner_signature_was_stripped_is_refused(
    sp: ServiceProvider,
) -> None:
    """The encrypted path checks what the plain path checks (GHES CVE-2024-4985)."""
    sp.idp.knobs.encrypt = True
    sp.idp.knobs.sign_assertion = False
    await refused(sp, await sp.callback(), "assertion_not_signed")
    sp.assert_nothing_persisted()


async def test_an_encrypted_assertion_without_a_configured_sp_key_is_refused(sp: ServiceProvider) -> None:
    sp.configure(sp_key_file=REMOVE, sp_certificate_file=REMOVE)
    sp.idp.knobs.encrypt = True
    await refused(sp, await sp.callback(), "encryption_not_configured")
    sp.assert_nothing_persisted()
