"""Choosing the page language: ``ui_locales`` first, then ``Accept-Language`` (q-values), then the default;
RFC 4647 lookup (``fr-CA`` -> ``fr``) and basic filtering (``pt`` -> ``pt-BR``)."""

from __future__ import annotations

import pytest

from gateway.i18n import negotiate, parse_accept_language
from gateway.i18n.negotiation import MAX_HEADER_CHARS, _parse

AVAILABLE = ("en", "fr", "pt-BR", "zh-Hant")


@pytest.mark.parametrize(
    ("ui_locales", "accept_language", "chosen"),
    [
        ((), None, "en"),  # nothing asked: the default
        ((), "", "en"),
        (("fr",), None, "fr"),
        (("fr-CA",), None, "fr"),  # lookup: fr-CA -> fr
        (("FR-ca",), None, "fr"),  # tags are case-insensitive
        (("de", "fr-CH", "en"), None, "fr"),  # the first ui_locale that matches wins
        (("se",), "fr", "fr"),  # no ui_locale matches: Accept-Language decides
        (("en",), "fr", "en"),  # ui_locales before Accept-Language
        ((), "fr-CA,fr;q=0.9,en;q=0.8", "fr"),
        ((), "de-DE,de;q=0.9,en;q=0.8,fr;q=0.7", "en"),  # best available by preference order
        ((), "en;q=0.5,fr;q=0.9", "fr"),  # q-values, not order, rank
        ((), "fr;q=0,en", "en"),  # q=0: not acceptable
        ((), "fr;q=0.000", "en"),
        ((), "es, *;q=0.1", "en"),  # * accepts the default
        ((), "pt", "pt-BR"),  # basic filtering: a range matches a more specific tag
        ((), "pt-PT", "pt-BR"),  # lookup to pt, then filtering
        ((), "zh-Hant-TW", "zh-Hant"),
        ((), "zh-Hant-x-private", "zh-Hant"),  # a trailing singleton goes with its subtag
        ((), "fr;q=2", "en"),  # malformed q: the range is ignored
        ((), "fr;level=1", "en"),  # unknown parameter: ignored
        ((), "12-34, fr", "fr"),  # malformed range: ignored
        ((), " FR ; Q=0.8 ", "fr"),
        (("",), None, "en"),
        (("*",), None, "en"),  # not a language tag in ui_locales
    ],
)
def test_negotiation_table(ui_locales: tuple[str, ...], accept_language: str | None, chosen: str) -> None:
    assert negotiate(ui_locales, accept_language, AVAILABLE, "en") == chosen


def test_the_default_is_answered_as_given() -> None:
    assert negotiate((), "de", ("en", "fr"), "fr") == "fr"


def test_accept_language_ranges_are_ordered_by_weight_then_position() -> None:
    assert parse_accept_language("da, en-gb;q=0.8, en;q=0.7, fr;q=0.8") == ("da", "en-gb", "fr", "en")
    assert parse_accept_language(None) == () and parse_accept_language("") == ()


def test_parsed_headers_are_cached_and_bounded() -> None:
    _parse.cache_clear()
    parse_accept_language("fr-CA,fr;q=0.9")
    parse_accept_language("fr-CA,fr;q=0.9")
    info = _parse.cache_info()
    assert (info.hits, info.misses) == (1, 1)
    assert info.maxsize is not None and info.maxsize <= 1024
    late = "de;q=0.1," + " " * MAX_HEADER_CHARS + "fr"
    assert parse_accept_language(late) == ("de",)  # only the first MAX_HEADER_CHARS are read


def test_many_ranges_are_cut_off() -> None:
    header = ",".join(["de"] * 40 + ["fr"])
    assert "fr" not in parse_accept_language(header)
