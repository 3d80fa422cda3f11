"""The two storage interfaces every backend implements.

``ArtefactStore`` holds short-lived artefacts (sign-in transactions, codes, tokens,
sessions, passcodes, replay entries, rate-limit counters): each one a JSON object under
``(kind, id)`` with a TTL, optionally bound to a *grant* so that a whole family can be
revoked at once. ``DirectoryStore`` holds durable objects (users, groups with their members and
owners, app role assignments and app owners, signing keys, install metadata) with the few
indexes the gateway needs (users by identity and by mail, links both ways). Both are async;
both backends (SQLite and Redis) pass the same contract tests in ``tests/store``.

Soft-deleted users (``soft_delete_user``) keep their document, identities, mail addresses,
memberships, ownerships and assignments, so ``restore_user`` brings all of it back; while
deleted they are invisible everywhere but ``get_deleted_user`` and ``list_users(deleted=True)``:
lookups do not find them, listings (members, owners, assignments, a user's groups and apps) leave
them and what links to them out, ``update_user``/``add_identity``/``add_*`` treat them as absent
(KeyError), and their identities and ids stay taken. The deletion time is kept beside the
document, not in it; the deleted view adds ``deletedDateTime`` and ``accountEnabled: false``.

Blind artefact writes (``Put``, ``Delete``: nobody needs their result) can be made several at a
time, in one round trip: explicitly with ``ArtefactStore.apply``, or by a write-behind block,
``async with store.batch():`` (``gateway.store.write_behind``; docs/adr/0007).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.store.signin_log import SignInLogStore

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


@dataclass(frozen=True, slots=True)
class Put:
    """``ArtefactStore.put`` as a value, for ``ArtefactStore.apply``."""

    kind: str
    id: str
    payload: JSON
    ttl: int
    grant_id: str | None = None


@dataclass(frozen=True, slots=True)
class Delete:
    """``ArtefactStore.delete`` as a value, for ``ArtefactStore.apply``."""

    kind: str
    id: str


Write = Put | Delete


class ArtefactStore(Protocol):
    """Short-lived artefacts: one storage shape for codes, sessions, passcodes and the rest."""

    async def put(self, kind: str, id: str, payload: JSON, ttl: int, *, grant_id: str | None = None) -> None:
        """Create or replace the artefact; it disappears ``ttl`` seconds from now."""

    async def add(self, kind: str, id: str, payload: JSON, ttl: int, *, grant_id: str | None = None) -> bool:
        """Create the artefact only if absent (replay caches, single-use markers); True if created."""

    async def get(self, kind: str, id: str) -> JSON | None:
        """The live payload, or None when absent, expired or revoked (a consumed artefact is still
        read: ``consume`` reports whether a use was the first)."""

    async def consume(self, kind: str, id: str) -> Consumed | None:
        """Atomically mark the artefact used and return it; see ``Consumed``. None when absent."""

    async def delete(self, kind: str, id: str) -> None:
        """Remove the artefact if present."""

    async def revoke_grant(self, grant_id: str) -> int:
        """Remove every artefact bound to ``grant_id``; returns how many were removed."""

    async def incr(self, kind: str, id: str, window: int) -> Counter:
        """Atomically add one to a counter whose fixed window of ``window`` seconds starts on
        the first increment."""

    async def consume_counted(
        self, kind: str, id: str, counter: str, window: int, limit: int, *, counter_id: str | None = None
    ) -> tuple[Counter, Consumed | None]:
        """Count one use of the artefact ``(kind, id)``, then consume it if the count allows:
        ``incr(counter, counter_id, window)`` (``counter_id`` defaults to ``id``), and only when its
        new value is at most ``limit``, ``consume(kind, id)``. Returns the counter and what the
        consume found (None when over the limit or absent). SQLite makes both in one transaction;
        Redis one after the other (the counter and the artefact are in different hash slots), as
        the two calls would. Every argument is checked before anything is counted."""

    async def ttl(self, kind: str, id: str) -> int | None:
        """Seconds the artefact has left, or None when absent."""

    async def ttl_many(self, names: Sequence[tuple[str, str]]) -> list[int | None]:
        """``ttl`` of each ``(kind, id)``, in order, in one round trip (on Redis Cluster, one per node
        holding some of the keys): one call instead of a ``gather`` of ``ttl`` calls, whose tasks
        cost more than the lookups. Every name is checked before anything is read."""

    async def apply(self, writes: Sequence[Write]) -> None:
        """Make these puts and deletes, in order, in one round trip, each as its own call would.

        Every write is checked before anything is written: a bad one raises (ValueError or
        TypeError, as ``put``/``delete`` do) and nothing is written. SQLite makes them in one
        transaction; Redis in one pipeline, each write atomic on its own (artefacts of different
        names share no hash slot), so a Redis failure part-way may leave a prefix made. Writes a
        ``batch`` block has queued for this task are made first, in the same round trip."""

    def batch(self) -> AbstractAsyncContextManager[None]:
        """A write-behind block for the calling task (``gateway.store.write_behind``): its ``put``
        and ``delete`` calls are checked at once and queued, and the queue is applied in one round
        trip before this task's next other artefact operation or when the block ends (also on an
        exception). The task reads its own writes; others see them when the block ends at the
        latest. Directory operations neither see nor apply the queue. Nested blocks join."""

    async def close(self) -> None:
        """Release connections."""


class DirectoryStore(Protocol):
    """Durable objects: users (Graph-shaped JSON), groups, app role assignments and app owners,
    signing keys, install-wide metadata."""

    async def create_user(self, user: JSON, identities: list[tuple[str, str]]) -> bool:
        """Insert a user whose ``(issuer, issuerAssignedId)`` pairs are given, indexing its
        ``mail`` and ``otherMails``; False (and nothing written) when one of those pairs already
        belongs to a user. ``mail`` must be absent, null or a non-empty string, ``otherMails``
        absent, null or a list of such strings, ``deletedDateTime`` absent or null (it belongs to
        ``soft_delete_user``) (ValueError/TypeError, nothing written). ValueError when the id is
        taken, by a soft-deleted user too."""

    async def get_user(self, user_id: str) -> JSON | None:
        """The live user object, or None (absent or soft-deleted)."""

    async def get_users(self, user_ids: Sequence[str]) -> dict[str, JSON]:
        """The live users among ``user_ids``, by id (absent and soft-deleted ones left out), in one
        round trip: one query on SQLite, one script on Redis. At most 1000 distinct ids, each a
        non-empty string (ValueError/TypeError otherwise, nothing read); repeats are looked up once."""

    async def find_user_by_identity(self, issuer: str, issuer_assigned_id: str) -> JSON | None:
        """The live user holding this identity, or None. Matching is exact; callers normalise."""

    async def update_user(self, user: JSON) -> None:
        """Replace a user object. Its identities index is left as it is; its mail index follows
        the new ``mail``/``otherMails`` (old addresses no longer find it). KeyError when absent or
        soft-deleted."""

    async def add_identity(self, user_id: str, issuer: str, issuer_assigned_id: str, identity: JSON) -> bool:
        """Atomically link one more identity to an existing user (account linking): claim the
        ``(issuer, issuer_assigned_id)`` pair in the identities index and append ``identity`` (a
        Graph ``objectIdentity`` whose ``signInType`` is a non-empty string and whose ``issuer``
        and ``issuerAssignedId`` equal the pair) to the user's ``identities`` list (created when
        absent or null). False, and nothing written, when the pair already belongs to any user,
        this one included. KeyError when there is no such live user; ValueError/TypeError for a bad
        argument or a stored ``identities`` that is not a list; nothing written in either case.
        ``delete_user`` frees the pair like those given to ``create_user``."""

    async def find_users_by_mail(self, mail: str) -> list[JSON]:
        """Every user whose ``mail`` or one of whose ``otherMails`` equals ``mail`` ignoring case
        (addresses are indexed and looked up lower-cased, nothing else is normalised), ordered
        by user id; [] when none."""

    async def delete_user(self, user_id: str) -> bool:
        """Atomically remove the user (live or soft-deleted), its identities (which another user
        may then take), its mail index entries, its group memberships and ownerships, its app
        ownerships and the app role assignments whose principal it is (``principalType``
        ``User``); False when there is no such user."""

    async def list_users(
        self,
        *,
        mail: str | None = None,
        external_user_state: str | None = None,
        user_type: str | None = None,
        deleted: bool = False,
        limit: int = 100,
        after: str | None = None,
    ) -> tuple[list[JSON], str | None]:
        """A page of users ordered by id, and the cursor of the next page (None after the last).
        Filters combine with AND: ``mail`` matches ``mail`` or an ``otherMails`` entry ignoring
        case (as ``find_users_by_mail``), ``external_user_state`` and ``user_type`` equal the
        document's ``externalUserState`` / ``userType``. ``deleted`` False lists live users only,
        True soft-deleted ones only (in their deleted view). ``limit`` is 1..999; ``after`` is the
        cursor a previous call returned (the last id of its page). Each filter and ``after`` is
        None or a non-empty string (ValueError/TypeError otherwise)."""

    async def soft_delete_user(self, user_id: str, now: int) -> JSON | None:
        """Mark a live user deleted at ``now`` (epoch seconds) and return its deleted view: the
        document with ``deletedDateTime`` (``%Y-%m-%dT%H:%M:%SZ``, UTC) and ``accountEnabled``
        false. None when there is no such user or it is already deleted."""

    async def restore_user(self, user_id: str) -> JSON | None:
        """Undo ``soft_delete_user`` and return the user as it was (its own ``accountEnabled``);
        None when there is no such deleted user."""

    async def get_deleted_user(self, user_id: str) -> JSON | None:
        """The deleted view of a soft-deleted user, or None (absent or not deleted)."""

    async def purge_deleted_users(self, older_than: int) -> int:
        """Remove for good (as ``delete_user``) every user soft-deleted before ``older_than``
        (epoch seconds); returns how many."""

    async def create_group(self, group: JSON) -> None:
        """Insert a Graph ``group`` (``id``, ``displayName``, ``description``, ``mailNickname``,
        ``securityEnabled``, ``createdDateTime``, ...). ValueError when the id is taken; see
        ``validate_directory.check_group`` for the field checks (nothing written on error)."""

    async def get_group(self, group_id: str) -> JSON | None:
        """The group object, or None."""

    async def list_groups(
        self, *, limit: int = 100, after: str | None = None
    ) -> tuple[list[JSON], str | None]:
        """A page of groups ordered by id and the next cursor, as ``list_users``."""

    async def update_group(self, group: JSON) -> None:
        """Replace a group object (same checks as ``create_group``); KeyError when absent."""

    async def delete_group(self, group_id: str) -> bool:
        """Atomically remove the group, its members and owners lists and the app role
        assignments whose principal it is (``principalType`` ``Group``); False when absent."""

    async def add_group_member(self, group_id: str, user_id: str) -> bool:
        """Make a live user a member; False when it already is. KeyError when there is no such
        group or no such live user."""

    async def remove_group_member(self, group_id: str, user_id: str) -> bool:
        """False when the user was not a member."""

    async def list_group_members(self, group_id: str) -> list[str]:
        """The ids of the group's live members, sorted; [] for an unknown group."""

    async def add_group_owner(self, group_id: str, user_id: str) -> bool:
        """As ``add_group_member``, for owners."""

    async def remove_group_owner(self, group_id: str, user_id: str) -> bool:
        """False when the user was not an owner."""

    async def list_group_owners(self, group_id: str) -> list[str]:
        """The ids of the group's live owners, sorted."""

    async def list_user_groups(self, user_id: str) -> list[str]:
        """The ids of the groups a live user is a member of, sorted ([] for a deleted user)."""

    async def list_owned_groups(self, user_id: str) -> list[str]:
        """The ids of the groups a live user owns, sorted ([] for a deleted user)."""

    async def add_app_role_assignment(self, assignment: JSON) -> bool:
        """Insert a Graph ``appRoleAssignment`` (``id``, ``appRoleId``, ``principalId``,
        ``principalType`` ``User`` | ``Group``, ``resourceId`` = our application id,
        ``createdDateTime``, ...). KeyError when the principal is not a live user / a group;
        False when ``(principalId, resourceId, appRoleId)`` is already assigned; ValueError when
        the id is taken or a field is bad (nothing written)."""

    async def remove_app_role_assignment(self, assignment_id: str) -> bool:
        """False when there is no such assignment."""

    async def list_app_role_assignments(
        self, *, resource_id: str | None = None, principal_id: str | None = None
    ) -> list[JSON]:
        """Assignments to ``resource_id`` and/or of ``principal_id`` (all when both are None),
        ordered by id, leaving out those of soft-deleted users."""

    async def add_app_owner(self, app_id: str, user_id: str) -> bool:
        """Make a live user an owner of the application ``app_id`` (its YAML id, not checked
        here); False when it already is; KeyError when there is no such live user."""

    async def remove_app_owner(self, app_id: str, user_id: str) -> bool:
        """False when the user was not an owner."""

    async def list_app_owners(self, app_id: str) -> list[str]:
        """The ids of the application's live owners, sorted."""

    async def list_owned_apps(self, user_id: str) -> list[str]:
        """The ids of the applications a live user owns, sorted ([] for a deleted user)."""

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


class Store(ArtefactStore, DirectoryStore, SignInLogStore, Protocol):
    """A backend implements these interfaces over one connection pool (the sign-in log:
    ``gateway.store.signin_log``)."""

    async def migrate(self) -> None:
        """Create or upgrade the schema. Idempotent; run before workers start."""
