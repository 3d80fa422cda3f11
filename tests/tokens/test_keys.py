"""Signing keys at rest, loading once, rotation with overlap and retirement, JWKS publication."""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from gateway.secrets import SecretBox
from gateway.store.factory import open_store
from gateway.tokens.jwt import InvalidToken
from gateway.tokens.keys import SEAL_PURPOSE, KeyRing, KeyRingError, ensure_keys, rotate
from tests.support.memory_store import MemoryKeyStore

T0 = 1_700_000_000
SECRET = "s" * 40
CLAIMS = {"iss": "http://127.0.0.1:8000", "sub": "abc", "aud": "demo"}


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class CountingBox(SecretBox):
    def __init__(self, keys: list[str]) -> None:
        super().__init__(keys)
        self.unseals = 0

    def unseal(self, purpose: str, token: str) -> bytes:
        self.unseals += 1
        return super().unseal(purpose, token)


def kids(jwks: bytes) -> list[str]:
    return [key["kid"] for key in json.loads(jwks)["keys"]]


def rfc7638(jwk: dict[str, Any]) -> str:
    members = ("crv", "kty", "x", "y") if jwk["kty"] == "EC" else ("e", "kty", "n")
    canonical = json.dumps({name: jwk[name] for name in members}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


@pytest.fixture
def store() -> MemoryKeyStore:
    return MemoryKeyStore()


@pytest.fixture
def box() -> CountingBox:
    return CountingBox([SECRET])


async def test_ensure_keys_creates_one_active_key_per_alg_once(
    store: MemoryKeyStore, box: CountingBox
) -> None:
    await ensure_keys(store, box, {"ES256", "RS256"}, T0)
    records = store.raw()
    assert sorted(r["alg"] for r in records.values()) == ["ES256", "RS256"]
    for kid, record in records.items():
        assert record["kid"] == kid
        assert record["created_at"] == record["activates_at"] == T0
        assert record["retires_at"] is None
    writes = store.writes
    await ensure_keys(store, box, {"ES256", "RS256"}, T0 + 5)
    assert store.writes == writes
    await ensure_keys(store, box, {"ES256"}, T0 + 5)
    assert store.writes == writes


async def test_kid_is_the_rfc7638_thumbprint(
    store: MemoryKeyStore, box: CountingBox
) -> None:
    await ensure_keys(store, box, {"ES256", "RS256"}, T0)
    ring = await KeyRing.load(store, box, clock=Clock(T0))
    published = json.loads(ring.jwks())["keys"]
    assert len(published) == 2
    for jwk in published:
        assert jwk["kid"] == rfc7638(jwk)
    assert {jwk["kid"] for jwk in published} == set(store.raw())


async def test_private_keys_are_sealed_at_rest(
    store: MemoryKeyStore, box: CountingBox
) -> None:
    await ensure_keys(store, box, {"ES256", "RS256"}, T0)
    for record in store.raw().values():
        assert set(record) == {"kid", "alg", "created_at", "activates_at", "retires_at", "private"}
        text = json.dumps(record)
        for member in ('"d"', '"p"', '"q"', '"dp"', '"dq"', '"qi"', '"x"', '"n"'):
            assert member not in text
        assert record["private"].startswith("v1.")
        opened = json.loads(box.unseal(SEAL_PURPOSE, record["private"]))
        assert "d" in opened and opened["kid"] == record["kid"]
        with pytest.raises(ValueError, match="no configured secret"):
            SecretBox(["another secret of forty characters......"]).unseal(SEAL_PURPOSE, record["private"])
        with pytest.raises(ValueError):
            box.unseal("some-other-purpose", record["private"])


async def test_loading_with_the_wrong_secret_fails_clearly(
    store: MemoryKeyStore, box: CountingBox
) -> None:
    await ensure_keys(store, box, {"ES256"}, T0)
    with pytest.raises(KeyRingError, match=r"cannot decrypt it with the configured secrets\.key"):
        await KeyRing.load(store, SecretBox(["w" * 40]), clock=Clock(T0))


async def test_a_rotated_install_secret_still_opens_old_keys(
    store: MemoryKeyStore, box: CountingBox
) -> None:
    await ensure_keys(store, box, {"ES256"}, T0)
    ring = await KeyRing.load(store, SecretBox(["n" * 40, SECRET]), clock=Clock(T0))
    assert ring.verify(await ring.sign(CLAIMS, "ES256")) == CLAIMS


async def test_keys_are_decrypted_once_not_per_request(
    store: MemoryKeyStore, box: CountingBox
) -> None:
    await ensure_keys(store, box, {"ES256", "RS256"}, T0)
    clock = Clock(T0)
    ring = await KeyRing.load(store, box, clock=clock)
    assert box.unseals == 2
    for _ in range(10):
        for alg in ("ES256", "RS256"):
            ring.verify(await ring.sign(CLAIMS, alg))
        ring.jwks()
    assert box.unseals == 2
    assert await ring.refresh(store) is False
    assert box.unseals == 2
    await rotate(store, box, "ES256", T0 + 10, overlap_seconds=60, retire_after_seconds=600)
    assert await ring.refresh(store) is True
    assert box.unseals == 3  # only the new key


async def test_rotation_publishes_first_signs_later_and_retires_the_old_key(
    store: MemoryKeyStore, box: CountingBox
) -> None:
    await ensure_keys(store, box, {"ES256"}, T0)
    clock = Clock(T0 + 100)
    ring = await KeyRing.load(store, box, clock=clock)
    old = ring.signing_key("ES256").kid
    old_token = await ring.sign(CLAIMS, "ES256")

    new = await rotate(store, box, "ES256", T0 + 100, overlap_seconds=3600, retire_after_seconds=7200)
    records = store.raw()
    assert records[new]["activates_at"] == T0 + 3700
    assert records[new]["retires_at"] is None
    assert records[old]["retires_at"] == T0 + 3700 + 7200
    await ring.refresh(store)

    # Published before it signs.
    assert set(kids(ring.jwks())) == {old, new}
    assert ring.signing_key("ES256").kid == old
    clock.now = T0 + 3699
    assert ring.signing_key("ES256").kid == old
    # Signs from its activation time; the old key still verifies what it signed.
    clock.now = T0 + 3700
    assert ring.signing_key("ES256").kid == new
    new_token = await ring.sign(CLAIMS, "ES256")
    assert json.loads(base64.urlsafe_b64decode(new_token.split(".")[0] + "=="))["kid"] == new
    clock.now = T0 + 3700 + 7199
    assert ring.verify(old_token) == CLAIMS
    assert set(kids(ring.jwks())) == {old, new}
    # At retires_at it leaves the JWKS and no longer verifies.
    clock.now = T0 + 3700 + 7200
    assert kids(ring.jwks()) == [new]
    with pytest.raises(InvalidToken, match="unknown kid"):
        ring.verify(old_token)
    assert ring.verify(new_token) == CLAIMS


async def test_a_second_ring_sees_the_rotation_after_refresh(
    store: MemoryKeyStore, box: CountingBox
) -> None:
    await ensure_keys(store, box, {"ES256", "RS256"}, T0)
    clock = Clock(T0)
    first = await KeyRing.load(store, box, clock=clock)
    second = await KeyRing.load(store, CountingBox([SECRET]), clock=clock)
    new = await rotate(store, box, "RS256", T0, overlap_seconds=0, retire_after_seconds=300)
    assert new not in kids(second.jwks())
    assert await second.refresh(store) is True
    assert new in kids(second.jwks())
    assert second.signing_key("RS256").kid == new
    # A token the new key signs in one worker verifies in the other once it refreshed.
    await first.refresh(store)
    assert second.verify(await first.sign(CLAIMS, "RS256")) == CLAIMS


async def test_jwks_lists_public_members_only_with_distinct_kids(
    store: MemoryKeyStore, box: CountingBox
) -> None:
    await ensure_keys(store, box, {"ES256", "RS256"}, T0)
    await rotate(store, box, "ES256", T0, overlap_seconds=60, retire_after_seconds=600)
    await rotate(store, box, "RS256", T0, overlap_seconds=60, retire_after_seconds=600)
    ring = await KeyRing.load(store, box, clock=Clock(T0))
    published = json.loads(ring.jwks())["keys"]
    assert len(published) == 4
    assert len({key["kid"] for key in published}) == 4
    for key in published:
        assert key["use"] == "sig"
        if key["kty"] == "EC":
            assert set(key) == {"kty", "crv", "x", "y", "kid", "alg", "use"}
            assert (key["crv"], key["alg"]) == ("P-256", "ES256")
        else:
            assert set(key) == {"kty", "n", "e", "kid", "alg", "use"}
            assert key["alg"] == "RS256"
            assert len(base64.urlsafe_b64decode(key["n"] + "==")) * 8 == 2048
    assert ring.algorithms() == ["ES256", "RS256"]


async def test_jwks_is_cached_until_the_published_set_changes(
    store: MemoryKeyStore, box: CountingBox
) -> None:
    await ensure_keys(store, box, {"ES256"}, T0)
    clock = Clock(T0)
    ring = await KeyRing.load(store, box, clock=clock)
    first = ring.jwks()
    assert ring.jwks() is first
    await ring.refresh(store)
    assert ring.jwks() is first
    await rotate(store, box, "ES256", T0, overlap_seconds=10, retire_after_seconds=10)
    await ring.refresh(store)
    second = ring.jwks()
    assert second is not first and len(kids(second)) == 2
    assert ring.jwks() is second
    clock.now = T0 + 20
    assert len(kids(ring.jwks())) == 1


async def test_the_published_keys_follow_the_clock_both_ways_and_every_refresh(
    store: MemoryKeyStore, box: CountingBox
) -> None:
    """The ring works its published set out once until a key retires; a clock set back, a
    retirement and a refresh each show at once in the JWKS, the algorithms and the signing key."""
    await ensure_keys(store, box, {"ES256", "RS256"}, T0)
    clock = Clock(T0)
    ring = await KeyRing.load(store, box, clock=clock)
    first_rs = ring.signing_key("RS256").kid
    await rotate(store, box, "RS256", T0, overlap_seconds=0, retire_after_seconds=50)
    assert ring.algorithms() == ["ES256", "RS256"]
    await ring.refresh(store)
    assert len(ring.published_keys("RS256")) == 2 and ring.signing_key("RS256").kid != first_rs
    clock.now = T0 + 50  # the first RS256 key retires
    assert first_rs not in [key.kid for key in ring.published_keys("RS256")]
    assert first_rs not in kids(ring.jwks()) and len(kids(ring.jwks())) == 2
    clock.now = T0 + 49  # set back: published again
    assert first_rs in kids(ring.jwks()) and len(ring.published_keys("RS256")) == 2
    clock.now = T0 + 60
    assert first_rs not in kids(ring.jwks())
    for record in store.raw().values():  # every RS256 key retired by another process
        if record["alg"] == "RS256" and record["retires_at"] is None:
            await store.save_signing_key({**record, "retires_at": T0 + 70})
    await ring.refresh(store)
    assert ring.algorithms() == ["ES256", "RS256"]
    clock.now = T0 + 70
    assert ring.algorithms() == ["ES256"] and len(kids(ring.jwks())) == 1


async def test_rotating_twice_before_activation_retires_every_superseded_key(
    store: MemoryKeyStore, box: CountingBox
) -> None:
    await ensure_keys(store, box, {"ES256"}, T0)
    (first,) = store.raw()
    second = await rotate(store, box, "ES256", T0, overlap_seconds=100, retire_after_seconds=50)
    third = await rotate(store, box, "ES256", T0 + 1, overlap_seconds=100, retire_after_seconds=50)
    records = store.raw()
    assert records[first]["retires_at"] == T0 + 100 + 50  # kept from the first rotation
    assert records[second]["retires_at"] == T0 + 101 + 50
    assert records[third]["retires_at"] is None
    clock = Clock(T0 + 101)
    ring = await KeyRing.load(store, box, clock=clock)
    assert ring.signing_key("ES256").kid == third
    clock.now = T0 + 151
    assert kids(ring.jwks()) == [third]


async def test_rotating_an_alg_without_a_key_activates_it_at_once(
    store: MemoryKeyStore, box: CountingBox
) -> None:
    await ensure_keys(store, box, {"ES256"}, T0)
    kid = await rotate(store, box, "RS256", T0, overlap_seconds=3600, retire_after_seconds=3600)
    assert store.raw()[kid]["activates_at"] == T0
    ring = await KeyRing.load(store, box, clock=Clock(T0))
    assert ring.signing_key("RS256").kid == kid


async def test_signing_key_choice(
    store: MemoryKeyStore, box: CountingBox
) -> None:
    await ensure_keys(store, box, {"ES256"}, T0)
    # A host whose clock lags the one that created the key still signs, with that key.
    lagging = await KeyRing.load(store, box, clock=Clock(T0 - 5))
    assert lagging.signing_key("ES256").kid in store.raw()
    with pytest.raises(KeyRingError, match="no RS256 signing key"):
        lagging.signing_key("RS256")
    with pytest.raises(KeyRingError, match="no RS256 signing key"):
        await lagging.sign(CLAIMS, "RS256")


async def test_retired_keys_are_not_decrypted_at_load(
    store: MemoryKeyStore, box: CountingBox
) -> None:
    await ensure_keys(store, box, {"ES256"}, T0)
    (old,) = store.raw()
    await rotate(store, box, "ES256", T0, overlap_seconds=0, retire_after_seconds=10)
    record = store.raw()[old]
    record["private"] = SecretBox(["d" * 40]).seal(SEAL_PURPOSE, b"{}")  # sealed by a dropped secret
    await store.save_signing_key(record)
    box.unseals = 0
    ring = await KeyRing.load(store, box, clock=Clock(T0 + 10))
    assert box.unseals == 1
    assert old not in kids(ring.jwks())


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s, b: ensure_keys(s, b, {"HS256"}, T0), "must be among"),
        (lambda s, b: ensure_keys(s, b, {"ES256", "none"}, T0), "must be among"),
        (lambda s, b: ensure_keys(s, b, set(), T0), "must be among"),
        (lambda s, b: rotate(s, b, "HS256", T0, 60, 60), "must be among"),
        (lambda s, b: rotate(s, b, "none", T0, 60, 60), "must be among"),
        (lambda s, b: rotate(s, b, "ES256", T0, -1, 60), "overlap_seconds must be"),
        (lambda s, b: rotate(s, b, "ES256", T0, 60, -5), "retire_after_seconds must be"),
        (lambda s, b: rotate(s, b, "ES256", T0, 1.5, 60), "overlap_seconds must be"),  # type: ignore[arg-type]
        (lambda s, b: rotate(s, b, "ES256", T0, True, 60), "overlap_seconds must be"),
    ],
)
async def test_bad_arguments_are_refused_and_nothing_is_written(
    store: MemoryKeyStore, box: CountingBox, call: Any, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        await call(store, box)
    assert store.writes == 0
    assert store.raw() == {}


async def _swap(store: MemoryKeyStore, kid: str, **changes: Any) -> None:
    await store.save_signing_key({**store.raw()[kid], **changes})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"alg": "HS256"}, "alg 'HS256' is not one of"),
        ({"alg": "RS256"}, "does not import"),
        ({"activates_at": "soon"}, "must be unix seconds"),
        ({"retires_at": True}, "must be unix seconds"),
        ({"private": None}, "no sealed private key"),
        ({"private": "v2.abc"}, "cannot decrypt"),
    ],
)
async def test_corrupt_records_fail_loading_clearly(
    store: MemoryKeyStore, box: CountingBox, change: dict[str, Any], message: str
) -> None:
    await ensure_keys(store, box, {"ES256"}, T0)
    (kid,) = store.raw()
    await _swap(store, kid, **change)
    with pytest.raises(KeyRingError, match=message):
        await KeyRing.load(store, box, clock=Clock(T0))


