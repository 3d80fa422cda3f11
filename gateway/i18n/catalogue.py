"""The text catalogues: the shipped YAML files, placeholders, and one language's compiled strings.

A catalogue is a flat YAML mapping ``key: text`` (``gateway/i18n/catalogues/<tag>.yaml``);
English (``en.yaml``) names every key, other languages translate some or all of them. Text is
plain text: never markup. A placeholder is ``{name}`` (``{{`` and ``}}`` are literal braces);
attribute or index access, conversions and format specs are not allowed, so formatting can only
insert the values a caller passes.

``Catalogue`` holds one language with English merged in for missing keys, compiled once: a
lookup is one dict get, plus joining the parts for a text with placeholders. ``html`` escapes the
text and every inserted value (a ``Markup`` value is inserted as it is); ``text`` returns plain
text, for mail bodies and headers. A ``Message`` is a text whose language is not known yet (a
page's error): it is resolved where the page is rendered, and may be a value of another message.
"""

from __future__ import annotations

import functools
import string
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from markupsafe import Markup, escape
from ruamel.yaml import YAML

CATALOGUES = Path(__file__).parent / "catalogues"
ENGLISH = "en"
_FORMATTER = string.Formatter()
_TEXT_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&#34;"})

Parts = tuple[tuple[str, str | None], ...]


def _escaped(value: object) -> str:
    """``markupsafe.escape`` for the values pages insert, with fast paths for the common types
    (this runs for every placeholder of every page)."""
    if isinstance(value, Markup):
        return value
    if isinstance(value, str):
        if "&" in value:
            value = value.replace("&", "&amp;")
        return value.replace("<", "&lt;").replace(">", "&gt;").replace('"', "&#34;").replace("'", "&#39;")
    if type(value) is int:
        return str(value)
    return escape(value)


class PlaceholderError(ValueError):
    """A catalogue text whose braces are not ``{name}`` placeholders or ``{{`` / ``}}``."""


def parse(text: str) -> Parts:
    """The text as (literal, placeholder name or None) pairs; ``PlaceholderError`` if malformed."""
    try:
        pieces = list(_FORMATTER.parse(text))
    except ValueError as exc:
        raise PlaceholderError(
            "unbalanced braces: write a placeholder as {name}, a brace as {{ or }}"
        ) from exc
    parts: list[tuple[str, str | None]] = []
    for literal, name, spec, conversion in pieces:
        if name is not None and (not name.isidentifier() or spec or conversion):
            raise PlaceholderError(f"{{{name}}} is not a placeholder: write {{name}} with a plain name")
        parts.append((literal, name))
    return tuple(parts)


def placeholders(text: str) -> frozenset[str]:
    """The placeholder names in ``text`` (``PlaceholderError`` if malformed)."""
    return frozenset(name for _, name in parse(text) if name is not None)


class Message:
    """A catalogue text with its values, to be put in the page's language when the page is rendered."""

    __slots__ = ("key", "params")

    def __init__(self, key: str, /, **params: object) -> None:
        self.key = key
        self.params = params

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Message) and (self.key, self.params) == (other.key, other.params)

    def __hash__(self) -> int:
        return hash(self.key)

    def __repr__(self) -> str:
        return f"Message({self.key!r}, **{self.params!r})"


class Joined(Message):
    """Items joined the language's way (``list.separator``, then ``conjunction``: "a, b and c")."""

    __slots__ = ("items",)

    def __init__(self, items: Sequence[str], conjunction: str = "list.and") -> None:
        super().__init__(conjunction)
        self.items = tuple(items)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Joined) and (self.key, self.items) == (other.key, other.items)

    def __hash__(self) -> int:
        return hash(self.items)

    def __repr__(self) -> str:
        return f"Joined({list(self.items)!r}, {self.key!r})"


class Catalogue:
    """One language's texts (English filling the gaps), compiled for lookups on every page."""

    __slots__ = ("_html", "_html_parts", "_parts", "_plain", "lang")

    def __init__(self, lang: str, texts: Mapping[str, str]) -> None:
        self.lang = lang
        self._plain: dict[str, str] = {}
        self._html: dict[str, Markup] = {}
        self._parts: dict[str, Parts] = {}
        self._html_parts: dict[str, Parts] = {}  # the literals escaped once, here
        for key, text in texts.items():
            parts = parse(text)
            if any(name is not None for _, name in parts):
                self._parts[key] = parts
                self._html_parts[key] = tuple(
                    (literal.translate(_TEXT_ESCAPES), name) for literal, name in parts
                )
            else:
                literal = "".join(piece for piece, _ in parts)  # ``{{`` already read as ``{``
                self._plain[key] = literal
                # Apostrophes stay as they are: catalogue text only ever lands in element content or
                # double-quoted attributes.
                self._html[key] = Markup(literal.translate(_TEXT_ESCAPES))  # noqa: S704 - escaped here

    def __contains__(self, key: str) -> bool:
        return key in self._plain or key in self._parts

    def fixed_html(self, key: str) -> Markup | None:
        """The escaped text of a key without placeholders; None for other keys (and unknown ones)."""
        return self._html.get(key)

    def text(self, key: str, /, **params: object) -> str:
        """Plain text (not escaped); ``KeyError`` for an unknown key or a missing value."""
        found = self._plain.get(key)
        if found is not None:
            return found
        out = []
        for literal, name in self._parts[key]:
            out.append(literal)
            if name is not None:
                out.append(self._value_text(params[name]))
        return "".join(out)

    def html(self, key: str, /, **params: object) -> Markup:
        """Escaped text with escaped values (``Markup`` values inserted as they are): ``t()`` in pages."""
        found = self._html.get(key)
        if found is not None:
            return found
        out = []
        for literal, name in self._html_parts[key]:
            out.append(literal)
            if name is not None:
                value = params[name]
                out.append(_escaped(self.resolve(value) if isinstance(value, Message) else value))
        return Markup("".join(out))  # noqa: S704 - every piece escaped

    def resolve(self, message: Message) -> str:
        if isinstance(message, Joined):
            *first, last = message.items or ("",)
            if not first:
                return last
            return self.text(message.key, items=self.text("list.separator").join(first), last=last)
        return self.text(message.key, **message.params)

    def _value_text(self, value: object) -> str:
        if isinstance(value, Message):
            return self.resolve(value)
        return str(value)


def _read(path: Path) -> dict[str, str]:
    data: Any = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise RuntimeError(f"{path}: a catalogue is a flat mapping of text keys to text")
    return data


@functools.cache
def shipped() -> dict[str, dict[str, str]]:
    """The catalogues that ship with the gateway, by language tag; each checked against English."""
    found = {path.stem: _read(path) for path in sorted(CATALOGUES.glob("*.yaml"))}
    english = found[ENGLISH]
    for lang, texts in found.items():
        for key, text in texts.items():
            if key not in english:
                raise RuntimeError(f"{CATALOGUES / lang}.yaml: {key}: not in the English catalogue")
            if placeholders(text) != placeholders(english[key]):
                raise RuntimeError(f"{CATALOGUES / lang}.yaml: {key}: placeholders differ from English")
    return found


def english() -> dict[str, str]:
    return shipped()[ENGLISH]


@functools.cache
def english_catalogue() -> Catalogue:
    """The shipped English texts alone (no configuration): for logs and exception messages."""
    return Catalogue(ENGLISH, english())


def english_text(message: Message) -> str:
    return english_catalogue().resolve(message)
