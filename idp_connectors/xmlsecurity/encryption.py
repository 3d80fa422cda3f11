"""``saml:EncryptedAssertion`` in process: RSA-OAEP key transport and AES-GCM data (section 7).

Decryption accepts only ``xenc#rsa-oaep-mgf1p`` or ``xenc11#rsa-oaep`` for the key (never
``rsa-1_5``: no Bleichenbacher oracle is ever offered) and AES-GCM for the data, AES-CBC only with
``GatePolicy.allow_cbc``. The session key is unwrapped with ``cryptography``; when that fails a
random key takes its place so the data step fails the same way, and every failure, whatever its
cause, is the one ``XmlRejected("decryption_failed")``. The decrypted Assertion is serialised and
passed through the inbound gate again (no DOCTYPE, comments dropped, signature shape) and returned
as its own root: callers then verify its signature exactly as on the plain path.
"""

from __future__ import annotations

import base64
import binascii
import copy
import os

import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from lxml import etree
from lxml.etree import _Element

from idp_connectors.xmlsecurity.gate import DS, SAML2, XENC, GatePolicy, XmlRejected, parse_inbound
from idp_connectors.xmlsecurity.keys import PrivateKey, check_public_key, xmlsec_public_key

XENC11 = "http://www.w3.org/2009/xmlenc11#"
ENCRYPTED_ASSERTION = f"{{{SAML2}}}EncryptedAssertion"
ASSERTION = f"{{{SAML2}}}Assertion"
ENCRYPTED_DATA = f"{{{XENC}}}EncryptedData"
ENCRYPTED_KEY = f"{{{XENC}}}EncryptedKey"
_ENCRYPTION_METHOD = f"{{{XENC}}}EncryptionMethod"
_CIPHER_DATA = f"{{{XENC}}}CipherData"
_CIPHER_VALUE = f"{{{XENC}}}CipherValue"
_OAEP_PARAMS = f"{{{XENC}}}OAEPparams"
_KEY_INFO = f"{{{DS}}}KeyInfo"
_DIGEST_METHOD = f"{{{DS}}}DigestMethod"
_MGF = f"{{{XENC11}}}MGF"
TYPE_ELEMENT = XENC + "Element"

RSA_OAEP_MGF1P = XENC + "rsa-oaep-mgf1p"
RSA_OAEP = XENC11 + "rsa-oaep"
KEY_TRANSPORT = frozenset({RSA_OAEP_MGF1P, RSA_OAEP})
GCM = {XENC11 + "aes128-gcm": 16, XENC11 + "aes192-gcm": 24, XENC11 + "aes256-gcm": 32}
CBC = {XENC + "aes128-cbc": 16, XENC + "aes192-cbc": 24, XENC + "aes256-cbc": 32}
_OAEP_DIGESTS: dict[str, hashes.HashAlgorithm] = {
    DS + "sha1": hashes.SHA1(),  # noqa: S303 - OAEP's default hash; not a signature digest
    XENC + "sha256": hashes.SHA256(),
    "http://www.w3.org/2001/04/xmldsig-more#sha384": hashes.SHA384(),
    XENC + "sha512": hashes.SHA512(),
}
_MGF1 = {
    XENC11 + "mgf1sha1": hashes.SHA1(),  # noqa: S303 - MGF1 default
    XENC11 + "mgf1sha256": hashes.SHA256(),
    XENC11 + "mgf1sha384": hashes.SHA384(),
    XENC11 + "mgf1sha512": hashes.SHA512(),
}
MAX_ENCRYPTED_KEYS = 4


class _Failed(Exception):
    """Internal: any reason at all; surfaces only as ``decryption_failed``."""


def _elements(parent: _Element) -> list[_Element]:
    return [child for child in parent if isinstance(child.tag, str)]


def _one(parent: _Element, tag: str) -> _Element:
    found = [child for child in parent if child.tag == tag]
    if len(found) != 1:
        raise _Failed
    return found[0]


