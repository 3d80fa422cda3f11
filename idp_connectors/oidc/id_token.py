"""ID token validation (OpenID Connect Core 1.0 section 3.1.3.7), with joserfc for the JWS.

Order matters and is fixed: the header's ``alg`` is checked against the connector's
allow-list before any key is looked at (so ``none`` and HS256-keyed-with-the-public-key
fail there); the key comes from the upstream JWKS only and must fit ``alg``; then the
signature; then the claims, each with its own error code. A signed userinfo response
(``application/jwt``) goes through the same signature path.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import warnings
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol

from joserfc import jws
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import Key, OKPKey

from idp_connectors.base import ConnectorError

MAX_TOKEN_CHARS = 64 * 1024
MAX_SUBJECT_CHARS = 255  # Core 1.0 section 2: `sub` must not exceed 255 ASCII characters
_UNSUPPORTED_HEADERS = ("crit", "b64", "zip", "enc")


class KeySource(Protocol):
    async def keys_for(self, alg: str, kid: str | None) -> tuple[Key, ...]: ...


@dataclass(frozen=True, slots=True)
class Verified:
    """A JWS whose signature checked out: its header, its JSON claims and the key that verified it."""

    header: Mapping[str, Any]
    claims: dict[str, Any]
    key: Key


@dataclass(frozen=True, slots=True)
class Expected:
    issuer: str
    client_id: str
    nonce: str
    now: float
    skew: int
    max_age: int | None = None


def _registry(algorithms: tuple[str, ...] | None) -> jws.JWSRegistry:
    registry = jws.JWSRegistry(algorithms=algorithms, strict_check_header=False)
    registry.max_header_length = 8 * 1024  # some IdPs put an x5c chain in the header
    registry.max_payload_length = MAX_TOKEN_CHARS
    registry.max_signature_length = 2048  # room for RSA keys up to 8192 bits
    return registry


_PARSE_REGISTRY = _registry(None)


@cache
def _verify_registry(alg: str) -> jws.JWSRegistry:
    return _registry((alg,))


def _malformed(what: str, detail: str, code: str = "id_token_malformed") -> ConnectorError:
    return ConnectorError(f"the {what} {detail}", code=code)


async def verify_signature(
    token: object,
    allowed: Collection[str],
    keys: KeySource,
    *,
    what: str = "ID token",
    malformed_code: str = "id_token_malformed",
) -> Verified:
    """Check ``token``'s ``alg`` against ``allowed``, find its key, verify it; return its claims.

    A token that is not a compact JWS with a JSON object payload raises ``malformed_code``.
    """
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS or not token.isascii():
        raise _malformed(what, "is not a compact JWS", malformed_code)
    try:
        obj = jws.extract_compact(token.encode("ascii"), registry=_PARSE_REGISTRY)
    except (JoseError, ValueError, TypeError) as exc:
        raise _malformed(what, "is not a compact JWS", malformed_code) from exc
    header = obj.headers()
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in allowed:
        shown = alg if isinstance(alg, str) else "no algorithm"
        raise ConnectorError(
            f"the {what} is signed with {shown[:16]!r}; this connector accepts {', '.join(sorted(allowed))}",
            code="alg_not_allowed",
        )
    if any(name in header for name in _UNSUPPORTED_HEADERS):
        raise _malformed(what, "uses a JWS extension we do not support", malformed_code)
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise _malformed(what, "has a `kid` that is not a string", malformed_code)
    for key in await keys.keys_for(alg, kid):
        try:
            with warnings.catch_warnings(action="ignore", category=SecurityWarning):  # EdDSA's notice
                verified = jws.validate_compact(obj, key, registry=_verify_registry(alg))
        except (JoseError, ValueError, TypeError):
            verified = False
        if verified:
            try:
                claims = json.loads(obj.payload)
            except (ValueError, UnicodeDecodeError) as exc:
                raise _malformed(what, "payload is not JSON", malformed_code) from exc
            if not isinstance(claims, dict):
                raise _malformed(what, "payload is not a JSON object", malformed_code)
            return Verified(header=header, claims=claims, key=key)
    raise ConnectorError(f"the {what}'s signature does not verify", code="bad_signature")


def _number(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _malformed("ID token", f"has a `{name}` that is not a number")
    return float(value)


def _audiences(claims: Mapping[str, Any]) -> list[str]:
    aud = claims.get("aud")
    if isinstance(aud, str):
        return [aud]
    if isinstance(aud, list) and aud and all(isinstance(a, str) for a in aud):
        return aud
    raise ConnectorError("the ID token has no valid `aud`", code="invalid_aud")


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def check_claims(claims: Mapping[str, Any], expected: Expected) -> None:
    """The claim checks of Core 3.1.3.7 (items 2-4, 9-11, 13) and 2 (``sub``), in that order."""
    iss = claims.get("iss")
    if not isinstance(iss, str) or iss != expected.issuer:
        raise ConnectorError("the ID token comes from another issuer", code="invalid_iss")
    audiences = _audiences(claims)
    if expected.client_id not in audiences:
        raise ConnectorError("the ID token is not meant for this client (`aud`)", code="invalid_aud")
    azp = claims.get("azp")
    if len(audiences) > 1 and azp is None:
        raise ConnectorError("the ID token has several audiences and no `azp`", code="azp_missing")
    if azp is not None and azp != expected.client_id:
        raise ConnectorError("the ID token was issued to another client (`azp`)", code="invalid_azp")
    now, skew = expected.now, expected.skew
    exp = _number(claims, "exp")
    if exp is None:
        raise _malformed("ID token", "has no `exp`")
    if now >= exp + skew:
        raise ConnectorError("the ID token has expired", code="id_token_expired")
    iat = _number(claims, "iat")
    if iat is None:
        raise ConnectorError("the ID token has no `iat`", code="iat_missing")
    if iat > now + skew:
        raise ConnectorError("the ID token is issued in the future (`iat`)", code="iat_in_future")
    nbf = _number(claims, "nbf")
    if nbf is not None and nbf > now + skew:
        raise ConnectorError("the ID token is not valid yet (`nbf`)", code="nbf_in_future")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub or len(sub) > MAX_SUBJECT_CHARS or not sub.isascii():
        raise ConnectorError("the ID token has no valid `sub`", code="sub_missing")
    nonce = claims.get("nonce")
    if not isinstance(nonce, str) or not _same(nonce, expected.nonce):
        raise ConnectorError("the ID token's `nonce` is not the one we sent", code="invalid_nonce")
    auth_time = _number(claims, "auth_time")
    if auth_time is not None and auth_time > now + skew:
        raise _malformed("ID token", "has an `auth_time` in the future")
    if expected.max_age is not None:
        if auth_time is None:
            raise ConnectorError(
                "we sent max_age but the ID token has no `auth_time`", code="auth_time_missing"
            )
        if now - auth_time > expected.max_age + skew:
            raise ConnectorError("the upstream sign-in is older than max_age", code="max_age_exceeded")
    if "acr" in claims and not isinstance(claims["acr"], str):
        raise _malformed("ID token", "has an `acr` that is not a string")


def _left_half_hash(value: str, alg: str, key: Key) -> str:
    data = value.encode("ascii")
    if alg == "EdDSA":
        curve = key.curve_name if isinstance(key, OKPKey) else "Ed25519"
        digest = hashlib.shake_256(data).digest(114) if curve == "Ed448" else hashlib.sha512(data).digest()
    else:
        digest = hashlib.new("sha" + alg[2:], data).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode("ascii")


def check_at_hash(verified: Verified, access_token: str | None) -> None:
    """If the ID token carries ``at_hash``, it must match the access token (Core 3.1.3.8)."""
    at_hash = verified.claims.get("at_hash")
    if at_hash is None or access_token is None:
        return
    if not access_token.isascii():
        raise ConnectorError("the access token is not ASCII", code="token_response_invalid")
    expected = _left_half_hash(access_token, str(verified.header["alg"]), verified.key)
    if not isinstance(at_hash, str) or not _same(at_hash, expected):
        raise ConnectorError(
            "the ID token's `at_hash` does not match the access token", code="at_hash_mismatch"
        )
