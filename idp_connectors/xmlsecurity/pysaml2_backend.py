"""pysaml2's crypto backend, in process on the ``xmlsec`` binding, behind our gate.

pysaml2 7.5 ships ``CryptoBackendXmlSec1`` (an ``xmlsec1`` subprocess and temporary files per
operation) and ``CryptoBackendXMLSecurity`` (pyXMLSecurity, whose module name clashes with the
``xmlsec`` binding and which cannot encrypt). ``InProcessCryptoBackend`` implements the same
methods pysaml2 calls (``sign_statement``, ``validate_signature``, ``encrypt``,
``encrypt_assertion``, ``decrypt``) with ``signature`` and ``encryption``: every document it
verifies or decrypts passes ``gate.parse_inbound`` first, signatures are checked only with the
certificate pysaml2 took from metadata, and only SHA-256-or-stronger templates are signed.

``security_context(config)`` builds pysaml2's ``SecurityContext`` on it, always with
``only_use_keys_in_metadata``; ``use_in_process_crypto(entity)`` puts that context on a
``Saml2Client``/``Server`` and on its metadata store. pysaml2 looks for the ``xmlsec1`` binary while
loading a config whose ``crypto_backend`` is ``xmlsec1`` (its default), so configs meant for this
backend set ``crypto_backend: "XMLSecurity"`` (``PYSAML2_CONFIG`` below); that placeholder is
replaced before any cryptographic use.
"""

from __future__ import annotations

import functools
import re
import secrets
from importlib.metadata import version as distribution_version
from pathlib import Path
from typing import Any

import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree
from lxml.etree import _Element
from saml2.sigver import (
    CryptoBackend,
    DecryptError,
    EncryptError,
    RSACrypto,
    SecurityContext,
    SignatureError,
    pre_encrypt_assertion,
)

from idp_connectors.xmlsecurity import encryption, gate
from idp_connectors.xmlsecurity.gate import DS_SIGNATURE, GatePolicy, XmlRejected, parse_inbound
from idp_connectors.xmlsecurity.keys import (
    CertificateRejected,
    PrivateKey,
    check_private_key,
    load_certificates,
    xmlsec_private_key,
)
from idp_connectors.xmlsecurity.signature import verify_enveloped

PYSAML2_CONFIG: dict[str, Any] = {"crypto_backend": "XMLSecurity", "only_use_keys_in_metadata": True}
"""Keys to merge into a pysaml2 config dict meant for this backend (no ``xmlsec1`` lookup)."""

_FAILED_VERIFICATION = frozenset({"signature_invalid", "signature_no_key"})
_ENCRYPTED_ID_PLAINTEXT = frozenset({f"{{{gate.SAML2}}}NameID", f"{{{gate.SAML2}}}Attribute"})


def _text(statement: Any) -> bytes:
    """pysaml2 hands over ``str``, ``bytes`` or a ``SamlBase`` instance."""
    if isinstance(statement, bytes):
        return statement
    return str(statement).encode("utf-8")


def _serialise(root: _Element) -> str:
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8")).decode("utf-8")


def _parse_own(data: bytes) -> _Element:
    """Parse a document pysaml2 built (outbound): the hardened parser, without the inbound size cap."""
    root = etree.fromstring(data, gate._parser())
    if root.getroottree().docinfo.internalDTD is not None:
        raise ValueError("a DOCTYPE in a document to sign or encrypt")
    return root


def _clark(node_name: str) -> str:
    """``urn:…:assertion:Assertion`` (pysaml2's class name) to ``{urn:…:assertion}Assertion``."""
    namespace, _, local = node_name.rpartition(":")
    return f"{{{namespace}}}{local}"


@functools.lru_cache(maxsize=32)
def _private_key(pem: bytes) -> PrivateKey:
    return check_private_key(serialization.load_pem_private_key(pem, password=None))


@functools.lru_cache(maxsize=64)
def _certificates(data: bytes, cert_type: str) -> tuple[x509.Certificate, ...]:
    if cert_type == "der":
        return (x509.load_der_x509_certificate(data),)
    return tuple(load_certificates([data]))


