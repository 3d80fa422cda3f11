"""Maps pydantic validation errors onto the YAML nodes they are about.

``locate`` walks an error's ``loc`` through the round-trip YAML tree (ruamel keeps ``.lc``
positions on every mapping and sequence) to the deepest node that exists, skipping the steps
pydantic adds for unions (a discriminator tag like ``email_otp``, a member label like
``list[str]``). ``describe`` turns each error into a message that says what is allowed, using
the models themselves (field names by alias, discriminator tags) for the lists it names.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import ErrorDetails
from ruamel.yaml.comments import CommentedMap, CommentedSeq

Path = tuple[str | int, ...]

_TYPE_NOUNS = {
    "string_type": "a string",
    "list_type": "a list",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "a boolean (true or false)",
    "bool_parsing": "a boolean (true or false)",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem, placed: ``path`` exists in the document; ``line``/``col`` are 1-based."""

    path: Path
    line: int
    col: int
    message: str
    kind: str = ""  # the pydantic error type, if it came from one


@dataclass(frozen=True, slots=True)
class _Spot:
    path: Path
    line: int
    col: int
    complete: bool  # every data step of loc exists
    union_at: Path | None  # where a union member label was skipped, if any


def render_path(path: Path) -> str:
    """``("applications", 0, "oidc", "redirect_uris", 1)`` -> ``applications[0].oidc.redirect_uris[1]``."""
    out = ""
    for step in path:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else str(step))
    return out


def node_position(container: Any, step: str | int, *, key: bool = False) -> tuple[int, int] | None:
    """0-based (line, col) of ``container[step]`` (of its key with ``key``), None if ruamel kept none."""
    try:
        if isinstance(container, CommentedSeq):
            line, col = container.lc.item(step)
        elif key or container[step] is None:  # an empty value has no text: point at its key
            line, col = container.lc.key(step)
        else:
            line, col = container.lc.value(step)
    except (KeyError, IndexError, TypeError):  # merged (`<<`) keys keep no position of their own
        return None
    return int(line), int(col)


def locate(root: Any, loc: Sequence[str | int], *, key_of_last: bool = False) -> _Spot:
    """The deepest node of ``loc`` that exists (its key's position for ``key_of_last``), 1-based."""
    node, union_at = root, None
    path: Path = ()
    line, col = int(root.lc.line), int(root.lc.col)
    for index, step in enumerate(loc):
        last = index == len(loc) - 1
        if isinstance(node, CommentedMap) and isinstance(step, str) and step in node:
            found = node_position(node, step, key=key_of_last and last)
        elif isinstance(node, CommentedSeq) and isinstance(step, int) and 0 <= step < len(node):
            found = node_position(node, step, key=False)
        elif isinstance(step, str) and not last:
            union_at = path if union_at is None else union_at  # a tag or a member label: not in the data
            continue
        else:
            if isinstance(step, str) and not isinstance(node, CommentedMap):
                union_at = path if union_at is None else union_at
            return _Spot(path, line + 1, col + 1, False, union_at)
        if found is not None:
            line, col = found
        node, path = node[step], (*path, step)
    return _Spot(path, line + 1, col + 1, True, union_at)


def _strip(tp: Any) -> Any:
    while get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    return tp


def _members(tp: Any) -> list[Any]:
    tp = _strip(tp)
    if get_origin(tp) in (Union, types.UnionType):
        return [m for arg in get_args(tp) for m in _members(arg) if m is not type(None)]
    return [tp]


def _model(tp: Any) -> type[BaseModel] | None:
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _tags(model: type[BaseModel], field: str) -> list[str]:
    info = model.model_fields.get(field)
    annotation = _strip(info.annotation) if info else None
    return [str(a) for a in get_args(annotation)] if get_origin(annotation) is Literal else []


def _is_tag(model: type[BaseModel], step: str) -> bool:
    return any(step in _tags(model, name) for name in model.model_fields)


def _field(model: type[BaseModel], step: str) -> Any:
    for name, info in model.model_fields.items():
        if step in (name, info.alias):
            return info.annotation
    return None


def _step(tp: Any, step: str | int) -> Any:
    for member in _members(tp):
        model = _model(member)
        if model is not None and isinstance(step, str):
            if step == model.__name__ or _is_tag(model, step):
                return model
            annotation = _field(model, step)
            if annotation is not None:
                return annotation
        elif get_origin(member) in (list, tuple) and isinstance(step, int):
            return get_args(member)[0]
    return None


