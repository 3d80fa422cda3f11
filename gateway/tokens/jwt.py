"""One compact JWS/JWT with a key already chosen: encode, parse, check, and the OIDC hash helper.

This module knows the token format and nothing about where keys come from (that is
``gateway.tokens.keys``). Only the asymmetric algorithms in ``SUPPORTED_ALGS`` exist here:
``none`` and HS* can neither be produced nor accepted, whatever a caller or a token header
asks for (RFC 8725 section 3.1). Verification and RS256 signing go through joserfc; ES256 signing
is written out here (docs/adr/0009): it is one ID token per code exchange and joserfc's generic
path cost a third more than the signature itself.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey

from gateway.jsontext import strict_bytes

SUPPORTED_ALGS: Final = frozenset({"ES256", "RS256"})
# Header parameters a token of ours carries; anything else (crit, jku, jwk, x5u, b64, ...) is refused.
ALLOWED_HEADER: Final = frozenset({"alg", "kid", "typ"})
# Our tokens are a few hundred bytes; refuse absurd input before decoding anything.
MAX_TOKEN_LENGTH: Final = 16384

_HALF_HASH = {"256": hashlib.sha256, "384": hashlib.sha384, "512": hashlib.sha512}
_REGISTRIES: Final = {alg: jws.JWSRegistry(algorithms=[alg]) for alg in SUPPORTED_ALGS}
_ECDSA_SHA256: Final = ec.ECDSA(hashes.SHA256())
_P256_BYTES: Final = 32

SigningJWK = ECKey | RSAKey


class InvalidToken(Exception):
    """A token that is not one we signed with a key we still hold; ``reason`` says why, briefly."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def b64url(data: bytes) -> str:
    """Base64url without padding (RFC 7515 section 2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def half_hash(value: str, alg: str) -> str:
    """``at_hash`` / ``c_hash`` / ``s_hash`` of ``value`` for a token signed with ``alg``.

    OIDC Core 3.1.3.6: hash the ASCII octets with the hash of the JWS ``alg`` (SHA-256 for
    ES256 and RS256), keep the left-most half, base64url-encode it.
    """
    digest = _HALF_HASH.get(alg[-3:]) if alg[:2] in {"ES", "RS", "PS", "HS"} else None
    if digest is None:
        raise ValueError(f"no OIDC half hash is defined for alg {alg!r}")
    full = digest(value.encode("ascii")).digest()
    return b64url(full[: len(full) // 2])


def key_fits(key: SigningJWK, alg: str) -> bool:
    """Whether ``key`` is a key type (and curve / size) that ``alg`` may use."""
    if alg == "ES256":
        return isinstance(key, ECKey) and key.curve_name == "P-256"
    if alg == "RS256":
        return isinstance(key, RSAKey) and key.raw_value.key_size >= 2048
    return False


def encode(claims: dict[str, Any], key: SigningJWK, *, alg: str, kid: str, typ: str) -> str:
    """A compact JWS of ``claims`` (compact JSON, UTF-8) with the protected header {alg, kid, typ}."""
    if alg not in SUPPORTED_ALGS or not key_fits(key, alg):
        raise ValueError(f"cannot sign {alg!r} with this key")
    payload = strict_bytes(claims)
    if alg == "ES256":
        private = key.private_key
        if not isinstance(private, ec.EllipticCurvePrivateKey):
            raise ValueError("cannot sign ES256 with a public key")
        _may_sign(key, alg)
        return es256_compact(payload, private, protected_header(alg, kid, typ))
    header = {"alg": alg, "kid": kid, "typ": typ}
    return jws.serialize_compact(header, payload, key, registry=_REGISTRIES[alg])


def _may_sign(key: SigningJWK, alg: str) -> None:
    """joserfc's checks before it signs: the JWK's ``use``, ``alg`` and ``key_ops`` allow it."""
    try:
        key.check_use("sig")
        key.check_alg(alg)
        key.check_key_op("sign")
    except JoseError as exc:
        raise ValueError(f"cannot sign {alg!r} with this key: {exc}") from exc


@lru_cache(maxsize=64)
def protected_header(alg: str, kid: str, typ: str) -> str:
    """The base64url of the protected header {alg, kid, typ}, as joserfc writes it (compact JSON,
    in that order). Cached: a ring holds a handful of kids and two typs, so this is a few entries."""
    return b64url(json.dumps({"alg": alg, "kid": kid, "typ": typ}, separators=(",", ":")).encode())


def es256_compact(payload: bytes, key: ec.EllipticCurvePrivateKey, header: str) -> str:
    """RFC 7515 compact serialization of ``payload`` signed with ES256 (RFC 7518 3.4) under the
    already encoded protected ``header``: ECDSA P-256 / SHA-256 by cryptography, its DER signature
    turned into the fixed-width big-endian ``R || S`` (32 octets each) that JWS requires."""
    signing_input = f"{header}.{b64url(payload)}"
    r, s = decode_dss_signature(key.sign(signing_input.encode("ascii"), _ECDSA_SHA256))
    return f"{signing_input}.{b64url(r.to_bytes(_P256_BYTES, 'big') + s.to_bytes(_P256_BYTES, 'big'))}"


@dataclass(frozen=True, slots=True)
class Parsed:
    """A syntactically valid compact JWS whose signature has not been checked yet."""

    header: dict[str, Any]
    payload: bytes
    _signature: jws.CompactSignature

    @property
    def alg(self) -> str:
        return str(self.header["alg"])

    @property
    def kid(self) -> str | None:
        kid = self.header.get("kid")
        return kid if isinstance(kid, str) else None


def parse(token: str) -> Parsed:
    """Split and decode a compact JWS; only the header parameters we emit are accepted."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
        raise InvalidToken("malformed token")
    try:
        obj = jws.extract_compact(token.encode("ascii"))
    except (JoseError, ValueError, UnicodeError) as error:
        raise InvalidToken("malformed token") from error
    header = obj.headers()
    if not set(header) <= ALLOWED_HEADER:
        raise InvalidToken("unexpected header parameter")
    if not isinstance(header.get("alg"), str):
        raise InvalidToken("malformed token")
    return Parsed(header, obj.payload, obj)


def check(parsed: Parsed, key: SigningJWK, alg: str) -> dict[str, Any]:
    """Verify the signature of ``parsed`` with ``key`` under exactly ``alg``; return the claims."""
    if alg not in SUPPORTED_ALGS or parsed.alg != alg:
        raise InvalidToken("alg not allowed")
    if not key_fits(key, alg):
        raise InvalidToken("key does not fit alg")
    try:
        valid = jws.validate_compact(parsed._signature, key, registry=_REGISTRIES[alg])
    except JoseError as error:
        raise InvalidToken("bad signature") from error
    if not valid:
        raise InvalidToken("bad signature")
    try:
        claims = json.loads(parsed.payload)
    except ValueError as error:
        raise InvalidToken("payload is not JSON") from error
    if not isinstance(claims, dict):
        raise InvalidToken("payload is not a JSON object")
    return claims
