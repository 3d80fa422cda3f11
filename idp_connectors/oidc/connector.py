"""The generic OpenID Connect connector: the gateway as relying party of one upstream OP.

``begin`` sends the browser to the upstream's authorization endpoint with the
authorization code flow, PKCE S256, a fresh ``nonce`` and the gateway's single-use
``state``; ``Redirect.state`` (kept server-side by the gateway) carries the nonce, the
code verifier, the redirect URI and the time. ``complete`` checks the callback, redeems
the code, validates the ID token (``id_token.py``), optionally calls userinfo and maps
the claims (``claims.py``). Nothing is persisted; discovery and JWKS are cached in memory.

Presets (``google``, ``microsoft``) subclass ``OidcConnector`` with an internal ``OidcConfig``
and override three hooks: ``accepts_response_issuer`` (RFC 9207), ``expected_issuer`` (the
``iss`` a signature-checked ID token must carry) and ``identity`` (claims to identity).

Stable error codes (``ConnectorError.code``):

- Callback: ``invalid_state`` (stored state unusable), ``state_mismatch``,
  ``state_expired``, ``redirect_uri_mismatch``, ``iss_missing`` / ``iss_mismatch``
  (RFC 9207), ``upstream_denied`` (``error=access_denied``) / ``upstream_error`` (any
  other ``error``; see ``UpstreamError``), ``code_missing``.
- Back channel: ``no_http_client``, ``upstream_unavailable`` (network failure, deadline,
  HTTP 5xx), ``discovery_issuer_mismatch``, ``discovery_invalid``, ``jwks_invalid``,
  ``pkce_unsupported``, ``token_error`` (the token endpoint refused, 4xx),
  ``token_response_invalid`` (not JSON, no ``id_token``/``access_token``).
- ID token: ``id_token_malformed``, ``alg_not_allowed``, ``unknown_kid``, ``kid_missing``,
  ``no_suitable_key``, ``key_alg_mismatch``, ``bad_signature``, ``invalid_iss``,
  ``invalid_aud``, ``azp_missing``, ``invalid_azp``, ``id_token_expired``, ``iat_missing``,
  ``iat_in_future``, ``nbf_in_future``, ``sub_missing``, ``invalid_nonce``,
  ``auth_time_missing``, ``max_age_exceeded``, ``at_hash_mismatch``, ``subject_missing``
  (the mapped subject claim).
- Userinfo: ``userinfo_unsupported`` (no endpoint discovered), ``userinfo_error`` (refused
  or not a Bearer token), ``userinfo_invalid``, ``userinfo_sub_mismatch``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus, urlencode, urlsplit, urlunsplit

import httpx

from idp_connectors.base import (
    JSON,
    BeginRequest,
    Callback,
    ConnectorContext,
    ConnectorError,
    Redirect,
    UpstreamIdentity,
)
from idp_connectors.oidc.claims import to_identity
from idp_connectors.oidc.config import OidcConfig
from idp_connectors.oidc.fetch import json_object, sanitise, send
from idp_connectors.oidc.id_token import Expected, check_at_hash, check_claims, verify_signature
from idp_connectors.oidc.metadata import ProviderCache, ProviderMetadata

STATE_LIFETIME_SECONDS = 3600
"""A callback later than this after ``begin`` is refused, whatever the gateway's own TTL."""


class UpstreamError(ConnectorError):
    """The upstream answered the authorization request with ``error`` (sanitised copies kept)."""

    def __init__(self, error: str, description: str | None) -> None:
        detail = f" ({description})" if description else ""
        super().__init__(
            f"the upstream identity provider refused the sign-in: {error}{detail}",
            code="upstream_denied" if error == "access_denied" else "upstream_error",
        )
        self.error = error
        self.error_description = description


@dataclass(frozen=True, slots=True)
class _Pending:
    """What ``begin`` kept for ``complete`` (the ``Redirect.state`` JSON)."""

    issuer: str
    state: str
    nonce: str
    code_verifier: str
    redirect_uri: str
    issued_at: int
    max_age: int | None

    def to_json(self) -> JSON:
        return {
            "issuer": self.issuer,
            "state": self.state,
            "nonce": self.nonce,
            "code_verifier": self.code_verifier,
            "redirect_uri": self.redirect_uri,
            "issued_at": self.issued_at,
            "max_age": self.max_age,
        }

    @classmethod
    def from_json(cls, data: object) -> _Pending:
        unusable = ConnectorError("the sign-in state is not usable", code="invalid_state")
        if not isinstance(data, dict):
            raise unusable
        names = ("issuer", "state", "nonce", "code_verifier", "redirect_uri")
        strings = {name: data.get(name) for name in names}
        issued_at, max_age = data.get("issued_at"), data.get("max_age")
        if (
            "max_age" not in data
            or not all(isinstance(value, str) and value for value in strings.values())
            or not isinstance(issued_at, int)
            or isinstance(issued_at, bool)
            or not (max_age is None or (isinstance(max_age, int) and not isinstance(max_age, bool)))
        ):
            raise unusable
        return cls(
            issuer=str(strings["issuer"]),
            state=str(strings["state"]),
            nonce=str(strings["nonce"]),
            code_verifier=str(strings["code_verifier"]),
            redirect_uri=str(strings["redirect_uri"]),
            issued_at=issued_at,
            max_age=max_age,
        )


