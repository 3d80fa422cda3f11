"""The ``gateway`` command line: exit codes 0/1/2, problems on stderr one a line, the entry points."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway import cli
from gateway.cli import main
from gateway.http_protocol import HeldWriteHttpToolsProtocol
from gateway.settings import Settings
from idp_connectors.registry import REGISTRY
from tests.settings.test_loader import ROOT, VALID

BROKEN = VALID.replace("issuer:", "issuerr:").replace("type: email_otp", "type: ldap")


TOP_KEYS = ", ".join(f.alias or name for name, f in Settings.model_fields.items())
TYPES = ", ".join(REGISTRY)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GATEWAY_CONFIG", raising=False)
    yield tmp_path


@pytest.fixture
def bootstrap(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    """Stands in for ``gateway.bootstrap`` (the lead's module) and records what the CLI asked of it."""
    calls: list[tuple[str, Any]] = []
    fake = types.ModuleType("gateway.bootstrap")

    def prepare(settings: Settings) -> None:
        calls.append(("prepare", settings))

    def rotate_keys(settings: Settings, algorithm: str) -> str:
        calls.append(("rotate_keys", (settings, algorithm)))
        return "kid-2"

    fake.prepare = prepare  # type: ignore[attr-defined]
    fake.rotate_keys = rotate_keys  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "gateway.bootstrap", fake)
    return calls


def write(workdir: Path, text: str = VALID, name: str = "gateway.yaml") -> Path:
    path = workdir / name
    path.write_text(text, encoding="utf-8")
    return path


def names(workdir: Path) -> list[str]:
    return sorted(p.name for p in workdir.iterdir())


BROKEN_STDERR = (
    "{f}:1:1: issuerr: unknown key `issuerr`; did you mean `issuer`? allowed keys: " + TOP_KEYS + "\n"
    "{f}:10:23: connectors[0].type: unknown type `ldap`; allowed types: " + TYPES + "\n"
)


def test_check_config_ok_positionally_and_with_option(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(workdir)
    assert main(["check-config", "gateway.yaml"]) == 0
    assert capsys.readouterr() == ("gateway.yaml: ok\n", "")
    assert main(["check-config", "--config", "gateway.yaml"]) == 0
    assert capsys.readouterr() == ("gateway.yaml: ok\n", "")
    assert names(workdir) == ["gateway.yaml"]


def test_check_config_defaults_to_env_then_config_dir(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (workdir / "config").mkdir()
    write(workdir, name="config/gateway.yaml")
    assert main(["check-config"]) == 0
    assert capsys.readouterr().out == "config/gateway.yaml: ok\n"
    write(workdir, BROKEN, name="other.yaml")
    monkeypatch.setenv("GATEWAY_CONFIG", "other.yaml")
    assert main(["check-config"]) == 1
    assert capsys.readouterr() == ("", BROKEN_STDERR.format(f="other.yaml"))


def test_check_config_prints_every_problem_one_a_line(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(workdir, BROKEN)
    assert main(["check-config", "gateway.yaml"]) == 1
    assert capsys.readouterr() == ("", BROKEN_STDERR.format(f="gateway.yaml"))
    assert names(workdir) == ["gateway.yaml"]


def test_check_config_on_a_missing_file(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "absent.yaml"]) == 1
    assert capsys.readouterr() == ("", "absent.yaml: cannot read the file: No such file or directory\n")
    assert names(workdir) == []


def test_check_config_refuses_two_different_files(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "a.yaml", "--config", "b.yaml"]) == 2
    assert "give the file once: as FILE or with --config" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], "the following arguments are required: COMMAND"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["serve", "--workers", "0"], "argument --workers: must be at least 1, not 0"),
        (["serve", "--workers", "two"], "argument --workers: must be a whole number, not 'two'"),
        (["serve", "--port", "70000"], "argument --port: must be a TCP port from 1 to 65535, not 70000"),
        (["keys"], "the following arguments are required: COMMAND"),
        (["keys", "rotate", "--algorithm", "HS256"], "argument --algorithm: invalid choice: 'HS256'"),
        (["config-schema", "--config", "x.yaml"], "unrecognized arguments: --config x.yaml"),
    ],
)
def test_usage_errors_exit_2(
    workdir: Path,
    capsys: pytest.CaptureFixture[str],
    bootstrap: list[tuple[str, Any]],
    argv: list[str],
    expected: str,
) -> None:
    write(workdir)
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("usage: gateway")
    assert expected in err
    assert bootstrap == []
    assert names(workdir) == ["gateway.yaml"]


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("check-config", "config-schema", "serve", "keys"):
        assert command in out


