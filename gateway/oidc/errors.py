"""OAuth 2.0 / OpenID Connect errors as exceptions, with the spec's codes and HTTP statuses."""

from __future__ import annotations

import re

_UNSAFE = re.compile(r"[^\x20-\x21\x23-\x5b\x5d-\x7e]")


class OAuthError(Exception):
    """An error the spec defines. ``description`` goes into ``error_description`` (RFC 6749 5.2:
    printable ASCII without ``"`` and ``\\``; never CR, LF or TAB)."""

    error = "invalid_request"
    status = 400

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = _UNSAFE.sub(" ", description)

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


class InvalidRequest(OAuthError):
    error = "invalid_request"


class InvalidClient(OAuthError):
    error = "invalid_client"
    status = 401


class InvalidGrant(OAuthError):
    error = "invalid_grant"


class UnauthorizedClient(OAuthError):
    error = "unauthorized_client"


class UnsupportedGrantType(OAuthError):
    error = "unsupported_grant_type"


class UnsupportedResponseType(OAuthError):
    error = "unsupported_response_type"


class InvalidScope(OAuthError):
    error = "invalid_scope"


class AccessDenied(OAuthError):
    error = "access_denied"


class LoginRequired(OAuthError):
    error = "login_required"


class RequestNotSupported(OAuthError):
    error = "request_not_supported"


class RequestUriNotSupported(OAuthError):
    error = "request_uri_not_supported"


class TemporarilyUnavailable(OAuthError):
    error = "temporarily_unavailable"
    status = 503


class InvalidToken(OAuthError):
    """RFC 6750 3.1, for protected resources (userinfo)."""

    error = "invalid_token"
    status = 401


class InsufficientScope(OAuthError):
    error = "insufficient_scope"
    status = 403


class UntrustedRedirect(Exception):
    """The client or redirect URI cannot be trusted: show an error page, never redirect (RFC 6749 4.1.2.1)."""

    def __init__(self, title: str, detail: str) -> None:
        super().__init__(detail)
        self.title = title
        self.detail = detail
