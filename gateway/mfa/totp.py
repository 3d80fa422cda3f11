"""TOTP (RFC 6238) as this gateway uses it: HMAC-SHA-1, 6 digits, 30-second steps, 160-bit secrets.

A code is accepted for the current time step and one step either side (RFC 6238 §5.2 allows for
clock drift and for the time a user takes to type); ``match`` returns the step it matched, which
the caller records so that neither that code nor any older one is accepted again (``methods``).
Secrets travel as unpadded base32, the form authenticator apps expect; pyotp computes the HOTP
value (RFC 4226) of a step.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

import pyotp

DIGITS = 6
PERIOD = 30
WINDOW = 1
"""Steps accepted on either side of the current one."""
SECRET_BYTES = 20
"""160 bits: the HMAC-SHA-1 key length RFC 4226 §4 recommends."""


def new_secret() -> str:
    """A fresh random secret, as unpadded base32 (32 characters)."""
    return base64.b32encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii").rstrip("=")


def is_secret(secret: str) -> bool:
    """Whether ``secret`` is unpadded base32 of at least ``SECRET_BYTES`` bytes."""
    if len(secret) < 32 or not secret.isascii():
        return False
    try:
        base64.b32decode(secret + "=" * (-len(secret) % 8))
    except (binascii.Error, ValueError):
        return False
    return True


def time_step(now: float) -> int:
    """The RFC 6238 time step ``T`` of a Unix time (T0 = 0)."""
    return int(now) // PERIOD


def code_at(secret: str, step: int, *, digits: int = DIGITS) -> str:
    """The code of ``step`` (HOTP with the step as counter); ``digits`` other than 6 are for tests."""
    return pyotp.TOTP(secret, digits=digits, digest=hashlib.sha1, interval=PERIOD).generate_otp(step)


def normalise(code: str) -> str | None:
    """The code as typed, without the spaces people put in it; None unless it is exactly 6 digits."""
    compact = "".join(code.split())
    if len(compact) != DIGITS or not compact.isascii() or not compact.isdigit():
        return None
    return compact


def match(secret: str, code: str, now: float) -> int | None:
    """The time step ``code`` is valid for at ``now`` (the latest, should two steps share a code),
    or None. Every step of the window is compared in constant time, matched or not."""
    typed = normalise(code)
    if typed is None:
        return None
    current = time_step(now)
    found: int | None = None
    for step in range(current - WINDOW, current + WINDOW + 1):
        if hmac.compare_digest(code_at(secret, step), typed):
            found = step
    return found
