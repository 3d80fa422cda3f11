"""Authorization codes: single use, short-lived, bound to client, redirect URI, PKCE and a grant.

The code is 256 random bits; the store keys it by SHA-256. Its grant id names the token
family that redeeming it starts, so a replayed code can revoke everything its first use
minted (RFC 6749 4.1.2, RFC 9700 4.5).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field, fields
from typing import Any

from gateway.store.base import ArtefactStore, Consumed

KIND = "code"


def token_hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True)
class CodeGrant:
    """What a code stands for: who signed in, for which client, how."""

    client_id: str
    app_id: str
    redirect_uri: str
    scopes: list[str]
    user_id: str
    sid: str
    auth_time: int
    amr: list[str]
    acr: str
    idp: str
    grant_id: str
    nonce: str | None = None
    code_challenge: str | None = None
    auth_claims: dict[str, Any] = field(default_factory=dict)
    """Claims about the authentication for the ID token (``mfa_source``, trusted device state)."""

    def to_json(self) -> dict[str, Any]:
        # A shallow copy of the fields: ``dataclasses.asdict`` deep-copies every value (~45 µs a call).
        return {name: getattr(self, name) for name in _FIELDS}


_FIELDS = tuple(f.name for f in fields(CodeGrant))


async def issue(store: ArtefactStore, grant: CodeGrant, ttl: int) -> str:
    code = secrets.token_urlsafe(32)
    await store.put(KIND, token_hash(code), grant.to_json(), ttl, grant_id=grant.grant_id)
    return code


async def redeem(store: ArtefactStore, code: str) -> tuple[CodeGrant, bool] | None:
    """The code's grant and whether this is its first redemption; None when unknown or expired."""
    if not code or len(code) > 128:
        return None
    found: Consumed | None = await store.consume(KIND, token_hash(code))
    if found is None:
        return None
    return CodeGrant(**found.payload), found.first


def new_grant_id() -> str:
    return secrets.token_urlsafe(16)
