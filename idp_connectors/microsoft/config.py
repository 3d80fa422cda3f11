"""Configuration of the ``microsoft`` connector: an Entra ID app registration, the gateway as its RP.

``{id: microsoft, type: microsoft, client_id: <application id>, client_secret: ${MS_SECRET},
allowed_tenants: [<tenant id>, ...]}``. Pinned: the v2.0 endpoints, scopes ``openid profile
email``, RS256, ``client_secret_post``.

- ``authority_host``: ``login.microsoftonline.com`` (global), ``login.microsoftonline.us``
  (US Government) or ``login.partner.microsoftonline.cn`` (China, 21Vianet). The German
  cloud (``login.microsoftonline.de``) is retired. A loopback ``http://host:port`` origin may
  stand in for tests only.
- ``accounts``: ``work`` (Entra work or school accounts: tenant segment ``organizations``),
  ``personal`` (Microsoft accounts: ``consumers``, whose tenant id is ``CONSUMER_TENANT_ID``)
  or ``both`` (``common``). Personal accounts exist in the global cloud only.
- ``allowed_tenants``: the Entra tenant ids whose users may sign in. Required whenever work
  accounts are accepted: a multi-tenant app open to every tenant is the "nOAuth" hole, so
  there is no wildcard. Personal accounts are allowed by ``accounts``, not listed here.

Discovery for the multi-tenant segments names the issuer with a literal ``{tenantid}``
placeholder; ``discovery_issuer`` is that template (the consumer tenant's own issuer for
``personal``), and each ID token's real issuer is ``tenant_issuer(tid)``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from idp_connectors.base import ConnectorConfigBase, ConnectorContext
from idp_connectors.oidc.config import OidcConfig
from idp_connectors.urls import is_loopback_host, url_problem

if TYPE_CHECKING:
    from idp_connectors.microsoft.connector import MicrosoftConnector

GLOBAL_HOST = "login.microsoftonline.com"
AUTHORITY_HOSTS = (GLOBAL_HOST, "login.microsoftonline.us", "login.partner.microsoftonline.cn")
"""Entra ID authority hosts: global, US Government, China (operated by 21Vianet)."""

RETIRED_HOSTS = {"login.microsoftonline.de": "the Microsoft Cloud Deutschland was retired in 2021"}

CONSUMER_TENANT_ID = "9188040d-6c67-4c5b-b112-36a304b66dad"
"""The tenant id in every personal Microsoft account's ID token (``tid``)."""

TENANT_SEGMENTS = {"work": "organizations", "personal": "consumers", "both": "common"}
SCOPES = ("openid", "profile", "email")
CLAIMS = {"subject": "oid", "email_verified": "xms_edov", "home_tenant_id": "tid"}
"""The claim mapping: subject = the home object id (``sub`` is pairwise per app), email verified
only by the optional ``xms_edov`` claim, home organisation = ``tid``; the rest as in ``oidc``."""

GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
"""A GUID in the lower-case form Entra writes in ``tid``, ``oid`` and issuer URLs."""


