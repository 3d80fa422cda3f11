"""Loads ``gateway.yaml`` into :class:`Settings`, or fails with every problem, each placed.

The file is parsed with ruamel.yaml's round-trip loader so every mapping and sequence keeps the
line and column of its keys and items. Duplicate keys and syntax errors are problems; ``${NAME}``
in a string scalar is replaced by that environment variable (``$${`` is a literal ``${``) and an
unset variable is a problem at that scalar. Validation errors are mapped back onto the document by
:mod:`gateway.settings.positions`. Nothing here writes anything.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.reader import ReaderError
from ruamel.yaml.scalarbool import ScalarBoolean

from gateway.settings.models import Settings
from gateway.settings.positions import Finding, findings, node_position, render_path
from gateway.settings.positions import Path as KeyPath

_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_MAX_NODES = 100_000  # aliases may multiply a small file; a real gateway.yaml has a few hundred
_MAX_DEPTH = 64
_VALIDATOR_ERRORS = frozenset({"value_error", "assertion_error"})
_REFERENCE = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$\{")
SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One problem in a configuration file. ``line``/``col`` are 1-based; 0 means the whole file."""

    file: str
    line: int
    col: int
    key_path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.col}" if self.line else self.file
        return ": ".join(part for part in (where, self.key_path, self.message) if part)


