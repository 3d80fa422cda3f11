"""Token families ("grants"): the code, access and refresh tokens of one authorization share a grant id.

Revoking a family leaves a tombstone before it deletes the family's artefacts, and minting
looks for the tombstone after it has written its tokens. So a request that races a
revocation (a replayed code or refresh token redeemed at the same moment as the genuine
one) cannot leave a live token behind: either the revoker's delete comes after the
minter's writes, or the minter sees the tombstone and deletes what it wrote.
"""

from __future__ import annotations

from gateway.store.base import ArtefactStore

KIND = "revoked-grant"
# Outlives any request that was minting into the family when it was revoked.
TOMBSTONE_SECONDS = 3600


async def revoke(store: ArtefactStore, grant_id: str) -> None:
    """Revoke every code and token of the family, now and for any mint still in flight."""
    await store.put(KIND, grant_id, {}, TOMBSTONE_SECONDS)
    await store.revoke_grant(grant_id)


async def is_revoked(store: ArtefactStore, grant_id: str) -> bool:
    return await store.get(KIND, grant_id) is not None
