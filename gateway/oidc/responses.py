"""Authorization responses: the redirect back to the client, with ``iss`` (RFC 9207)."""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit, urlunsplit

from starlette.responses import RedirectResponse

from gateway.http import NO_STORE
from gateway.oidc.errors import OAuthError


def redirect_with(redirect_uri: str, params: dict[str, str | None]) -> RedirectResponse:
    """303 to ``redirect_uri`` with ``params`` added to its query (RFC 6749 3.1.2: keep its own query)."""
    parts = urlsplit(redirect_uri)
    extra = urlencode({k: v for k, v in params.items() if v is not None})
    query = f"{parts.query}&{extra}" if parts.query else extra
    return RedirectResponse(urlunsplit(parts._replace(query=query)), status_code=303, headers=NO_STORE)


def success(redirect_uri: str, *, code: str, state: str | None, issuer: str) -> RedirectResponse:
    return redirect_with(redirect_uri, {"code": code, "state": state, "iss": issuer})


def error(redirect_uri: str, exc: OAuthError, *, state: str | None, issuer: str) -> RedirectResponse:
    return redirect_with(
        redirect_uri,
        {"error": exc.error, "error_description": exc.description, "state": state, "iss": issuer},
    )
