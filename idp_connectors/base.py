"""The small contract between the gateway and every connector (after Dex's ``connector.go``).

A connector type is a pydantic config model (``ConnectorConfigBase``) whose ``open(ctx)``
returns the connector. Two styles exist:

- ``RedirectConnector`` (OIDC, OAuth, SAML, WS-Fed): ``begin`` returns where to send the
  browser plus opaque state, which the gateway keeps server-side and hands back to
  ``complete`` with the callback's parameters.
- ``PasscodeConnector`` (email one-time passcode): the gateway's own pages collect the
  address and the code.

Both return an ``UpstreamIdentity``: what the upstream asserted, never what we trust.
"""

from __future__ import annotations

import re
from abc import abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, field_validator

if TYPE_CHECKING:
    import httpx

JSON = dict[str, Any]


@dataclass(frozen=True, slots=True)
class UpstreamIdentity:
    """Who the upstream said signed in, exactly as it said it.

    ``amr``/``acr``/``auth_time`` and ``device`` are the upstream's own claims, untrusted
    until ``gateway.policy`` decides otherwise; ``raw_claims`` keeps everything it sent.
    """

    connector_id: str
    issuer: str
    subject: str
    email: str | None = None
    email_verified: bool = False
    name: str | None = None
    given_name: str | None = None
    family_name: str | None = None
    home_tenant_id: str | None = None
    amr: tuple[str, ...] = ()
    acr: str | None = None
    auth_time: int | None = None
    device: Mapping[str, Any] = field(default_factory=dict)
    raw_claims: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Counter:
    value: int
    expires_in: int


@dataclass(frozen=True, slots=True)
class Consumed:
    payload: JSON
    grant_id: str | None
    first: bool


class ConnectorState(Protocol):
    """Key/value state with TTL and atomic counters (structurally the gateway's artefact store)."""

    async def put(
        self, kind: str, id: str, payload: JSON, ttl: int, *, grant_id: str | None = None
    ) -> None: ...

    async def add(
        self, kind: str, id: str, payload: JSON, ttl: int, *, grant_id: str | None = None
    ) -> bool: ...

    async def get(self, kind: str, id: str) -> JSON | None: ...

    async def consume(self, kind: str, id: str) -> Any: ...

    async def delete(self, kind: str, id: str) -> None: ...

    async def incr(self, kind: str, id: str, window: int) -> Any: ...

    async def consume_counted(
        self, kind: str, id: str, counter: str, window: int, limit: int, *, counter_id: str | None = None
    ) -> Any: ...

    async def ttl(self, kind: str, id: str) -> int | None: ...


@dataclass(frozen=True, slots=True)
class MailMessage:
    to: str
    subject: str
    text: str
    html: str | None = None
    reply_to: str | None = None


class MailSender(Protocol):
    """Queues a message for delivery off the request path; never blocks, never raises on delivery."""

    def send(self, message: MailMessage) -> None: ...


class KeyedHash(Protocol):
    """HMAC under an install secret: for values stored at rest (passcodes, addresses)."""

    def __call__(self, purpose: str, value: str) -> str: ...


@dataclass(frozen=True, slots=True)
class MailBranding:
    """How the organisation's mails look: its logo (an absolute URL) and the footer's links."""

    logo_url: str | None = None
    privacy_url: str | None = None
    terms_url: str | None = None


@dataclass(frozen=True, slots=True)
class ConnectorContext:
    """What the gateway lends a connector: state, mail, a keyed hash and one shared HTTP client.

    ``tenant_name`` is the organisation's name as mails show it. ``mail_texts`` are the gateway's
    catalogues (per language tag, key -> text with ``{placeholders}``, English filling the gaps) for
    the mails a connector writes; ``mail_language`` is the one to use when the caller names none.
    """

    state: ConnectorState
    mail: MailSender
    keyed_hash: KeyedHash
    tenant_name: str
    http: httpx.AsyncClient | None = None
    clock: Callable[[], float] | None = None
    mail_texts: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    mail_language: str = "en"
    mail_branding: MailBranding = field(default_factory=MailBranding)