class ConfigError(Exception):
    """The configuration is unusable; ``problems`` lists all of them, in file order."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.line, p.col))
        super().__init__("\n".join(str(p) for p in self.problems))


def load_settings(path: str | Path, environ: Mapping[str, str] | None = None) -> Settings:
    """Read, substitute and validate one configuration file; raise :class:`ConfigError` if unusable."""
    file = str(path)
    root = _parse(file, _read(file))
    converter = _Converter(file, os.environ if environ is None else environ)
    data = converter.convert(root)
    problems = list(converter.problems)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        problems += [
            _problem(file, finding)
            for finding in findings(Settings, root, exc.errors(include_url=False))
            if not converter.explains(finding)
        ]
    else:
        if not problems:
            return settings
    raise ConfigError(problems)


def settings_json_schema() -> dict[str, Any]:
    """The JSON Schema of ``gateway.yaml`` (keys by alias), for editors and yaml-language-server."""
    schema = Settings.model_json_schema(by_alias=True)
    schema.pop("title", None)
    return {
        "$schema": SCHEMA_DIALECT,
        "title": "gateway.yaml",
        "description": "Configuration of the federation gateway. Secrets come as ${ENV_NAME}.",
        **schema,
    }


def _problem(file: str, finding: Finding) -> ConfigProblem:
    return ConfigProblem(file, finding.line, finding.col, render_path(finding.path), finding.message)


def _read(file: str) -> str:
    try:
        raw = Path(file).read_bytes()
    except OSError as exc:
        message = f"cannot read the file: {exc.strerror or exc}"
        raise ConfigError([ConfigProblem(file, 0, 0, "", message)]) from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line_start = raw.rfind(b"\n", 0, exc.start) + 1
        line, col = raw.count(b"\n", 0, exc.start) + 1, exc.start - line_start + 1
        raise ConfigError([ConfigProblem(file, line, col, "", "the file is not UTF-8 text")]) from None


def _parse(file: str, text: str) -> CommentedMap:
    yaml = YAML(typ="rt")
    try:
        root = yaml.load(text)
    except DuplicateKeyError as exc:
        raise ConfigError(_duplicates(file, yaml.compose(text), exc)) from None
    except MarkedYAMLError as exc:
        raise ConfigError([_syntax_problem(file, text, exc)]) from None
    except ReaderError as exc:
        line, col = _offset_position(text, exc.position)
        message = f"character #x{exc.character:04x} is not allowed in YAML"
        raise ConfigError([ConfigProblem(file, line, col, "", message)]) from None
    except YAMLError as exc:
        raise ConfigError([ConfigProblem(file, 1, 1, "", f"YAML error: {exc}")]) from None
    except RecursionError:
        raise ConfigError([ConfigProblem(file, 1, 1, "", "the document is nested too deeply")]) from None
    if root is None:
        required = ", ".join(
            f"`{info.alias or name}`" for name, info in Settings.model_fields.items() if info.is_required()
        )
        raise ConfigError([ConfigProblem(file, 1, 1, "", f"the file is empty; it needs at least {required}")])
    if not isinstance(root, CommentedMap):
        line, col = (root.lc.line + 1, root.lc.col + 1) if isinstance(root, CommentedSeq) else (1, 1)
        message = "the top level must be a mapping of settings (key: value)"
        raise ConfigError([ConfigProblem(file, line, col, "", message)])
    return root


def _offset_position(text: str, offset: int) -> tuple[int, int]:
    return text.count("\n", 0, offset) + 1, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _syntax_problem(file: str, text: str, exc: MarkedYAMLError) -> ConfigProblem:
    mark = exc.problem_mark or exc.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    message = f"YAML syntax error: {exc.problem or exc.context}"
    context = exc.context_mark
    if exc.problem and exc.context and context is not None and context is not mark:
        message += f" ({exc.context} started at line {context.line + 1}, column {context.column + 1})"
    index = getattr(mark, "index", 0)
    if index > 0 and text[index - 1 : index + 1] == "${":
        message += '; inside [ ] or { } quote a value that uses a variable: "${NAME}"'
    return ConfigProblem(file, line, col, "", message)


def _duplicates(file: str, document: Node | None, exc: DuplicateKeyError) -> list[ConfigProblem]:
    """Every duplicate key of the document (ruamel stops at the first), with both lines."""
    problems: list[ConfigProblem] = []
    visited: set[int] = set()

    def scan(node: Node, path: KeyPath) -> None:
        if id(node) in visited:
            return
        visited.add(id(node))
        if isinstance(node, SequenceNode):
            for index, item in enumerate(node.value):
                scan(item, (*path, index))
        if not isinstance(node, MappingNode):
            return
        first: dict[tuple[str, str], str] = {}
        for key, value in node.value:
            if not isinstance(key, ScalarNode) or str(key.tag) == _MERGE_TAG:
                continue
            mark, ident = key.start_mark, (str(key.tag), str(key.value))
            if ident in first:
                message = f"duplicate key (first defined at {first[ident]})"
                where = render_path((*path, str(key.value)))
                problems.append(ConfigProblem(file, mark.line + 1, mark.column + 1, where, message))
            else:
                first[ident] = f"line {mark.line + 1}, column {mark.column + 1}"
            scan(value, (*path, str(key.value)))

    if document is not None:
        scan(document, ())
    if not problems:  # keys equal only once constructed (`1` and `1.0`): ruamel's own mark
        mark = exc.problem_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        message = "duplicate key (it equals an earlier key of this mapping)"
        problems.append(ConfigProblem(file, line, col, "", message))
    return problems


class _Converter:
    """Round-trip nodes -> plain data, substituting ``${NAME}``; collects problems as it goes."""

    def __init__(self, file: str, environ: Mapping[str, str]) -> None:
        self.file, self.environ = file, environ
        self.problems: list[ConfigProblem] = []
        self.broken: list[KeyPath] = []  # paths whose value is unusable: validation errors there are noise
        self.budget = _MAX_NODES

    def convert(self, root: CommentedMap) -> dict[Any, Any]:
        return {key: self._value(root[key], (str(key),), root, key) for key in root}

    def explains(self, finding: Finding) -> bool:
        """Whether ``finding`` follows from an unusable value: it is inside one, or it comes from a
        validator that saw one (``secrets.key``'s length rule over a list holding an unset variable)."""
        return any(
            finding.path[: len(broken)] == broken
            or (finding.kind in _VALIDATOR_ERRORS and broken[: len(finding.path)] == finding.path)
            for broken in self.broken
        )

    def _flag(self, path: KeyPath, container: Any, step: Any, message: str) -> None:
        line, col = node_position(container, step) or (container.lc.line, container.lc.col)
        self.problems.append(ConfigProblem(self.file, line + 1, col + 1, render_path(path), message))
        self.broken.append(path)

    def _value(self, node: Any, path: KeyPath, container: Any, step: Any) -> Any:
        self.budget -= 1
        if self.budget < 0 or len(path) > _MAX_DEPTH:
            self._flag(path, container, step, "the document is too big or nested too deeply (check aliases)")
            raise ConfigError(self.problems)
        tag = getattr(getattr(node, "tag", None), "value", None)
        if isinstance(node, TaggedScalar) and tag == _STR_TAG:
            return self._substitute(str(node.value), path, container, step)
        if isinstance(node, TaggedScalar) or (
            tag is not None and isinstance(node, CommentedMap | CommentedSeq)
        ):
            self._flag(path, container, step, f"the YAML tag `{tag}` is not supported here")
            return None
        if isinstance(node, CommentedMap):
            return {key: self._value(node[key], (*path, str(key)), node, key) for key in node}
        if isinstance(node, CommentedSeq):
            return [self._value(item, (*path, index), node, index) for index, item in enumerate(node)]
        if isinstance(node, str):
            return self._substitute(str(node), path, container, step)
        if isinstance(node, bool | ScalarBoolean):
            return bool(node)
        if isinstance(node, int):
            return int(node)
        if isinstance(node, float):
            return float(node)
        if node is None or isinstance(node, date):
            return node
        self._flag(path, container, step, f"unsupported YAML value of type {type(node).__name__}")
        return None

    def _substitute(self, text: str, path: KeyPath, container: Any, step: Any) -> str:
        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if match.group(0) == "$${":
                return "${"
            if name is None:
                self._flag(path, container, step, "write ${NAME} for a variable, or $${ for a literal ${")
                return ""
            if name not in self.environ:
                self._flag(path, container, step, f"environment variable {name} is not set")
                return ""
            return self.environ[name]

        return _REFERENCE.sub(replace, text)
