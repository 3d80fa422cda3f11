"""Fixtures for integration tests: a gateway on a fresh SQLite store, mail through the real SMTP server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.gateway_app import make_settings, running_app
from tests.support.smtp_server import SmtpServer


@pytest.fixture
async def gateway(tmp_path: Path, smtp_server: SmtpServer) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    async with running_app(make_settings(tmp_path, smtp_server)) as running:
        yield running


@pytest.fixture
def app(gateway: tuple[Any, httpx.AsyncClient]) -> Any:
    return gateway[0]


@pytest.fixture
def client(gateway: tuple[Any, httpx.AsyncClient]) -> httpx.AsyncClient:
    return gateway[1]