def test_config_schema_needs_no_config(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config-schema"]) == 0
    out, err = capsys.readouterr()
    schema = json.loads(out)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert out.startswith('{\n  "$schema"')  # indent 2
    assert err == ""
    assert names(workdir) == []


def test_serve_with_a_broken_config_exits_1_before_anything_starts(
    workdir: Path, capsys: pytest.CaptureFixture[str], bootstrap: list[tuple[str, Any]]
) -> None:
    write(workdir, BROKEN)
    assert main(["serve", "--config", "gateway.yaml"]) == 1
    assert capsys.readouterr() == ("", BROKEN_STDERR.format(f="gateway.yaml"))
    assert bootstrap == []  # no migration, no dev secret, no keys
    assert names(workdir) == ["gateway.yaml"]


def test_serve_on_a_busy_port_exits_1_with_a_clear_message(
    workdir: Path, capsys: pytest.CaptureFixture[str], bootstrap: list[tuple[str, Any]]
) -> None:
    write(workdir)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", "--config", "gateway.yaml", "--port", str(port)]) == 1
    expected = f"gateway: cannot listen on 127.0.0.1:{port}: address already in use\n"
    assert capsys.readouterr() == ("", expected)
    assert bootstrap == []
    assert names(workdir) == ["gateway.yaml"]


def test_serve_prepares_then_runs_uvicorn_with_the_absolute_config(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, bootstrap: list[tuple[str, Any]]
) -> None:
    write(workdir)
    runs: list[tuple[str, dict[str, Any]]] = []

    def run(app: str, **options: Any) -> None:
        runs.append((app, options))
        bootstrap.append(("run", os.environ["GATEWAY_CONFIG"]))

    monkeypatch.setattr("uvicorn.run", run)
    monkeypatch.setenv("GATEWAY_CONFIG", "ignored-when-option-given.yaml")
    assert (
        main(["serve", "--config", "gateway.yaml", "--host", "127.0.0.1", "--port", "8123", "--workers", "3"])
        == 0
    )
    assert [name for name, _ in bootstrap] == ["prepare", "run"]  # prepare before workers fork
    assert isinstance(bootstrap[0][1], Settings)
    assert bootstrap[1][1] == str(workdir / "gateway.yaml")
    assert runs == [
        (
            "gateway.app:create_app_from_env",
            {
                "factory": True,
                "host": "127.0.0.1",
                "port": 8123,
                "workers": 3,
                "loop": "uvloop",
                "http": HeldWriteHttpToolsProtocol,
                "access_log": False,
                "log_config": cli.LOG_CONFIG,
                "timeout_graceful_shutdown": 10,
                "proxy_headers": False,
            },
        )
    ]


def test_keys_rotate_reports_the_new_key(
    workdir: Path, capsys: pytest.CaptureFixture[str], bootstrap: list[tuple[str, Any]]
) -> None:
    write(workdir, VALID + "keys: {algorithm: ES256, rotation_overlap_seconds: 3600}\n")
    assert main(["keys", "rotate", "--config", "gateway.yaml", "--algorithm", "RS256"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out.startswith("published key kid-2 (RS256); it signs from 20")
    assert bootstrap[0][0] == "rotate_keys" and bootstrap[0][1][1] == "RS256"
    assert main(["keys", "rotate", "--config", "gateway.yaml"]) == 0
    assert "(ES256)" in capsys.readouterr().out  # default: keys.algorithm


def test_keys_rotate_with_a_broken_config_exits_1(
    workdir: Path, capsys: pytest.CaptureFixture[str], bootstrap: list[tuple[str, Any]]
) -> None:
    write(workdir, BROKEN)
    assert main(["keys", "rotate", "--config", "gateway.yaml"]) == 1
    assert capsys.readouterr() == ("", BROKEN_STDERR.format(f="gateway.yaml"))
    assert bootstrap == []
    assert names(workdir) == ["gateway.yaml"]


def test_json_log_lines() -> None:
    record = logging.LogRecord("gateway.x", logging.WARNING, __file__, 1, "hello %s", ("there",), None)
    line = json.loads(cli.JsonFormatter().format(record))
    assert line["level"] == "warning" and line["logger"] == "gateway.x" and line["message"] == "hello there"


def test_python_dash_m_gateway_is_the_cli(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(VALID, encoding="utf-8")
    bad.write_text(BROKEN, encoding="utf-8")
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    ok = subprocess.run(
        [sys.executable, "-m", "gateway", "check-config", "good.yaml"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, "good.yaml: ok\n", "")
    failed = subprocess.run(
        [sys.executable, "-m", "gateway", "check-config", "--config", "bad.yaml"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (failed.returncode, failed.stdout, failed.stderr) == (1, "", BROKEN_STDERR.format(f="bad.yaml"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml", "good.yaml"]