class InProcessCryptoBackend(CryptoBackend):  # type: ignore[misc]
    """pysaml2 ``CryptoBackend`` on the xmlsec binding, with the inbound gate on every input."""

    def __init__(self, policy: GatePolicy | None = None) -> None:
        super().__init__()
        self.policy = policy or GatePolicy()

    @property
    def version(self) -> str:
        return distribution_version("xmlsec")

    # --- signatures ---------------------------------------------------------------------------

    def sign_statement(self, statement: Any, node_name: str, key_file: str, node_id: str | None) -> str:
        """Fill in the ``ds:Signature`` template pysaml2 placed in the ``node_name`` element."""
        try:
            root = _parse_own(_text(statement))
            target = self._signature_target(root, _clark(node_name), node_id)
            template = next(child for child in target if child.tag == DS_SIGNATURE)
            gate.check_signature_shape(template, GatePolicy())
            key = _private_key(Path(key_file).read_bytes())
            context = xmlsec.SignatureContext()
            context.key = xmlsec_private_key(key)
            context.register_id(target, "ID")
            context.sign(template)
        except XmlRejected as exc:
            raise SignatureError(
                f"refusing to sign a template outside policy ({exc.detail}); configure pysaml2 with "
                "signing_algorithm rsa-sha256 and digest_algorithm sha256"
            ) from None
        except (OSError, ValueError, StopIteration, xmlsec.Error, etree.XMLSyntaxError) as exc:
            raise SignatureError(f"signing failed: {exc!r}") from None
        return _serialise(root)

    @staticmethod
    def _signature_target(root: _Element, tag: str, node_id: str | None) -> _Element:
        for element in root.iter(etree.Element):
            if element.tag != tag or (node_id is not None and element.get("ID") != node_id):
                continue
            if any(child.tag == DS_SIGNATURE for child in element):
                return element
        raise ValueError(f"no {tag} with a signature template (ID {node_id!r})")

    def validate_signature(
        self, signedtext: Any, cert_file: str, cert_type: str, node_name: str, node_id: str | None
    ) -> bool:
        """Gate ``signedtext``, then verify the ``node_name`` element with ID ``node_id``.

        ``False`` when the signature does not verify with this certificate (pysaml2 then tries
        the next one from metadata); ``XmlRejected`` for a document the gate refuses.
        """
        root = parse_inbound(_text(signedtext), self.policy)
        try:
            certificates = list(_certificates(Path(cert_file).read_bytes(), cert_type))
        except (OSError, ValueError, CertificateRejected):
            return False
        tag = _clark(node_name)
        candidates = [
            element
            for element in root.iter(etree.Element)
            if element.tag == tag and (node_id is None or element.get("ID") == node_id)
        ]
        if len(candidates) != 1:
            return False
        try:
            verify_enveloped(candidates[0], certificates, policy=self.policy)
        except XmlRejected as exc:
            if exc.detail in _FAILED_VERIFICATION:
                return False
            raise
        return True

    # --- encryption ---------------------------------------------------------------------------

    def encrypt(self, text: Any, recv_key: str, template: Any, session_key_type: Any, xpath: str = "") -> str:
        """The element in ``text`` as an ``xenc:EncryptedData`` for the certificate in ``recv_key``.

        Always AES-256-GCM with RSA-OAEP, whatever the template asks for.
        """
        try:
            root = _parse_own(_text(text))
            target = root.xpath(xpath)[0] if xpath else root
            certificate = _certificates(Path(recv_key).read_bytes(), "pem")[0]
            return _serialise(encryption.encrypt_element(target, certificate))
        except (OSError, ValueError, IndexError, xmlsec.Error, etree.XMLSyntaxError) as exc:
            raise EncryptError(f"encryption failed: {exc!r}") from None

    def encrypt_assertion(
        self,
        statement: Any,
        enc_key: str,
        template: Any,
        key_type: Any = None,
        node_xpath: str | None = None,
        node_id: str | None = None,
    ) -> str:
        """Encrypt the Assertion pysaml2 moved into an ``EncryptedAssertion`` (AES-256-GCM + RSA-OAEP)."""
        if not isinstance(statement, str | bytes):
            statement = pre_encrypt_assertion(statement)
        try:
            root = _parse_own(_text(statement))
            certificate = _certificates(Path(enc_key).read_bytes(), "pem")[0]
            targets = [
                element
                for element in root.xpath(node_xpath or "//*[local-name()='EncryptedAssertion']/*")
                if isinstance(element, etree._Element)
                and element.tag == encryption.ASSERTION
                and (node_id is None or element.get("ID") == node_id)
            ]
            if not targets:
                raise ValueError("no Assertion to encrypt")
            target = targets[0]
            encrypted = encryption.encrypt_element(target, certificate)
            target.addnext(encrypted)
            target.getparent().remove(target)
        except (OSError, ValueError, IndexError, xmlsec.Error, etree.XMLSyntaxError) as exc:
            raise EncryptError(f"encryption failed: {exc!r}") from None
        return _serialise(root)

    def decrypt(self, enctext: Any, key_file: str) -> str:
        """``enctext`` with each ``EncryptedAssertion``'s ``EncryptedData`` replaced by its Assertion
        (as ``xmlsec1 --decrypt`` leaves it for pysaml2), or a lone ``EncryptedData`` (EncryptedID,
        EncryptedAttribute) replaced by its plaintext. Any failure: ``DecryptError``.

        The decrypted element is spliced back as the exact text the gate accepted: moving it with
        lxml would rename its namespace prefixes to the ones in scope, which changes its
        exclusive canonical form and so breaks its signature.
        """
        try:
            key = _private_key(Path(key_file).read_bytes())
            if not isinstance(key, rsa.RSAPrivateKey):
                raise DecryptError("decryption needs an RSA key")
            root = parse_inbound(_text(enctext), self.policy)
            if root.tag == encryption.ENCRYPTED_DATA:
                holder = etree.Element("holder")
                holder.append(root)
                plaintext = encryption.decrypt_element(
                    holder, key, policy=self.policy, plaintext_tags=_ENCRYPTED_ID_PLAINTEXT
                )
                return _serialise(plaintext)
            splices: dict[str, bytes] = {}
            for container in [
                el for el in root.iter(etree.Element) if el.tag == encryption.ENCRYPTED_ASSERTION
            ]:
                assertion = encryption.decrypt_assertion(container, key, policy=self.policy)
                encrypted_data = next(child for child in container if child.tag == encryption.ENCRYPTED_DATA)
                marker = f"xmlsecurity-decrypted-{secrets.token_hex(16)}"
                encrypted_data.addnext(etree.Element(marker))
                container.remove(encrypted_data)
                splices[marker] = bytes(etree.tostring(assertion))
        except (XmlRejected, OSError, ValueError, StopIteration) as exc:
            raise DecryptError(f"decryption failed: {getattr(exc, 'detail', 'decryption_failed')}") from None
        text = bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
        for name, replacement in splices.items():
            found = list(re.finditer(rb"<" + name.encode() + rb"(?:\s[^>]*)?/>", text))
            if len(found) != 1:
                raise DecryptError("decryption failed: splice")
            text = text[: found[0].start()] + replacement + text[found[0].end() :]
        return text.decode("utf-8")


