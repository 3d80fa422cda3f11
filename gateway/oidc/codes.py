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

from gateway.store.base import ArtefactStore, Consumed, Counter

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


Redeemed = tuple[CodeGrant, bool]


def well_formed(code: str | None) -> bool:
    """Whether ``code`` could name a stored code at all (``redeem`` looks up nothing otherwise)."""
    return bool(code) and len(code or "") <= 128


async def redeem(store: ArtefactStore, code: str) -> Redeemed | None:
    """The code's grant and whether this is its first redemption; None when unknown or expired."""
    if not well_formed(code):
        return None
    return _grant(await store.consume(KIND, token_hash(code)))


async def redeem_counted(
    store: ArtefactStore, code: str, counter: str, counter_id: str, window: int, limit: int
) -> tuple[Counter, Redeemed | None]:
    """``store.incr(counter, counter_id, window)``, then, only when the count is at most ``limit``,
    ``redeem(store, code)``: in one store call (one SQLite transaction). ``code`` must be
    ``well_formed``. Returns the counter and the redemption (None when over the limit, unknown or
    expired)."""
    if not well_formed(code):
        raise ValueError("redeem_counted takes a well-formed code")
    counted, found = await store.consume_counted(
        KIND, token_hash(code), counter, window, limit, counter_id=counter_id
    )
    return counted, _grant(found)


def _grant(found: Consumed | None) -> Redeemed | None:
    return None if found is None else (CodeGrant(**found.payload), found.first)


def new_grant_id() -> str:
    return secrets.token_urlsafe(16)
