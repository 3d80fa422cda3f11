"""The hand-written HMAC-SHA256 over pre-keyed hash states (docs/adr/0011): it is ``hmac.digest``.

RFC 4231's test vectors, then random keys (shorter than, equal to and longer than SHA-256's 64-byte
block) and messages against ``hmac.digest``; a prepared key gives the same MAC however often and from
however many threads it is used; and ``SecretBox`` / ``pairwise_sub`` give what they gave with
``hmac.digest``, with verification still checking every configured secret and nothing else.
"""

from __future__ import annotations

import base64
import hmac
import random
import threading

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gateway.oidc.claims import pairwise_sub
from gateway.secrets import HmacSha256, SecretBox, _b64

# RFC 4231 section 4: (key, data, HMAC-SHA-256); case 5's output is truncated to 128 bits there.
RFC4231 = [
    (b"\x0b" * 20, b"Hi There", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
    (
        b"Jefe",
        b"what do ya want for nothing?",
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
    ),
    (b"\xaa" * 20, b"\xdd" * 50, "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
    (
        bytes(range(1, 26)),
        b"\xcd" * 50,
        "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
    ),
    (b"\x0c" * 20, b"Test With Truncation", "a3b6167473100ee06e0c796c2955552b"),
    (
        b"\xaa" * 131,
        b"Test Using Larger Than Block-Size Key - Hash Key First",
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
    ),
    (
        b"\xaa" * 131,
        b"This is a test using a larger than block-size key and a larger than block-size data. The key needs"
        b" to be hashed before being used by the HMAC algorithm.",
        "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
    ),
]


@pytest.mark.parametrize(("key", "data", "expected"), RFC4231)
def test_rfc4231_vectors(key: bytes, data: bytes, expected: str) -> None:
    assert HmacSha256(key).digest(data).hex()[: len(expected)] == expected
    assert hmac.digest(key, data, "sha256").hex()[: len(expected)] == expected


@pytest.mark.parametrize("key_length", [0, 1, 16, 32, 63, 64, 65, 100, 128, 129, 200])
def test_random_keys_and_messages_match_hmac_digest(key_length: int) -> None:
    rng = random.Random(key_length)
    for _ in range(50):
        key = rng.randbytes(key_length)
        prepared = HmacSha256(key)
        for length in (0, 1, 55, 56, 63, 64, 65, 119, 120, rng.randrange(0, 1000)):
            message = rng.randbytes(length)
            assert prepared.digest(message) == hmac.digest(key, message, "sha256")


def test_keys_differing_only_past_the_block_or_in_trailing_zeros_differ() -> None:
    """A long key is hashed, a short one zero-padded: neither makes two keys collide by accident."""
    long_key = b"k" * 64
    assert HmacSha256(long_key + b"a").digest(b"m") != HmacSha256(long_key + b"b").digest(b"m")
    assert HmacSha256(b"key").digest(b"m") == hmac.digest(b"key", b"m", "sha256")
    assert HmacSha256(b"key\x00").digest(b"m") == hmac.digest(b"key\x00", b"m", "sha256")


def test_a_prepared_key_is_not_changed_by_use() -> None:
    prepared = HmacSha256(b"secret")
    first = prepared.digest(b"one")
    prepared.digest(b"two" * 100)
    assert prepared.digest(b"one") == first == hmac.digest(b"secret", b"one", "sha256")


def test_a_prepared_key_is_safe_to_share_between_threads() -> None:
    prepared = HmacSha256(b"shared")
    messages = [f"message {i}".encode() * (i % 7 + 1) for i in range(200)]
    expected = [hmac.digest(b"shared", m, "sha256") for m in messages]
    wrong: list[int] = []

    def work() -> None:
        for _ in range(5):
            for i, message in enumerate(messages):
                if prepared.digest(message) != expected[i]:
                    wrong.append(i)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []


def test_b64_is_unpadded_base64url() -> None:
    rng = random.Random(7)
    for length in range(0, 70):
        data = rng.randbytes(length)
        assert _b64(data) == base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    assert _b64(b"\xfb\xff\xfe") == "-__-"


def subkey(master: str, purpose: str) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"federation-gateway/v1", info=purpose.encode()
    ).derive(master.encode())


def reference(master: str, purpose: str, value: str) -> str:
    """What ``SecretBox.keyed_hash`` computed with ``hmac.digest`` (before ADR 0011)."""
    digest = hmac.digest(subkey(master, purpose), value.encode(), "sha256")
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def test_keyed_hash_and_mac_are_unchanged() -> None:
    box = SecretBox(["new-secret", "old-secret"])
    for value in ("127.0.0.1", "guest@example.com", "sign-in\x00browser", "Zoë ✓", ""):
        for purpose in ("ip", "csrf", "browser-binding"):
            assert box.keyed_hash(purpose, value) == reference("new-secret", purpose, value)
            assert box.mac(purpose, value) == reference("new-secret", purpose, value)


def test_verify_mac_accepts_every_configured_secret_and_nothing_else() -> None:
    box = SecretBox(["new-secret", "old-secret"])
    value = "signin\x00browser"
    assert box.verify_mac("csrf", value, reference("new-secret", "csrf", value))
    assert box.verify_mac("csrf", value, reference("old-secret", "csrf", value))
    assert not box.verify_mac("csrf", value, reference("dropped-secret", "csrf", value))
    assert not box.verify_mac("csrf", value, reference("new-secret", "browser-binding", value))
    assert not box.verify_mac("csrf", value + "x", reference("new-secret", "csrf", value))
    assert not box.verify_mac("csrf", value, reference("new-secret", "csrf", value)[:-1])
    assert not box.verify_mac("csrf", value, "")


def test_pairwise_sub_is_unchanged() -> None:
    rng = random.Random(3)
    for _ in range(20):
        salt = rng.randbytes(32)
        digest = hmac.digest(salt, b"app\x00object-id", "sha256")
        expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        assert pairwise_sub(salt, "app", "object-id") == expected
    salt = b"s" * 32
    assert pairwise_sub(salt, "app-a", "user") != pairwise_sub(salt, "app-b", "user")
