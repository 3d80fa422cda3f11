"""Enveloped XML signatures (verify and sign) and HTTP-Redirect binding signatures, in process.

Verification uses only the certificates the caller passes (configuration or IdP metadata): each
becomes the context's key in turn, so ``KeyInfo`` in the message is never read. The Signature must
be the element's one direct-child ``ds:Signature`` with a single Reference to ``#`` + its ID, in
the shape and algorithms ``gate.check_signature_shape`` allows; xmlsec itself is restricted to the
same transforms. Signing makes exc-c14n, SHA-256, RSA-SHA256 or ECDSA-SHA256 signatures with the
certificate in ``KeyInfo``, placed after ``saml:Issuer`` as the SAML schema orders it.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Sequence
from typing import Literal
from urllib.parse import unquote

import xmlsec
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from lxml.etree import _Element

from idp_connectors.xmlsecurity import gate
from idp_connectors.xmlsecurity.gate import DS_SIGNATURE, GatePolicy, XmlRejected, check_signature_shape
from idp_connectors.xmlsecurity.keys import (
    CertificateRejected,
    PrivateKey,
    check_private_key,
    check_public_key,
    load_certificates,
    xmlsec_private_key,
    xmlsec_public_key,
)

__all__ = [
    "is_signed",
    "load_certificates",
    "redirect_signed_octets",
    "sign_enveloped",
    "sign_redirect_query",
    "verify_enveloped",
    "verify_redirect_query",
]

SAML2_ISSUER = f"{{{gate.SAML2}}}Issuer"
_C = xmlsec.constants

_RSA_METHODS = frozenset({gate.RSA_SHA256, gate.RSA_SHA384, gate.RSA_SHA512, gate.RSA_SHA1})
_EC_METHODS = frozenset({gate.ECDSA_SHA256, gate.ECDSA_SHA384, gate.ECDSA_SHA512, gate.ECDSA_SHA1})
_REDIRECT_HASHES: dict[str, hashes.HashAlgorithm] = {
    gate.RSA_SHA256: hashes.SHA256(),
    gate.RSA_SHA384: hashes.SHA384(),
    gate.RSA_SHA512: hashes.SHA512(),
    gate.ECDSA_SHA256: hashes.SHA256(),
    gate.ECDSA_SHA384: hashes.SHA384(),
    gate.ECDSA_SHA512: hashes.SHA512(),
}


def _spki(public_key: object) -> bytes:
    if not isinstance(public_key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        return b""
    return public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def is_signed(element: _Element) -> bool:
    """Whether ``element`` has a direct-child ``ds:Signature`` (says nothing about its validity)."""
    return any(child.tag == DS_SIGNATURE for child in element)


def _enveloped_signature(element: _Element, id_attribute: str, policy: GatePolicy) -> _Element:
    signatures = [child for child in element if child.tag == DS_SIGNATURE]
    if not signatures:
        raise XmlRejected("signature_missing")
    if len(signatures) > 1:
        raise XmlRejected("xml_signature_shape")
    element_id = element.get(id_attribute)
    if not element_id:
        raise XmlRejected("xml_signature_shape")
    uri = check_signature_shape(signatures[0], policy)
    if uri != "#" + element_id:
        raise XmlRejected("signature_reference_mismatch")
    if gate.elements_with_id(element, element_id) != [element]:
        raise XmlRejected("xml_duplicate_id")
    return signatures[0]


def _restricted_context(policy: GatePolicy) -> xmlsec.SignatureContext:
    """A context whose xmlsec transform lists repeat the gate's allow-list (a second, independent fence)."""
    c14n = [_C.TransformExclC14N]
    if policy.allow_inclusive_c14n:
        c14n += [_C.TransformInclC14N, _C.TransformInclC14N11]
    digests = [_C.TransformSha256, _C.TransformSha384, _C.TransformSha512]
    methods = [
        _C.TransformRsaSha256,
        _C.TransformRsaSha384,
        _C.TransformRsaSha512,
        _C.TransformEcdsaSha256,
        _C.TransformEcdsaSha384,
        _C.TransformEcdsaSha512,
    ]
    if policy.allow_sha1:
        digests.append(_C.TransformSha1)
        methods += [_C.TransformRsaSha1, _C.TransformEcdsaSha1]
    context = xmlsec.SignatureContext()
    for transform in [_C.TransformEnveloped, *c14n, *digests]:
        context.enable_reference_transform(transform)
    for transform in [*c14n, *methods]:
        context.enable_signature_transform(transform)
    return context