class MicrosoftConfig(ConnectorConfigBase):
    """A connector entry ``{id: microsoft, type: microsoft, client_id: ..., allowed_tenants: [...]}``."""

    type: Literal["microsoft"]
    client_id: str = Field(description="The app registration's application (client) id, a GUID.")
    client_secret: SecretStr = Field(description="A client secret of the app registration, as `${ENV}`.")
    authority_host: str = Field(
        GLOBAL_HOST,
        description=f"One of {', '.join(AUTHORITY_HOSTS)}; a loopback http origin only for tests.",
    )
    accounts: Literal["work", "personal", "both"] = Field(
        "work", description="Work or school accounts, personal Microsoft accounts, or both."
    )
    allowed_tenants: list[str] = Field(
        [], description="Tenant ids (GUIDs) whose work accounts may sign in; required for `work`/`both`."
    )
    trust_email_for_linking: bool = Field(
        False,
        description="The gateway may link by email only when Entra marks it verified (`xms_edov`).",
    )
    clock_skew_seconds: Annotated[int, Field(ge=0, le=600)] = 120
    http_timeout_seconds: Annotated[float, Field(gt=0, le=60)] = Field(
        10.0, description="Total time allowed for one back-channel call (discovery, JWKS, token)."
    )

    @field_validator("client_id")
    @classmethod
    def _client_id(cls, client_id: str) -> str:
        if not GUID.fullmatch(client_id.lower()):
            raise ValueError("client_id must be the application (client) id, a GUID")
        return client_id.lower()

    @field_validator("client_secret")
    @classmethod
    def _secret(cls, secret: SecretStr) -> SecretStr:
        if not secret.get_secret_value():
            raise ValueError("client_secret must not be empty")
        return secret

    @field_validator("authority_host")
    @classmethod
    def _authority_host(cls, host: str) -> str:
        if host in AUTHORITY_HOSTS:
            return host
        if host in RETIRED_HOSTS:
            raise ValueError(f"{host} is no longer served ({RETIRED_HOSTS[host]}); use {GLOBAL_HOST}")
        parts = urlsplit(host)
        if (
            parts.scheme == "http"
            and is_loopback_host(parts.hostname)
            and parts.path in ("", "/")
            and not url_problem(host, allow_query=False)
        ):
            return host.rstrip("/")
        raise ValueError(
            f"authority_host must be one of {', '.join(AUTHORITY_HOSTS)} "
            "(or a loopback http://host:port origin, for tests)"
        )

    @field_validator("allowed_tenants")
    @classmethod
    def _tenants(cls, tenants: list[str]) -> list[str]:
        normalised = [tenant.lower() for tenant in tenants]
        for tenant in normalised:
            if not GUID.fullmatch(tenant):
                raise ValueError(f"{tenant!r} is not a tenant id (a GUID)")
            if tenant == CONSUMER_TENANT_ID:
                raise ValueError(
                    "the personal-account tenant is allowed through `accounts: personal` or `both`, not here"
                )
        if len(set(normalised)) != len(normalised):
            raise ValueError("a tenant is listed twice")
        return normalised

    @model_validator(mode="after")
    def _accounts(self) -> MicrosoftConfig:
        if self.accepts_work and not self.allowed_tenants:
            raise ValueError(
                f"allowed_tenants is required with `accounts: {self.accounts}`: list the tenant ids whose "
                "work accounts may sign in (accepting every tenant is never allowed)"
            )
        if not self.accepts_work and self.allowed_tenants:
            raise ValueError("allowed_tenants lists work tenants but `accounts: personal` accepts none")
        if self.accepts_personal and self.authority_host in AUTHORITY_HOSTS[1:]:
            raise ValueError(f"personal Microsoft accounts sign in only at {GLOBAL_HOST}")
        return self

    @property
    def accepts_work(self) -> bool:
        return self.accounts in ("work", "both")

    @property
    def accepts_personal(self) -> bool:
        return self.accounts in ("personal", "both")

    @property
    def authority(self) -> str:
        """``https://{authority_host}`` (or the loopback test origin)."""
        return self.authority_host if "://" in self.authority_host else f"https://{self.authority_host}"

    @property
    def discovery_url(self) -> str:
        segment = TENANT_SEGMENTS[self.accounts]
        return f"{self.authority}/{segment}/v2.0/.well-known/openid-configuration"

    @property
    def discovery_issuer(self) -> str:
        """The discovery document's ``issuer``: a ``{tenantid}`` template, or the consumer tenant's."""
        if self.accounts == "personal":
            return self.tenant_issuer(CONSUMER_TENANT_ID)
        return self.tenant_issuer("{tenantid}")

    def tenant_issuer(self, tenant_id: str) -> str:
        """The issuer of the ID tokens of tenant ``tenant_id``: ``https://{authority_host}/{tid}/v2.0``."""
        return f"{self.authority}/{tenant_id}/v2.0"

    def issuer_tenant(self, issuer: str) -> str | None:
        """The tenant id of ``issuer`` when it is a tenant issuer at this authority, else None."""
        prefix, suffix = f"{self.authority}/", "/v2.0"
        if not issuer.startswith(prefix) or not issuer.endswith(suffix):
            return None
        tenant_id = issuer[len(prefix) : -len(suffix)]
        return tenant_id if GUID.fullmatch(tenant_id) else None

    def tenant_allowed(self, tenant_id: str) -> bool:
        """Whether users of tenant ``tenant_id`` may sign in here."""
        if tenant_id == CONSUMER_TENANT_ID:
            return self.accepts_personal
        return self.accepts_work and tenant_id in self.allowed_tenants

    def oidc_config(self) -> OidcConfig:
        """The generic ``oidc`` configuration this preset runs on (issuer: the discovery template)."""
        settings: dict[str, Any] = {
            "id": self.id,
            "type": "oidc",
            "display_name": self.display_name,
            "domains": self.domains,
            "issuer": self.discovery_issuer,
            "discovery_url": self.discovery_url,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "token_endpoint_auth_method": "client_secret_post",
            "scopes": list(SCOPES),
            "allowed_algorithms": ["RS256"],
            "claims": CLAIMS,
            "trust_email_for_linking": self.trust_email_for_linking,
            "clock_skew_seconds": self.clock_skew_seconds,
            "http_timeout_seconds": self.http_timeout_seconds,
        }
        return OidcConfig.model_validate(settings)

    def open(self, ctx: ConnectorContext) -> MicrosoftConnector:
        from idp_connectors.microsoft.connector import MicrosoftConnector

        return MicrosoftConnector(self, ctx)
