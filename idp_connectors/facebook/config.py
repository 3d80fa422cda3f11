"""Configuration of the ``facebook`` connector: one Facebook app, the gateway as its OAuth client.

``{id: facebook, type: facebook, client_id: "<app id>", client_secret: ${FACEBOOK_SECRET}}``.
Endpoints are derived from ``graph_version``; ``authorize_url`` and ``graph_base_url`` exist
so tests (and a local stand-in) can point elsewhere, and accept https, or http only for a
loopback host.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, ClassVar, Literal

from pydantic import Field, SecretStr, field_validator

from idp_connectors.base import ConnectorConfigBase, ConnectorContext
from idp_connectors.urls import url_problem

if TYPE_CHECKING:
    from idp_connectors.facebook.connector import FacebookConnector

ISSUER = "facebook.com"
"""The issuer recorded for Facebook identities (the reference's spelling)."""

DEFAULT_GRAPH_BASE_URL = "https://graph.facebook.com"
DEFAULT_DIALOG_BASE_URL = "https://www.facebook.com"

_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")


def endpoint_problem(url: str) -> str | None:
    """Why ``url`` cannot be a Facebook endpoint base (https, or http to a loopback host; no
    user information, query or fragment), or None when it can."""
    return url_problem(url, allow_query=False)


def _names(values: list[str], what: str) -> list[str]:
    for value in values:
        if not _NAME.fullmatch(value):
            raise ValueError(f"{value!r} is not a {what} name (lower-case letters, digits, `_`)")
    if len(set(values)) != len(values):
        raise ValueError(f"a {what} is listed twice")
    return values


class FacebookConfig(ConnectorConfigBase):
    """A connector entry ``{id: facebook, type: facebook, client_id: ..., client_secret: ...}``."""

    type: Literal["facebook"]
    client_id: str = Field(
        pattern=r"^[0-9]{1,32}$", description="The Facebook app id (numeric, from the app dashboard)."
    )
    client_secret: SecretStr = Field(
        description="The app secret; give it as `${ENV}`. Also keys the `appsecret_proof` of Graph calls."
    )
    graph_version: str = Field(
        "v19.0", pattern=r"^v[0-9]{1,3}\.[0-9]{1,3}$", description="The Graph API version, e.g. `v19.0`."
    )
    scopes: list[str] = Field(
        default_factory=lambda: ["email", "public_profile"],
        min_length=1,
        description="Facebook Login permissions requested.",
    )
    fields: list[str] = Field(
        default_factory=lambda: ["id", "name", "email", "first_name", "last_name"],
        min_length=1,
        description="User fields read from Graph `/me`; must include `id` (the app-scoped user id).",
    )
    authorize_url: str | None = Field(
        None,
        description="Default: https://www.facebook.com/{graph_version}/dialog/oauth (override for tests).",
    )
    graph_base_url: str = Field(
        DEFAULT_GRAPH_BASE_URL,
        description="Graph API base; the version is appended (override for tests).",
    )
    http_timeout_seconds: Annotated[float, Field(gt=0, le=60)] = Field(
        10.0, description="Total time allowed for one back-channel call (token exchange, /me)."
    )

    signup_only: ClassVar[bool] = True
    """Facebook accounts serve self-service sign-up only; they never redeem an invitation."""

    @field_validator("client_secret")
    @classmethod
    def _secret(cls, secret: SecretStr) -> SecretStr:
        value = secret.get_secret_value()
        if not value:
            raise ValueError("client_secret must not be empty")
        if len(value) > 256 or not value.isascii() or not value.isprintable() or " " in value:
            raise ValueError("client_secret must be printable ASCII without spaces, at most 256 characters")
        return secret

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, scopes: list[str]) -> list[str]:
        return _names(scopes, "scope")

    @field_validator("fields")
    @classmethod
    def _fields(cls, fields: list[str]) -> list[str]:
        _names(fields, "field")
        if "id" not in fields:
            raise ValueError("the fields must include `id` (the app-scoped user id, the subject)")
        return fields

    @field_validator("authorize_url")
    @classmethod
    def _authorize_url(cls, url: str | None) -> str | None:
        if url is not None and (problem := endpoint_problem(url)):
            raise ValueError(f"authorize_url {problem}")
        return url

    @field_validator("graph_base_url")
    @classmethod
    def _graph_base_url(cls, url: str) -> str:
        if problem := endpoint_problem(url):
            raise ValueError(f"graph_base_url {problem}")
        return url.rstrip("/")

    @property
    def authorization_endpoint(self) -> str:
        """The Facebook Login dialog."""
        return self.authorize_url or f"{DEFAULT_DIALOG_BASE_URL}/{self.graph_version}/dialog/oauth"

    @property
    def token_endpoint(self) -> str:
        """Where the authorization code is exchanged for a user access token."""
        return f"{self.graph_base_url}/{self.graph_version}/oauth/access_token"

    @property
    def me_endpoint(self) -> str:
        """Graph ``/me``: the signed-in user's app-scoped profile."""
        return f"{self.graph_base_url}/{self.graph_version}/me"

    def open(self, ctx: ConnectorContext) -> FacebookConnector:
        from idp_connectors.facebook.connector import FacebookConnector

        return FacebookConnector(self, ctx)
