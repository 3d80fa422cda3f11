"""EncryptedAssertion: RSA-OAEP + AES-GCM only (CBC per IdP), one generic failure, and the
decrypted assertion re-gated and verified exactly like a plain one (section 7)."""

from __future__ import annotations

import base64
import os
from typing import Any

import pytest
import xmlsec
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from lxml import etree

from idp_connectors.xmlsecurity import encryption
from idp_connectors.xmlsecurity.encryption import (
    ENCRYPTED_ASSERTION,
    RSA_OAEP,
    RSA_OAEP_MGF1P,
    XENC11,
    decrypt_assertion,
    encrypt_assertion,
)
from idp_connectors.xmlsecurity.gate import DS, SAML2, XENC, GatePolicy, XmlRejected, parse_inbound, text_of
from idp_connectors.xmlsecurity.keys import CertificateRejected, private_key_der, xmlsec_public_key
from idp_connectors.xmlsecurity.signature import sign_enveloped, verify_enveloped
from tests.xmlsecurity.samples import KeyPair, assertion, find, response, rsa_pair, to_bytes


@pytest.fixture(scope="module")
def sp() -> KeyPair:
    return rsa_pair(common_name="sp.example")


def signed(idp: KeyPair, **kwargs: Any) -> Any:
    element = assertion(**kwargs)
    sign_enveloped(element, idp.key, idp.cert)
    return element


def in_response(encrypted: Any) -> Any:
    """The EncryptedAssertion as the gate hands it over: inside a parsed Response."""
    root = parse_inbound(to_bytes(response(encrypted)))
    return find(root, "saml:EncryptedAssertion")


def failed(encrypted: Any, key: Any, policy: GatePolicy = GatePolicy()) -> None:
    before = to_bytes(encrypted)
    with pytest.raises(XmlRejected) as caught:
        decrypt_assertion(encrypted, key, policy=policy)
    assert caught.value.detail == "decryption_failed"
    assert to_bytes(encrypted) == before  # the input is never modified


def q(namespace: str, local: str) -> str:
    return f"{{{namespace}}}{local}"


def handmade(
    plaintext: bytes,
    sp: KeyPair,
    *,
    key_transport: str = RSA_OAEP_MGF1P,
    digest: str | None = None,
    mgf: str | None = None,
    data_algorithm: str = XENC11 + "aes256-gcm",
    key_beside_data: bool = False,
    nsmap: dict[str | None, str] | None = None,
) -> Any:
    """An EncryptedAssertion built by hand with ``cryptography`` (other IdPs' shapes and ours)."""
    size = 16 if "128" in data_algorithm else 32
    session_key = os.urandom(size)
    if data_algorithm.endswith("gcm"):
        iv = os.urandom(12)
        data = iv + AESGCM(session_key).encrypt(iv, plaintext, None)
    else:
        iv = os.urandom(16)
        pad = 16 - len(plaintext) % 16
        encryptor = Cipher(algorithms.AES(session_key), modes.CBC(iv)).encryptor()
        data = iv + encryptor.update(plaintext + bytes([pad]) * pad) + encryptor.finalize()
    oaep_digest = hashes.SHA256() if digest and digest.endswith("sha256") else hashes.SHA1()
    oaep_mgf = hashes.SHA256() if mgf and mgf.endswith("sha256") else hashes.SHA1()
    public_key = sp.cert.public_key()
    if key_transport == XENC + "rsa-1_5":
        wrapped = public_key.encrypt(session_key, padding.PKCS1v15())  # type: ignore[union-attr]
    else:
        oaep = padding.OAEP(mgf=padding.MGF1(oaep_mgf), algorithm=oaep_digest, label=None)
        wrapped = public_key.encrypt(session_key, oaep)  # type: ignore[union-attr]

    encrypted_assertion = etree.Element(ENCRYPTED_ASSERTION, nsmap=nsmap or {"saml": SAML2})
    encrypted_data = etree.SubElement(encrypted_assertion, q(XENC, "EncryptedData"), Type=XENC + "Element")
    etree.SubElement(encrypted_data, q(XENC, "EncryptionMethod"), Algorithm=data_algorithm)
    key_info = etree.SubElement(encrypted_data, q(DS, "KeyInfo"))
    encrypted_key = etree.Element(q(XENC, "EncryptedKey"), Id="_key")
    method = etree.SubElement(encrypted_key, q(XENC, "EncryptionMethod"), Algorithm=key_transport)
    if digest:
        etree.SubElement(method, q(DS, "DigestMethod"), Algorithm=digest)
    if mgf:
        etree.SubElement(method, q(XENC11, "MGF"), Algorithm=mgf)
    cipher = etree.SubElement(encrypted_key, q(XENC, "CipherData"))
    etree.SubElement(cipher, q(XENC, "CipherValue")).text = base64.b64encode(wrapped).decode()
    cipher = etree.SubElement(encrypted_data, q(XENC, "CipherData"))
    etree.SubElement(cipher, q(XENC, "CipherValue")).text = base64.b64encode(data).decode()
    if key_beside_data:
        etree.SubElement(key_info, q(DS, "RetrievalMethod"), URI="#_key", Type=XENC + "EncryptedKey")
        encrypted_assertion.append(encrypted_key)
    else:
        key_info.append(encrypted_key)
    return encrypted_assertion


