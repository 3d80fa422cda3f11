"""The recipients' invitation block list (b2b-concepts §2.2): addresses that opted out of invitations.

Every invitation mail's footer links to ``/invitations/block`` (``block_pages``), where the
recipient proves the address with an email passcode and blocks (or unblocks) future invitations
from this organisation; ``invite`` refuses a blocked address before anything is written.

The address itself is never stored: each entry lives in install metadata under a keyed hash of
the lower-cased address (``SecretBox.keyed_hash("invitation-block", ...)``). Metadata is durable
and write-once (``set_meta_if_absent``), so an address's history is a chain of numbered entries
``invitation-block:<hash>:<n>`` alternating ``blocked`` / ``unblocked``; the newest entry is the
state. A chain holds at most ``MAX_CHANGES`` entries: past that the state stays as it is
(``ChangeLimitReached``), which also bounds the reads a check costs.

Secret rotation: the state is read under every configured secret key, and an address counts as
blocked while any key's chain ends in ``blocked``; unblocking closes every such chain, and new
blocks are written under the current key. Dropping an old key drops the blocks written under it.
"""

from __future__ import annotations

import functools

from gateway.secrets import SecretBox, load_or_create_dev_secret
from gateway.settings.models import Settings
from gateway.store.base import Store

PURPOSE = "invitation-block"
BLOCKED, UNBLOCKED = "blocked", "unblocked"
MAX_CHANGES = 20


class ChangeLimitReached(Exception):
    """The address changed its block state ``MAX_CHANGES`` times; it stays as it is."""


@functools.lru_cache(maxsize=8)
def _boxes(keys: tuple[str, ...]) -> tuple[SecretBox, ...]:
    return tuple(SecretBox([key]) for key in keys)


def boxes(settings: Settings) -> tuple[SecretBox, ...]:
    """One box per configured secret key, the current key first (as ``runtime.secret_keys``)."""
    keys = settings.secrets.keys if settings.secrets is not None else [load_or_create_dev_secret()]
    return _boxes(tuple(keys))


def _name(box: SecretBox, address: str, generation: int) -> str:
    return f"{PURPOSE}:{box.keyed_hash(PURPOSE, address.lower())}:{generation}"


async def _chain(store: Store, box: SecretBox, address: str) -> tuple[int, str | None]:
    """The number of entries in this key's chain and the newest entry (None when empty)."""
    newest: str | None = None
    for generation in range(MAX_CHANGES):
        value = await store.get_meta(_name(box, address, generation))
        if value is None:
            return generation, newest
        newest = value
    return MAX_CHANGES, newest


async def is_blocked(settings: Settings, store: Store, address: str) -> bool:
    """True when the recipient blocked invitations from this organisation."""
    for box in boxes(settings):
        _, newest = await _chain(store, box, address)
        if newest == BLOCKED:
            return True
    return False


async def _append(store: Store, box: SecretBox, address: str, value: str) -> None:
    """Set this key's chain to ``value`` (a concurrent change that wins is kept as is)."""
    length, newest = await _chain(store, box, address)
    if newest == value or (newest is None and value == UNBLOCKED):
        return
    if length >= MAX_CHANGES:
        raise ChangeLimitReached(address)
    await store.set_meta_if_absent(_name(box, address, length), value)


async def block(settings: Settings, store: Store, address: str) -> None:
    """Block future invitations to ``address`` (idempotent)."""
    if not await is_blocked(settings, store, address):
        await _append(store, boxes(settings)[0], address, BLOCKED)


async def unblock(settings: Settings, store: Store, address: str) -> None:
    """Allow invitations to ``address`` again (idempotent)."""
    for box in boxes(settings):
        await _append(store, box, address, UNBLOCKED)
