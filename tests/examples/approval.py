"""Helpers for the example approval service's tests (deploy/examples/approval_service).

The service is not a package: uvicorn's ``--app-dir`` puts its folder on ``sys.path`` and imports
``app``. ``load_service(name, environ)`` does the same with importlib (under a module name of our choice,
with exactly ``environ`` as the service's settings), so the tests exercise the runnable file itself.
``rows`` reads the SQLite file directly, so "nothing was persisted" does not trust the service.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sqlite3
from collections.abc import Mapping
from contextlib import closing
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import pytest
from starlette.applications import Starlette

ROOT = Path(__file__).resolve().parents[2]
SERVICE_DIR = ROOT / "deploy" / "examples" / "approval_service"
CONNECTOR_USER, CONNECTOR_PASSWORD = "gateway", "connector-password-1"
ADMIN_PASSWORD = "admin-password-123"
ENVIRONMENT = {
    "APPROVAL_CONNECTOR_USERNAME": CONNECTOR_USER,
    "APPROVAL_CONNECTOR_PASSWORD": CONNECTOR_PASSWORD,
    "APPROVAL_ADMIN_PASSWORD": ADMIN_PASSWORD,
}
SETTINGS = ("APPROVAL_DB", *ENVIRONMENT)
GATEWAY_AUTH = (CONNECTOR_USER, CONNECTOR_PASSWORD)
ADMIN_AUTH = ("admin", ADMIN_PASSWORD)
FEDERATION = "/api/post-federation-signup"
ATTRIBUTES = "/api/post-attribute-collection"
PENDING_EN = "Your access request is waiting for approval."
DENIED_EN = "Your access request was declined."
EXTENSION = "extension_6ba7b8119dad11d180b400c04fd430c8_loyaltyNumber"


class CreateApp(Protocol):
    def __call__(
        self, database: str, connector_user: str, connector_password: str, admin_password: str
    ) -> Starlette: ...


def load_service(name: str, environ: Mapping[str, str]) -> ModuleType:
    """Import ``app.py`` by path as ``name``, its folder on ``sys.path``, with these settings only."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(SERVICE_DIR))
        for key in SETTINGS:
            patch.delenv(key, raising=False)
        for key, value in environ.items():
            patch.setenv(key, value)
        spec = importlib.util.spec_from_file_location(name, SERVICE_DIR / "app.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return module


def signup(
    email: str = "ann@partner.example",
    *,
    issuer: str | None = "mail",
    subject: str | None = None,
    **claims: Any,
) -> dict[str, Any]:
    """A connector request body as the gateway sends it."""
    body: dict[str, Any] = {"email": email}
    if issuer is not None:
        body["identities"] = [
            {"signInType": "federated", "issuer": issuer, "issuerAssignedId": subject or email}
        ]
    body.update(claims)
    return body


def rows(database: Path) -> list[dict[str, Any]]:
    """Every stored access request, read straight from the SQLite file."""
    with closing(sqlite3.connect(database)) as db:
        db.row_factory = sqlite3.Row
        found = db.execute("SELECT * FROM access_requests ORDER BY id").fetchall()
    return [dict(row) | {"attributes": json.loads(row["attributes"])} for row in found]


def form_token(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match is not None, page
    return match.group(1)
