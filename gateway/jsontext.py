"""JSON text on the hot path: orjson where its result is the standard library's, ``json`` otherwise.

Each function answers exactly what the ``json`` call named in its docstring answers (the same
value, or the same exception), several times cheaper when orjson can do the work (docs/adr/0010).
orjson is asked first, with every type it would write differently from ``json`` (subclasses of
str/int/float/dict/list/tuple, dataclasses, datetimes) passed through so that it refuses them; the
standard library gets the value back when orjson refuses it (non-str keys, integers beyond 64 bits,
lone surrogates, cycles, those types), and when orjson's answer could differ from the standard
library's: a ``null`` that may stand for NaN or an infinity (which orjson writes as ``null``), a
non-ASCII character or DEL where the text must be ASCII, an integer literal of 19 or more digits when
decoding (orjson reads one beyond 64 bits as a float). What still differs, by design: floats below
1e-4 are written in another form of the same number (``0.00001`` and ``1e-7``, not ``1e-05`` and
``1e-07``), and a plain
``Enum`` member or a ``uuid.UUID`` is written as its value where ``json`` raises TypeError.
"""

from __future__ import annotations

import json
import math
from typing import Any, Final

import orjson

_OPTIONS: Final = (
    orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME
)
# One encoder each: ``json.dumps`` with options builds a new encoder per call.
_STRICT: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_ASCII: Final = json.JSONEncoder(separators=(",", ":"))
_SORTED_ASCII: Final = json.JSONEncoder(separators=(",", ":"), sort_keys=True)
# Every digit read as 0: an integer literal orjson would read as a float (beyond 64 bits: at least
# 19 digits) shows as 19 zeros in a row. Cheaper than a regular expression by a factor of ten.
# ``ensure_ascii`` escapes DEL (U+007F) too, which orjson writes as it is: ASCII, but not json's text.
_DIGITS: Final = bytes.maketrans(b"123456789", b"000000000")
_LONG_NUMBER: Final = b"0" * 19


def _non_finite(value: Any) -> bool:
    """Whether a NaN or infinity is among the floats in ``value``'s dicts, lists and tuples."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is dict:
            stack.extend(item.values())
        elif kind is list or kind is tuple:
            stack.extend(item)
        elif kind is float and not math.isfinite(item):
            return True
    return False


def strict_text(value: Any) -> str:
    """``json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)``."""
    try:
        text = orjson.dumps(value, option=_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError: the standard library decides (and says why)
        return _STRICT.encode(value)
    if b"null" in text and _non_finite(value):
        return _STRICT.encode(value)  # raises ValueError, as ``allow_nan=False`` does
    return text.decode()


def strict_bytes(value: Any) -> bytes:
    """``strict_text(value).encode()`` (UTF-8), without decoding orjson's bytes to ``str`` first."""
    try:
        text = orjson.dumps(value, option=_OPTIONS)
    except TypeError:
        return _STRICT.encode(value).encode()
    if b"null" in text and _non_finite(value):
        return _STRICT.encode(value).encode()
    return text


def ascii_bytes(value: Any) -> bytes:
    """``json.dumps(value, separators=(",", ":")).encode()``: ASCII (``\\u00e9``-style escapes), and NaN or
    an infinity written as ``NaN`` / ``Infinity`` like the standard library does."""
    try:
        text = orjson.dumps(value, option=_OPTIONS)
    except TypeError:
        return _ASCII.encode(value).encode()
    if not text.isascii() or b"\x7f" in text or (b"null" in text and _non_finite(value)):
        return _ASCII.encode(value).encode()
    return text


def sorted_ascii_text(value: Any) -> str:
    """``json.dumps(value, separators=(",", ":"), sort_keys=True)`` (the audit record). Keys are
    sorted by code point in both; only ASCII text is orjson's, so its byte order is that order."""
    try:
        text = orjson.dumps(value, option=_OPTIONS | orjson.OPT_SORT_KEYS)
    except TypeError:
        return _SORTED_ASCII.encode(value)
    if not text.isascii() or b"\x7f" in text or (b"null" in text and _non_finite(value)):
        return _SORTED_ASCII.encode(value)
    return text.decode()


def loads(text: str | bytes | bytearray) -> Any:
    """``json.loads(text)``."""
    if type(text) is str:
        try:
            data: bytes | bytearray = text.encode()
        except UnicodeEncodeError:  # a lone surrogate: orjson refuses it, json may not
            return json.loads(text)
    elif type(text) is bytes or type(text) is bytearray:
        data = text
    else:
        return json.loads(text)  # json's TypeError (or a subclass of str/bytes, read by json)
    if _LONG_NUMBER in data.translate(_DIGITS):
        return json.loads(text)
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:  # NaN, Infinity, a BOM, UTF-16/32, 1e400, ...: json decides
        return json.loads(text)
