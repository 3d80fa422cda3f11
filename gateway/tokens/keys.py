"""The gateway's signing keys: stored sealed, loaded once, rotated with overlap, published as a JWKS.

A key record lives in the directory store (``DirectoryStore.save_signing_key``) as::

    {"kid": <RFC 7638 thumbprint>, "alg": "ES256" | "RS256", "created_at": int,
     "activates_at": int, "retires_at": int | None, "private": <SecretBox.seal("signing-key", JWK)>}

The private JWK is never stored in clear. A key is *published* (in the JWKS and accepted by
``KeyRing.verify``) from creation until ``retires_at``; it *signs* from ``activates_at`` until a
newer key of its alg activates. ``rotate`` publishes a successor ``overlap_seconds`` ahead of
its first signature, so relying parties' JWKS caches see it first, and keeps the old key
published for as long as a token it signed may live. Every worker and replica reads the same
records, so ``KeyRing.refresh`` makes a rotation visible everywhere.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol, TypeGuard

from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey

from gateway.secrets import SecretBox
from gateway.store.base import JSON
from gateway.tokens.jwt import SUPPORTED_ALGS, InvalidToken, SigningJWK, check, encode, key_fits, parse

SEAL_PURPOSE: Final = "signing-key"
RSA_BITS: Final = 2048
# Algorithms whose private-key operation is slow enough (~0.4 ms) to leave the event loop.
_OFFLOADED: Final = frozenset({"RS256"})
_PUBLIC_FIELDS: Final = {"ES256": ("kty", "crv", "x", "y"), "RS256": ("kty", "n", "e")}

Clock = Callable[[], float]


class KeyStore(Protocol):
    """The part of ``gateway.store.base.DirectoryStore`` this module uses."""

    async def list_signing_keys(self) -> list[JSON]: ...

    async def save_signing_key(self, record: JSON) -> None: ...


class KeyRingError(Exception):
    """A signing-key record that cannot be used (malformed, undecryptable) or a missing key."""


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One loaded key: its schedule, the decrypted joserfc key and its public JWK."""

    kid: str
    alg: str
    created_at: int
    activates_at: int
    retires_at: int | None
    jwk: SigningJWK
    public: Mapping[str, str]

    def published(self, now: float) -> bool:
        return self.retires_at is None or now < self.retires_at


@dataclass(frozen=True, slots=True)
class _Schedule:
    """The validated, non-secret part of a record."""

    kid: str
    alg: str
    created_at: int
    activates_at: int
    retires_at: int | None
    sealed: str

    def published(self, now: float) -> bool:
        return self.retires_at is None or now < self.retires_at


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _schedule(record: JSON) -> _Schedule:
    kid = record.get("kid")
    if not isinstance(kid, str) or not kid:
        raise KeyRingError("signing-key record without a kid")
    alg = record.get("alg")
    if alg not in SUPPORTED_ALGS:
        raise KeyRingError(f"signing key {kid}: alg {alg!r} is not one of {sorted(SUPPORTED_ALGS)}")
    created_at, activates_at = record.get("created_at"), record.get("activates_at")
    retires_at = record.get("retires_at")
    if not (_is_int(created_at) and _is_int(activates_at) and (retires_at is None or _is_int(retires_at))):
        raise KeyRingError(f"signing key {kid}: created_at/activates_at/retires_at must be unix seconds")
    sealed = record.get("private")
    if not isinstance(sealed, str):
        raise KeyRingError(f"signing key {kid}: no sealed private key")
    return _Schedule(kid, str(alg), created_at, activates_at, retires_at, sealed)


def _age(key: _Schedule | SigningKey) -> tuple[int, int, bool, str]:
    """Sort key, oldest first: activation, creation, then a superseded key (one with a
    retirement date) before its successor created in the same second, then kid."""
    return (key.activates_at, key.created_at, key.retires_at is None, key.kid)


