"""An in-memory stand-in for the signing-key and meta methods of ``DirectoryStore``, for unit tests.

Values are copied through JSON on the way in and out, as the real backends do, so a caller
that mutates what it read cannot change what is stored. ``writes`` counts every save, so a
test can show that a refused operation persisted nothing.
"""

from __future__ import annotations

import json
from typing import Any

JSON = dict[str, Any]


def _copy(value: JSON) -> JSON:
    copied: JSON = json.loads(json.dumps(value))
    return copied


class MemoryKeyStore:
    """``list_signing_keys`` / ``save_signing_key`` / ``get_meta`` / ``set_meta_if_absent``."""

    def __init__(self) -> None:
        self._keys: dict[str, JSON] = {}
        self._meta: dict[str, str] = {}
        self.writes = 0
        self.reads = 0

    async def list_signing_keys(self) -> list[JSON]:
        self.reads += 1
        return [_copy(record) for record in self._keys.values()]

    async def save_signing_key(self, record: JSON) -> None:
        self.writes += 1
        self._keys[record["kid"]] = _copy(record)

    async def get_meta(self, name: str) -> str | None:
        return self._meta.get(name)

    async def set_meta_if_absent(self, name: str, value: str) -> str:
        if name not in self._meta:
            self.writes += 1
            self._meta[name] = value
        return self._meta[name]

    async def close(self) -> None:
        self._keys.clear()
        self._meta.clear()

    def raw(self) -> dict[str, JSON]:
        """What is stored, for assertions about data at rest."""
        return {kid: _copy(record) for kid, record in self._keys.items()}