# --- round trips ------------------------------------------------------------------------------


def test_round_trip_then_the_signature_of_what_came_out(idp: KeyPair, sp: KeyPair) -> None:
    plain = signed(idp, name_id="bob@example.com")
    before = to_bytes(plain)
    encrypted = encrypt_assertion(plain, sp.cert)
    assert to_bytes(plain) == before  # copied, not moved
    assert b"bob@example.com" not in to_bytes(encrypted)
    assert (
        find(encrypted, "xenc:EncryptedData/xenc:EncryptionMethod").get("Algorithm") == XENC11 + "aes256-gcm"
    )
    key_method = find(encrypted, "xenc:EncryptedData/ds:KeyInfo/xenc:EncryptedKey/xenc:EncryptionMethod")
    assert key_method.get("Algorithm") == RSA_OAEP_MGF1P
    decrypted = decrypt_assertion(in_response(encrypted), sp.key, policy=GatePolicy())
    assert decrypted.getparent() is None and decrypted.tag == q(SAML2, "Assertion")
    assert verify_enveloped(decrypted, [idp.cert]) is decrypted
    assert text_of(find(decrypted, "saml:Subject/saml:NameID")) == "bob@example.com"


@pytest.mark.parametrize(
    ("transport", "digest", "mgf"),
    [
        (RSA_OAEP_MGF1P, None, None),
        (RSA_OAEP_MGF1P, XENC + "sha256", None),
        (RSA_OAEP, XENC + "sha256", XENC11 + "mgf1sha256"),
        (RSA_OAEP, None, None),
    ],
)
def test_oaep_variants_other_idps_send(
    idp: KeyPair, sp: KeyPair, transport: str, digest: str | None, mgf: str | None
) -> None:
    plaintext = to_bytes(signed(idp))
    encrypted = handmade(plaintext, sp, key_transport=transport, digest=digest, mgf=mgf)
    decrypted = decrypt_assertion(in_response(encrypted), sp.key, policy=GatePolicy())
    assert verify_enveloped(decrypted, [idp.cert]) is decrypted


def test_encrypted_key_beside_the_data(idp: KeyPair, sp: KeyPair) -> None:
    encrypted = handmade(to_bytes(signed(idp)), sp, key_beside_data=True)
    decrypted = decrypt_assertion(in_response(encrypted), sp.key, policy=GatePolicy())
    assert verify_enveloped(decrypted, [idp.cert]) is decrypted


def test_plaintext_may_use_prefixes_declared_outside_it(idp: KeyPair, sp: KeyPair) -> None:
    plaintext = to_bytes(signed(idp))
    bare = plaintext.replace(b' xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion"', b"", 1)
    assert b"xmlns:saml" not in bare.split(b">", 1)[0]
    decrypted = decrypt_assertion(in_response(handmade(bare, sp)), sp.key, policy=GatePolicy())
    assert verify_enveloped(decrypted, [idp.cert]) is decrypted


def test_cbc_only_with_the_per_idp_flag(idp: KeyPair, sp: KeyPair) -> None:
    encrypted = in_response(handmade(to_bytes(signed(idp)), sp, data_algorithm=XENC + "aes256-cbc"))
    failed(encrypted, sp.key)
    decrypted = decrypt_assertion(encrypted, sp.key, policy=GatePolicy(allow_cbc=True))
    assert verify_enveloped(decrypted, [idp.cert]) is decrypted


# --- refusals: one generic failure ------------------------------------------------------------


def test_rsa_1_5_key_transport_refused(idp: KeyPair, sp: KeyPair) -> None:
    encrypted = in_response(handmade(to_bytes(signed(idp)), sp, key_transport=XENC + "rsa-1_5"))
    # Control: a lax library (xmlsec with the key in a manager) does decrypt this document.
    manager = xmlsec.KeysManager()
    manager.add_key(xmlsec.Key.from_memory(private_key_der(sp.key), xmlsec.constants.KeyDataFormatDer))
    lax = etree.fromstring(etree.tostring(encrypted))
    assert xmlsec.EncryptionContext(manager).decrypt(lax[0]).tag == q(SAML2, "Assertion")
    failed(encrypted, sp.key)


def test_tampered_data_ciphertext(idp: KeyPair, sp: KeyPair) -> None:
    encrypted = in_response(encrypt_assertion(signed(idp), sp.cert))
    value = find(encrypted, "xenc:EncryptedData/xenc:CipherData/xenc:CipherValue")
    raw = bytearray(base64.b64decode(value.text))
    raw[40] ^= 0x01
    value.text = base64.b64encode(bytes(raw)).decode()
    failed(encrypted, sp.key)


