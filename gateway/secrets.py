"""The install secret and everything derived from it: subkeys, keyed hashes, MACs, sealed blobs.

``secrets.key`` may be a list: the first key derives everything new, every key still
verifies and decrypts, so an operator rotates by prepending a key and later dropping the
old one. Each purpose gets its own HKDF subkey, so a MAC for one purpose never verifies
for another.
"""

from __future__ import annotations

import base64
import hmac
import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

DEV_SECRET_FILE = "var/secret.key"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SecretBox:
    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise ValueError("at least one secret key is required")
        self._masters = [key.encode() for key in keys]
        self._cache: dict[tuple[int, str], bytes] = {}

    def _subkey(self, index: int, purpose: str) -> bytes:
        cached = self._cache.get((index, purpose))
        if cached is None:
            cached = HKDF(
                algorithm=hashes.SHA256(), length=32, salt=b"federation-gateway/v1", info=purpose.encode()
            ).derive(self._masters[index])
            self._cache[(index, purpose)] = cached
        return cached

    def derive(self, purpose: str) -> bytes:
        """A 32-byte key for ``purpose`` from the current (first) secret."""
        return self._subkey(0, purpose)

    def keyed_hash(self, purpose: str, value: str) -> str:
        """HMAC-SHA256 of ``value`` under the current secret: for values kept at rest."""
        return _b64(hmac.digest(self._subkey(0, purpose), value.encode(), "sha256"))

    def mac(self, purpose: str, value: str) -> str:
        return self.keyed_hash(purpose, value)

    def verify_mac(self, purpose: str, value: str, tag: str) -> bool:
        """Constant-time check of ``tag`` against every configured secret."""
        ok = False
        for index in range(len(self._masters)):
            expected = _b64(hmac.digest(self._subkey(index, purpose), value.encode(), "sha256"))
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
