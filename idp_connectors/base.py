"""The small contract between the gateway and every connector."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

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

    async def ttl(self, kind: str, id: str) -> int | None: ...


@dataclass(frozen=True, slots=True)
class MailMessage:
    to: str
    subject: str
    text: str
    html: str | None = None


class MailSender(Protocol):
    """Queues a message for delivery off the request path; never blocks, never raises on delivery."""

    def send(self, message: MailMessage) -> None: ...


class KeyedHash(Protocol):
    """HMAC under an install secret: for values stored at rest (passcodes, addresses)."""

    def __call__(self, purpose: str, value: str) -> str: ...


@dataclass(frozen=True, slots=True)
class ConnectorContext:
    state: ConnectorState
    mail: MailSender
    keyed_hash: KeyedHash
    tenant_name: str


class ConnectorError(Exception):
    """A sign-in the connector refuses; ``code`` is a stable reason code for audit and pages."""

    code = "connector_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
