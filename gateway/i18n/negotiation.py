"""Choosing a page's language: the app's ``ui_locales``, then the browser's ``Accept-Language``.

Matching follows RFC 4647 on case-insensitive BCP 47 tags. A requested tag is first looked up
(section 3.4: ``fr-CA`` -> ``fr``, trailing subtags dropped one at a time), then filtered by the
same truncations (section 3.3.1, basic filtering: ``pt`` and ``pt-PT`` match an available
``pt-BR``). The first requested range that matches anything wins; ``*`` in ``Accept-Language``
accepts the default. ``q=0`` means "not this one" (RFC 9110 12.5.4) and is left out.

``Accept-Language`` headers are parsed once each: a bounded LRU cache keeps the parsed ranges,
since a browser sends the same header on every request of a sign-in (this runs on every page).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Collection, Mapping, Sequence

MAX_HEADER_CHARS = 512
"""Longer ``Accept-Language`` headers are read up to here only (browsers send well under 100)."""
MAX_RANGES = 16
CACHE_SIZE = 256

_RANGE = re.compile(r"^(?:\*|[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*)$")
_QVALUE = re.compile(r"^[qQ]=(?:0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?)$")


@functools.lru_cache(maxsize=CACHE_SIZE)
def _parse(header: str) -> tuple[str, ...]:
    weighted: list[tuple[float, int, str]] = []
    for position, item in enumerate(header.split(",")[:MAX_RANGES]):
        tag, _, parameters = item.partition(";")
        tag = tag.strip().lower()
        if not _RANGE.match(tag):
            continue
        weight = 1.0
        parameter = parameters.strip()
        if parameter:
            if not _QVALUE.match(parameter):
                continue
            weight = float(parameter[2:])
        if weight > 0:
            weighted.append((-weight, position, tag))
    return tuple(tag for _, _, tag in sorted(weighted))


def parse_accept_language(header: str | None) -> tuple[str, ...]:
    """The header's language ranges, most preferred first (lower case; ``q=0`` and malformed left out)."""
    if not header:
        return ()
    return _parse(header[:MAX_HEADER_CHARS])


def _match(requested: str, index: Mapping[str, str]) -> str | None:
    """The available tag one requested tag selects: lookup by truncation (``fr-CA`` -> ``fr``), else
    basic filtering by the same truncations (``pt-PT`` -> any ``pt-*``, such as ``pt-BR``)."""
    truncations = []
    candidate = requested.lower()
    while candidate:
        found = index.get(candidate)
        if found is not None:
            return found
        truncations.append(candidate + "-")
        candidate = candidate.rpartition("-")[0]
        if len(candidate) > 2 and candidate[-2] == "-":  # a singleton left at the end (RFC 4647 3.4)
            candidate = candidate[:-2]
    for prefix in truncations:
        for key, value in index.items():
            if key.startswith(prefix):
                return value
    return None


def choose(
    ui_locales: Sequence[str], accept_language: str | None, index: Mapping[str, str], default: str
) -> str:
    """``negotiate`` with the available tags already indexed by their lower-case spelling."""
    for tag in ui_locales:
        found = _match(tag, index)
        if found is not None:
            return found
    for tag in parse_accept_language(accept_language):
        if tag == "*":
            return default
        found = _match(tag, index)
        if found is not None:
            return found
    return default


def negotiate(
    ui_locales: Sequence[str], accept_language: str | None, available: Collection[str], default: str
) -> str:
    """The language to answer in, spelled as in ``available``: the first of the app's ``ui_locales``
    that matches, else the best ``Accept-Language`` range that matches, else ``default``."""
    return choose(ui_locales, accept_language, {tag.lower(): tag for tag in available}, default)
