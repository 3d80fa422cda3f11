"""The answer to a request that failed because the store could not be reached: 503, never a traceback.

``EXCEPTION_HANDLERS`` (registered by ``create_app``) catches, from any endpoint, the store's
"temporarily out of reach" errors:

- Redis: ``redis.exceptions.ConnectionError`` (refused, reset, a server still loading its AOF
  or RDB, no Sentinel master), ``TimeoutError`` (the client's 5-second socket timeout), and
  ``ReadOnlyError`` / ``TryAgainError`` / ``ClusterDownError`` (a fail-over in progress);
- SQLite: ``sqlite3.OperationalError`` "database is locked" / "database is busy" once the busy
  timeout ran out. Any other ``OperationalError`` is a real fault and stays a 500.

The answer is a 503 with ``Retry-After: RETRY_AFTER_SECONDS`` and ``Cache-Control: no-store``:

- the authorization endpoint (GET), once its ``client_id`` and ``redirect_uri`` check out against
  the configuration (no store needed for that), redirects back with
  ``error=temporarily_unavailable`` (RFC 6749 4.1.2.1, with ``state`` and RFC 9207 ``iss``);
  otherwise it gets the page below, as an untrusted redirect URI never receives anything;
- the token, revocation, introspection and userinfo endpoints, the admin API (``/v1.0/``) and the
  other machine endpoints answer JSON ``{"error": "temporarily_unavailable", "error_description":
  ...}``. RFC 6749 defines that code for the authorization endpoint only; the token endpoint
  reuses it, with the 503 status, because RFC 6749 5.2 has no code for a server-side outage and
  clients already know this one;
- every other path (the sign-in pages, admin and owner pages, the demo) gets the error page,
  naming a temporary problem and asking to try again in a moment, in the page's language (the
  catalogues are loaded at start-up and need no store).

The request is logged (one warning with the exception's type and message, no traceback). What
was written before the failure stays as the endpoint left it: every multi-key change in the
store is one atomic script or statement, so a failed request leaves either all of it or none.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Awaitable, Callable, Mapping

from redis.exceptions import ClusterDownError, ReadOnlyError, TryAgainError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.requests import Request
from starlette.responses import Response

from gateway.http import json_response
from gateway.i18n import Message
from gateway.oidc import responses
from gateway.oidc.authorize_checks import AuthorizationRequest, check_client, check_redirect_uri
from gateway.oidc.errors import OAuthError, TemporarilyUnavailable, UntrustedRedirect
from gateway.pages import error_page

logger = logging.getLogger("gateway.unavailable")

RETRY_AFTER_SECONDS = 5
DESCRIPTION = "the service is temporarily unavailable; try again in a few seconds"
PAGE_TITLE = Message("error.unavailable.title")
PAGE_DETAIL = Message("error.unavailable.detail", seconds=RETRY_AFTER_SECONDS)
JSON_PREFIXES = ("/oauth2/", "/v1.0/", "/.well-known/", "/healthz", "/metrics")
"""Paths answered in JSON; ``/oauth2/authorize`` and ``/oauth2/logout`` are pages (see below)."""
PAGE_PATHS = ("/oauth2/authorize", "/oauth2/logout")
LOCKED_MESSAGES = ("database is locked", "database is busy", "database table is locked")

STORE_UNAVAILABLE: tuple[type[Exception], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    ReadOnlyError,
    TryAgainError,
    ClusterDownError,
)


def is_unavailable(exc: BaseException) -> bool:
    """True for the store errors that mean "out of reach for now" (see the module docstring)."""
    if isinstance(exc, STORE_UNAVAILABLE):
        return True
    if isinstance(exc, sqlite3.OperationalError):
        text = str(exc).lower()
        return any(message in text for message in LOCKED_MESSAGES)
    return False


def wants_json(path: str) -> bool:
    if path in PAGE_PATHS:
        return False
    return path.startswith(JSON_PREFIXES)


def _headers() -> dict[str, str]:
    return {"Retry-After": str(RETRY_AFTER_SECONDS), "Cache-Control": "no-store"}


def _authorize_redirect(request: Request) -> Response | None:
    """The RFC 6749 4.1.2.1 error redirect for a GET authorization request whose client and
    redirect URI are registered; None when nothing may be sent to its redirect URI."""
    if request.method != "GET" or request.url.path != "/oauth2/authorize":
        return None
    runtime = getattr(request.app.state, "runtime", None)
    if runtime is None:
        return None
    params: dict[str, str] = {}
    for name, value in request.query_params.multi_items():
        if name in params:
            if name in ("client_id", "redirect_uri", "state"):
                return None  # a repeated parameter is refused with a page, as the endpoint does
            continue
        params[name] = value
    req = AuthorizationRequest(params=params)
    try:
        check_client(req, runtime.settings)
        check_redirect_uri(req, runtime.settings)
    except (UntrustedRedirect, OAuthError):
        return None
    if not req.trusted:
        return None
    state = params.get("state") or None
    answer = responses.error(
        req.redirect_uri, TemporarilyUnavailable(DESCRIPTION), state=state, issuer=runtime.settings.issuer
    )
    answer.headers.update(_headers())
    return answer


def answer(request: Request, exc: BaseException) -> Response:
    """The 503 for ``request``, which failed with the store error ``exc``."""
    logger.warning(
        "store unavailable during %s %s: %s: %s",
        request.method,
        request.url.path,
        type(exc).__name__,
        exc,
        extra={"reason": "store_unavailable"},
    )
    if wants_json(request.url.path):
        body = {"error": TemporarilyUnavailable.error, "error_description": DESCRIPTION}
        return json_response(body, status=503, headers=_headers())
    redirect = _authorize_redirect(request)
    if redirect is not None:
        return redirect
    return error_page(request, PAGE_TITLE, PAGE_DETAIL, status=503, headers=_headers())


async def store_unavailable(request: Request, exc: Exception) -> Response:
    """Starlette exception handler: the 503 for the store's transient errors; anything else
    (another ``sqlite3.OperationalError``) is raised again, to be a 500."""
    if not is_unavailable(exc):
        raise exc
    return answer(request, exc)


Handler = Callable[[Request, Exception], Awaitable[Response]]

EXCEPTION_HANDLERS: Mapping[type[Exception], Handler] = {
    **{kind: store_unavailable for kind in STORE_UNAVAILABLE},
    sqlite3.OperationalError: store_unavailable,
}