def test_tampered_key_ciphertext(idp: KeyPair, sp: KeyPair) -> None:
    encrypted = in_response(encrypt_assertion(signed(idp), sp.cert))
    value = find(encrypted, "//xenc:EncryptedKey/xenc:CipherData/xenc:CipherValue")
    raw = bytearray(base64.b64decode(value.text))
    raw[5] ^= 0x80
    value.text = base64.b64encode(bytes(raw)).decode()
    failed(encrypted, sp.key)


def test_wrong_private_key(idp: KeyPair, sp: KeyPair, attacker: KeyPair) -> None:
    failed(in_response(encrypt_assertion(signed(idp), sp.cert)), attacker.key)


def test_decrypted_doctype_is_refused(sp: KeyPair) -> None:
    plaintext = (
        b'<!DOCTYPE x [<!ENTITY e "evil">]><saml:Assertion xmlns:saml="' + SAML2.encode() + b'" ID="_a"/>'
    )
    failed(in_response(handmade(plaintext, sp)), sp.key)


def test_decrypted_comments_are_dropped_and_the_signature_still_holds(idp: KeyPair, sp: KeyPair) -> None:
    plaintext = to_bytes(signed(idp, name_id="alice@example.com.evil.example"))
    injected = plaintext.replace(b"alice@example.com.evil", b"alice@example.com<!-- x -->.evil")
    decrypted = decrypt_assertion(in_response(handmade(injected, sp)), sp.key, policy=GatePolicy())
    assert verify_enveloped(decrypted, [idp.cert]) is decrypted
    assert text_of(find(decrypted, "saml:Subject/saml:NameID")) == "alice@example.com.evil.example"


@pytest.mark.parametrize(
    "plaintext",
    [
        to_bytes(response()),
        to_bytes(assertion()) + to_bytes(assertion()),
        b"not xml at all",
        b"",
    ],
    ids=["a Response", "two assertions", "garbage", "empty"],
)
def test_decrypted_content_must_be_one_assertion(sp: KeyPair, plaintext: bytes) -> None:
    failed(in_response(handmade(plaintext, sp)), sp.key)


def test_decrypted_signature_shape_is_gated(idp: KeyPair, sp: KeyPair) -> None:
    element = signed(idp)
    method = find(element, "ds:Signature/ds:SignedInfo/ds:SignatureMethod")
    method.set("Algorithm", "http://www.w3.org/2000/09/xmldsig#hmac-sha1")
    failed(in_response(handmade(to_bytes(element), sp)), sp.key)


def test_cipher_reference_is_never_fetched(idp: KeyPair, sp: KeyPair) -> None:
    encrypted = handmade(to_bytes(signed(idp)), sp)
    cipher_data = find(encrypted, "xenc:EncryptedData/xenc:CipherData")
    for child in list(cipher_data):
        cipher_data.remove(child)
    etree.SubElement(cipher_data, q(XENC, "CipherReference"), URI="http://127.0.0.1:9/data")
    failed(in_response(encrypted), sp.key)


def test_unsolicited_siblings_and_wrong_containers(idp: KeyPair, sp: KeyPair) -> None:
    smuggled = handmade(to_bytes(signed(idp)), sp)
    smuggled.append(assertion())
    failed(in_response(smuggled), sp.key)
    not_encrypted_assertion = parse_inbound(to_bytes(signed(idp)))
    failed(not_encrypted_assertion, sp.key)


def test_content_type_refused(idp: KeyPair, sp: KeyPair) -> None:
    encrypted = handmade(to_bytes(signed(idp)), sp)
    find(encrypted, "xenc:EncryptedData").set("Type", XENC + "Content")
    failed(in_response(encrypted), sp.key)


def test_too_many_encrypted_keys(idp: KeyPair, sp: KeyPair) -> None:
    encrypted = handmade(to_bytes(signed(idp)), sp, key_beside_data=True)
    key = find(encrypted, "xenc:EncryptedKey")
    for index in range(encryption.MAX_ENCRYPTED_KEYS):
        copy_ = etree.fromstring(etree.tostring(key))
        copy_.set("Id", f"_k{index}")
        encrypted.append(copy_)
    failed(in_response(encrypted), sp.key)


def test_decryption_needs_an_rsa_key(idp: KeyPair, idp_ec: KeyPair, sp: KeyPair) -> None:
    with pytest.raises(ValueError, match="RSA"):
        decrypt_assertion(
            in_response(encrypt_assertion(signed(idp), sp.cert)), idp_ec.key, policy=GatePolicy()
        )


def test_encryption_refuses_unfit_recipients(idp: KeyPair, idp_ec: KeyPair, weak: KeyPair) -> None:
    with pytest.raises(ValueError, match="RSA"):
        encrypt_assertion(assertion(), idp_ec.cert)
    with pytest.raises(CertificateRejected):
        encrypt_assertion(assertion(), weak.cert)
    with pytest.raises(ValueError, match="saml:Assertion"):
        encrypt_assertion(response(), idp.cert)


def test_xmlsec_public_key_is_cached(idp: KeyPair) -> None:
    assert xmlsec_public_key(idp.cert) is xmlsec_public_key(idp.cert)
