"""The example approval service stays runnable: ``app.py`` loads by path and builds ``app`` from the
environment, refuses to start on missing or weak settings (creating nothing), the README's uvicorn command
serves it, and the README's gateway YAML is a valid gateway configuration."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import httpx
import pytest
from ruamel.yaml import YAML
from starlette.applications import Starlette

from gateway.settings.loader import load_settings
from tests.examples.approval import (
    ADMIN_PASSWORD,
    CONNECTOR_PASSWORD,
    CONNECTOR_USER,
    ENVIRONMENT,
    FEDERATION,
    GATEWAY_AUTH,
    ROOT,
    SERVICE_DIR,
    CreateApp,
    load_service,
    rows,
    signup,
)
from tests.support.gateway_app import default_config, merge
from tests.support.live_server import HOST, ServerExited, free_port, serving

README = (SERVICE_DIR / "README.md").read_text()
UVICORN = str(Path(sys.executable).parent / "uvicorn")
COMMAND = "uvicorn --app-dir deploy/examples/approval_service app:app"


async def test_app_module_builds_its_app_from_the_environment(service: ModuleType, tmp_path: Path) -> None:
    database = tmp_path / "from-env.db"
    module = load_service("approval_service_env", {**ENVIRONMENT, "APPROVAL_DB": str(database)})
    assert isinstance(module.app, Starlette)
    transport = httpx.ASGITransport(app=module.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://approvals.test") as client:
        reply = await client.post("/api/post-attribute-collection", json=signup(), auth=GATEWAY_AUTH)
        assert reply.json()["action"] == "ShowBlockPage"
        refused = await client.post(FEDERATION, json=signup(), auth=(CONNECTOR_USER, ADMIN_PASSWORD))
        assert refused.status_code == 401
    assert len(rows(database)) == 1
    assert database.stat().st_mode & 0o077 == 0  # the file holds email addresses: owner only


def test_the_service_does_not_import_the_gateway() -> None:
    for path in SERVICE_DIR.glob("*.py"):
        assert not re.search(r"^\s*(from|import)\s+(gateway|idp_connectors)\b", path.read_text(), re.M), path


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({}, "set APPROVAL_CONNECTOR_USERNAME, APPROVAL_CONNECTOR_PASSWORD, APPROVAL_ADMIN_PASSWORD"),
        ({**ENVIRONMENT, "APPROVAL_ADMIN_PASSWORD": ""}, "set APPROVAL_ADMIN_PASSWORD:"),
        ({**ENVIRONMENT, "APPROVAL_CONNECTOR_PASSWORD": "short"},
         "the connector password (APPROVAL_CONNECTOR_PASSWORD) must be at least 12 characters"),
        ({**ENVIRONMENT, "APPROVAL_ADMIN_PASSWORD": CONNECTOR_PASSWORD},
         "the admin password (APPROVAL_ADMIN_PASSWORD) must differ from the connector password"),
        ({**ENVIRONMENT, "APPROVAL_CONNECTOR_USERNAME": "gate:way"},
         "the connector user name (APPROVAL_CONNECTOR_USERNAME) must be printable text without ':'"),
    ],
)  # fmt: skip
def test_the_module_refuses_to_start_without_valid_settings(
    tmp_path: Path, environ: dict[str, str], message: str
) -> None:
    database = tmp_path / "never.db"
    with pytest.raises(RuntimeError, match=re.escape(message)) as raised:
        load_service("approval_service_refused", {**environ, "APPROVAL_DB": str(database)})
    assert type(raised.value).__name__ == "ConfigurationError"
    assert not database.exists()


@pytest.mark.parametrize(
    ("database", "message"),
    [
        (":memory:", "the database (APPROVAL_DB) must be a file path"),
        ("", "the database (APPROVAL_DB) must be a file path"),
        ("file:approvals.db?mode=memory", "the database (APPROVAL_DB) must be a file path"),
        ("{tmp}/missing-dir/approvals.db", "cannot open the database"),
    ],
)
def test_create_app_refuses_a_database_it_cannot_keep(
    create_app: CreateApp, tmp_path: Path, database: str, message: str
) -> None:
    with pytest.raises(RuntimeError, match=re.escape(message)):
        create_app(database.format(tmp=tmp_path), CONNECTOR_USER, CONNECTOR_PASSWORD, ADMIN_PASSWORD)
    assert list(tmp_path.iterdir()) == []


def test_the_readme_uvicorn_command_serves_the_service(tmp_path: Path) -> None:
    assert COMMAND in README
    database = tmp_path / "approvals.db"
    env = {**os.environ, **ENVIRONMENT, "APPROVAL_DB": str(database)}
    for attempt in range(3):  # a free port can be taken between the probe and uvicorn's bind
        port = free_port()
        argv = [UVICORN, *COMMAND.split()[1:], "--host", HOST, "--port", str(port)]
        try:
            with serving(argv, cwd=ROOT, log_path=tmp_path / "uvicorn.log", port=port, env=env,
                         health_path="/healthz", timeout=30):  # fmt: skip
                reply = httpx.post(f"http://{HOST}:{port}{FEDERATION}", json=signup(), auth=GATEWAY_AUTH)
                assert reply.json() == {"version": "1.0.0", "action": "Continue"}
                return
        except ServerExited as exc:
            if "address already in use" not in exc.output or attempt == 2:
                raise


def test_uvicorn_refuses_to_start_without_the_credentials(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPROVAL_")}
    env["APPROVAL_DB"] = str(tmp_path / "approvals.db")
    argv = [UVICORN, *COMMAND.split()[1:], "--host", HOST, "--port", str(free_port())]
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "ConfigurationError: set APPROVAL_CONNECTOR_USERNAME" in done.stderr
    assert not (tmp_path / "approvals.db").exists()


def test_the_readme_gateway_yaml_is_a_valid_gateway_configuration(tmp_path: Path) -> None:
    block = re.search(r"```yaml\n(api_connectors:.*?)```", README, re.S)
    assert block is not None
    snippet = YAML(typ="safe").load(block.group(1))
    data = merge(default_config(), snippet)
    data["secrets"] = {"key": "k" * 40}
    path = tmp_path / "gateway.yaml"
    with path.open("w") as handle:
        YAML(typ="safe", pure=True).dump(data, handle)
    settings = load_settings(path, {"APPROVAL_CONNECTOR_PASSWORD": CONNECTOR_PASSWORD})
    flow = settings.user_flows[0]
    assert flow.api_connectors.post_federation_signup == "approval-check"
    assert flow.api_connectors.post_attribute_collection == "approval-request"
    targets = {c.id: c.target_url for c in settings.api_connectors}
    assert targets["approval-check"].endswith("/api/post-federation-signup")
    assert targets["approval-request"].endswith("/api/post-attribute-collection")
    basic = settings.api_connectors[0].authentication.basic
    assert basic is not None and basic.password == CONNECTOR_PASSWORD