def _schedules(records: Iterable[JSON]) -> list[_Schedule]:
    """Validated records, oldest first (see ``_age``), kids distinct."""
    found = sorted(map(_schedule, records), key=_age)
    kids = [s.kid for s in found]
    if len(set(kids)) != len(kids):
        raise KeyRingError("two signing-key records share a kid")
    return found


def _fingerprint(schedules: Iterable[_Schedule]) -> tuple[tuple[str, str, int, int | None], ...]:
    return tuple(sorted((s.kid, s.alg, s.activates_at, s.retires_at) for s in schedules))


def _public_jwk(key: SigningJWK, kid: str, alg: str) -> dict[str, str]:
    values = key.as_dict(private=False)
    public = {name: str(values[name]) for name in _PUBLIC_FIELDS[alg]}
    return {**public, "kid": kid, "alg": alg, "use": "sig"}


def _open(schedule: _Schedule, box: SecretBox) -> SigningKey:
    """Decrypt and import one key, checking that it is the key its record names. CPU-heavy for RSA."""
    kid = schedule.kid
    try:
        data = json.loads(box.unseal(SEAL_PURPOSE, schedule.sealed))
    except ValueError as error:
        raise KeyRingError(
            f"signing key {kid}: cannot decrypt it with the configured secrets.key ({error})"
        ) from error
    if not isinstance(data, dict) or "d" not in data:
        raise KeyRingError(f"signing key {kid}: the sealed value is not a private JWK")
    try:
        key: SigningJWK = (ECKey if schedule.alg == "ES256" else RSAKey).import_key(data)
    except (JoseError, ValueError, TypeError, KeyError) as error:
        raise KeyRingError(f"signing key {kid}: the sealed JWK does not import ({error})") from error
    if not key.is_private or not key_fits(key, schedule.alg):
        raise KeyRingError(f"signing key {kid}: the key does not fit {schedule.alg}")
    if key.thumbprint() != kid:
        raise KeyRingError(f"signing key {kid}: the kid is not the thumbprint of the sealed key")
    return SigningKey(
        kid=kid,
        alg=schedule.alg,
        created_at=schedule.created_at,
        activates_at=schedule.activates_at,
        retires_at=schedule.retires_at,
        jwk=key,
        public=_public_jwk(key, kid, schedule.alg),
    )


def _open_all(schedules: list[_Schedule], box: SecretBox) -> list[SigningKey]:
    return [_open(schedule, box) for schedule in schedules]


def _generate(alg: str) -> SigningJWK:
    """A fresh private key for ``alg``: P-256 for ES256, 2048-bit RSA for RS256 (~50 ms: use a thread)."""
    if alg == "ES256":
        return ECKey.generate_key("P-256", private=True)
    return RSAKey.generate_key(RSA_BITS, private=True)


def _new_record(box: SecretBox, key: SigningJWK, alg: str, now: int, activates_at: int) -> JSON:
    kid = key.thumbprint()
    private = {**key.as_dict(private=True), "kid": kid, "alg": alg, "use": "sig"}
    return {
        "kid": kid,
        "alg": alg,
        "created_at": now,
        "activates_at": activates_at,
        "retires_at": None,
        "private": box.seal(SEAL_PURPOSE, json.dumps(private, separators=(",", ":")).encode()),
    }


def _check_algs(algorithms: Collection[str]) -> frozenset[str]:
    algs = frozenset(algorithms)
    unknown = algs - SUPPORTED_ALGS
    if unknown or not algs:
        raise ValueError(f"signing algorithms must be among {sorted(SUPPORTED_ALGS)}, got {sorted(algs)}")
    return algs


def _check_seconds(name: str, value: int) -> int:
    if not _is_int(value) or value < 0:
        raise ValueError(f"{name} must be a whole number of seconds >= 0, got {value!r}")
    return value


