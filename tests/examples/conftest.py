"""Fixtures for the example approval service: ``service`` is its ``app.py`` loaded with valid settings,
``create_app`` its factory, ``client`` an httpx client on a fresh app over the SQLite file ``database``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from tests.examples.approval import (
    ADMIN_PASSWORD,
    CONNECTOR_PASSWORD,
    CONNECTOR_USER,
    ENVIRONMENT,
    CreateApp,
    load_service,
)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    database = tmp_path_factory.mktemp("approval-module") / "approvals.db"
    return load_service("approval_service_app", {**ENVIRONMENT, "APPROVAL_DB": str(database)})


@pytest.fixture
def create_app(service: ModuleType) -> CreateApp:
    factory: CreateApp = service.create_app
    return factory


@pytest.fixture
def database(tmp_path: Path) -> Path:
    return tmp_path / "approvals.db"


@pytest.fixture
async def client(create_app: CreateApp, database: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(str(database), CONNECTOR_USER, CONNECTOR_PASSWORD, ADMIN_PASSWORD)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://approvals.test") as http:
        yield http
