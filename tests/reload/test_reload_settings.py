"""``reload:`` in the YAML (defaults, refused values with their lines), ``restart_only_changes``, and
``gateway serve`` supervising its workers with the SIGHUP-forwarding supervisor."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from uvicorn.supervisors.multiprocess import Multiprocess

from gateway.reload import RESTART_ONLY, restart_only_changes
from gateway.settings.loader import ConfigError, load_settings
from gateway.supervisor import Supervisor, sighup_reloads_workers
from tests.reload.support import config_data, write_config
from tests.support.gateway_app import make_settings


def test_reload_defaults_to_watching_every_two_seconds(tmp_path: Path) -> None:
    reload = make_settings(tmp_path).reload
    assert (reload.watch, reload.interval_seconds) == (True, 2.0)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"interval_seconds": 0}, "reload.interval_seconds: Input should be greater than 0"),
        ({"wacth": True}, "reload.wacth: unknown key `wacth`"),
        ({"watch": "sometimes"}, "reload.watch: must be a boolean (true or false)"),
    ],
)
def test_bad_reload_values_are_refused_with_their_line(
    tmp_path: Path, value: dict[str, object], message: str
) -> None:
    path = tmp_path / "gateway.yaml"
    data = config_data(path)
    data["reload"] = value
    write_config(path, data)
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if text.startswith("reload:"))
    with pytest.raises(ConfigError) as raised:
        load_settings(path)
    assert any(str(p).startswith(f"{path}:{line}:") and message in str(p) for p in raised.value.problems), [
        str(p) for p in raised.value.problems
    ]


def test_restart_only_changes_names_each_changed_key_in_order(tmp_path: Path) -> None:
    old = make_settings(tmp_path)
    assert (
        restart_only_changes(
            old, make_settings(tmp_path, tenant={"name": "Fabrikam"}, demo={"enabled": False})
        )
        == []
    )
    new = make_settings(
        tmp_path,
        store="sqlite:///other.db",
        issuer="http://127.0.0.1:9000",
        tenant={"id": "0" * 8 + "-0000-4000-8000-" + "0" * 12},
    )
    assert restart_only_changes(old, new) == ["issuer", "tenant.id", "store"]
    assert RESTART_ONLY == ("issuer", "tenant.id", "secrets", "store")


def test_serve_supervises_its_workers_with_the_forwarding_supervisor_only_while_it_runs() -> None:
    module = importlib.import_module("uvicorn.main")
    with sighup_reloads_workers():
        assert module.Multiprocess is Supervisor
    assert module.Multiprocess is Multiprocess
