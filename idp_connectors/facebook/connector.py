"""The ``facebook`` connector: Facebook Login (OAuth 2.0 code flow with PKCE S256) and Graph ``/me``.

``begin`` sends the browser to the login dialog with the gateway's ``state`` and a PKCE
challenge; the verifier and the redirect URI stay server-side in ``Redirect.state``.
``complete`` exchanges the code (POST, so the app secret never sits in a URL), then reads
``/me`` with the token in an ``Authorization: Bearer`` header and the ``appsecret_proof``
(HMAC-SHA256 of the token, keyed with the app secret) Facebook asks of server calls.

What Facebook asserts, and what it does not:

- ``subject`` is the app-scoped user id (a numeric string), issuer ``facebook.com``.
- ``email`` is returned only for a confirmed primary address, so ``email_verified`` is
  True exactly when an email is present (whether that is *trusted* is policy's call).
- Facebook says nothing about how the user authenticated: ``amr`` is empty, ``acr`` and
  ``auth_time`` are None. Sign-in hints (``login_hint``, ``prompt``, ``max_age``,
  ``acr_values``) have no Facebook equivalent the gateway could verify, so none is sent.

Every back-channel call goes through the shared client, has a total deadline, follows no
redirect and reads at most ``MAX_RESPONSE_BYTES``. Errors carry a stable ``code`` and a
message naming the call, never the app secret, the code or the access token.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import math
import re
import secrets
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import httpx

from idp_connectors.base import (
    BeginRequest,
    Callback,
    ConnectorContext,
    ConnectorError,
    Redirect,
    UpstreamIdentity,
)
from idp_connectors.facebook.config import ISSUER, FacebookConfig

MAX_RESPONSE_BYTES = 64 * 1024
"""Token and profile answers are a few hundred bytes; anything past this is refused."""

MAX_CODE_LENGTH = 4096
_OPAQUE = re.compile(r"[\x21-\x7e]+")  # printable ASCII, no space: codes and tokens
_VERIFIER = re.compile(r"[A-Za-z0-9._~-]{43,128}")  # RFC 7636 section 4.1
_USER_ID = re.compile(r"[0-9]{1,64}")
_UNSAFE = re.compile(r"[^\x20-\x7e]")


def pkce_challenge(verifier: str) -> str:
    """RFC 7636 S256: BASE64URL(SHA256(ASCII(verifier))) without padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def appsecret_proof(app_secret: str, access_token: str) -> str:
    """Graph's ``appsecret_proof``: hex HMAC-SHA256 of the access token, keyed with the app secret."""
    return hmac.new(app_secret.encode(), access_token.encode(), hashlib.sha256).hexdigest()


def _printable(value: object, limit: int = 200) -> str:
    """An upstream-supplied string made safe to log and show: printable ASCII, bounded."""
    text = value if isinstance(value, str) else ""
    return _UNSAFE.sub("?", text[:limit])


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("a number out of range")
    return value


def _json_object(body: bytes) -> dict[str, Any] | None:
    """``body`` as a strict JSON object (no NaN/Infinity), or None when it is not one."""
    try:
        value = json.loads(body, parse_constant=_reject_constant, parse_float=_finite)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _graph_error(body: dict[str, Any] | None) -> str:
    """Graph's ``{"error": {"type", "code", "message"}}`` summarised for a message, or ``""``."""
    error = body.get("error") if body else None
    if not isinstance(error, dict):
        return ""
    kind = _printable(error.get("type"), 64) or "error"
    code = error.get("code")
    label = f"{kind} {code}" if isinstance(code, int) and not isinstance(code, bool) else kind
    message = _printable(error.get("message"))
    return f": {label}: {message}" if message else f": {label}"


def _text(claims: Mapping[str, Any], name: str, limit: int = 256) -> str | None:
    value = claims.get(name)
    if not isinstance(value, str) or not value or len(value) > limit:
        return None
    return value


