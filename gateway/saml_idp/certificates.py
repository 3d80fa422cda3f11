"""The SAML signing certificates: one deterministic self-signed X.509 certificate per RS256 key.

SAML carries keys in certificates, so each RS256 key of the key store (``gateway.tokens.keys``)
gets one: subject and issuer CN = the tenant's name, the serial derived from the key id,
valid from the key's creation for ten years, signed by the key itself (PKCS#1 v1.5 signatures
are deterministic, so every worker and replica makes the same bytes). The certificate follows the
key: ``gateway keys rotate --algorithm RS256`` publishes a successor that metadata lists before
it signs, and a retired key's certificate disappears with it. Certificates are cached per key.
"""

from __future__ import annotations

import datetime
import hashlib
import threading
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from gateway.tokens.keys import SigningKey

if TYPE_CHECKING:
    from gateway.runtime import Runtime

ALGORITHM = "RS256"
VALIDITY = datetime.timedelta(days=3652)
_CACHE_SIZE = 32

_cache: dict[tuple[str, int, str], x509.Certificate] = {}
_lock = threading.Lock()


def private_key(key: SigningKey) -> rsa.RSAPrivateKey:
    """The key's ``cryptography`` RSA private key; ``ValueError`` for any other key."""
    found = key.jwk.private_key if key.alg == ALGORITHM else None
    if not isinstance(found, rsa.RSAPrivateKey):
        raise ValueError(f"signing key {key.kid} is not an RS256 key")
    return found


def serial_number(kid: str) -> int:
    """A positive serial of at most 152 bits, derived from the key id."""
    return int.from_bytes(hashlib.sha256(kid.encode("utf-8")).digest()[:19], "big") or 1


def _build(key: SigningKey, tenant_name: str) -> x509.Certificate:
    signer = private_key(key)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, tenant_name)])
    start = datetime.datetime.fromtimestamp(key.created_at, datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(signer.public_key())
        .serial_number(serial_number(key.kid))
        .not_valid_before(start)
        .not_valid_after(start + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(signer, hashes.SHA256())
    )


def certificate_for(key: SigningKey, tenant_name: str) -> x509.Certificate:
    """The key's certificate (made once per key id, creation time and tenant name)."""
    cache_key = (key.kid, key.created_at, tenant_name)
    with _lock:
        found = _cache.get(cache_key)
    if found is not None:
        return found
    certificate = _build(key, tenant_name)
    with _lock:
        if len(_cache) >= _CACHE_SIZE:
            _cache.clear()
        _cache[cache_key] = certificate
    return certificate


def signer(rt: Runtime) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    """The RS256 key that signs now, and its certificate."""
    key = rt.keys.signing_key(ALGORITHM)
    return private_key(key), certificate_for(key, rt.settings.tenant.name)


def published_certificates(rt: Runtime) -> list[x509.Certificate]:
    """A certificate for every published RS256 key, oldest first, the upcoming one included."""
    return [certificate_for(key, rt.settings.tenant.name) for key in rt.keys.published_keys(ALGORITHM)]
