"""Building a gateway for tests: settings from the default YAML with overrides, the app in-process.

``make_settings(tmp_path, smtp, **overrides)`` deep-merges overrides into config/gateway.yaml's
data (store in tmp_path, a fixed secret, mail through the given SMTP server).
``running_app(settings)`` runs the lifespan and yields ``(app, client)``: an httpx client on
the ASGI app, with the demo's HTTP calls routed into the same app.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from ruamel.yaml import YAML

from gateway.app import create_app
from gateway.settings.models import Settings

ROOT = Path(__file__).resolve().parents[2]
ISSUER = "http://127.0.0.1:8000"
SECRET = "test-secret-" + "x" * 40


def default_config() -> dict[str, Any]:
    data = YAML(typ="safe").load((ROOT / "config" / "gateway.yaml").read_text())
    assert isinstance(data, dict)
    return data


def merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    result = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def make_settings(tmp_path: Path, smtp: Any | None = None, **overrides: Any) -> Settings:
    data = default_config()
    data["store"] = f"sqlite:///{tmp_path}/gateway.db"
    data["secrets"] = {"key": SECRET}
    if smtp is not None:
        data["mail"] = {
            "from": "Contoso <no-reply@contoso.example>",
            "smtp": {"host": smtp.host, "port": smtp.port},
        }
    return Settings.model_validate(merge(data, overrides))


@asynccontextmanager
async def running_app(
    settings: Settings, *, clock: Callable[[], float] | None = None
) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    app = create_app(settings, clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
        app.state.demo_transport = transport
        async with httpx.AsyncClient(transport=transport, base_url=settings.issuer) as client:
            yield app, client
