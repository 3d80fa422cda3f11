"""Every YAML file under deploy/ parses (no duplicate keys) and passes yamllint (deploy/.yamllint.yaml)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.support import DEPLOY, load_yaml, own_yaml_files

FILES = own_yaml_files()


def test_the_deploy_files_are_found() -> None:
    names = {p.relative_to(DEPLOY).as_posix() for p in FILES}
    assert {
        "compose/compose.yaml",
        "compose/gateway.yaml",
        "kubernetes/deployment.yaml",
        ".yamllint.yaml",
    } <= names


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.relative_to(DEPLOY).as_posix())
def test_parses(path: Path) -> None:
    assert load_yaml(path)


def test_yamllint_passes() -> None:
    yamllint = Path(sys.executable).with_name("yamllint")
    command = [str(yamllint) if yamllint.exists() else shutil.which("yamllint") or "yamllint"]
    result = subprocess.run(
        [*command, "--strict", "-f", "parsable", "-c", str(DEPLOY / ".yamllint.yaml"), *map(str, FILES)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_yamllint_can_fail(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("key: 1\nkey: 2\n")
    yamllint = Path(sys.executable).with_name("yamllint")
    result = subprocess.run(
        [str(yamllint), "--strict", "-c", str(DEPLOY / ".yamllint.yaml"), str(bad)],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0 and "duplication of key" in result.stdout