def _cipher_value(parent: _Element) -> bytes:
    cipher_data = _one(parent, _CIPHER_DATA)
    if [child.tag for child in _elements(cipher_data)] != [_CIPHER_VALUE]:
        raise _Failed  # CipherReference (a fetch) is never followed
    try:
        return base64.b64decode("".join((cipher_data[0].text or "").split()), validate=True)
    except (binascii.Error, ValueError):
        raise _Failed from None


def _algorithm(parent: _Element) -> str:
    return str(_one(parent, _ENCRYPTION_METHOD).get("Algorithm") or "")


def _oaep(method: _Element, algorithm: str) -> padding.OAEP:
    digest: hashes.HashAlgorithm = hashes.SHA1()  # noqa: S303 - the xmlenc default
    mgf: hashes.HashAlgorithm = hashes.SHA1()  # noqa: S303 - the xmlenc default
    label = None
    for child in _elements(method):
        if child.tag == _DIGEST_METHOD and child.get("Algorithm") in _OAEP_DIGESTS:
            digest = _OAEP_DIGESTS[str(child.get("Algorithm"))]
        elif child.tag == _MGF and algorithm == RSA_OAEP and child.get("Algorithm") in _MGF1:
            mgf = _MGF1[str(child.get("Algorithm"))]
        elif child.tag == _OAEP_PARAMS:
            try:
                label = base64.b64decode("".join((child.text or "").split()), validate=True) or None
            except (binascii.Error, ValueError):
                raise _Failed from None
        else:
            raise _Failed
    return padding.OAEP(mgf=padding.MGF1(mgf), algorithm=digest, label=label)


def _encrypted_keys(container: _Element, encrypted_data: _Element) -> list[_Element]:
    keys = [child for child in container if child.tag == ENCRYPTED_KEY]
    for key_info in (child for child in encrypted_data if child.tag == _KEY_INFO):
        keys += [child for child in key_info if child.tag == ENCRYPTED_KEY]
    if not 1 <= len(keys) <= MAX_ENCRYPTED_KEYS:
        raise _Failed
    return keys


def _session_key(keys: list[_Element], private_key: rsa.RSAPrivateKey, size: int) -> bytes:
    """The unwrapped key, or random bytes of the right size: the data step then fails alike."""
    for encrypted_key in keys:
        try:
            algorithm = _algorithm(encrypted_key)
            if algorithm not in KEY_TRANSPORT:
                continue
            oaep = _oaep(_one(encrypted_key, _ENCRYPTION_METHOD), algorithm)
            session_key = private_key.decrypt(_cipher_value(encrypted_key), oaep)
        except (_Failed, ValueError):
            continue
        if len(session_key) == size:
            return session_key
    return os.urandom(size)


def decrypt_assertion(encrypted_assertion: _Element, key: PrivateKey, *, policy: GatePolicy) -> _Element:
    """The Assertion inside ``encrypted_assertion``, re-gated and detached as its own root.

    ``encrypted_assertion`` is not modified. ``key`` is our RSA encryption key. Any failure is
    ``XmlRejected("decryption_failed")``; the caller verifies the returned Assertion's signature.
    """
    if encrypted_assertion.tag != ENCRYPTED_ASSERTION:
        raise XmlRejected("decryption_failed")
    return decrypt_element(encrypted_assertion, key, policy=policy, plaintext_tags=frozenset({ASSERTION}))


def decrypt_element(
    container: _Element, key: PrivateKey, *, policy: GatePolicy, plaintext_tags: frozenset[str]
) -> _Element:
    """The element encrypted in ``container`` (``EncryptedAssertion``, ``EncryptedID``, …: one
    ``xenc:EncryptedData`` and optional ``xenc:EncryptedKey`` siblings), re-gated, as its own root.

    Its tag must be one of ``plaintext_tags``. Every failure: ``XmlRejected("decryption_failed")``.
    """
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("decrypting XML needs an RSA private key")
    try:
        return _decrypt(container, key, policy, plaintext_tags)
    except Exception:  # every cause, xmlsec's and lxml's included, is the same answer
        raise XmlRejected("decryption_failed") from None