def _key_fits(certificate: x509.Certificate, method: str | None) -> bool:
    public_key = certificate.public_key()
    try:
        check_public_key(public_key)
    except CertificateRejected:
        return False
    if isinstance(public_key, rsa.RSAPublicKey):
        return method in _RSA_METHODS
    return isinstance(public_key, ec.EllipticCurvePublicKey) and method in _EC_METHODS


def verify_enveloped(
    element: _Element,
    certificates: Sequence[x509.Certificate],
    *,
    id_attribute: str = "ID",
    policy: GatePolicy | None = None,
) -> _Element:
    """Verify ``element``'s enveloped signature with one of ``certificates``; returns ``element``.

    The caller reads identity only from the returned element. ``policy`` (default: the strict
    ``GatePolicy()``) must be the one the document was gated with, for an IdP allowed SHA-1 or
    inclusive C14N. Any failure is ``XmlRejected``: ``signature_missing``, ``signature_no_key``,
    ``signature_reference_mismatch``, ``signature_invalid`` or a gate shape/algorithm code.
    """
    policy = policy or GatePolicy()
    signature = _enveloped_signature(element, id_attribute, policy)
    signed_info = next(child for child in signature if child.tag == gate.DS_SIGNED_INFO)
    method = next(child for child in signed_info if child.tag == gate.DS_SIGNATURE_METHOD).get("Algorithm")
    usable = [certificate for certificate in certificates if _key_fits(certificate, method)]
    if not usable:
        raise XmlRejected("signature_no_key")
    for certificate in usable:
        context = _restricted_context(policy)
        context.key = xmlsec_public_key(certificate)
        context.register_id(element, id_attribute)
        try:
            context.verify(signature)
        except xmlsec.Error:
            continue
        return element
    raise XmlRejected("signature_invalid")


def sign_enveloped(
    element: _Element,
    key: PrivateKey,
    certificate: x509.Certificate,
    *,
    id_attribute: str = "ID",
    algorithm: Literal["rsa-sha256", "ecdsa-sha256"] = "rsa-sha256",
    insert_after: str | None = SAML2_ISSUER,
) -> None:
    """Sign ``element`` in place: enveloped, exc-c14n, SHA-256, one Reference ``#`` + its ID.

    The ``ds:Signature`` goes right after the first ``insert_after`` child when there is one,
    else first; ``KeyInfo`` carries ``certificate``. ``ValueError`` when the element has no ID
    or already a signature, or when key, certificate and algorithm do not match.
    """
    check_private_key(key)
    element_id = element.get(id_attribute)
    if not element_id:
        raise ValueError(f"the element to sign has no {id_attribute} attribute")
    if is_signed(element):
        raise ValueError("the element is already signed")
    if algorithm == "rsa-sha256" and isinstance(key, rsa.RSAPrivateKey):
        method = _C.TransformRsaSha256
    elif algorithm == "ecdsa-sha256" and isinstance(key, ec.EllipticCurvePrivateKey):
        method = _C.TransformEcdsaSha256
    else:
        raise ValueError(f"algorithm {algorithm} does not match a {type(key).__name__}")
    if _spki(certificate.public_key()) != _spki(key.public_key()):
        raise ValueError("the certificate is not the signing key's")
    signature = xmlsec.template.create(element, _C.TransformExclC14N, method, ns="ds")
    anchor = next((child for child in element if insert_after and child.tag == insert_after), None)
    if anchor is not None:
        anchor.addnext(signature)
    else:
        element.insert(0, signature)
    reference = xmlsec.template.add_reference(signature, _C.TransformSha256, uri="#" + element_id)
    xmlsec.template.add_transform(reference, _C.TransformEnveloped)
    xmlsec.template.add_transform(reference, _C.TransformExclC14N)
    key_info = xmlsec.template.ensure_key_info(signature)
    xmlsec.template.x509_data_add_certificate(xmlsec.template.add_x509_data(key_info))
    context = xmlsec.SignatureContext()
    context.key = xmlsec_private_key(key, certificate)
    context.register_id(element, id_attribute)
    try:
        context.sign(signature)
    except xmlsec.Error:
        signature.getparent().remove(signature)
        raise


# --- HTTP-Redirect binding (SAML Bindings 3.4.4.1) --------------------------------------------


