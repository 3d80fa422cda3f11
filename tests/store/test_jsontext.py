"""``gateway.jsontext``: each function answers what its ``json`` call answers (docs/adr/0010)."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import uuid
from collections import namedtuple
from typing import Any

import pytest

from gateway import jsontext


class Text(str):
    pass


class Number(int):
    pass


class Real(float):
    pass


class Mapping(dict[str, Any]):
    def items(self) -> Any:  # json reads a dict subclass through items(); orjson would not
        return [("replaced", True)]


class Items(list[Any]):
    pass


class Colour(enum.StrEnum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


@dataclasses.dataclass
class Point:
    x: int


Pair = namedtuple("Pair", "a b")

VALUES: list[Any] = [
    {},
    {"a": 1, "b": [1, 2.5, None, True, False], "c": {"d": "e"}},
    {"unicode": "é ü 日本 😀 \u2028 \u2029 \x7f", "ctrl": "\x00\x01\x1f\b\t\n\f\r\"\\/"},
    {"null": None, "nested": [{"x": None}, []]},
    {"big": 2**64, "neg": -(2**63) - 1, "u64": 2**64 - 1, "i64": -(2**63), "huge": 10**40},
    {"floats": [0.1, 1.0, -0.0, 1e16, 1e22, 1.5e300, 123456789.123, 5e-324]},
    {"tuple": (1, "a"), "pair": Pair(1, 2)},
    {3: "int key", True: "bool key", None: "none key", 2.5: "float key"},
    {"sub": Text("x"), "int": Number(5), "real": Real(1.5), "items": Items([1])},
    Mapping(a=1),
    {Text("key"): 1},
    {"enum": Colour.RED, "level": Level.HIGH},
    {"nan": float("nan")},
    {"inf": [1, {"x": float("inf")}]},
    {"ninf": (float("-inf"),)},
    {"nan-in-sub": Real("nan")},
    {"surrogate": "\ud800"},
    {"set": {1, 2}},
    {"object": object()},
    {"when": datetime.datetime(2026, 1, 2, 3, 4, 5)},
    {"day": datetime.date(2026, 1, 2)},
    {"point": Point(1)},
    "top-level string",
    [1, 2, 3],
    None,
    7,
]


def outcome(call: Any, value: Any) -> tuple[str, Any]:
    try:
        return "ok", call(value)
    except Exception as exc:  # the exception is the outcome compared
        return type(exc).__name__, str(exc)


def strict(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


@pytest.mark.parametrize("value", VALUES, ids=range(len(VALUES)))
def test_strict_text_is_json_dumps(value: Any) -> None:
    assert outcome(jsontext.strict_text, value) == outcome(strict, value)


@pytest.mark.parametrize("value", VALUES, ids=range(len(VALUES)))
def test_strict_bytes_is_json_dumps_encoded(value: Any) -> None:
    assert outcome(jsontext.strict_bytes, value) == outcome(lambda v: strict(v).encode(), value)


@pytest.mark.parametrize("value", VALUES, ids=range(len(VALUES)))
def test_ascii_bytes_is_json_dumps(value: Any) -> None:
    expected = outcome(lambda v: json.dumps(v, separators=(",", ":")).encode(), value)
    assert outcome(jsontext.ascii_bytes, value) == expected


@pytest.mark.parametrize("value", VALUES, ids=range(len(VALUES)))
def test_sorted_ascii_text_is_json_dumps_with_sorted_keys(value: Any) -> None:
    expected = outcome(lambda v: json.dumps(v, separators=(",", ":"), sort_keys=True), value)
    assert outcome(jsontext.sorted_ascii_text, value) == expected


def test_sorted_ascii_text_sorts_nested_keys_by_code_point() -> None:
    value = {"b": {"z": 1, "Z": 2, "a": [{"y": 0, "x": 1}]}, "a": None, "_": "\u00e9"}
    assert jsontext.sorted_ascii_text(value) == json.dumps(value, separators=(",", ":"), sort_keys=True)


@pytest.mark.parametrize("code", range(128))
def test_each_ascii_character_is_written_as_json_writes_it(code: int) -> None:
    value = {"k": chr(code), chr(code): [chr(code)]}
    assert jsontext.ascii_bytes(value) == json.dumps(value, separators=(",", ":")).encode()
    assert jsontext.sorted_ascii_text(value) == json.dumps(value, separators=(",", ":"), sort_keys=True)
    assert jsontext.strict_text(value) == strict(value)


def test_a_cycle_is_refused_as_json_refuses_it() -> None:
    cycle: dict[str, Any] = {}
    cycle["self"] = cycle
    refused = ("ValueError", "Circular reference detected")
    assert outcome(jsontext.strict_text, cycle) == outcome(strict, cycle) == refused


def test_what_differs_by_design() -> None:
    """Small floats keep their value in another form; plain Enum members and UUIDs are written."""
    assert jsontext.strict_text({"f": 1e-7}) == '{"f":1e-7}' and json.loads('{"f":1e-7}') == {"f": 1e-7}
    assert jsontext.strict_text({"u": uuid.UUID(int=1)}) == '{"u":"00000000-0000-0000-0000-000000000001"}'


TEXTS: list[Any] = [
    '{"a":1,"b":[1,2.5,null,true,false],"c":{"d":"e"}}',
    ' \t\n\r{ "a" : 1 } ',
    '{"a":1,"a":2,"b":3}',
    '{"u":"\\u00e9\\ud83d\\ude00","raw":"é日本😀"}',
    '[123456789012345678901234567890, 18446744073709551615, 18446744073709551616]',
    '[-9223372036854775808, -9223372036854775809, 9999999999999999999]',
    '{"id":"1234567890123456789012"}',
    "[NaN, Infinity, -Infinity]",
    "[1E400, -1e400, 1e-400, -0, -0.0]",
    '"\\ud800"',
    '"\\udc00x"',
    "\ufeff{}",
    b"\xef\xbb\xbf{}",
    '{"a":1}'.encode("utf-16"),
    b'{"a":"\xed\xa0\x80"}',
    b'{"a":"\xff"}',
    bytearray(b'{"a":[1]}'),
    '"\ud800"',
    "[1,]",
    '{"a":1,}',
    '"\t"',
    "01",
    "",
    "nul",
    memoryview(b"{}"),
    None,
    12,
]


@pytest.mark.parametrize("text", TEXTS, ids=range(len(TEXTS)))
def test_loads_is_json_loads(text: Any) -> None:
    found, expected = outcome(jsontext.loads, text), outcome(json.loads, text)
    assert found == expected
    if found[0] == "ok":  # equal and of the same types (1 == 1.0, True == 1)
        assert repr(found[1]) == repr(expected[1])
