"""Fixtures for the MFA unit tests: ``backend`` runs a test on the real SQLite store (with a settable
clock) and on a real Redis; ``box`` is the ``SecretBox`` methods are sealed with; ``user`` a stored user."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gateway.secrets import SecretBox
from gateway.store.base import Store
from gateway.store.redis import RedisStore
from gateway.store.sqlite import SQLiteStore


class FakeClock:
    """A settable clock for ``SQLiteStore(clock=...)``: artefact TTLs expire on it."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Backend:
    name: str
    store: Store
    clock: FakeClock | None
    """The store's clock (SQLite only; Redis expires keys in real time)."""


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    store: Store
    clock: FakeClock | None = None
    if request.param == "sqlite":
        clock = FakeClock()
        store = SQLiteStore(tmp_path / "store.db", clock=clock)
    else:
        store = RedisStore.from_url(request.getfixturevalue("fresh_redis_url"))
    await store.migrate()
    try:
        yield Backend(request.param, store, clock)
    finally:
        await store.close()


@pytest.fixture
def store(backend: Backend) -> Store:
    return backend.store


@pytest.fixture
def box() -> SecretBox:
    return SecretBox(["mfa-tests-secret-" + "k" * 32])


@pytest.fixture
async def user(store: Store) -> dict[str, Any]:
    created = {
        "id": str(uuid.uuid4()),
        "userType": "Guest",
        "accountEnabled": True,
        "displayName": "Guest",
        "mail": "guest@fabrikam.example",
        "identities": [
            {"signInType": "federated", "issuer": "mail", "issuerAssignedId": "guest@fabrikam.example"}
        ],
    }
    assert await store.create_user(created, [("mail", "guest@fabrikam.example")])
    return created