@dataclass(frozen=True, slots=True)
class _Tokens:
    id_token: str
    access_token: str
    token_type: str | None


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _with_query(endpoint: str, params: dict[str, str]) -> str:
    """``endpoint`` with ``params`` appended, keeping any query it already has (RFC 6749 3.1)."""
    parts = urlsplit(endpoint)
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


class OidcConnector:
    """One upstream OpenID Provider (``type: oidc``)."""

    def __init__(self, config: OidcConfig, ctx: ConnectorContext) -> None:
        self.id = config.id
        self.config = config
        self.ctx = ctx
        self._clock = ctx.clock or time.time
        self.provider = ProviderCache(config, self._client, self._clock)

    def _client(self) -> httpx.AsyncClient:
        if self.ctx.http is None:
            raise ConnectorError("the gateway lent this connector no HTTP client", code="no_http_client")
        return self.ctx.http

    def _check_pkce(self, metadata: ProviderMetadata) -> None:
        methods = metadata.code_challenge_methods
        if self.config.token_endpoint_auth_method == "none" and methods is not None and "S256" not in methods:
            raise ConnectorError(
                "the upstream does not support PKCE S256, which a public client (`none`) requires",
                code="pkce_unsupported",
            )

    async def begin(self, request: BeginRequest) -> Redirect:
        """The authorization request URL, and the nonce and PKCE verifier to check on return."""
        config = self.config
        metadata = await self.provider.metadata()
        self._check_pkce(metadata)
        nonce = secrets.token_urlsafe(32)
        verifier = secrets.token_urlsafe(64)  # 86 characters of the RFC 7636 alphabet
        params = dict(config.extra_authorize_params)
        if config.forward_login_hint and request.login_hint:
            params["login_hint"] = request.login_hint
        if config.forward_prompt and request.prompt:
            params["prompt"] = request.prompt
        max_age = request.max_age if config.forward_max_age else None
        if max_age is not None:
            params["max_age"] = str(max_age)
        if config.forward_acr_values and request.acr_values:
            params["acr_values"] = " ".join(request.acr_values)
        params.update(
            response_type="code",
            client_id=config.client_id,
            redirect_uri=request.callback_url,
            scope=" ".join(config.scopes),
            state=request.state,
            nonce=nonce,
            code_challenge=_s256(verifier),
            code_challenge_method="S256",
        )
        pending = _Pending(
            issuer=config.issuer,
            state=request.state,
            nonce=nonce,
            code_verifier=verifier,
            redirect_uri=request.callback_url,
            issued_at=int(self._clock()),
            max_age=max_age,
        )
        return Redirect(url=_with_query(metadata.authorization_endpoint, params), state=pending.to_json())

    def _check_callback(self, callback: Callback, pending: _Pending, metadata: ProviderMetadata) -> str:
        """Everything about the authorization response before the code is redeemed; returns the code."""
        params = callback.params
        if pending.issuer != self.config.issuer:
            raise ConnectorError("the sign-in began at another issuer", code="invalid_state")
        if not hmac.compare_digest(params.get("state", "").encode(), pending.state.encode()):
            raise ConnectorError("the callback's `state` is not this sign-in's", code="state_mismatch")
        if self._clock() - pending.issued_at > STATE_LIFETIME_SECONDS:
            raise ConnectorError("the sign-in took too long; start again", code="state_expired")
        if callback.callback_url != pending.redirect_uri:
            raise ConnectorError("the callback arrived at another redirect URI", code="redirect_uri_mismatch")
        iss = params.get("iss")
        if iss is None and metadata.iss_parameter_supported:
            raise ConnectorError("the authorization response has no `iss` (RFC 9207)", code="iss_missing")
        if iss is not None and not self.accepts_response_issuer(iss):
            raise ConnectorError(
                "the authorization response comes from another issuer (RFC 9207 mix-up defence)",
                code="iss_mismatch",
            )
        if "error" in params:
            description = sanitise(params.get("error_description")) or None
            raise UpstreamError(sanitise(params["error"], 64) or "unknown_error", description)
        code = params.get("code")
        if not code:
            raise ConnectorError("the authorization response has no `code`", code="code_missing")
        return code

    async def _redeem(self, metadata: ProviderMetadata, code: str, pending: _Pending) -> _Tokens:
        config = self.config
        data = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": pending.redirect_uri,
            "code_verifier": pending.code_verifier,
        }
        headers = {"accept": "application/json"}
        secret = config.client_secret.get_secret_value() if config.client_secret is not None else ""
        if config.token_endpoint_auth_method == "client_secret_basic":
            pair = f"{quote_plus(config.client_id, safe='')}:{quote_plus(secret, safe='')}"
            headers["authorization"] = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
        else:
            data["client_id"] = config.client_id
            if config.token_endpoint_auth_method == "client_secret_post":
                data["client_secret"] = secret
        fetched = await send(
            self._client(),
            "POST",
            metadata.token_endpoint,
            what="upstream token endpoint",
            deadline=config.http_timeout_seconds,
            invalid_code="token_response_invalid",
            headers=headers,
            data=data,
        )
        if fetched.status != 200:
            try:
                error = sanitise(json_object(fetched.body, what="token", code="token_error").get("error"), 64)
            except ConnectorError:
                error = ""
            raise ConnectorError(
                f"the upstream token endpoint refused the code (HTTP {fetched.status}"
                + (f", {error})" if error else ")"),
                code="token_error",
            )
        body = json_object(fetched.body, what="upstream token", code="token_response_invalid")
        id_token, access_token = body.get("id_token"), body.get("access_token")
        token_type = body.get("token_type")
        if not isinstance(id_token, str) or not isinstance(access_token, str) or not access_token:
            raise ConnectorError(
                "the upstream token response has no `id_token` or `access_token`",
                code="token_response_invalid",
            )
        return _Tokens(id_token, access_token, token_type if isinstance(token_type, str) else None)

    async def _userinfo(self, metadata: ProviderMetadata, tokens: _Tokens, subject: str) -> dict[str, Any]:
        """The userinfo claims (Bearer header, never the URL); their ``sub`` must be the ID token's."""
        config = self.config
        if metadata.userinfo_endpoint is None:
            raise ConnectorError("the upstream has no userinfo endpoint", code="userinfo_unsupported")
        if tokens.token_type is None or tokens.token_type.lower() != "bearer":
            raise ConnectorError("the upstream access token is not a Bearer token", code="userinfo_error")
        fetched = await send(
            self._client(),
            "GET",
            metadata.userinfo_endpoint,
            what="upstream userinfo endpoint",
            deadline=config.http_timeout_seconds,
            invalid_code="userinfo_invalid",
            headers={"authorization": f"Bearer {tokens.access_token}", "accept": "application/json"},
        )
        if fetched.status != 200:
            raise ConnectorError(
                f"the upstream userinfo endpoint answered HTTP {fetched.status}", code="userinfo_error"
            )
        if fetched.content_type == "application/jwt":
            verified = await verify_signature(
                fetched.body.decode("ascii", "replace").strip(),
                config.allowed_algorithms,
                self.provider,
                what="userinfo response",
                malformed_code="userinfo_invalid",
            )
            claims = verified.claims
            aud = claims.get("aud")
            audiences = aud if isinstance(aud, list) else [aud]
            if ("iss" in claims and claims["iss"] != config.issuer) or (
                aud is not None and config.client_id not in audiences
            ):
                raise ConnectorError(
                    "the signed userinfo is from or for someone else", code="userinfo_invalid"
                )
        else:
            claims = json_object(fetched.body, what="upstream userinfo", code="userinfo_invalid")
        sub = claims.get("sub")
        if not isinstance(sub, str) or not hmac.compare_digest(sub.encode(), subject.encode()):
            raise ConnectorError("the userinfo `sub` is not the ID token's", code="userinfo_sub_mismatch")
        return claims

    async def complete(self, callback: Callback) -> UpstreamIdentity:
        """Check the callback, redeem the code, validate the ID token, map the claims."""
        config = self.config
        pending = _Pending.from_json(callback.state)
        metadata = await self.provider.metadata()
        code = self._check_callback(callback, pending, metadata)
        tokens = await self._redeem(metadata, code, pending)
        verified = await verify_signature(tokens.id_token, config.allowed_algorithms, self.provider)
        check_claims(
            verified.claims,
            Expected(
                issuer=self.expected_issuer(verified.claims),
                client_id=config.client_id,
                nonce=pending.nonce,
                now=self._clock(),
                skew=config.clock_skew_seconds,
                max_age=pending.max_age,
            ),
        )
        check_at_hash(verified, tokens.access_token)
        userinfo = None
        if config.use_userinfo:
            userinfo = await self._userinfo(metadata, tokens, str(verified.claims["sub"]))
        return self.identity(verified.claims, userinfo)

    # -- hooks for presets ------------------------------------------------------------------------

    def accepts_response_issuer(self, iss: str) -> bool:
        """Whether the authorization response's RFC 9207 ``iss`` names this upstream (default: exactly)."""
        return iss == self.config.issuer

    def expected_issuer(self, claims: Mapping[str, Any]) -> str:
        """The value a signature-checked ID token's ``iss`` must equal exactly (Core 3.1.3.7 item 2).

        The configured issuer. A preset whose upstream issuer depends on the token (Entra's
        per-tenant issuer) or has a legacy spelling (Google) overrides this, raising its own
        ``ConnectorError`` for a token it cannot place; ``check_claims`` then compares.
        """
        return self.config.issuer

    def identity(self, claims: Mapping[str, Any], userinfo: Mapping[str, Any] | None) -> UpstreamIdentity:
        """The validated ID token (and userinfo) claims as an ``UpstreamIdentity`` (the YAML mapping)."""
        config = self.config
        return to_identity(
            connector_id=config.id,
            issuer=config.issuer,
            mapping=config.claims,
            id_token=claims,
            userinfo=userinfo,
        )
