"""The install secret and everything derived from it: subkeys, keyed hashes, MACs, sealed blobs.

``secrets.key`` may be a list: the first key derives everything new, every key still
verifies and decrypts, so an operator rotates by prepending a key and later dropping the
old one. Each purpose gets its own HKDF subkey, so a MAC for one purpose never verifies
for another.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

DEV_SECRET_FILE = "var/secret.key"


_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _b64(data: bytes) -> str:
    """Unpadded base64url (``urlsafe_b64encode(data).rstrip(b"=")``, in fewer steps)."""
    return binascii.b2a_base64(data).translate(_URLSAFE, b"=\n").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


_BLOCK = 64  # SHA-256's block size in bytes
_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


class HmacSha256:
    """HMAC-SHA256 (RFC 2104) under one key, its inner and outer pads hashed once (ADR 0011).

    ``hmac.digest`` costs ~24 k instructions a call under OpenSSL 3 (it fetches the algorithm
    each time); copying two pre-keyed ``hashlib.sha256`` states costs half. The result is
    ``hmac.digest(key, message, "sha256")`` byte for byte (tests/tokens/test_hmac_sha256.py).
    """

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        if len(key) > _BLOCK:
            key = hashlib.sha256(key).digest()
        key = key.ljust(_BLOCK, b"\0")
        self._inner = hashlib.sha256(key.translate(_IPAD))
        self._outer = hashlib.sha256(key.translate(_OPAD))

    def digest(self, message: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


class SecretBox:
    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise ValueError("at least one secret key is required")
        self._masters = [key.encode() for key in keys]
        self._cache: dict[tuple[int, str], bytes] = {}
        self._macs: dict[tuple[int, str], HmacSha256] = {}

    def _subkey(self, index: int, purpose: str) -> bytes:
        cached = self._cache.get((index, purpose))
        if cached is None:
            cached = HKDF(
                algorithm=hashes.SHA256(), length=32, salt=b"federation-gateway/v1", info=purpose.encode()
            ).derive(self._masters[index])
            self._cache[(index, purpose)] = cached
        return cached

    def _mac(self, index: int, purpose: str) -> HmacSha256:
        keyed = self._macs.get((index, purpose))
        if keyed is None:
            keyed = self._macs[(index, purpose)] = HmacSha256(self._subkey(index, purpose))
        return keyed

    def derive(self, purpose: str) -> bytes:
        """A 32-byte key for ``purpose`` from the current (first) secret."""
        return self._subkey(0, purpose)

    def keyed_hash(self, purpose: str, value: str) -> str:
        """HMAC-SHA256 of ``value`` under the current secret: for values kept at rest."""
        return _b64(self._mac(0, purpose).digest(value.encode()))

    def mac(self, purpose: str, value: str) -> str:
        return self.keyed_hash(purpose, value)

    def verify_mac(self, purpose: str, value: str, tag: str) -> bool:
        """Constant-time check of ``tag`` against every configured secret."""
        ok = False
        message = value.encode()
        for index in range(len(self._masters)):
            expected = _b64(self._mac(index, purpose).digest(message))
            ok |= hmac.compare_digest(expected, tag)
        return ok

    def seal(self, purpose: str, plaintext: bytes) -> str:
        """AES-256-GCM under the current secret; the purpose is bound as associated data."""
        nonce = os.urandom(12)
        sealed = AESGCM(self._subkey(0, purpose)).encrypt(nonce, plaintext, purpose.encode())
        return "v1." + _b64(nonce + sealed)

    def unseal(self, purpose: str, token: str) -> bytes:
        """Decrypt with whichever configured secret sealed it; ValueError when none does."""
        version, _, body = token.partition(".")
        if version != "v1":
            raise ValueError("unknown sealed-blob version")
        raw = _unb64(body)
        for index in range(len(self._masters)):
            try:
                return AESGCM(self._subkey(index, purpose)).decrypt(raw[:12], raw[12:], purpose.encode())
            except Exception:  # noqa: S112 - try the next secret
                continue
        raise ValueError("no configured secret opens this blob")


def load_or_create_dev_secret(path: Path = Path(DEV_SECRET_FILE)) -> str:
    """The development secret for loopback issuers: created once, mode 0600, never committed."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, value.encode())
    except BaseException:
        os.close(fd)
        raise
    os.close(fd)
    return value
