"""The authorization request, validated by a list of small checks (OIDC Core 3.1.2, RFC 6749 4.1, RFC 7636).

The first two checks (client, redirect URI) raise ``UntrustedRedirect``: until both pass,
nothing may be sent to the redirect URI. Every later check raises an ``OAuthError`` that is
returned to the (now trusted) redirect URI.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.oidc.errors import (
    InvalidRequest,
    InvalidScope,
    RequestNotSupported,
    RequestUriNotSupported,
    UnsupportedResponseType,
    UntrustedRedirect,
)
from gateway.settings.models import Application, OidcClient, Settings

SUPPORTED_SCOPES = ("openid", "profile", "email", "offline_access", "directory.access")
PROMPTS = frozenset({"none", "login", "consent", "select_account"})
_CHALLENGE = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")
_MAX_PARAM = 2048


@dataclass
class AuthorizationRequest:
    """The parameters we act on, after validation. Unknown parameters are ignored (OIDC Core 3.1.2.1)."""

    params: dict[str, str]
    app: Application | None = None
    client: OidcClient | None = None
    redirect_uri: str = ""
    state: str | None = None
    response_mode: str = "query"
    scopes: list[str] = field(default_factory=list)
    nonce: str | None = None
    code_challenge: str | None = None
    prompt: frozenset[str] = frozenset()
    max_age: int | None = None
    login_hint: str | None = None
    id_token_hint: str | None = None
    acr_values: tuple[str, ...] = ()
    idp_hint: str | None = None
    domain_hint: str | None = None
    ui_locales: tuple[str, ...] = ()

    @property
    def trusted(self) -> bool:
        return self.client is not None and bool(self.redirect_uri)


Check = Callable[[AuthorizationRequest, Settings], None]


def check_client(req: AuthorizationRequest, settings: Settings) -> None:
    client_id = req.params.get("client_id")
    if not client_id:
        raise UntrustedRedirect("Missing client", "The request does not name an application (client_id).")
    app = settings.client(client_id)
    if app is None or app.oidc is None:
        raise UntrustedRedirect("Unknown application", "No application is registered with this client_id.")
    req.app, req.client = app, app.oidc


def check_redirect_uri(req: AuthorizationRequest, settings: Settings) -> None:
    """Exact string comparison against the registration (RFC 9700 2.1; OIDC Core 3.1.2.1)."""
    assert req.client is not None
    redirect_uri = req.params.get("redirect_uri")
    if not redirect_uri:
        raise UntrustedRedirect("Missing redirect URI", "The request has no redirect_uri.")
    if redirect_uri not in req.client.redirect_uris:
        raise UntrustedRedirect(
            "Unregistered redirect URI", "The redirect_uri is not registered for this application."
        )
    req.redirect_uri = redirect_uri
    req.state = req.params.get("state")


def check_parameter_sizes(req: AuthorizationRequest, settings: Settings) -> None:
    for name, value in req.params.items():
        if len(value) > _MAX_PARAM:
            raise InvalidRequest(f"the {name} parameter is too long")


def check_request_objects(req: AuthorizationRequest, settings: Settings) -> None:
    if "request" in req.params:
        raise RequestNotSupported("request objects are not supported")
    if "request_uri" in req.params:
        raise RequestUriNotSupported("request_uri is not supported")


def check_response_type(req: AuthorizationRequest, settings: Settings) -> None:
    response_type = req.params.get("response_type")
    if not response_type:
        raise InvalidRequest("response_type is required")
    if response_type != "code":
        raise UnsupportedResponseType("only response_type=code is supported")
    response_mode = req.params.get("response_mode", "query")
    if response_mode != "query":
        raise InvalidRequest("only response_mode=query is supported")


def check_scope(req: AuthorizationRequest, settings: Settings) -> None:
    assert req.client is not None
    requested = req.params.get("scope", "").split()
    if "openid" not in requested:
        raise InvalidScope("the openid scope is required")
    allowed = set(req.client.scopes) | {"openid"}
    # Order carries no meaning; unknown or unregistered scopes are dropped (RFC 6749 3.3).
    req.scopes = [s for s in SUPPORTED_SCOPES if s in requested and s in allowed]


def check_pkce(req: AuthorizationRequest, settings: Settings) -> None:
    assert req.client is not None
    challenge = req.params.get("code_challenge")
    method = req.params.get("code_challenge_method")
    if challenge is None:
        if method is not None:
            raise InvalidRequest("code_challenge_method without code_challenge")
        if req.client.pkce_required:
            raise InvalidRequest("this application must use PKCE (code_challenge with S256)")
        return
    if method != "S256":
        raise InvalidRequest("code_challenge_method must be S256")
    if not _CHALLENGE.match(challenge):
        raise InvalidRequest("code_challenge is malformed")
    req.code_challenge = challenge


def check_prompt(req: AuthorizationRequest, settings: Settings) -> None:
    prompt = frozenset(req.params.get("prompt", "").split())
    unknown = prompt - PROMPTS
    if unknown:
        raise InvalidRequest(f"unsupported prompt value {sorted(unknown)[0]}")
    if "none" in prompt and len(prompt) > 1:
        raise InvalidRequest("prompt=none cannot be combined with other values")
    req.prompt = prompt


def check_max_age(req: AuthorizationRequest, settings: Settings) -> None:
    raw = req.params.get("max_age")
    if raw is None:
        return
    if not raw.isdigit() or len(raw) > 10:
        raise InvalidRequest("max_age must be a non-negative integer")
    req.max_age = int(raw)


def check_hints(req: AuthorizationRequest, settings: Settings) -> None:
    req.nonce = req.params.get("nonce")
    req.login_hint = req.params.get("login_hint")
    req.id_token_hint = req.params.get("id_token_hint")
    req.acr_values = tuple(req.params.get("acr_values", "").split())
    req.idp_hint = req.params.get("idp_hint")
    req.domain_hint = req.params.get("domain_hint")
    req.ui_locales = tuple(req.params.get("ui_locales", "").split())[:10]


AUTHORIZE_CHECKS: tuple[Check, ...] = (
    check_client,
    check_redirect_uri,
    check_parameter_sizes,
    check_request_objects,
    check_response_type,
    check_scope,
    check_pkce,
    check_prompt,
    check_max_age,
    check_hints,
)