def model_at(root: type[BaseModel], loc: Sequence[str | int]) -> Any:
    """The annotation at ``loc`` (tags and member labels included), or None when off the models."""
    tp: Any = root
    for step in loc:
        tp = _step(tp, step)
        if tp is None:
            return None
    return tp


def allowed_keys(root: type[BaseModel], loc: Sequence[str | int]) -> list[str]:
    models = [m for m in map(_model, _members(model_at(root, loc))) if m is not None]
    return [info.alias or name for m in models for name, info in m.model_fields.items()]


def _tag_list(root: type[BaseModel], loc: Sequence[str | int], discriminator: str) -> list[str]:
    models = [m for m in map(_model, _members(model_at(root, loc))) if m is not None]
    return [tag for m in models for tag in _tags(m, discriminator)]


def _closest(key: str, allowed: list[str]) -> str | None:
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    return close[0] if close else None


def _unknown_key(key: str, allowed: list[str]) -> str:
    close = _closest(key, allowed)
    hint = f"; did you mean `{close}`?" if close else ";"
    return f"unknown key `{key}`{hint} allowed keys: {', '.join(allowed) or 'none'}"


def _plain(message: str) -> str:
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return message


def describe(root_model: type[BaseModel], root: Any, error: ErrorDetails) -> Finding:
    """Place one pydantic error and phrase it; never echoes the offending value (it may be a secret)."""
    loc, kind, ctx = tuple(error["loc"]), error["type"], error.get("ctx") or {}
    if kind == "extra_forbidden":
        spot = locate(root, loc, key_of_last=True)
        message = _unknown_key(str(loc[-1]), allowed_keys(root_model, loc[:-1]))
    elif kind in ("union_tag_invalid", "union_tag_not_found"):
        discriminator = str(ctx.get("discriminator", "type")).strip("'")
        allowed = ", ".join(_tag_list(root_model, loc, discriminator))
        spot = locate(root, (*loc, discriminator))
        if kind == "union_tag_invalid":
            message = f"unknown {discriminator} `{ctx.get('tag')}`; allowed {discriminator}s: {allowed}"
        else:
            message = f"missing required key `{discriminator}`; allowed {discriminator}s: {allowed}"
    else:
        spot = locate(root, loc)
        if kind == "missing" and not spot.complete:
            message = f"missing required key `{loc[-1]}`"
        elif kind in ("model_type", "model_attributes_type", "dict_type"):
            keys = allowed_keys(root_model, loc)
            message = f"must be a mapping; allowed keys: {', '.join(keys)}" if keys else "must be a mapping"
        elif kind in _TYPE_NOUNS:
            message = f"must be {_TYPE_NOUNS[kind]}"
        else:
            message = _plain(error["msg"])
    return Finding(spot.path, spot.line, spot.col, message, kind)


def findings(root_model: type[BaseModel], root: Any, errors: list[ErrorDetails]) -> list[Finding]:
    """Every error placed and phrased, the per-member errors of a plain union folded into one.

    For ``str | list[str]`` pydantic reports one error per member. When a member matched the
    input's shape (its errors go deeper than the union) only its errors are kept; otherwise the
    members' expectations are joined into one message ("must be a string or a list").
    """
    groups: dict[Path, list[tuple[ErrorDetails, _Spot]]] = {}
    out: list[Finding] = []
    suggested = {  # a typo'd required key: "did you mean" says it all, "missing" would repeat it
        (tuple(e["loc"][:-1]), _closest(str(e["loc"][-1]), allowed_keys(root_model, e["loc"][:-1])))
        for e in errors
        if e["type"] == "extra_forbidden"
    }
    for error in errors:
        loc = tuple(error["loc"])
        if error["type"] == "missing" and (loc[:-1], loc[-1]) in suggested:
            continue
        spot = locate(root, loc)
        if spot.union_at is None or error["type"] in ("extra_forbidden", "missing"):
            out.append(describe(root_model, root, error))
        else:
            groups.setdefault(spot.union_at, []).append((error, spot))
    for union_at, members in groups.items():
        deep = [error for error, spot in members if len(spot.path) > len(union_at)]
        if deep:
            out.extend(describe(root_model, root, error) for error in deep)
            continue
        spot = members[0][1]
        if all(e["type"] in _TYPE_NOUNS for e, _ in members):
            message = "must be " + " or ".join(dict.fromkeys(_TYPE_NOUNS[e["type"]] for e, _ in members))
        else:
            message = "; or: ".join(dict.fromkeys(_plain(e["msg"]) for e, _ in members))
        out.append(Finding(spot.path, spot.line, spot.col, message, members[0][0]["type"]))
    return out