class FacebookConnector:
    """A ``RedirectConnector`` for Facebook Login; one instance per configured app."""

    def __init__(self, config: FacebookConfig, ctx: ConnectorContext) -> None:
        if ctx.http is None:
            raise ValueError(
                f"connector {config.id!r}: the facebook connector needs the gateway's shared HTTP client"
            )
        self.id = config.id
        self.config = config
        self._http: httpx.AsyncClient = ctx.http

    async def begin(self, request: BeginRequest) -> Redirect:
        """The login dialog URL: client_id, redirect_uri, state, code + PKCE S256, the scopes."""
        verifier = secrets.token_urlsafe(64)
        query = urlencode(
            {
                "client_id": self.config.client_id,
                "redirect_uri": request.callback_url,
                "state": request.state,
                "response_type": "code",
                "scope": ",".join(self.config.scopes),
                "code_challenge": pkce_challenge(verifier),
                "code_challenge_method": "S256",
            }
        )
        return Redirect(
            url=f"{self.config.authorization_endpoint}?{query}",
            state={"code_verifier": verifier, "redirect_uri": request.callback_url},
        )

    async def complete(self, callback: Callback) -> UpstreamIdentity:
        """Check the callback, exchange the code, read ``/me``; the identity or a ``ConnectorError``."""
        params = callback.params
        if "error" in params or "error_reason" in params:
            reason = _printable(params.get("error_reason") or params.get("error"), 64) or "unspecified"
            description = _printable(params.get("error_description"))
            detail = f" ({description})" if description else ""
            raise ConnectorError(
                f"Facebook sign-in was not completed: {reason}{detail}", code="upstream_denied"
            )
        code = params.get("code")
        if not code:
            raise ConnectorError(
                "the Facebook callback carries no authorization code", code="invalid_callback"
            )
        if len(code) > MAX_CODE_LENGTH or not _OPAQUE.fullmatch(code):
            raise ConnectorError("the Facebook authorization code is malformed", code="invalid_callback")
        verifier, redirect_uri = self._begun(callback)
        token = await self._exchange(code, verifier, redirect_uri)
        profile = await self._me(token)
        return self._identity(profile)

    def _begun(self, callback: Callback) -> tuple[str, str]:
        """The verifier and redirect URI ``begin`` kept; the callback must arrive at that URI."""
        verifier = callback.state.get("code_verifier")
        redirect_uri = callback.state.get("redirect_uri")
        if (
            not isinstance(verifier, str)
            or not _VERIFIER.fullmatch(verifier)
            or not isinstance(redirect_uri, str)
        ):
            raise ConnectorError("the sign-in state of this callback is incomplete", code="invalid_callback")
        if not hmac.compare_digest(redirect_uri.encode(), callback.callback_url.encode()):
            raise ConnectorError(
                "the callback arrived at another redirect URI than the sign-in began with",
                code="invalid_callback",
            )
        return verifier, redirect_uri

    async def _exchange(self, code: str, verifier: str, redirect_uri: str) -> str:
        """Code + verifier -> user access token (``token_error`` when Facebook refuses or answers oddly)."""
        what = "Facebook token endpoint"
        status, body = await self._send(
            "POST",
            self.config.token_endpoint,
            what=what,
            data={
                "client_id": self.config.client_id,
                "client_secret": self.config.client_secret.get_secret_value(),
                "redirect_uri": redirect_uri,
                "code": code,
                "code_verifier": verifier,
            },
        )
        answer = _json_object(body)
        if status != 200:
            raise ConnectorError(
                f"the {what} refused the code (HTTP {status}{_graph_error(answer)})", code="token_error"
            )
        if answer is None:
            raise ConnectorError(f"the {what} response is not a JSON object", code="token_error")
        token = answer.get("access_token")
        if not isinstance(token, str) or len(token) > MAX_CODE_LENGTH or not _OPAQUE.fullmatch(token):
            raise ConnectorError(f"the {what} response carries no usable access_token", code="token_error")
        token_type = answer.get("token_type", "bearer")
        if not isinstance(token_type, str) or token_type.lower() != "bearer":
            raise ConnectorError(f"the {what} issued a token that is not a bearer token", code="token_error")
        return token

    async def _me(self, token: str) -> dict[str, Any]:
        """Graph ``/me`` with the bearer token and its ``appsecret_proof``; the profile object."""
        what = "Facebook Graph /me call"
        proof = appsecret_proof(self.config.client_secret.get_secret_value(), token)
        status, body = await self._send(
            "GET",
            self.config.me_endpoint,
            what=what,
            params={"fields": ",".join(self.config.fields), "appsecret_proof": proof},
            headers={"Authorization": f"Bearer {token}"},
        )
        profile = _json_object(body)
        if status != 200:
            raise ConnectorError(
                f"the {what} was refused (HTTP {status}{_graph_error(profile)})", code="token_error"
            )
        if profile is None:
            raise ConnectorError(f"the {what} response is not a JSON object", code="token_error")
        user_id = profile.get("id")
        if not isinstance(user_id, str) or not _USER_ID.fullmatch(user_id):
            raise ConnectorError(f"the {what} response has no app-scoped user id", code="token_error")
        return profile

    def _identity(self, profile: dict[str, Any]) -> UpstreamIdentity:
        email = _text(profile, "email", 320)
        if email is not None and "@" not in email:
            email = None
        return UpstreamIdentity(
            connector_id=self.id,
            issuer=ISSUER,
            subject=profile["id"],
            email=email,
            email_verified=email is not None,
            name=_text(profile, "name"),
            given_name=_text(profile, "first_name"),
            family_name=_text(profile, "last_name"),
            amr=(),
            acr=None,
            auth_time=None,
            raw_claims=profile,
        )

    async def _send(
        self,
        method: str,
        url: str,
        *,
        what: str,
        data: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, bytes]:
        """One bounded request: ``upstream_unavailable`` on network failure, deadline or 5xx.

        A redirect or an oversized body is ``token_error``. Exceptions are not chained, so
        no request (with its secret, code or token) reaches a traceback in the logs.
        """
        timeout = self.config.http_timeout_seconds
        failure: str | None = None
        try:
            async with asyncio.timeout(timeout):
                async with self._http.stream(
                    method,
                    url,
                    data=data,
                    params=params,
                    headers=headers,
                    timeout=httpx.Timeout(timeout),
                    follow_redirects=False,
                ) as response:
                    status = response.status_code
                    declared = response.headers.get("content-length", "")
                    body = bytearray()
                    if declared.isdigit() and int(declared) > MAX_RESPONSE_BYTES:
                        failure = "too_large"
                    else:
                        async for chunk in response.aiter_bytes():
                            body += chunk
                            if len(body) > MAX_RESPONSE_BYTES:
                                failure = "too_large"
                                break
        except (TimeoutError, httpx.TimeoutException):
            failure = "timeout"
        except httpx.HTTPError as exc:
            failure = type(exc).__name__
        if failure == "timeout":
            raise ConnectorError(
                f"the {what} did not answer within {timeout:g} seconds", code="upstream_unavailable"
            )
        if failure == "too_large":
            raise ConnectorError(
                f"the {what} response is larger than {MAX_RESPONSE_BYTES} bytes", code="token_error"
            )
        if failure is not None:
            raise ConnectorError(f"the {what} could not be reached ({failure})", code="upstream_unavailable")
        if status >= 500:
            raise ConnectorError(f"the {what} failed (HTTP {status})", code="upstream_unavailable")
        if 300 <= status < 400:
            raise ConnectorError(f"the {what} answered with a redirect (HTTP {status})", code="token_error")
        return status, bytes(body)
