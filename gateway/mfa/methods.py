"""TOTP methods in the store: registration, verification, replay and brute-force guards, reset.

A user's methods live on the user record as ``softwareOathMethods``: a list of ``{"id",
"createdDateTime", "secret"}`` where ``secret`` is sealed (``SecretBox.seal``, purpose ``totp``).
The admin API's user view never shows the key (``admin.graph`` keeps to documented properties);
``public_view`` is what may leave the store.

Short-lived state uses the artefact store:

- ``totp-enrolment``: the secret offered on the registration page, sealed, per sign-in and user,
  living as long as the sign-in; the page shows the same secret on every reload.
- ``totp-used-step``: one marker per (method, accepted time step), created with ``add``, so two
  submissions of one code cannot both pass however close together they arrive. After claiming
  its step, an acceptance looks for a marker of a later step still inside the window and fails
  when it finds one: a code older than an accepted one is never accepted (RFC 6238 §5.2), and
  any two acceptances that both pass can be ordered oldest step first.
- ``totp-attempt``: ``MAX_FAILURES`` attempt slots per user, shared by all of the user's sign-ins.
  An attempt takes a free slot (``add``) before any code is checked, and a right code gives it
  back; a wrong one keeps it for ``FAILURE_WINDOW`` seconds. So at most five wrong codes count in
  any 15 minutes, concurrent requests included, and the sixth attempt is refused unchecked. (A
  counter from ``incr`` could not give a right code's attempt back, and reading it before the
  check would let parallel requests through.)
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Literal

from gateway.directory.users import iso
from gateway.mfa import totp
from gateway.secrets import SecretBox
from gateway.store.base import ArtefactStore, DirectoryStore, Store

METHODS_KEY = "softwareOathMethods"
SEAL_PURPOSE = "totp"
ENROLMENT = "totp-enrolment"
USED_STEP = "totp-used-step"
ATTEMPT = "totp-attempt"
MAX_FAILURES = 5
FAILURE_WINDOW = 15 * 60
USED_STEP_TTL = (2 * totp.WINDOW + 3) * totp.PERIOD
"""Long enough for a step's marker to outlive every code it must keep out (those of its own step
and of the two before it stay valid for at most three more periods), with two periods to spare for
replicas whose clocks differ."""

Outcome = Literal["accepted", "invalid", "reused", "locked", "stale"]

REASONS: dict[Outcome, str] = {
    "invalid": "mfa_code_invalid",
    "reused": "mfa_code_reused",
    "locked": "mfa_attempts_exceeded",
}
"""The audit reason code of each refusal (``stale`` is none: the page is shown again, nothing counted)."""


@dataclass(frozen=True, slots=True)
class Result:
    """What a submitted code did. ``method_id``: the method it matched (accepted only);
    ``retry_after``: seconds until an attempt slot frees (locked only)."""

    outcome: Outcome
    method_id: str | None = None
    retry_after: int = 0

    @property
    def reason(self) -> str | None:
        return REASONS.get(self.outcome)


# -- the methods on a user record ----------------------------------------------------------------


def stored_methods(user: dict[str, Any]) -> list[dict[str, str]]:
    """The well-formed TOTP methods of a user record (anything malformed is left out)."""
    raw = user.get(METHODS_KEY)
    if not isinstance(raw, list):
        return []
    return [
        entry
        for entry in raw
        if isinstance(entry, dict)
        and all(isinstance(entry.get(key), str) for key in ("id", "createdDateTime", "secret"))
    ]


def public_view(method: dict[str, str]) -> dict[str, str]:
    """What the admin API shows of a method: never its secret."""
    return {"id": method["id"], "createdDateTime": method["createdDateTime"]}


def has_method(user: dict[str, Any]) -> bool:
    return bool(stored_methods(user))


def _unseal(box: SecretBox, sealed: Any) -> str | None:
    """The secret, or None when no configured key opens it (a retired key) or it is not one."""
    if not isinstance(sealed, str):
        return None
    try:
        secret = box.unseal(SEAL_PURPOSE, sealed).decode("ascii")
    except (ValueError, UnicodeDecodeError):
        return None
    return secret if totp.is_secret(secret) else None


async def remove_method(store: DirectoryStore, user_id: str, method_id: str) -> bool:
    """Delete one method; False when the user has no such method. KeyError for an unknown user."""
    user = await store.get_user(user_id)
    if user is None:
        raise KeyError(user_id)
    raw = user.get(METHODS_KEY)
    if not isinstance(raw, list):
        return False
    kept = [entry for entry in raw if not (isinstance(entry, dict) and entry.get("id") == method_id)]
    if len(kept) == len(raw):
        return False
    await store.update_user({**user, METHODS_KEY: kept})
    return True


async def reset_methods(store: DirectoryStore, user_id: str) -> int:
    """Delete every TOTP method of a user (the next sign-in that needs MFA registers again);
    returns how many there were. KeyError for an unknown user; nothing is written when it has none."""
    user = await store.get_user(user_id)
    if user is None:
        raise KeyError(user_id)
    raw = user.get(METHODS_KEY)
    if raw is None:
        return 0
    count = len(raw) if isinstance(raw, list) else 1
    await store.update_user({key: value for key, value in user.items() if key != METHODS_KEY})
    return count


# -- enrolment -----------------------------------------------------------------------------------


def _enrolment_id(signin_id: str, user_id: str) -> str:
    return f"{signin_id}:{user_id}"


async def pending_secret(store: ArtefactStore, box: SecretBox, signin_id: str, user_id: str) -> str | None:
    """The secret this sign-in offered the user, or None (none offered, expired, unreadable)."""
    found = await store.get(ENROLMENT, _enrolment_id(signin_id, user_id))
    return None if found is None else _unseal(box, found.get("secret"))


async def enrolment_secret(
    store: ArtefactStore, box: SecretBox, signin_id: str, user_id: str, ttl: int
) -> str:
    """The secret to offer on the registration page: the one already offered in this sign-in, else
    a fresh one kept sealed for ``ttl`` seconds (the sign-in's remaining life)."""
    offered = await pending_secret(store, box, signin_id, user_id)
    if offered is not None:
        return offered
    secret = totp.new_secret()
    payload = {"secret": box.seal(SEAL_PURPOSE, secret.encode("ascii"))}
    key = _enrolment_id(signin_id, user_id)
    if await store.add(ENROLMENT, key, payload, ttl):
        return secret
    offered = await pending_secret(store, box, signin_id, user_id)  # another request stored one first
    if offered is not None:
        return offered
    await store.put(ENROLMENT, key, payload, ttl)  # the stored one was sealed under a retired key
    return secret


async def discard_enrolment(store: ArtefactStore, signin_id: str, user_id: str) -> None:
    await store.delete(ENROLMENT, _enrolment_id(signin_id, user_id))


# -- guards --------------------------------------------------------------------------------------


async def claim_step(store: ArtefactStore, method_id: str, step: int) -> bool:
    """Record ``step`` as used for the method; False when it was used already (a replay) or a later
    step of the window was (an older code after a newer one)."""
    if not await store.add(USED_STEP, f"{method_id}:{step}", {}, USED_STEP_TTL):
        return False
    for later in range(step + 1, step + 2 * totp.WINDOW + 1):
        if await store.get(USED_STEP, f"{method_id}:{later}") is not None:
            return False
    return True


@dataclass(frozen=True, slots=True)
class Attempt:
    user_id: str
    slot: int

    @property
    def key(self) -> str:
        return f"{self.user_id}:{self.slot}"


async def begin_attempt(store: ArtefactStore, user_id: str) -> Attempt | None:
    """Take a free attempt slot; None when every slot holds a recent failure (or a check in flight)."""
    for slot in range(MAX_FAILURES):
        if await store.add(ATTEMPT, f"{user_id}:{slot}", {}, FAILURE_WINDOW):
            return Attempt(user_id, slot)
    return None


async def retry_after(store: ArtefactStore, user_id: str) -> int:
    """Seconds until the first slot frees (at least 1)."""
    left = [await store.ttl(ATTEMPT, f"{user_id}:{slot}") for slot in range(MAX_FAILURES)]
    known = [seconds for seconds in left if seconds is not None]
    return max(min(known), 1) if known else 1


async def _locked(store: ArtefactStore, user_id: str) -> Result:
    return Result("locked", retry_after=await retry_after(store, user_id))


# -- the two things a code does ------------------------------------------------------------------


async def verify(store: ArtefactStore, box: SecretBox, user: dict[str, Any], code: str, now: float) -> Result:
    """Check a code against the user's methods at ``now``: accepted (its step claimed), invalid,
    reused, or locked without being checked. A wrong or reused code keeps its attempt slot."""
    user_id = str(user["id"])
    attempt = await begin_attempt(store, user_id)
    if attempt is None:
        return await _locked(store, user_id)
    for method in stored_methods(user):
        secret = _unseal(box, method["secret"])
        step = None if secret is None else totp.match(secret, code, now)
        if step is None:
            continue
        if not await claim_step(store, method["id"], step):
            return Result("reused")
        await store.delete(ATTEMPT, attempt.key)
        return Result("accepted", method_id=method["id"])
    return Result("invalid")


async def register(
    store: Store, box: SecretBox, *, user_id: str, signin_id: str, code: str, now: int
) -> Result:
    """Complete a registration: ``code`` must be valid for the secret this sign-in offered. Then
    the method is stored on the user, its step claimed and the offer discarded. ``stale`` (nothing
    checked or counted) when no secret is on offer any more or the user got a method meanwhile."""
    secret = await pending_secret(store, box, signin_id, user_id)
    user = await store.get_user(user_id)
    if secret is None or user is None or has_method(user):
        return Result("stale")
    attempt = await begin_attempt(store, user_id)
    if attempt is None:
        return await _locked(store, user_id)
    step = totp.match(secret, code, now)
    if step is None:
        return Result("invalid")
    method = {
        "id": str(uuid.uuid4()),
        "createdDateTime": iso(now),
        "secret": box.seal(SEAL_PURPOSE, secret.encode("ascii")),
    }
    await claim_step(store, method["id"], step)  # a fresh method: always claimed
    current = await store.get_user(user_id)
    if current is None or has_method(current):
        await store.delete(ATTEMPT, attempt.key)
        return Result("stale")
    await store.update_user({**current, METHODS_KEY: [method]})
    await discard_enrolment(store, signin_id, user_id)
    await store.delete(ATTEMPT, attempt.key)
    return Result("accepted", method_id=method["id"])
