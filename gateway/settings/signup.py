"""Self-service sign-up settings (b2b-concepts §7): ``user_flows[]`` and ``api_connectors[]``.

A user flow names the identity providers an app offers for sign-up, the attributes collected on
the attribute page (in page order) and the API connectors called at the reference's two steps:
``post_federation_signup`` (right after the identity provider, before the attribute page) and
``post_attribute_collection`` (after the attribute page, before the user is created).

Built-in attributes are the Graph user properties the reference's connector request shows;
any other name is a custom attribute with a ``type`` (String, Boolean or Int), stored on the user
as ``extension_<extensions app id without dashes>_<name>``.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from idp_connectors.urls import is_loopback_host

if TYPE_CHECKING:
    from gateway.settings.models import Settings

Problems = list[tuple[tuple[str | int, ...], str]]

BUILT_IN_ATTRIBUTES: dict[str, int] = {
    # Graph user property -> longest accepted value
    "displayName": 256,
    "givenName": 64,
    "surname": 64,
    "jobTitle": 128,
    "streetAddress": 1024,
    "city": 128,
    "postalCode": 40,
    "state": 128,
    "country": 128,
}
"""The built-in attributes a flow can collect (the reference's request sample, Graph names)."""

STEPS = ("post_federation_signup", "post_attribute_collection")
_EXTENSIONS_NAMESPACE = uuid.UUID("6ba7b811-9dad-11d1-80b4-00c04fd430c8")  # RFC 4122 URL namespace

AttributeName = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9]{0,63}$")]
Identifier = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
LanguageTag = Annotated[str, Field(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FlowAttribute(_Strict):
    """One attribute on the attribute page. A built-in name takes no ``type``; a custom one needs it."""

    name: AttributeName = Field(
        description="A built-in Graph property (displayName, givenName, surname, jobTitle, streetAddress, "
        "city, postalCode, state, country) or a custom attribute's name."
    )
    type: Literal["String", "Boolean", "Int"] | None = Field(
        None, description="Custom attributes only: String, Boolean or Int."
    )
    required: bool = Field(False, description="The page refuses to continue without a value.")
    label: dict[LanguageTag, Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        {}, description="Custom attributes: the field's label per language (`en`, `fr`, ...)."
    )
    max_length: Annotated[int, Field(gt=0, le=1024)] | None = Field(
        None, description="String values: the longest accepted (built-ins have Graph's limits)."
    )

    @property
    def custom(self) -> bool:
        return self.name not in BUILT_IN_ATTRIBUTES

    @model_validator(mode="after")
    def _typed_when_custom(self) -> FlowAttribute:
        if self.custom and self.type is None:
            raise ValueError(
                f"{self.name!r} is not a built-in attribute ({', '.join(BUILT_IN_ATTRIBUTES)}): "
                "give a custom attribute its type (String, Boolean or Int)"
            )
        if not self.custom and self.type is not None:
            raise ValueError(f"{self.name!r} is a built-in attribute: it takes no type")
        if self.max_length is not None and self.type in ("Boolean", "Int"):
            raise ValueError("max_length applies to String attributes only")
        return self


class UserFlowConnectors(_Strict):
    post_federation_signup: Identifier | None = Field(
        None,
        description="API connector called right after the identity provider, before the attribute page "
        "(Continue pre-fills the page; ShowBlockPage ends the sign-up).",
    )
    post_attribute_collection: Identifier | None = Field(
        None,
        description="API connector called after the attribute page, before the user is created "
        "(Continue overrides values; ShowBlockPage; ValidationError keeps the page open).",
    )


class UserFlow(_Strict):
    id: Identifier
    identity_providers: list[Identifier] = Field(
        min_length=1, description="Connector ids offered for sign-up through this flow."
    )
    attributes: list[FlowAttribute] = Field(
        [], description="Attributes collected once, at sign-up, in this page order."
    )
    api_connectors: UserFlowConnectors = Field(default_factory=lambda: UserFlowConnectors())

    @property
    def name(self) -> str:
        """The flow's name as the reference spells it (``B2X_1_`` prefix)."""
        return f"B2X_1_{self.id}"

    @property
    def collects(self) -> bool:
        """True when sign-up through this flow needs more than the identity provider: pages or calls."""
        return bool(
            self.attributes
            or self.api_connectors.post_federation_signup
            or self.api_connectors.post_attribute_collection
        )

    @model_validator(mode="after")
    def _unique_attributes(self) -> UserFlow:
        names = [a.name for a in self.attributes]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"attribute {duplicates[0]!r} is listed twice")
        return self


class BasicAuthentication(_Strict):
    """HTTP Basic (RFC 7617): no colon in the username, no control characters in either (sent as UTF-8)."""

    username: str = Field(min_length=1, max_length=256)
    password: str = Field(min_length=1, max_length=1024, description="Give it as ${ENV_VAR}.")

    @model_validator(mode="after")
    def _rfc7617(self) -> BasicAuthentication:
        if ":" in self.username:
            raise ValueError("a Basic username cannot contain ':' (RFC 7617)")
        for field, value in (("username", self.username), ("password", self.password)):
            if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in value):
                raise ValueError(f"the Basic {field} cannot contain control characters (RFC 7617)")
        return self


