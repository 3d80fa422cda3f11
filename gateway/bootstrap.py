"""First-start and maintenance work run by the CLI before any worker starts.

``prepare`` migrates the store, creates the dev secret (loopback issuers only) and the
first signing keys, so that ``uvicorn --workers N`` forks into a ready store; each worker
then only loads. ``rotate_keys`` publishes a new signing key.
"""

from __future__ import annotations

import asyncio
import time

from gateway.runtime import first_start, secret_keys
from gateway.secrets import SecretBox
from gateway.settings.models import Settings
from gateway.store.factory import open_store
from gateway.tokens.keys import rotate


async def _prepare(settings: Settings) -> None:
    store = open_store(settings.store)
    try:
        await first_start(settings, store, SecretBox(secret_keys(settings)), int(time.time()))
    finally:
        await store.close()


def prepare(settings: Settings) -> None:
    asyncio.run(_prepare(settings))


async def _rotate(settings: Settings, algorithm: str) -> str:
    store = open_store(settings.store)
    box = SecretBox(secret_keys(settings))
    try:
        await first_start(settings, store, box, int(time.time()))
        return await rotate(
            store,
            box,
            algorithm,
            int(time.time()),
            overlap_seconds=settings.keys.rotation_overlap_seconds,
            retire_after_seconds=settings.tokens.id_token_seconds,
        )
    finally:
        await store.close()


def rotate_keys(settings: Settings, algorithm: str | None = None) -> str:
    """Publish a new key for ``algorithm`` (default ``keys.algorithm``); returns its kid."""
    return asyncio.run(_rotate(settings, algorithm or settings.keys.algorithm))