def security_context(config: Any, policy: GatePolicy | None = None) -> SecurityContext:
    """pysaml2's ``SecurityContext`` for ``config`` (a ``saml2.config.Config``) on our backend.

    Mirrors ``saml2.sigver.security_context`` except for the backend and for
    ``only_use_keys_in_metadata``, which is always on: signatures are checked only with the
    certificates the IdP's metadata lists, never with one the message carries.
    """
    sec_backend = None
    key_file = getattr(config, "key_file", None)
    if key_file:
        key = _private_key(Path(key_file).read_bytes())
        if isinstance(key, rsa.RSAPrivateKey):
            sec_backend = RSACrypto(key)
    keypairs = getattr(config, "encryption_keypairs", None) or []
    return SecurityContext(
        InProcessCryptoBackend(policy),
        key_file,
        cert_file=getattr(config, "cert_file", None),
        metadata=getattr(config, "metadata", None),
        only_use_keys_in_metadata=True,
        cert_handler_extra_class=getattr(config, "cert_handler_extra_class", None),
        generate_cert_info=getattr(config, "generate_cert_info", None),
        tmp_cert_file=getattr(config, "tmp_cert_file", None),
        tmp_key_file=getattr(config, "tmp_key_file", None),
        validate_certificate=getattr(config, "validate_certificate", None),
        enc_key_files=[pair["key_file"] for pair in keypairs if "key_file" in pair],
        encryption_keypairs=getattr(config, "encryption_keypairs", None),
        sec_backend=sec_backend,
        delete_tmpfiles=getattr(config, "delete_tmpfiles", True),
    )


def use_in_process_crypto(entity: Any, policy: GatePolicy | None = None) -> SecurityContext:
    """Give a ``Saml2Client`` / ``Server`` (any ``saml2.entity.Entity``) and its metadata store our
    backend; returns the new context. Call it right after constructing the entity."""
    context = security_context(entity.config, policy)
    entity.sec = context
    metadata = getattr(entity, "metadata", None)
    if metadata is not None and hasattr(metadata, "security"):
        metadata.security = context
        for source in getattr(metadata, "metadata", {}).values():
            if hasattr(source, "security"):
                source.security = context
    return context
