"""The pysaml2 backend with a real pysaml2 IdP and SP: sign, verify, encrypt and decrypt in process,
keys only from metadata, the gate in front, and interoperability with pysaml2's xmlsec1 backend."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path
from typing import Any

import pytest
import saml2.sigver
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree
from saml2.sigver import CryptoBackendXmlSec1, DecryptError, SignatureError, pre_encryption_part
from saml2.xmldsig import DIGEST_SHA1, SIG_RSA_SHA1

from idp_connectors.xmlsecurity import encryption, gate
from idp_connectors.xmlsecurity.gate import XmlRejected
from idp_connectors.xmlsecurity.pysaml2_backend import InProcessCryptoBackend
from idp_connectors.xmlsecurity.signature import sign_enveloped
from tests.xmlsecurity.pysaml2_peers import Peers, make_peers, write_pair
from tests.xmlsecurity.samples import KeyPair, assertion, response, rsa_pair, to_bytes

needs_xmlsec1 = pytest.mark.skipif(shutil.which("xmlsec1") is None, reason="xmlsec1 binary not installed")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")


@pytest.fixture(scope="module")
def sp_pair() -> KeyPair:
    return rsa_pair(common_name="sp.example")


@pytest.fixture
def peers(tmp_path: Path, idp: KeyPair, sp_pair: KeyPair, monkeypatch: pytest.MonkeyPatch) -> Peers:
    def no_binary(*args: Any, **kwargs: Any) -> str:
        raise AssertionError("the xmlsec1 binary was looked up")

    monkeypatch.setattr(saml2.sigver, "get_xmlsec_binary", no_binary)
    return make_peers(tmp_path, idp, sp_pair, encryption=True)


def identity(result: Any) -> tuple[str, dict[str, list[str]]]:
    return result.name_id.text, dict(result.ava)


ALICE = ("alice-persistent-id", {"mail": ["alice@example.com"], "givenName": ["Alice"]})


# --- in process on both sides -----------------------------------------------------------------


def test_the_backend_is_in_place(peers: Peers) -> None:
    for entity in (peers.idp, peers.sp):
        assert isinstance(entity.sec.crypto, InProcessCryptoBackend)
        assert entity.sec.only_use_keys_in_metadata is True
        assert entity.metadata.security is entity.sec


@pytest.mark.parametrize("sign_response", [False, True])
def test_signed_assertion_round_trip(peers: Peers, sign_response: bool) -> None:
    request_id = peers.authn_request_id()
    xml = peers.response_xml(request_id, sign_response=sign_response)
    assert xml.count("SignatureValue>") == (4 if sign_response else 2)
    assert identity(peers.consume(xml, request_id)) == ALICE


def test_encrypted_assertion_round_trip(peers: Peers) -> None:
    request_id = peers.authn_request_id()
    xml = peers.response_xml(request_id, encrypt=True)
    assert "EncryptedAssertion" in xml and "alice@example.com" not in xml
    assert "aes256-gcm" in xml and "rsa-oaep-mgf1p" in xml
    assert identity(peers.consume(xml, request_id)) == ALICE


def test_tampered_attribute_refused(peers: Peers) -> None:
    request_id = peers.authn_request_id()
    xml = peers.response_xml(request_id).replace("alice@example.com", "admin@example.com")
    with pytest.raises(SignatureError):
        peers.consume(xml, request_id)


def test_impostor_signing_key_with_its_certificate_in_key_info_refused(
    tmp_path: Path, idp: KeyPair, attacker: KeyPair, sp_pair: KeyPair
) -> None:
    impostor = make_peers(tmp_path, idp, sp_pair, idp_signing_pair=attacker)
    request_id = impostor.authn_request_id()
    xml = impostor.response_xml(request_id)
    embedded = base64.b64encode(attacker.cert.public_bytes(Encoding.DER)).decode()
    assert embedded[:40] in xml.replace("\n", "")
    with pytest.raises(SignatureError):
        impostor.consume(xml, request_id)


def test_xslt_transform_refused_before_any_signature_work(
    peers: Peers, sp_pair: KeyPair, idp: KeyPair, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pysaml2 7.5's own allow-list refuses it first; our backend's gate would too (issue #1035)."""
    request_id = peers.authn_request_id()
    xml = peers.response_xml(request_id)
    tree = etree.fromstring(xml.encode())
    transforms = tree.xpath("//ds:Transforms", namespaces={"ds": gate.DS})[0]
    etree.SubElement(transforms[0].getparent(), f"{{{gate.DS}}}Transform").set(
        "Algorithm", "http://www.w3.org/TR/1999/REC-xslt-19991116"
    )

    def no_crypto(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("signature verification was reached")

    monkeypatch.setattr("idp_connectors.xmlsecurity.pysaml2_backend.verify_enveloped", no_crypto)
    with pytest.raises((SignatureError, XmlRejected)):
        peers.consume(etree.tostring(tree), request_id)
    assertion_id = tree.xpath("//saml:Assertion/@ID", namespaces={"saml": gate.SAML2})[0]
    with pytest.raises(XmlRejected) as caught:
        InProcessCryptoBackend().validate_signature(
            etree.tostring(tree), *_cert(tmp_path, idp), signed_node(), assertion_id
        )
    assert caught.value.detail == "xml_transform_not_allowed"


def test_sha1_signing_configuration_is_refused(tmp_path: Path, idp: KeyPair, sp_pair: KeyPair) -> None:
    peers = make_peers(tmp_path, idp, sp_pair)
    peers.idp.signing_algorithm, peers.idp.digest_algorithm = SIG_RSA_SHA1, DIGEST_SHA1
    with pytest.raises(SignatureError, match="signing_algorithm rsa-sha256"):
        peers.response_xml(peers.authn_request_id())


# --- interoperability with pysaml2's xmlsec1 backend ------------------------------------------


@needs_xmlsec1
def test_xmlsec1_idp_to_in_process_sp(tmp_path: Path, idp: KeyPair, sp_pair: KeyPair) -> None:
    peers = make_peers(tmp_path, idp, sp_pair, idp_backend="xmlsec1")
    assert isinstance(peers.idp.sec.crypto, CryptoBackendXmlSec1)
    request_id = peers.authn_request_id()
    assert identity(peers.consume(peers.response_xml(request_id, sign_response=True), request_id)) == ALICE


@needs_xmlsec1
@pytest.mark.parametrize("encrypt", [False, True])
def test_in_process_idp_to_xmlsec1_sp(tmp_path: Path, idp: KeyPair, sp_pair: KeyPair, encrypt: bool) -> None:
    peers = make_peers(tmp_path, idp, sp_pair, sp_backend="xmlsec1", encryption=True)
    assert isinstance(peers.sp.sec.crypto, CryptoBackendXmlSec1)
    request_id = peers.authn_request_id()
    xml = peers.response_xml(request_id, encrypt=encrypt, sign_response=True)
    assert identity(peers.consume(xml, request_id)) == ALICE


@needs_xmlsec1
def test_triple_des_from_a_default_pysaml2_idp_is_refused(
    tmp_path: Path, idp: KeyPair, sp_pair: KeyPair
) -> None:
    """pysaml2's xmlsec1 path encrypts with 3DES-CBC; we decrypt AES-GCM (or CBC per IdP) only."""
    peers = make_peers(tmp_path, idp, sp_pair, idp_backend="xmlsec1", encryption=True)
    request_id = peers.authn_request_id()
    xml = peers.response_xml(request_id, encrypt=True)
    assert "tripledes-cbc" in xml
    result = peers.consume(xml, request_id)
    # pysaml2 swallows the DecryptError and hands back a Response without any assertion: no
    # identity comes out (connectors must still require exactly one verified assertion).
    assert result is None or (result.assertion is None and not result.assertions)


@needs_xmlsec1
@pytest.mark.parametrize(
    ("algorithm", "policy"),
    [
        (encryption.XENC11 + "aes256-gcm", gate.GatePolicy()),
        (gate.XENC + "aes256-cbc", gate.GatePolicy(allow_cbc=True)),
    ],
)
def test_backend_decrypts_what_xmlsec1_encrypted(
    tmp_path: Path, idp: KeyPair, sp_pair: KeyPair, algorithm: str, policy: gate.GatePolicy
) -> None:
    key_file, cert_file = write_pair(tmp_path, "sp", sp_pair)
    signed = assertion(name_id="carol@example.com")
    sign_enveloped(signed, idp.key, idp.cert)
    container = etree.Element(encryption.ENCRYPTED_ASSERTION)
    container.append(signed)
    template = str(pre_encryption_part(msg_enc=algorithm))
    xml = CryptoBackendXmlSec1("/usr/bin/xmlsec1").encrypt_assertion(
        to_bytes(response(container)).decode(), cert_file, template, key_type="aes-256"
    )
    assert "carol@example.com" not in xml
    decrypted = InProcessCryptoBackend(policy).decrypt(xml, key_file)
    assert "carol@example.com" in decrypted
    backend = InProcessCryptoBackend(policy)
    assert backend.validate_signature(decrypted, *_cert(tmp_path, idp), signed_node(), signed.get("ID"))
    with pytest.raises(DecryptError):
        InProcessCryptoBackend(policy).decrypt(xml, write_pair(tmp_path, "other", rsa_pair())[0])


# --- the backend's own contract ---------------------------------------------------------------


def signed_node() -> str:
    return "urn:oasis:names:tc:SAML:2.0:assertion:Assertion"


def _cert(tmp_path: Path, pair: KeyPair) -> tuple[str, str]:
    path = tmp_path / "verify.pem"
    path.write_bytes(pair.cert.public_bytes(Encoding.PEM))
    return str(path), "pem"


def test_validate_signature_answers(tmp_path: Path, idp: KeyPair, attacker: KeyPair, weak: KeyPair) -> None:
    signed = assertion()
    sign_enveloped(signed, idp.key, idp.cert)
    text = to_bytes(response(signed)).decode()
    backend = InProcessCryptoBackend()
    assert backend.validate_signature(text, *_cert(tmp_path, idp), signed_node(), signed.get("ID"))
    assert not backend.validate_signature(text, *_cert(tmp_path, attacker), signed_node(), signed.get("ID"))
    assert not backend.validate_signature(text, *_cert(tmp_path, weak), signed_node(), signed.get("ID"))
    assert not backend.validate_signature(text, *_cert(tmp_path, idp), signed_node(), "_no_such_id")
    with pytest.raises(XmlRejected) as caught:
        backend.validate_signature("<!DOCTYPE x><x/>", *_cert(tmp_path, idp), signed_node(), None)
    assert caught.value.detail == "xml_doctype"


def test_sign_statement_needs_a_template(tmp_path: Path, idp: KeyPair) -> None:
    key_file, _ = write_pair(tmp_path, "idp", idp)
    with pytest.raises(SignatureError):
        InProcessCryptoBackend().sign_statement(to_bytes(assertion()), signed_node(), key_file, None)


def test_decrypt_of_an_encrypted_id(tmp_path: Path, sp_pair: KeyPair) -> None:
    key_file, _ = write_pair(tmp_path, "sp", sp_pair)
    name_id = etree.Element(f"{{{gate.SAML2}}}NameID")
    name_id.text = "bob-persistent-id"
    encrypted_data = encryption.encrypt_element(name_id, sp_pair.cert)
    plaintext = InProcessCryptoBackend().decrypt(etree.tostring(encrypted_data), key_file)
    assert "bob-persistent-id</" in plaintext and "NameID" in plaintext
    with pytest.raises(DecryptError):  # an Assertion is not what an EncryptedID may hold
        InProcessCryptoBackend().decrypt(
            etree.tostring(encryption.encrypt_element(assertion(), sp_pair.cert)), key_file
        )
    with pytest.raises(DecryptError):
        InProcessCryptoBackend().decrypt(etree.tostring(encrypted_data), str(tmp_path / "missing.key"))