async def test_a_record_whose_kid_names_another_key_is_refused(
    store: MemoryKeyStore, box: CountingBox
) -> None:
    await ensure_keys(store, box, {"ES256"}, T0)
    (kid,) = store.raw()
    await rotate(store, box, "ES256", T0, overlap_seconds=60, retire_after_seconds=60)
    other = next(k for k in store.raw() if k != kid)
    await _swap(store, kid, private=store.raw()[other]["private"])
    with pytest.raises(KeyRingError, match="not the thumbprint of the sealed key"):
        await KeyRing.load(store, box, clock=Clock(T0))


async def test_a_sealed_public_key_is_refused(
    store: MemoryKeyStore, box: CountingBox
) -> None:
    await ensure_keys(store, box, {"ES256"}, T0)
    (kid,) = store.raw()
    jwk = json.loads(box.unseal(SEAL_PURPOSE, store.raw()[kid]["private"]))
    del jwk["d"]
    await _swap(store, kid, private=box.seal(SEAL_PURPOSE, json.dumps(jwk).encode()))
    with pytest.raises(KeyRingError, match="not a private JWK"):
        await KeyRing.load(store, box, clock=Clock(T0))


async def test_a_bad_record_on_refresh_keeps_the_current_keys(
    store: MemoryKeyStore, box: CountingBox
) -> None:
    await ensure_keys(store, box, {"ES256"}, T0)
    ring = await KeyRing.load(store, box, clock=Clock(T0))
    before = ring.jwks()
    new = await rotate(store, box, "ES256", T0, overlap_seconds=0, retire_after_seconds=60)
    await _swap(store, new, private=SecretBox(["z" * 40]).seal(SEAL_PURPOSE, b"{}"))
    with pytest.raises(KeyRingError, match=f"signing key {new}: cannot decrypt"):
        await ring.refresh(store)
    assert ring.jwks() == before
    assert ring.verify(await ring.sign(CLAIMS, "ES256")) == CLAIMS


