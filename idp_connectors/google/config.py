"""Configuration of the ``google`` connector: a Google OAuth web client, the gateway as its RP.

``{id: google, type: google, client_id: ..., client_secret: ${GOOGLE_SECRET}}``. Everything
else is pinned: the issuer ``https://accounts.google.com`` (discovered at its
``/.well-known/openid-configuration``), scopes ``openid email profile``, RS256 only,
``client_secret_post``. ``issuer`` may be overridden only by a loopback ``http`` URL, so tests
and a local stand-in can play Google; nothing else can pose as it.

``open`` builds the internal ``OidcConfig`` (``oidc_config()``) the generic machinery runs on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator

from idp_connectors.base import ConnectorConfigBase, ConnectorContext, check_domain
from idp_connectors.oidc.config import OidcConfig
from idp_connectors.urls import is_loopback_host, url_problem

if TYPE_CHECKING:
    from idp_connectors.google.connector import GoogleConnector

GOOGLE_ISSUER = "https://accounts.google.com"
"""Google's issuer, as its discovery document and current ID tokens spell it."""

LEGACY_GOOGLE_ISSUER = "accounts.google.com"
"""The scheme-less spelling some Google ID tokens still carry in ``iss`` (Google documents both)."""

SCOPES = ("openid", "email", "profile")


class GoogleConfig(ConnectorConfigBase):
    """A connector entry ``{id: google, type: google, client_id: ..., client_secret: ...}``."""

    type: Literal["google"]
    client_id: str = Field(
        min_length=1, max_length=512, description="The OAuth client id (`....apps.googleusercontent.com`)."
    )
    client_secret: SecretStr = Field(description="The OAuth client secret; give it as `${ENV}`.")
    issuer: str = Field(
        GOOGLE_ISSUER,
        description="Leave unset. Only a loopback http URL may replace it (tests, a local stand-in).",
    )
    hosted_domains: list[str] = Field(
        [],
        description="When set, only Google Workspace accounts whose ID token `hd` is one of these sign in.",
    )
    require_verified_email: bool = Field(
        True, description="Refuse a sign-in unless Google asserts `email_verified: true` for the email."
    )
    trust_email_for_linking: bool = Field(
        False,
        description="The gateway may link by the email Google says is verified (Google owns gmail.com).",
    )
    clock_skew_seconds: Annotated[int, Field(ge=0, le=600)] = 120
    http_timeout_seconds: Annotated[float, Field(gt=0, le=60)] = Field(
        10.0, description="Total time allowed for one back-channel call (discovery, JWKS, token)."
    )

    @field_validator("client_secret")
    @classmethod
    def _secret(cls, secret: SecretStr) -> SecretStr:
        if not secret.get_secret_value():
            raise ValueError("client_secret must not be empty")
        return secret

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, issuer: str) -> str:
        if issuer == GOOGLE_ISSUER:
            return issuer
        parts = urlsplit(issuer)
        loopback = parts.scheme == "http" and is_loopback_host(parts.hostname)
        if not loopback or url_problem(issuer, allow_query=False):
            raise ValueError(
                f"the issuer is {GOOGLE_ISSUER}; only a loopback http URL (tests) may replace it"
            )
        return issuer

    @field_validator("hosted_domains")
    @classmethod
    def _hosted_domains(cls, domains: list[str]) -> list[str]:
        for domain in domains:
            check_domain(domain)
        if len(set(domains)) != len(domains):
            raise ValueError("a hosted domain is listed twice")
        return domains

    @property
    def accepted_issuers(self) -> frozenset[str]:
        """The ``iss`` values an ID token may carry: the issuer, and for Google its legacy spelling."""
        if self.issuer == GOOGLE_ISSUER:
            return frozenset({GOOGLE_ISSUER, LEGACY_GOOGLE_ISSUER})
        return frozenset({self.issuer})

    def oidc_config(self) -> OidcConfig:
        """The generic ``oidc`` configuration this preset runs on."""
        settings: dict[str, Any] = {
            "id": self.id,
            "type": "oidc",
            "display_name": self.display_name,
            "domains": self.domains,
            "issuer": self.issuer,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "token_endpoint_auth_method": "client_secret_post",
            "scopes": list(SCOPES),
            "allowed_algorithms": ["RS256"],
            "trust_email_for_linking": self.trust_email_for_linking,
            "clock_skew_seconds": self.clock_skew_seconds,
            "http_timeout_seconds": self.http_timeout_seconds,
        }
        if self.hosted_domains:
            # Google's account-chooser hint (one domain, or `*` for any Workspace account). Only a
            # hint: the ID token's `hd` is what is checked.
            hd = self.hosted_domains[0] if len(self.hosted_domains) == 1 else "*"
            settings["extra_authorize_params"] = {"hd": hd}
        return OidcConfig.model_validate(settings)

    def open(self, ctx: ConnectorContext) -> GoogleConnector:
        from idp_connectors.google.connector import GoogleConnector

        return GoogleConnector(self, ctx)
