"""SAML instants: strict ``xs:dateTime`` parsing, UTC formatting."""

from __future__ import annotations

import pytest

from idp_connectors.saml.xmltime import format_instant, parse_instant

EPOCH_2026 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-01T00:00:00Z", EPOCH_2026),
        ("2026-01-01T00:00:00", EPOCH_2026),
        ("2026-01-01T00:00:00.250Z", EPOCH_2026 + 0.25),
        ("2026-01-01T01:30:00+01:30", EPOCH_2026),
        ("2025-12-31T22:00:00-02:00", EPOCH_2026),
        (" 2026-01-01T00:00:00Z\n", EPOCH_2026),
    ],
)
def test_valid_instants(text: str, expected: float) -> None:
    assert parse_instant(text) == pytest.approx(expected)


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "yesterday",
        "2026-01-01",
        "2026-13-01T00:00:00Z",
        "2026-02-30T00:00:00Z",
        "2026-01-01T00:00:00+15:00",
        "2026-01-01 00:00:00Z",
        "2026-01-01T00:00:00ZZ",
        "+2026-01-01T00:00:00Z",
    ],
)
def test_anything_else_is_none(text: str | None) -> None:
    assert parse_instant(text) is None


def test_format_is_utc_whole_seconds() -> None:
    assert format_instant(EPOCH_2026 + 0.9) == "2026-01-01T00:00:00Z"
    assert parse_instant(format_instant(EPOCH_2026)) == EPOCH_2026
