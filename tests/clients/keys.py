"""Client keys and ``client_assertion`` JWTs for the private_key_jwt tests, built with joserfc.

``assertion(key, client_id, ...)`` signs a valid assertion; every claim can be replaced, and a claim
given as ``None`` is left out. ``forged_hs256`` and ``unsigned`` build the two classic forgeries by
hand (joserfc refuses to make them).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from tests.support.gateway_app import ISSUER

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
TOKEN_URL = f"{ISSUER}/oauth2/token"


def rsa_key(kid: str) -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": kid}, private=True)


def ec_key(kid: str) -> ECKey:
    return ECKey.generate_key("P-256", parameters={"kid": kid}, private=True)


def public_jwks(*keys: RSAKey | ECKey) -> dict[str, Any]:
    return {"keys": [key.as_dict(private=False) for key in keys]}


def claims_for(client_id: str, now: float | None = None, **changes: Any) -> dict[str, Any]:
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "iss": client_id,
        "sub": client_id,
        "aud": TOKEN_URL,
        "jti": secrets.token_urlsafe(16),
        "iat": issued,
        "exp": issued + 60,
    }
    claims.update(changes)
    return {name: value for name, value in claims.items() if value is not None}


def assertion(
    key: RSAKey | ECKey,
    client_id: str,
    *,
    alg: str | None = None,
    header: dict[str, Any] | None = None,
    now: float | None = None,
    **changes: Any,
) -> str:
    alg = alg or ("ES256" if isinstance(key, ECKey) else "RS256")
    protected = {"alg": alg, "kid": key.kid, **(header or {})}
    protected = {name: value for name, value in protected.items() if value is not None}
    return jwt.encode(protected, claims_for(client_id, now, **changes), key, algorithms=[alg])


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segments(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())


def forged_hs256(public: RSAKey, client_id: str) -> str:
    """HS256 with the client's *public* key (its PEM) as the HMAC secret: the key-confusion attack."""
    signing_input = _segments({"alg": "HS256", "kid": public.kid}, claims_for(client_id))
    secret = public.as_pem(private=False)
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + _b64(mac)


def rs256_with_header(key: RSAKey, client_id: str, header: dict[str, Any]) -> str:
    """RS256 signed by hand, for headers joserfc will not write (e.g. an unknown ``crit``)."""
    signing_input = _segments({"alg": "RS256", "kid": key.kid, **header}, claims_for(client_id))
    private = key.private_key
    assert private is not None
    signature = private.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return signing_input + "." + _b64(signature)


def unsigned(client_id: str, kid: str | None) -> str:
    """``alg: none`` with an empty signature."""
    return _segments({"alg": "none", "kid": kid}, claims_for(client_id)) + "."


def form(token: str, **extra: str) -> dict[str, str]:
    return {"client_assertion_type": ASSERTION_TYPE, "client_assertion": token, **extra}
