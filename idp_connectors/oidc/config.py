"""Configuration of the generic ``oidc`` connector: one upstream OpenID Provider, the gateway as its RP.

Everything that decides what the connector accepts is pinned here, never taken from the
upstream: the issuer (compared exactly), the signing algorithms (asymmetric only), how
the client authenticates, which claims feed which ``UpstreamIdentity`` field.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from idp_connectors.base import ConnectorConfigBase, ConnectorContext
from idp_connectors.urls import url_problem

if TYPE_CHECKING:
    from idp_connectors.oidc.connector import OidcConnector

SigningAlgorithm = Literal["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"]
"""The only algorithms an ID token may use: asymmetric, never ``none``, never HMAC."""

DENIED_AUTHORIZE_PARAMS = frozenset(
    {
        "response_type",
        "client_id",
        "redirect_uri",
        "state",
        "nonce",
        "code_challenge",
        "code_challenge_method",
        "scope",
        "request",
        "request_uri",
    }
)
"""Authorization parameters the connector sets itself; ``extra_authorize_params`` may not touch them."""

_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")  # RFC 6749 section 3.3 scope-token
_CLAIM_NAME = re.compile(r"[^\x00-\x1f\x7f]{1,128}")
_PARAM_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class ClaimMapping(BaseModel):
    """Which upstream claim feeds each ``UpstreamIdentity`` field (``null``: never set).

    ``subject`` is read from the ID token only; the others from the ID token, then from
    userinfo when ``use_userinfo`` is on. ``device`` maps a device field name of ours to
    the upstream claim that carries it (e.g. ``{compliant: device_compliant}``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    subject: str = Field("sub", pattern=_CLAIM_NAME.pattern)
    email: str | None = Field("email", pattern=_CLAIM_NAME.pattern)
    email_verified: str | None = Field("email_verified", pattern=_CLAIM_NAME.pattern)
    name: str | None = Field("name", pattern=_CLAIM_NAME.pattern)
    given_name: str | None = Field("given_name", pattern=_CLAIM_NAME.pattern)
    family_name: str | None = Field("family_name", pattern=_CLAIM_NAME.pattern)
    home_tenant_id: str | None = Field(None, pattern=_CLAIM_NAME.pattern)
    amr: str | None = Field("amr", pattern=_CLAIM_NAME.pattern)
    acr: str | None = Field("acr", pattern=_CLAIM_NAME.pattern)
    device: dict[str, str] = Field(default_factory=dict)

    @field_validator("device")
    @classmethod
    def _device_names(cls, device: dict[str, str]) -> dict[str, str]:
        for ours, theirs in device.items():
            if not _CLAIM_NAME.fullmatch(ours) or not _CLAIM_NAME.fullmatch(theirs):
                raise ValueError(f"{ours!r}: {theirs!r} is not a claim name")
        return device


class OidcConfig(ConnectorConfigBase):
    """A connector entry ``{id: partner-a, type: oidc, issuer: ..., client_id: ..., client_secret: ...}``."""

    type: Literal["oidc"]
    issuer: str = Field(
        description="The upstream issuer, exactly as its discovery document and ID tokens spell it."
    )
    client_id: str = Field(min_length=1, max_length=512)
    client_secret: SecretStr | None = Field(
        None, description="Give it as `${ENV}`; required unless token_endpoint_auth_method is `none`."
    )
    token_endpoint_auth_method: Literal["client_secret_basic", "client_secret_post", "none"] = Field(
        "client_secret_basic",
        description="`none` (a public client) is allowed because every request uses PKCE S256.",
    )
    scopes: list[str] = Field(default_factory=lambda: ["openid", "profile", "email"])
    allowed_algorithms: list[SigningAlgorithm] = Field(
        default_factory=lambda: list[SigningAlgorithm](["RS256"]),
        min_length=1,
        description="ID token signing algorithms accepted; the token header's `alg` must be one of them.",
    )
    discovery_url: str | None = Field(None, description="Default: {issuer}/.well-known/openid-configuration.")
    use_userinfo: bool = Field(False, description="Also call the userinfo endpoint (one more round trip).")
    claims: ClaimMapping = Field(default_factory=ClaimMapping)
    trust_email_for_linking: bool = Field(
        False,
        description="The gateway may link by this upstream's email when it says the email is verified.",
    )
    clock_skew_seconds: Annotated[int, Field(ge=0, le=600)] = 120
    http_timeout_seconds: Annotated[float, Field(gt=0, le=60)] = Field(
        10.0, description="Total time allowed for one back-channel call (discovery, JWKS, token, userinfo)."
    )
    forward_login_hint: bool = True
    forward_prompt: bool = True
    forward_max_age: bool = True
    forward_acr_values: bool = True
    extra_authorize_params: dict[str, str] = Field(
        default_factory=dict,
        description="Added to every authorization request; may not set the protocol's own parameters.",
    )

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, issuer: str) -> str:
        problem = url_problem(issuer, allow_query=False)
        if problem:
            raise ValueError(f"the issuer {problem}")
        return issuer

    @field_validator("discovery_url")
    @classmethod
    def _discovery_url(cls, url: str | None) -> str | None:
        if url is not None and (problem := url_problem(url)):
            raise ValueError(f"the discovery URL {problem}")
        return url

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, scopes: list[str]) -> list[str]:
        for scope in scopes:
            if not _SCOPE_TOKEN.fullmatch(scope):
                raise ValueError(f"{scope!r} is not a scope token")
        if "openid" not in scopes:
            raise ValueError("the scopes must include `openid`")
        if len(set(scopes)) != len(scopes):
            raise ValueError("a scope is listed twice")
        return scopes

    @field_validator("allowed_algorithms")
    @classmethod
    def _algorithms(cls, algorithms: list[str]) -> list[str]:
        if len(set(algorithms)) != len(algorithms):
            raise ValueError("an algorithm is listed twice")
        return algorithms

    @field_validator("extra_authorize_params")
    @classmethod
    def _extra_params(cls, params: dict[str, str]) -> dict[str, str]:
        for name, value in params.items():
            if not _PARAM_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a parameter name")
            if name in DENIED_AUTHORIZE_PARAMS:
                allowed = ", ".join(sorted(DENIED_AUTHORIZE_PARAMS))
                raise ValueError(f"{name!r} is set by the connector itself (not allowed here: {allowed})")
            if name == "response_mode" and value not in ("query", "form_post"):
                raise ValueError("response_mode may only be `query` or `form_post`")
        return params

    @model_validator(mode="after")
    def _client_authentication(self) -> OidcConfig:
        if self.token_endpoint_auth_method == "none":
            if self.client_secret is not None:
                raise ValueError("client_secret is set but token_endpoint_auth_method is `none`")
        elif self.client_secret is None or not self.client_secret.get_secret_value():
            raise ValueError(f"client_secret is required with {self.token_endpoint_auth_method}")
        return self

    @property
    def discovery_document_url(self) -> str:
        """Where the discovery document is fetched (OpenID Connect Discovery 1.0 section 4)."""
        return self.discovery_url or self.issuer.rstrip("/") + "/.well-known/openid-configuration"

    def open(self, ctx: ConnectorContext) -> OidcConnector:
        from idp_connectors.oidc.connector import OidcConnector

        return OidcConnector(self, ctx)
