"""SAML time values (``xs:dateTime``, SAML Core 1.3.3) to and from POSIX seconds.

Strict: ``YYYY-MM-DDThh:mm:ss`` with optional fractional seconds and a ``Z`` or ``±hh:mm``
zone (absent means UTC, as SAML requires UTC anyway). Anything else is ``None`` for the caller
to refuse, never a guess.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

_INSTANT = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})?")


def parse_instant(text: str | None) -> float | None:
    """``text`` as POSIX seconds, or ``None`` when absent or not a valid ``xs:dateTime``."""
    if text is None:
        return None
    match = _INSTANT.fullmatch(text.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    if zone in (None, "Z"):
        tz = UTC
    else:
        hours, minutes = int(zone[1:3]), int(zone[4:6])
        if hours > 14 or minutes > 59:
            return None
        offset = timedelta(hours=hours, minutes=minutes)
        tz = timezone(-offset if zone[0] == "-" else offset)
    try:
        moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=tz)
    except ValueError:
        return None
    return moment.timestamp() + (int(fraction) / 10 ** len(fraction) if fraction else 0.0)


def format_instant(seconds: float) -> str:
    """POSIX seconds as a SAML instant, UTC, whole seconds (``2026-11-26T20:58:17Z``)."""
    return datetime.fromtimestamp(int(seconds), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