class ClientCertificate(_Strict):
    """Mutual TLS: a PEM certificate (chain) and its key, or a PKCS #12 (.pfx) file."""

    certificate: Path | None = Field(None, description="PEM certificate, leaf first (with its chain).")
    key: Path | None = Field(None, description="PEM private key of the certificate.")
    pkcs12: Path | None = Field(None, description="A PKCS #12 (.pfx) file holding key and certificate.")
    password: str | None = Field(None, description="The key's or the .pfx file's password (${ENV_VAR}).")

    @model_validator(mode="after")
    def _one_form(self) -> ClientCertificate:
        pem = self.certificate is not None or self.key is not None
        if pem and self.pkcs12 is not None:
            raise ValueError("give certificate and key, or pkcs12, not both")
        if pem and (self.certificate is None or self.key is None):
            raise ValueError("a PEM client certificate needs both certificate and key")
        if not pem and self.pkcs12 is None:
            raise ValueError("give certificate and key, or pkcs12")
        return self


class ApiConnectorAuthentication(_Strict):
    """Exactly one of HTTP Basic (RFC 7617) or a client certificate; an API key never replaces them."""

    basic: BasicAuthentication | None = None
    client_certificate: ClientCertificate | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> ApiConnectorAuthentication:
        if (self.basic is None) == (self.client_certificate is None):
            raise ValueError("give exactly one of basic or client_certificate")
        return self


class ApiConnector(_Strict):
    """An API connector (Graph ``identityApiConnector``): where to POST and how to authenticate."""

    id: Identifier
    display_name: str | None = Field(None, max_length=256)
    target_url: str = Field(description="https URL (http only on a loopback address, for development).")
    authentication: ApiConnectorAuthentication
    ca_certificates: Path | None = Field(
        None, description="PEM bundle of the CAs trusted for the target's certificate (default: system)."
    )
    timeout_seconds: Annotated[float, Field(gt=0, le=120)] = Field(
        20, description="How long one call may take (the reference: 20 s)."
    )
    retries: Annotated[int, Field(ge=0, le=3)] = Field(
        1, description="Calls retried when no answer came (timeout, connection failure); reference: 1."
    )

    @model_validator(mode="after")
    def _target(self) -> ApiConnector:
        from urllib.parse import urlsplit

        parts = urlsplit(self.target_url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError("target_url must be an absolute https URL")
        if parts.scheme == "http" and not is_loopback_host(parts.hostname):
            raise ValueError("target_url must be https (http only on a loopback address)")
        if parts.username or parts.password or parts.fragment:
            raise ValueError("target_url carries no credentials or fragment")
        if parts.scheme == "http" and self.authentication.client_certificate is not None:
            raise ValueError("client-certificate authentication needs an https target_url")
        return self


def extensions_app_id(settings: Settings) -> str:
    """The extensions app id (no dashes) in custom attribute names: ``tenant.extensions_app_id``, or a
    UUID derived from the tenant id, stable for the tenant's life."""
    configured = settings.tenant.extensions_app_id
    value = configured or str(uuid.uuid5(_EXTENSIONS_NAMESPACE, f"{settings.tenant.id}/extensions-app"))
    return value.replace("-", "")


def extension_name(settings: Settings, attribute: str) -> str:
    """``loyaltyNumber`` -> ``extension_<appid>_loyaltyNumber`` (how Graph stores custom attributes)."""
    return f"extension_{extensions_app_id(settings)}_{attribute}"


def signup_problems(settings: Settings) -> Problems:
    """Cross references: flows name known connectors and API connectors; a custom attribute has one type."""
    problems: Problems = []
    connector_ids = {c.id for c in settings.connectors}
    api_ids = [c.id for c in settings.api_connectors]
    seen: set[str] = set()
    for i, api in enumerate(api_ids):
        if api in seen:
            problems.append((("api_connectors", i, "id"), f"duplicate id {api!r}"))
        seen.add(api)
    custom_types: dict[str, str] = {}
    for i, flow in enumerate(settings.user_flows):
        for j, idp in enumerate(flow.identity_providers):
            if idp not in connector_ids:
                problems.append((("user_flows", i, "identity_providers", j), f"unknown connector {idp!r}"))
        for step in STEPS:
            named = getattr(flow.api_connectors, step)
            if named is not None and named not in seen:
                problems.append(
                    (("user_flows", i, "api_connectors", step), f"unknown API connector {named!r}")
                )
        for j, attribute in enumerate(flow.attributes):
            if attribute.type is None:
                continue
            known = custom_types.setdefault(attribute.name, attribute.type)
            if known != attribute.type:
                problems.append(
                    (
                        ("user_flows", i, "attributes", j, "type"),
                        f"custom attribute {attribute.name!r} has type {known} in another flow: "
                        "one attribute has one type",
                    )
                )
    return problems
