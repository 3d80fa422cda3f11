"""The two storage interfaces every backend implements.

``ArtefactStore`` holds short-lived artefacts (sign-in transactions, codes, tokens,
sessions, passcodes, replay entries, rate-limit counters): each one a JSON object under
``(kind, id)`` with a TTL, optionally bound to a *grant* so that a whole family can be
revoked at once. ``DirectoryStore`` holds durable objects (users, signing keys, install
metadata) with the few indexes the gateway needs (users by identity and by mail). Both are
async; both backends (SQLite and Redis) pass the same contract tests in ``tests/store``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

JSON = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Consumed:
    """What an atomic consume found.

    ``first`` is True for the one caller that consumed the artefact; every later caller
    still gets the payload (so a replayed code can revoke what its first use minted) but
    with ``first`` False.
    """

    payload: JSON
    grant_id: str | None
    first: bool


@dataclass(frozen=True, slots=True)
class Counter:
    """An atomic counter after increment: its value and the seconds its window has left."""

    value: int
    expires_in: int


class ArtefactStore(Protocol):
    """Short-lived artefacts: one storage shape for codes, sessions, passcodes and the rest."""

    async def put(self, kind: str, id: str, payload: JSON, ttl: int, *, grant_id: str | None = None) -> None:
        """Create or replace the artefact; it disappears ``ttl`` seconds from now."""

    async def add(self, kind: str, id: str, payload: JSON, ttl: int, *, grant_id: str | None = None) -> bool:
        """Create the artefact only if absent (replay caches, single-use markers); True if created."""

    async def get(self, kind: str, id: str) -> JSON | None:
        """The live payload, or None when absent, expired, revoked or already consumed."""

    async def consume(self, kind: str, id: str) -> Consumed | None:
        """Atomically mark the artefact used and return it; see ``Consumed``. None when absent."""

    async def delete(self, kind: str, id: str) -> None:
        """Remove the artefact if present."""

    async def revoke_grant(self, grant_id: str) -> int:
        """Remove every artefact bound to ``grant_id``; returns how many were removed."""

    async def incr(self, kind: str, id: str, window: int) -> Counter:
        """Atomically add one to a counter whose fixed window of ``window`` seconds starts on
        the first increment."""

    async def ttl(self, kind: str, id: str) -> int | None:
        """Seconds the artefact has left, or None when absent."""

    async def close(self) -> None:
        """Release connections."""


class DirectoryStore(Protocol):
    """Durable objects: users (Graph-shaped JSON), signing keys, install-wide metadata."""

    async def create_user(self, user: JSON, identities: list[tuple[str, str]]) -> bool:
        """Insert a user whose ``(issuer, issuerAssignedId)`` pairs are given, indexing its
        ``mail`` and ``otherMails``; False (and nothing written) when one of those pairs already
        belongs to a user. ``mail`` must be absent, null or a non-empty string, ``otherMails``
        absent, null or a list of such strings (ValueError/TypeError, nothing written)."""

    async def get_user(self, user_id: str) -> JSON | None:
        """The user object, or None."""

    async def find_user_by_identity(self, issuer: str, issuer_assigned_id: str) -> JSON | None:
        """The user holding this identity, or None. Matching is exact; callers normalise."""

    async def update_user(self, user: JSON) -> None:
        """Replace a user object. Its identities index is left as it is; its mail index follows
        the new ``mail``/``otherMails`` (old addresses no longer find it). KeyError when absent."""

    async def add_identity(self, user_id: str, issuer: str, issuer_assigned_id: str, identity: JSON) -> bool:
        """Atomically link one more identity to an existing user (account linking): claim the
        ``(issuer, issuer_assigned_id)`` pair in the identities index and append ``identity`` (a
        Graph ``objectIdentity`` whose ``signInType`` is a non-empty string and whose ``issuer``
        and ``issuerAssignedId`` equal the pair) to the user's ``identities`` list (created when
        absent or null). False, and nothing written, when the pair already belongs to any user,
        this one included. KeyError when there is no such user; ValueError/TypeError for a bad
        argument or a stored ``identities`` that is not a list; nothing written in either case.
        ``delete_user`` frees the pair like those given to ``create_user``."""

    async def find_users_by_mail(self, mail: str) -> list[JSON]:
        """Every user whose ``mail`` or one of whose ``otherMails`` equals ``mail`` ignoring case
        (addresses are indexed and looked up lower-cased, nothing else is normalised), ordered
        by user id; [] when none."""

    async def delete_user(self, user_id: str) -> bool:
        """Atomically remove the user, its identities (which another user may then take) and its
        mail index entries; False when there is no such user."""

    async def list_signing_keys(self) -> list[JSON]:
        """All stored signing-key records, oldest first."""

    async def save_signing_key(self, record: JSON) -> None:
        """Insert or replace a signing-key record keyed by ``record['kid']``."""

    async def get_meta(self, name: str) -> str | None:
        """An install-wide value (e.g. the pairwise-subject salt)."""

    async def set_meta_if_absent(self, name: str, value: str) -> str:
        """Store ``value`` unless a value exists; returns the value that is now stored."""

    async def close(self) -> None:
        """Release connections."""


class Store(ArtefactStore, DirectoryStore, Protocol):
    """A backend implements both interfaces over one connection pool."""

    async def migrate(self) -> None:
        """Create or upgrade the schema. Idempotent; run before workers start."""