def _decrypt(
    container: _Element, key: rsa.RSAPrivateKey, policy: GatePolicy, plaintext_tags: frozenset[str]
) -> _Element:
    if any(child.tag not in (ENCRYPTED_DATA, ENCRYPTED_KEY) for child in _elements(container)):
        raise _Failed
    encrypted_data = _one(container, ENCRYPTED_DATA)
    if encrypted_data.get("Type", TYPE_ELEMENT) != TYPE_ELEMENT:
        raise _Failed
    data_algorithm = _algorithm(encrypted_data)
    allowed = GCM | (CBC if policy.allow_cbc else {})
    if data_algorithm not in allowed:
        raise _Failed
    _cipher_value(encrypted_data)  # CipherValue only, well-formed base64
    session_key = _session_key(_encrypted_keys(container, encrypted_data), key, allowed[data_algorithm])

    # Decrypt a copy in a wrapper that carries every namespace in scope, so the plaintext parses
    # exactly as it would have in place; xmlsec never reads KeyInfo because the key is set.
    wrapper = etree.Element("decrypted", nsmap={k: v for k, v in container.nsmap.items() if k})
    target = copy.deepcopy(encrypted_data)
    for key_info in [child for child in target if child.tag == _KEY_INFO]:
        target.remove(key_info)
    wrapper.append(target)
    context = xmlsec.EncryptionContext()
    context.key = xmlsec.Key.from_binary_data(xmlsec.constants.KeyDataAes, session_key)
    context.decrypt(target)
    if len(wrapper) != 1 or wrapper[0].tag not in plaintext_tags:
        raise _Failed
    plaintext = etree.tostring(wrapper[0])
    if len(plaintext) > policy.max_bytes:
        raise _Failed
    root = parse_inbound(plaintext, policy)
    if root.tag not in plaintext_tags:
        raise _Failed
    return root


def encrypt_element(element: _Element, certificate: x509.Certificate) -> _Element:
    """``element`` (copied, not moved) as an ``xenc:EncryptedData``: AES-256-GCM + RSA-OAEP-MGF1P."""
    public_key = check_public_key(certificate.public_key())
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise ValueError("encryption needs the recipient's RSA certificate")
    holder = etree.Element("holder")
    holder.append(copy.deepcopy(element))
    template = xmlsec.template.encrypted_data_create(
        holder, xmlsec.constants.TransformAes256Gcm, type=TYPE_ELEMENT, ns="xenc"
    )
    xmlsec.template.encrypted_data_ensure_cipher_value(template)
    key_info = xmlsec.template.encrypted_data_ensure_key_info(template, ns="ds")
    encrypted_key = xmlsec.template.add_encrypted_key(key_info, xmlsec.constants.TransformRsaOaep)
    xmlsec.template.encrypted_data_ensure_cipher_value(encrypted_key)
    manager = xmlsec.KeysManager()
    manager.add_key(xmlsec_public_key(certificate))
    context = xmlsec.EncryptionContext(manager)
    context.key = xmlsec.Key.generate(xmlsec.constants.KeyDataAes, 256, xmlsec.constants.KeyDataTypeSession)
    encrypted = context.encrypt_xml(template, holder[0])
    holder.remove(encrypted)
    return encrypted


def encrypt_assertion(assertion: _Element, certificate: x509.Certificate) -> _Element:
    """A ``saml:EncryptedAssertion`` holding ``assertion`` (copied), for our SAML IdP and tests."""
    if assertion.tag != ASSERTION:
        raise ValueError("encrypt_assertion takes a saml:Assertion")
    encrypted_assertion = etree.Element(ENCRYPTED_ASSERTION, nsmap={"saml": SAML2})
    encrypted_assertion.append(encrypt_element(assertion, certificate))
    return encrypted_assertion
