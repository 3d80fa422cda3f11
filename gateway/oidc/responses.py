"""Authorization responses: the redirect back to the client, with ``iss`` (RFC 9207)."""

from __future__ import annotations

import functools
import re
from urllib.parse import quote_plus, urlsplit, urlunsplit

from starlette.responses import RedirectResponse

from gateway.http import NO_STORE
from gateway.oidc.errors import OAuthError

_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*")  # what ``quote_plus`` leaves as it is
_quote_constant = functools.lru_cache(maxsize=32)(quote_plus)  # the issuer, the same every time


def _quote(value: str) -> str:
    return value if _UNRESERVED.fullmatch(value) else quote_plus(value)


def _query(params: dict[str, str | None]) -> str:
    """``urlencode`` of the parameters that are not None (the same text, without its per-character
    work for the values that need no escaping, such as codes)."""
    return "&".join(
        f"{_quote(name)}={_quote_constant(value) if name == 'iss' else _quote(value)}"
        for name, value in params.items()
        if value is not None
    )


def redirect_with(redirect_uri: str, params: dict[str, str | None]) -> RedirectResponse:
    """303 to ``redirect_uri`` with ``params`` added to its query (RFC 6749 3.1.2: keep its own query)."""
    parts = urlsplit(redirect_uri)
    extra = _query(params)
    query = f"{parts.query}&{extra}" if parts.query else extra
    return RedirectResponse(urlunsplit(parts._replace(query=query)), status_code=303, headers=NO_STORE)


def success(redirect_uri: str, *, code: str, state: str | None, issuer: str) -> RedirectResponse:
    return redirect_with(redirect_uri, {"code": code, "state": state, "iss": issuer})


def error(redirect_uri: str, exc: OAuthError, *, state: str | None, issuer: str) -> RedirectResponse:
    return redirect_with(
        redirect_uri,
        {"error": exc.error, "error_description": exc.description, "state": state, "iss": issuer},
    )
