"""A gateway run in-process from a YAML file that the test rewrites: ``reloading_app(path)``.

``write_config(path, **overrides)`` writes config/gateway.yaml's data (store beside the file, a fixed
secret, console mail) deep-merged with ``overrides``; ``reloading_app(path)`` loads it as
``gateway serve`` does and yields ``(app, client)`` with the app's ``Reloader`` running.
``authorize_url(client_id)`` is an authorization request to the app registered by ``app_config``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from ruamel.yaml import YAML
from starlette.applications import Starlette

from gateway.app import create_app
from gateway.reload import Reloader, digest_of
from gateway.runtime import Runtime
from gateway.settings.loader import load_settings
from tests.support.gateway_app import ISSUER, SECRET, default_config, merge

CALLBACK = "https://rp.example/callback"


def config_data(path: Path, **overrides: Any) -> dict[str, Any]:
    data = default_config()
    data["store"] = f"sqlite:///{path.parent}/gateway.db"
    data["secrets"] = {"key": SECRET}
    data["reload"] = {"watch": False}  # the tests say when to look, unless they ask for the watch
    return merge(data, overrides)


def write_config(path: Path, data: dict[str, Any]) -> None:
    with path.open("w") as handle:
        YAML(typ="safe", pure=True).dump(data, handle)


def app_config(app_id: str) -> dict[str, Any]:
    """A confidential OIDC app registered as ``app_id`` (its client id too)."""
    return {
        "id": app_id,
        "name": f"App {app_id}",
        "oidc": {"client_id": app_id, "client_secret": "s" * 40, "redirect_uris": [CALLBACK]},
    }


def with_apps(*app_ids: str) -> list[dict[str, Any]]:
    """The default configuration's applications (the demo) and one ``app_config`` per id."""
    return [*default_config()["applications"], *(app_config(app_id) for app_id in app_ids)]


def authorize_url(client_id: str) -> str:
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": CALLBACK,
        "scope": "openid",
        "state": "st",
        "nonce": "n",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256",
    }
    return "/oauth2/authorize?" + urlencode(query)


def runtime_of(app: Starlette) -> Runtime:
    rt: Runtime = app.state.runtime
    return rt


def reloader_of(app: Starlette) -> Reloader:
    reloader: Reloader = app.state.reloader
    return reloader


def app_for(path: Path) -> Starlette:
    """The app as ``gateway.app.create_app_from_env`` makes it for ``path``."""
    return create_app(load_settings(path), config_path=path, digest=digest_of(path.read_bytes()))


@asynccontextmanager
async def reloading_app(path: Path) -> AsyncIterator[tuple[Starlette, httpx.AsyncClient]]:
    app = app_for(path)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
        async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as client:
            yield app, client
