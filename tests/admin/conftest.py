"""Fixtures: ``api`` (an ``helpers.Api`` over a fresh gateway: SQLite in tmp_path, mail through the
real SMTP server) and ``api_with(**overrides)`` (an async context manager building one with other
settings)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.admin.helpers import Api, config
from tests.support.assertions import Clock
from tests.support.gateway_app import make_settings, running_app
from tests.support.smtp_server import SmtpServer

ApiFactory = Callable[..., AbstractAsyncContextManager[Api]]


@pytest.fixture
def api_with(tmp_path: Path, smtp_server: SmtpServer) -> ApiFactory:
    @asynccontextmanager
    async def build(**overrides: Any) -> AsyncIterator[Api]:
        settings = make_settings(tmp_path, smtp_server, **config(**overrides))
        clock = Clock()
        async with running_app(settings, clock=clock) as (app, client):
            yield Api(app, client, smtp_server, clock)

    return build


@pytest.fixture
async def api(api_with: ApiFactory) -> AsyncIterator[Api]:
    async with api_with() as running:
        yield running
