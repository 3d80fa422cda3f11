"""Helpers of the deployment tests: paths, YAML loading, the Dockerfile's instructions, the app's routes."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from starlette.routing import Mount, Route

from gateway.app import routes
from gateway.settings.models import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "container" / "Dockerfile"
COMPOSE = DEPLOY / "compose"
KUBERNETES = DEPLOY / "kubernetes"
CONFIG_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def load_yaml(path: Path) -> list[Any]:
    """Every document of a YAML file, as plain data (duplicate keys are errors)."""
    yaml = YAML(typ="safe", pure=True)
    yaml.allow_duplicate_keys = False
    return [doc for doc in yaml.load_all(path.read_text()) if doc is not None]


def own_yaml_files() -> list[Path]:
    """The YAML files this part of deploy/ owns (deploy/examples/ belongs to the API connector example)."""
    return sorted(
        p
        for pattern in ("*.yaml", "*.yml", ".*.yaml")
        for p in DEPLOY.rglob(pattern)
        if "examples" not in p.relative_to(DEPLOY).parts
    )


def dockerfile_instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of each instruction: continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped or (stripped.startswith("#") and not pending):
            continue
        if stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        whole = pending + stripped
        pending = ""
        keyword, _, rest = whole.partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


def stages(instructions: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    """The instructions grouped by build stage (each starts with FROM)."""
    found: list[list[tuple[str, str]]] = []
    for instruction in instructions:
        if instruction[0] == "FROM":
            found.append([])
        if found:
            found[-1].append(instruction)
    return found


def words(arguments: str) -> list[str]:
    return shlex.split(arguments)


def app_paths(settings: Settings) -> set[str]:
    """The paths the gateway app serves for ``settings`` (plain routes; mounts as their prefix)."""
    paths: set[str] = set()
    for entry in routes(settings):
        if isinstance(entry, (Route, Mount)):
            paths.add(entry.path)
    return paths


def references(text: str) -> set[str]:
    return set(CONFIG_REFERENCE.findall(text))


def walk(data: Any) -> Iterator[Any]:
    yield data
    if isinstance(data, dict):
        for value in data.values():
            yield from walk(value)
    elif isinstance(data, list):
        for value in data:
            yield from walk(value)
