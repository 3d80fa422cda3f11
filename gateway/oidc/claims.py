"""Claims about a user for a relying party: pairwise subject, ID token and userinfo claims.

``sub`` is pairwise per application (OIDC Core 8.1): an HMAC of (application id, object id)
under a salt generated once per install and never rotated, so it is stable for ever and
differs between apps. ``oid`` is the stable directory object id.
"""

from __future__ import annotations

import base64
import functools
from typing import Any

from gateway.secrets import HmacSha256

ACR_SINGLE_FACTOR = "https://refeds.org/profile/sfa"
ACR_MULTI_FACTOR = "https://refeds.org/profile/mfa"
ACR_VALUES = (ACR_SINGLE_FACTOR, ACR_MULTI_FACTOR)

SCOPE_CLAIMS = {
    "profile": ("name", "given_name", "family_name"),
    "email": ("email", "email_verified"),
}
CLAIMS_SUPPORTED = (
    "sub",
    "iss",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "acr",
    "amr",
    "sid",
    "oid",
    "tid",
    "idp",
    "acct",
    "name",
    "given_name",
    "family_name",
    "email",
    "email_verified",
    "mfa_source",
    "device_compliant",
    "device_hybrid_joined",
)


@functools.lru_cache(maxsize=8)
def _keyed(salt: bytes) -> HmacSha256:
    """The salt's HMAC key, prepared once (there is one salt per install)."""
    return HmacSha256(salt)


def pairwise_sub(salt: bytes, app_id: str, object_id: str) -> str:
    digest = _keyed(salt).digest(f"{app_id}\x00{object_id}".encode())
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def user_claims(user: dict[str, Any], scopes: list[str], *, idp: str, tenant_id: str) -> dict[str, Any]:
    """Claims released for ``scopes``, plus the directory claims every token carries."""
    claims: dict[str, Any] = {
        "oid": user["id"],
        "tid": tenant_id,
        "idp": idp,
        "acct": 1 if user.get("userType") == "Guest" else 0,
    }
    if "profile" in scopes:
        claims["name"] = user.get("displayName") or user.get("mail")
        for source, claim in (("givenName", "given_name"), ("surname", "family_name")):
            if user.get(source):
                claims[claim] = user[source]
    if "email" in scopes and user.get("mail"):
        claims["email"] = user["mail"]
        claims["email_verified"] = True
    return claims
