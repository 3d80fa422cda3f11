"""HTTP Basic authentication (RFC 7617) for the connector endpoints and the admin pages.

Credentials are compared as SHA-256 digests with ``hmac.compare_digest``, user name and password both
always compared, so neither their content nor their length shows in the response time. A refusal is a
401 with a ``WWW-Authenticate`` challenge naming the realm, so each realm's credentials open only it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from approval_http import problem
from starlette.requests import Request
from starlette.responses import Response


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


def basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    """(user name, password) from an ``Authorization: Basic ...`` header; None when absent or malformed."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "basic" or not token.strip():
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, colon, password = decoded.partition(":")
    return (user, password) if colon else None


class BasicRealm:
    """One user name and password guarding one realm."""

    def __init__(self, realm: str, username: str, password: str) -> None:
        self.realm = realm
        self._username = _digest(username)
        self._password = _digest(password)

    def allows(self, request: Request) -> bool:
        given = basic_credentials(request.headers.get("authorization"))
        user, password = given if given is not None else ("", "")
        user_ok = hmac.compare_digest(_digest(user), self._username)
        password_ok = hmac.compare_digest(_digest(password), self._password)
        return given is not None and user_ok and password_ok

    def challenge(self, *, as_json: bool) -> Response:
        headers = {
            "WWW-Authenticate": f'Basic realm="{self.realm}", charset="UTF-8"',
            "Cache-Control": "no-store",
        }
        if as_json:
            return problem(
                401, "HTTP Basic authentication with this service's credentials is required.", headers
            )
        return Response("Authentication required.\n", 401, headers, media_type="text/plain")