class KeyRing:
    """The loaded keys of this process. Decrypts each key once; sign/verify/jwks use memory only."""

    def __init__(self, keys: list[SigningKey], fingerprint: tuple[Any, ...], box: SecretBox, clock: Clock):
        self._box = box
        self._clock = clock
        self._published_keys: tuple[SigningKey, ...] = ()
        self._algorithms: list[str] = []
        self._install(keys, fingerprint)
        self._jwks_kids: tuple[str, ...] | None = None
        self._jwks = b""

    def _install(self, keys: list[SigningKey], fingerprint: tuple[Any, ...]) -> None:
        self._keys = keys
        self._by_kid = {key.kid: key for key in keys}
        self._fingerprint = fingerprint
        self._published_span = (math.inf, -math.inf)  # worked out again at the next use

    def _published(self) -> tuple[tuple[SigningKey, ...], list[str]]:
        """The published keys, oldest first, and their algorithms, sorted. Worked out once for
        as long as no key retires (and the clock does not go back), not on every request."""
        now = self._clock()
        since, until = self._published_span
        if since <= now < until:
            return self._published_keys, self._algorithms
        keys = tuple(key for key in self._keys if key.published(now))
        retiring = [key.retires_at for key in keys if key.retires_at is not None]
        self._published_keys, self._algorithms = keys, sorted({key.alg for key in keys})
        self._published_span = (now, min(retiring, default=math.inf))
        return keys, self._algorithms

    @classmethod
    async def load(cls, store: KeyStore, box: SecretBox, clock: Clock = time.time) -> KeyRing:
        """Read every record and decrypt the keys that are still published (in a worker thread)."""
        schedules = _schedules(await store.list_signing_keys())
        now = clock()
        keys = await asyncio.to_thread(_open_all, [s for s in schedules if s.published(now)], box)
        return cls(keys, _fingerprint(schedules), box, clock)

    async def refresh(self, store: KeyStore) -> bool:
        """Pick up records another process changed; True if the ring changed.

        Unchanged records cost one store read and a tuple comparison; keys already loaded are
        reused, so only new keys are decrypted. On a bad record this raises ``KeyRingError``
        and the ring keeps serving its current keys.
        """
        schedules = _schedules(await store.list_signing_keys())
        fingerprint = _fingerprint(schedules)
        if fingerprint == self._fingerprint:
            return False
        now = self._clock()
        keep: list[SigningKey] = []
        fresh: list[_Schedule] = []
        for schedule in schedules:
            if not schedule.published(now):
                continue
            known = self._by_kid.get(schedule.kid)
            if known is not None and known.alg == schedule.alg:
                keep.append(
                    dataclasses.replace(
                        known,
                        created_at=schedule.created_at,
                        activates_at=schedule.activates_at,
                        retires_at=schedule.retires_at,
                    )
                )
            else:
                fresh.append(schedule)
        opened = await asyncio.to_thread(_open_all, fresh, self._box) if fresh else []
        keys = sorted(keep + opened, key=_age)
        self._install(keys, fingerprint)
        return True

    def signing_key(self, alg: str) -> SigningKey:
        """The newest published key of ``alg`` whose activation time has come.

        When none has (only possible when this host's clock lags the one that created the
        first key), the published key closest to activation signs rather than nothing.
        """
        now = self._clock()
        candidates = [key for key in self._published()[0] if key.alg == alg]
        active = [key for key in candidates if key.activates_at <= now]
        if active:
            return active[-1]
        if candidates:
            return candidates[0]
        raise KeyRingError(f"no {alg} signing key is published; ensure_keys creates one")

    def published_keys(self, alg: str) -> list[SigningKey]:
        """Every published key of ``alg``, oldest first, a pending successor included (SAML
        metadata announces it before it signs, as the JWKS does)."""
        return [key for key in self._published()[0] if key.alg == alg]

    async def sign(self, claims: dict[str, Any], alg: str, typ: str = "JWT") -> str:
        """A compact JWS of ``claims`` with header {alg, kid, typ}; RSA signing runs in a thread."""
        key = self.signing_key(alg)
        if alg in _OFFLOADED:
            return await asyncio.to_thread(encode, claims, key.jwk, alg=alg, kid=key.kid, typ=typ)
        return encode(claims, key.jwk, alg=alg, kid=key.kid, typ=typ)

    def verify(
        self, token: str, *, algorithms: Collection[str] = SUPPORTED_ALGS, typ: str | None = None
    ) -> dict[str, Any]:
        """The claims of a token this gateway signed with a key it still publishes.

        The accepted algorithms are pinned by the caller (never taken from the token), the
        ``kid`` must name one of our published keys and that key's alg must be the token's.
        ``typ``, when given, must match (case-insensitively). Time claims and ``aud`` are the
        caller's to check. Raises ``InvalidToken``.
        """
        pinned = _check_algs(algorithms)
        parsed = parse(token)
        if parsed.alg not in pinned:
            raise InvalidToken("alg not allowed")
        if parsed.kid is None:
            raise InvalidToken("missing kid")
        key = self._by_kid.get(parsed.kid)
        if key is None or not key.published(self._clock()):
            raise InvalidToken("unknown kid")
        if key.alg != parsed.alg:
            raise InvalidToken("key does not fit alg")
        if typ is not None:
            found = parsed.header.get("typ")
            if not isinstance(found, str) or found.lower() != typ.lower():
                raise InvalidToken("unexpected typ")
        return check(parsed, key.jwk, key.alg)

    def jwks(self) -> bytes:
        """The JSON of the public JWK set: every published key, pending ones included."""
        published = self._published()[0]
        kids = tuple(key.kid for key in published)
        if kids != self._jwks_kids:
            document = {"keys": [dict(key.public) for key in published]}
            self._jwks = json.dumps(document, separators=(",", ":")).encode()
            self._jwks_kids = kids
        return self._jwks

    def algorithms(self) -> list[str]:
        """The algorithms this ring can sign with now (discovery's signing alg values)."""
        return list(self._published()[1])


