"""Loading and vetting the keys and certificates that XML signatures and encryption may use.

Certificates come from configuration or IdP metadata (PEM, DER, or the bare base64 body of a
metadata ``ds:X509Certificate``); RSA keys shorter than 2048 bits, EC keys off P-256/384/521 and
every other key type are refused. Also the (cached) conversion to ``xmlsec.Key`` objects.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from collections.abc import Iterable

import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey

MIN_RSA_BITS = 2048
ALLOWED_CURVES = frozenset({"secp256r1", "secp384r1", "secp521r1"})
_PEM_MARKER = b"-----BEGIN CERTIFICATE-----"
_WHITESPACE = re.compile(rb"\s+")


class CertificateRejected(ValueError):
    """A certificate or key that must not be used for XML signatures or encryption."""


def check_public_key(key: object) -> PublicKey:
    """The key if it is RSA ≥ 2048 bits or EC on an allowed curve; ``CertificateRejected`` otherwise."""
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise CertificateRejected(f"RSA key of {key.key_size} bits; at least {MIN_RSA_BITS} are required")
        return key
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in ALLOWED_CURVES:
            raise CertificateRejected(f"EC curve {key.curve.name} is not allowed; use P-256, P-384 or P-521")
        return key
    raise CertificateRejected(f"{type(key).__name__} keys are not allowed; use RSA (≥ 2048 bits) or EC")


def check_private_key(key: object) -> PrivateKey:
    """The private key if its public half passes ``check_public_key``."""
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise CertificateRejected(f"{type(key).__name__} keys are not allowed; use RSA (≥ 2048 bits) or EC")
    check_public_key(key.public_key())
    return key


def _load_one(item: bytes | str) -> list[x509.Certificate]:
    try:
        data = item.encode("ascii", "strict") if isinstance(item, str) else bytes(item)
        if _PEM_MARKER in data:
            return x509.load_pem_x509_certificates(data)
        if data[:1] == b"\x30":  # DER: a SEQUENCE
            return [x509.load_der_x509_certificate(data)]
        der = base64.b64decode(_WHITESPACE.sub(b"", data), validate=True)
        return [x509.load_der_x509_certificate(der)]
    except (ValueError, binascii.Error) as exc:
        raise CertificateRejected(f"not a certificate in PEM, DER or base64 form: {exc}") from None


def load_certificates(pem_or_der: Iterable[bytes | str]) -> list[x509.Certificate]:
    """Parse certificates (PEM, possibly several per item; DER; or a metadata base64 body).

    Raises ``CertificateRejected`` for anything unparsable, an RSA key under 2048 bits or any
    other disallowed key. An empty input gives an empty list (callers fail closed on it).
    """
    if isinstance(pem_or_der, bytes | str):
        raise TypeError("load_certificates takes an iterable of certificates, not one bytes/str")
    certificates: list[x509.Certificate] = []
    for item in pem_or_der:
        for certificate in _load_one(item):
            check_public_key(certificate.public_key())
            certificates.append(certificate)
    return certificates


def certificate_der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.DER)


@functools.lru_cache(maxsize=128)
def _xmlsec_public_key(der: bytes) -> xmlsec.Key:
    return xmlsec.Key.from_memory(der, xmlsec.constants.KeyDataFormatCertDer)


def xmlsec_public_key(certificate: x509.Certificate) -> xmlsec.Key:
    """The certificate's public key as an ``xmlsec.Key`` (cached; ``SignatureContext.key`` copies it)."""
    return _xmlsec_public_key(certificate_der(certificate))


@functools.lru_cache(maxsize=32)
def _xmlsec_private_key(key_der: bytes, cert_der: bytes | None) -> xmlsec.Key:
    key = xmlsec.Key.from_memory(key_der, xmlsec.constants.KeyDataFormatDer)
    if cert_der is not None:
        key.load_cert_from_memory(cert_der, xmlsec.constants.KeyDataFormatCertDer)
    return key


def private_key_der(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def xmlsec_private_key(key: PrivateKey, certificate: x509.Certificate | None = None) -> xmlsec.Key:
    """The private key (with its certificate attached, for ``KeyInfo``) as an ``xmlsec.Key``."""
    check_private_key(key)
    cert_der = None if certificate is None else certificate_der(certificate)
    return _xmlsec_private_key(private_key_der(key), cert_der)