def redirect_signed_octets(raw_query: str, message_parameter: str = "SAMLRequest") -> tuple[bytes, str, str]:
    """From a raw (still URL-encoded) query: the signed octets, the signature and the SigAlg.

    The octets are ``SAMLRequest=…&RelayState=…&SigAlg=…`` (or ``SAMLResponse``) rebuilt from the
    values exactly as they arrived, in that order; ``RelayState`` only when present. Duplicate or
    missing parameters: ``XmlRejected("redirect_signature_shape")``.
    """
    if message_parameter not in ("SAMLRequest", "SAMLResponse"):
        raise ValueError("message_parameter is SAMLRequest or SAMLResponse")
    raw: dict[str, str] = {}
    for pair in raw_query.split("&"):
        if not pair:
            continue
        name, _, value = pair.partition("=")
        name = unquote(name)
        if name in raw:
            raise XmlRejected("redirect_signature_shape")
        raw[name] = value
    if message_parameter not in raw or "SigAlg" not in raw or "Signature" not in raw:
        raise XmlRejected("redirect_signature_shape")
    parts = [f"{message_parameter}={raw[message_parameter]}"]
    if "RelayState" in raw:
        parts.append(f"RelayState={raw['RelayState']}")
    parts.append(f"SigAlg={raw['SigAlg']}")
    octets = "&".join(parts).encode("ascii", "strict")
    return octets, unquote(raw["Signature"]), unquote(raw["SigAlg"])


def _redirect_sig_alg(query: str) -> str | None:
    values = [unquote(pair[7:]) for pair in query.split("&") if pair.startswith("SigAlg=")]
    return values[0] if len(values) == 1 else None


def sign_redirect_query(query_without_signature: str, key: PrivateKey) -> str:
    """The base64 ``Signature`` over ``query_without_signature`` exactly as given.

    Its ``SigAlg`` must be rsa-sha256 for an RSA key or ecdsa-sha256 for an EC key (an ECDSA
    value is r‖s, as XML DSig 1.1 and RFC 4051 define it).
    """
    check_private_key(key)
    sig_alg = _redirect_sig_alg(query_without_signature)
    octets = query_without_signature.encode("ascii", "strict")
    if isinstance(key, rsa.RSAPrivateKey) and sig_alg == gate.RSA_SHA256:
        value = key.sign(octets, padding.PKCS1v15(), hashes.SHA256())
    elif isinstance(key, ec.EllipticCurvePrivateKey) and sig_alg == gate.ECDSA_SHA256:
        r, s = decode_dss_signature(key.sign(octets, ec.ECDSA(hashes.SHA256())))
        size = (key.curve.key_size + 7) // 8
        value = r.to_bytes(size, "big") + s.to_bytes(size, "big")
    else:
        raise ValueError(f"SigAlg {sig_alg!r} does not match a {type(key).__name__} (one SigAlg required)")
    return base64.b64encode(value).decode("ascii")


def _verify_one(certificate: x509.Certificate, octets: bytes, value: bytes, sig_alg: str) -> bool:
    public_key = certificate.public_key()
    try:
        check_public_key(public_key)
        if isinstance(public_key, rsa.RSAPublicKey) and sig_alg in _RSA_METHODS:
            public_key.verify(value, octets, padding.PKCS1v15(), _REDIRECT_HASHES[sig_alg])
            return True
        if isinstance(public_key, ec.EllipticCurvePublicKey) and sig_alg in _EC_METHODS:
            size = (public_key.curve.key_size + 7) // 8
            if len(value) != 2 * size:
                return False
            r, s = int.from_bytes(value[:size], "big"), int.from_bytes(value[size:], "big")
            public_key.verify(encode_dss_signature(r, s), octets, ec.ECDSA(_REDIRECT_HASHES[sig_alg]))
            return True
    except (InvalidSignature, CertificateRejected, ValueError):
        return False
    return False


def verify_redirect_query(
    signed_octets: bytes, signature_b64: str, sig_alg: str, certificates: Iterable[x509.Certificate]
) -> bool:
    """Whether ``signature_b64`` signs ``signed_octets`` under ``sig_alg`` with one of ``certificates``.

    ``sig_alg`` is RSA-SHA256/384/512 or ECDSA-SHA256/384/512 (never SHA-1 or HMAC).
    """
    if sig_alg not in _REDIRECT_HASHES:
        return False
    try:
        value = base64.b64decode(signature_b64.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        return False
    return any(_verify_one(certificate, signed_octets, value, sig_alg) for certificate in certificates)