async def ensure_keys(store: KeyStore, box: SecretBox, algorithms: Collection[str], now: float) -> None:
    """Give every alg in ``algorithms`` a key, active at once, where none is published (first start).

    Run it once before workers start. Should two replicas race here, both keys are valid;
    the ring deterministically signs with one and the next ``rotate`` retires both.
    """
    algs = _check_algs(algorithms)
    at = int(now)
    covered = {s.alg for s in _schedules(await store.list_signing_keys()) if s.published(at)}
    for alg in sorted(algs - covered):
        key = await asyncio.to_thread(_generate, alg)
        await store.save_signing_key(_new_record(box, key, alg, at, at))


async def rotate(
    store: KeyStore,
    box: SecretBox,
    alg: str,
    now: float,
    overlap_seconds: int,
    retire_after_seconds: int,
) -> str:
    """Publish a new ``alg`` key that signs from ``now + overlap_seconds``; returns its kid.

    Every published key of that alg without a retirement date gets
    ``retires_at = new.activates_at + retire_after_seconds`` (pass the longest lifetime of a
    token such a key signs). The new key is saved before any old one is marked, so a crash in
    between leaves two valid keys, never none. With no published key of that alg, the new one
    is active at once.
    """
    _check_algs([alg])
    _check_seconds("overlap_seconds", overlap_seconds)
    _check_seconds("retire_after_seconds", retire_after_seconds)
    at = int(now)
    records = {record.get("kid"): record for record in await store.list_signing_keys()}
    live = [s for s in _schedules(records.values()) if s.alg == alg and s.published(at)]
    key = await asyncio.to_thread(_generate, alg)
    record = _new_record(box, key, alg, at, at + overlap_seconds if live else at)
    await store.save_signing_key(record)
    for old in live:
        if old.retires_at is None:
            await store.save_signing_key(
                {**records[old.kid], "retires_at": record["activates_at"] + retire_after_seconds}
            )
    return str(record["kid"])