async def test_rotation_reaches_another_process_through_a_real_sqlite_store(tmp_path: Path) -> None:
    """Two store handles on one SQLite file stand for two workers; keys stay sealed in the file."""
    url = f"sqlite:///{tmp_path}/gateway.db"
    first, second = open_store(url), open_store(url)
    await first.migrate()
    try:
        box = SecretBox([SECRET])
        clock = Clock(T0)
        await ensure_keys(first, box, {"ES256", "RS256"}, T0)
        worker_a = await KeyRing.load(first, box, clock=clock)
        worker_b = await KeyRing.load(second, box, clock=clock)
        assert worker_a.jwks() == worker_b.jwks()

        new = await rotate(second, box, "ES256", T0, overlap_seconds=30, retire_after_seconds=600)
        assert await worker_a.refresh(first) is True
        assert new in kids(worker_a.jwks())
        clock.now = T0 + 30
        assert worker_a.signing_key("ES256").kid == new
        token = await worker_a.sign(CLAIMS, "ES256")
        await worker_b.refresh(second)
        assert worker_b.verify(token) == CLAIMS
    finally:
        await first.close()
        await second.close()
    with sqlite3.connect(tmp_path / "gateway.db") as db:
        rows = [json.loads(row[0]) for row in db.execute("SELECT record FROM signing_keys")]
    assert len(rows) == 3
    for row in rows:
        assert "d" not in row and '"d"' not in json.dumps(row)
        assert row["private"].startswith("v1.")


async def test_a_successor_activating_in_the_same_second_signs(
    store: MemoryKeyStore, box: CountingBox
) -> None:
    """overlap 0 at the same second: the superseded key must not win a tie with its successor."""
    await ensure_keys(store, box, {"ES256"}, T0)
    ring = await KeyRing.load(store, box, clock=Clock(T0))
    for _ in range(8):
        new = await rotate(store, box, "ES256", T0, overlap_seconds=0, retire_after_seconds=60)
        await ring.refresh(store)
        assert ring.signing_key("ES256").kid == new
        fresh = await KeyRing.load(store, box, clock=Clock(T0))
        assert fresh.signing_key("ES256").kid == new