@dataclass(frozen=True, slots=True)
class BeginRequest:
    """What the gateway asks of an upstream sign-in."""

    state: str
    """The single-use value for the upstream's ``state`` parameter (bound to this browser's sign-in)."""
    callback_url: str
    """``{issuer}/callback/{connector_id}``: the redirect URI / ACS / wreply registered upstream."""
    login_hint: str | None = None
    domain_hint: str | None = None
    prompt: str | None = None
    max_age: int | None = None
    acr_values: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Redirect:
    url: str
    state: JSON
    """Opaque to the gateway: kept server-side with the sign-in and handed back to ``complete``."""


@dataclass(frozen=True, slots=True)
class Callback:
    params: Mapping[str, str]
    """The callback's query (GET) or form (POST) parameters, each once."""
    state: JSON
    """What ``begin`` returned."""
    callback_url: str


@runtime_checkable
class RedirectConnector(Protocol):
    """``begin`` sends the browser upstream carrying ``BeginRequest.state`` in the protocol's own
    parameter; the answer comes back to ``callback_url`` (GET or POST). A connector whose protocol
    names that parameter otherwise sets the class attribute ``state_parameter`` (``RelayState`` for
    SAML, ``wctx`` for WS-Federation; ``state`` when absent)."""

    id: str

    async def begin(self, request: BeginRequest) -> Redirect: ...

    async def complete(self, callback: Callback) -> UpstreamIdentity: ...


def state_parameter(connector: object) -> str:
    """The callback parameter that carries the gateway's ``state`` for this connector."""
    name = getattr(connector, "state_parameter", "state")
    return name if isinstance(name, str) else "state"


@runtime_checkable
class PublishesMetadata(Protocol):
    """Optional capability: the upstream reads a document about us (SAML SP metadata, WS-Fed
    federation metadata), served at ``{callback_url}/metadata``."""

    def metadata(self, callback_url: str) -> tuple[bytes, str]:
        """The document and its media type (e.g. ``application/samlmetadata+xml``)."""
        ...


@runtime_checkable
class PasscodeConnector(Protocol):
    id: str

    async def send_passcode(self, challenge_id: str, email: str, *, deliver: bool = True) -> None: ...

    async def verify_passcode(
        self, challenge_id: str, email: str, code: str, now: int
    ) -> UpstreamIdentity: ...


Connector = RedirectConnector | PasscodeConnector

DOMAIN = re.compile(r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")


def check_domain(domain: str) -> str:
    """A lower-case DNS name of at least two labels (what home-realm discovery matches exactly)."""
    if len(domain) > 253 or not DOMAIN.match(domain):
        raise ValueError(f"{domain!r} is not a lower-case domain name")
    return domain


class ConnectorConfigBase(BaseModel):
    """Fields every connector entry has. Subclasses add ``type: Literal[...]`` and their own fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    display_name: str | None = Field(None, max_length=128, description="The button text on the sign-in page.")
    domains: list[str] = Field(
        [],
        description="Email domains that home-realm discovery routes here (exact match, lower case).",
    )

    signup_only: ClassVar[bool] = False
    """True for IdPs that serve self-service sign-up but never invitation redemption (Facebook)."""

    @field_validator("domains")
    @classmethod
    def _domain_names(cls, domains: list[str]) -> list[str]:
        for domain in domains:
            check_domain(domain)
        if len(set(domains)) != len(domains):
            raise ValueError("a domain is listed twice")
        return domains

    @abstractmethod
    def open(self, ctx: ConnectorContext) -> Connector:
        """Build the connector for this configuration."""


class ConnectorError(Exception):
    """A sign-in the connector refuses; ``code`` is a stable reason code for audit and pages."""

    code = "connector_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
