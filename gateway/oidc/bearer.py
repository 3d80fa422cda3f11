"""Opaque access and refresh tokens: random bearer strings, looked up in the store on every use.

Format (documented in README "Tokens"): ``gwat_`` + 43 base64url characters (256 random
bits) for access tokens, ``gwrt_`` + 43 for refresh tokens. The store keys each by SHA-256,
so a store dump yields no usable token, and binds it to its grant, so revoking the grant
(code replay, refresh reuse, revocation) takes effect at once.

A redeemed refresh token stays in the store flagged ``rotated`` (``mark_rotated``) until it
would have expired, so that its reuse is recognised and revokes the family.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from gateway.store.base import ArtefactStore, Consumed

ACCESS, REFRESH = "access", "refresh"
ACCESS_PREFIX, REFRESH_PREFIX = "gwat_", "gwrt_"


def _key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _plausible(token: str | None, prefix: str) -> bool:
    return token is not None and token.startswith(prefix) and len(token) <= 64


async def issue(store: ArtefactStore, kind: str, record: dict[str, Any], ttl: int, grant_id: str) -> str:
    token = (ACCESS_PREFIX if kind == ACCESS else REFRESH_PREFIX) + secrets.token_urlsafe(32)
    await store.put(kind, _key(token), record, ttl, grant_id=grant_id)
    return token


async def find_access(store: ArtefactStore, token: str | None) -> dict[str, Any] | None:
    if not _plausible(token, ACCESS_PREFIX):
        return None
    assert token is not None
    return await store.get(ACCESS, _key(token))


async def find_refresh(store: ArtefactStore, token: str | None) -> dict[str, Any] | None:
    if not _plausible(token, REFRESH_PREFIX):
        return None
    assert token is not None
    return await store.get(REFRESH, _key(token))


async def consume_refresh(store: ArtefactStore, token: str | None) -> Consumed | None:
    if not _plausible(token, REFRESH_PREFIX):
        return None
    assert token is not None
    return await store.consume(REFRESH, _key(token))


def is_live_refresh(record: dict[str, Any], now: int) -> bool:
    """A refresh record that may still be redeemed: not rotated away, not past its ``exp``."""
    return not record.get("rotated") and int(record["exp"]) > now


async def mark_rotated(store: ArtefactStore, token: str, record: dict[str, Any], now: int) -> None:
    """Keep a redeemed refresh token, flagged, until it would have expired.

    A store read does not tell a used artefact from a fresh one, so the flag is what lets
    introspection call a rotated token inactive and a replay of it revoke its family even
    after the store's use count is reset by this write.
    """
    ttl = int(record["exp"]) - now
    if ttl > 0:
        await store.put(REFRESH, _key(token), {**record, "rotated": True}, ttl, grant_id=record["grant_id"])


async def delete_access(store: ArtefactStore, token: str) -> None:
    await store.delete(ACCESS, _key(token))
