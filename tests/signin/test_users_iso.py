"""``gateway.directory.users.iso``: Graph's ``createdDateTime`` text, as an aware ``datetime`` writes it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.directory.users import iso


@pytest.mark.parametrize("timestamp", [0, 59, 951_782_400, 1_709_164_799, 1_764_200_000, 4_102_444_799])
def test_iso_is_utc_to_the_second(timestamp: int) -> None:
    assert iso(timestamp) == datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_iso_text() -> None:
    assert iso(1_764_200_000) == "2025-11-26T23:33:20Z"
