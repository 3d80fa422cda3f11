"""The API connector client of self-service sign-up: one call and its reply, exactly as b2b-concepts §7 says.

``ApiConnectorClient.call(step, payload)`` POSTs the payload as compact JSON to the connector's
``target_url`` (HTTP Basic per RFC 7617 or mutual TLS, see ``api_connector_tls``) and turns the answer
into a ``Reply``: ``Continue`` (claims to pre-fill or override), ``ShowBlockPage`` (the sign-up ends),
``ValidationError`` (only after the attribute page: the user stays on it) or ``Failure``.

It fails closed: every answer that is not exactly one of the three documented shapes, with the HTTP
status the reference pairs with it, is a ``Failure`` carrying a fresh reference code to show the user
(10 base32 characters: unguessable and easy to read out on the phone), a snake_case reason for the audit
log and a detail for operators (never the body, never a secret); each Failure is logged once on
``gateway.signup``. Redirects are not followed; bodies are read up to 64 KiB. Each attempt has one
overall deadline (``timeout_seconds``); only an attempt that got no HTTP answer at all (timeout,
connection refused or reset) is retried, ``retries`` times, so a failing API never sees a retry storm.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import secrets
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, NoReturn

import httpx

from gateway.settings.signup import STEPS, ApiConnector
from gateway.signup.api_connector_tls import client_ssl_context

if TYPE_CHECKING:
    from gateway.settings.models import Settings

logger = logging.getLogger("gateway.signup")

VERSION = "1.0.0"
MAX_BODY_BYTES = 64 * 1024
USER_AGENT = "gateway-api-connector/1"

Step = Literal["post_federation_signup", "post_attribute_collection"]


@dataclass(frozen=True)
class Continue:
    claims: dict[str, Any]
    """Every member of the reply except ``version`` and ``action``, as sent."""


@dataclass(frozen=True)
class ShowBlockPage:
    user_message: str


@dataclass(frozen=True)
class ValidationError:
    user_message: str


@dataclass(frozen=True)
class Failure:
    reference: str
    reason: str
    detail: str


Reply = Continue | ShowBlockPage | ValidationError | Failure


class _Problem(Exception):
    """Why a call becomes a Failure: ``reason`` for the audit log, ``detail`` for operators."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class _NoAnswer(_Problem):
    """No HTTP answer came (timeout, connection refused or reset): the only case that is retried."""


@dataclass(frozen=True)
class _Answer:
    status: int
    content_type: str
    body: bytes


class ApiConnectorClient:
    """One configured connector: its own httpx.AsyncClient (TLS context with the client certificate and
    the trusted CAs built once at startup), timeout, retries."""

    def __init__(self, config: ApiConnector, http: httpx.AsyncClient) -> None:
        self.config = config
        self._http = http
        self._headers = {"Content-Type": "application/json", "Accept": "application/json"}
        basic = config.authentication.basic
        if basic is not None:
            token = base64.b64encode(f"{basic.username}:{basic.password}".encode()).decode("ascii")
            self._headers["Authorization"] = f"Basic {token}"

    @classmethod
    def open(
        cls, config: ApiConnector, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> ApiConnectorClient:
        """Read the connector's certificate files (``ValueError`` naming the connector and the file on any
        problem) and make its HTTP client; ``transport`` replaces the network (tests)."""
        http = httpx.AsyncClient(
            verify=client_ssl_context(config),
            transport=transport,
            timeout=httpx.Timeout(config.timeout_seconds),
            follow_redirects=False,
            trust_env=False,  # no proxy, .netrc or CA bundle from the environment: the config says it all
            headers={"User-Agent": USER_AGENT},
        )
        return cls(config, http)

    async def call(self, step: Step, payload: Mapping[str, Any]) -> Reply:
        """POST ``payload`` for ``step`` and interpret the answer; never raises for what the API does."""
        if step not in STEPS:
            raise ValueError(f"unknown API connector step {step!r}; known: {', '.join(STEPS)}")
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
        try:
            return _interpret(step, await self._exchange(body))
        except _Problem as problem:
            failure = Failure(new_reference(), problem.reason, problem.detail)
            logger.warning(
                "API connector %s at %s failed: %s (%s); reference %s",
                self.config.id,
                step,
                failure.reason,
                failure.detail,
                failure.reference,
                extra={
                    "api_connector": self.config.id,
                    "step": step,
                    "reason": failure.reason,
                    "detail": failure.detail,
                    "reference": failure.reference,
                },
            )
            return failure

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _exchange(self, body: bytes) -> _Answer:
        attempts = 1 + self.config.retries
        for attempt in range(1, attempts + 1):
            try:
                return await self._attempt(body)
            except _NoAnswer as no_answer:
                if attempt == attempts:
                    tried = "once" if attempts == 1 else f"{attempts} times"
                    raise _Problem(no_answer.reason, f"{no_answer.detail} (tried {tried})") from None
                logger.info(
                    "API connector %s: %s; retrying (%d of %d)",
                    self.config.id,
                    no_answer.detail,
                    attempt,
                    attempts - 1,
                )
        raise AssertionError("unreachable")  # the loop returns or raises

    async def _attempt(self, body: bytes) -> _Answer:
        timeout = self.config.timeout_seconds
        answered = False
        try:
            async with (
                asyncio.timeout(timeout),
                self._http.stream(
                    "POST", self.config.target_url, content=body, headers=self._headers
                ) as response,
            ):
                answered = True
                content_type = response.headers.get("content-type", "")
                if response.status_code not in (200, 400):
                    return _Answer(response.status_code, content_type, b"")
                return _Answer(response.status_code, content_type, await _read_capped(response))
        except TimeoutError:
            if answered:
                raise _Problem(
                    "api_connector_timeout", f"the reply's body did not arrive within {timeout:g} s"
                ) from None
            raise _NoAnswer("api_connector_timeout", f"no answer within {timeout:g} s") from None
        except httpx.HTTPError as exc:
            _raise_transport_problem(exc, answered)


def _raise_transport_problem(exc: httpx.HTTPError, answered: bool) -> NoReturn:
    tls = _ssl_cause(exc)
    if tls is not None:
        reason = getattr(tls, "reason", None) or type(tls).__name__
        raise _Problem(
            "api_connector_tls_failed",
            f"TLS failed ({reason}): check the target's certificate against ca_certificates "
            "and the client certificate",
        ) from None
    if answered:
        raise _Problem("api_connector_read_failed", f"the reply broke off ({type(exc).__name__})") from None
    if isinstance(exc, httpx.TimeoutException):
        raise _NoAnswer("api_connector_timeout", f"no answer in time ({type(exc).__name__})") from None
    if isinstance(exc, httpx.NetworkError | httpx.RemoteProtocolError):
        raise _NoAnswer("api_connector_unreachable", f"no answer ({type(exc).__name__})") from None
    raise _Problem("api_connector_unreachable", f"the request failed ({type(exc).__name__})") from None


def _ssl_cause(exc: BaseException) -> ssl.SSLError | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


async def _read_capped(response: httpx.Response) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _Problem(
            "api_connector_reply_too_large", f"the reply declares {declared} bytes (limit {MAX_BODY_BYTES})"
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _Problem("api_connector_reply_too_large", f"the reply is over {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _interpret(step: Step, answer: _Answer) -> Reply:
    status = answer.status
    if status in (401, 403):
        raise _Problem(
            "api_connector_unauthorized",
            f"HTTP {status}: the API refused the gateway's credentials; check the connector's authentication "
            "(Basic username and password, or the client certificate)",
        )
    if 300 <= status < 400:
        raise _Problem("api_connector_redirected", f"HTTP {status}: redirects are not followed")
    if status not in (200, 400):
        raise _Problem("api_connector_http_status", f"HTTP {status}: only 200 and 400 are replies")
    media_type = answer.content_type.split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        shown = media_type[:60] or "none"
        raise _Problem(
            "api_connector_not_json", f"HTTP {status} with Content-Type {shown!r}, not application/json"
        )
    try:
        document = loads_lenient(answer.body.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise _Problem(
            "api_connector_invalid_json", f"HTTP {status}: the body is not JSON ({_short(exc)})"
        ) from None
    if not isinstance(document, dict):
        raise _Problem(
            "api_connector_invalid_json",
            f"HTTP {status}: the JSON is a {type(document).__name__}, not an object",
        )
    version = document.get("version")
    if version != VERSION:
        raise _Problem("api_connector_bad_version", f"version {_shown(version)}, expected {VERSION!r}")
    action = document.get("action")
    if action == "Continue" and status == 200:
        return Continue({k: v for k, v in document.items() if k not in ("version", "action")})
    if action == "ShowBlockPage" and status == 200:
        return ShowBlockPage(_user_message(document, action))
    if action == "ValidationError" and status == 400:
        code = document.get("status")
        if not ((type(code) is int and code == 400) or code == "400"):
            raise _Problem(
                "api_connector_invalid_reply", f"ValidationError with status {_shown(code)}, expected 400"
            )
        message = _user_message(document, action)
        if step != "post_attribute_collection":
            raise _Problem(
                "api_connector_reply_not_allowed", f"ValidationError is not an allowed reply at {step}"
            )
        return ValidationError(message)
    if action in ("Continue", "ShowBlockPage", "ValidationError"):
        expected = 400 if action == "ValidationError" else 200
        raise _Problem(
            "api_connector_invalid_reply", f"{action} came with HTTP {status}; it needs HTTP {expected}"
        )
    raise _Problem("api_connector_invalid_reply", f"unknown action {_shown(action)}")


def _user_message(document: Mapping[str, Any], action: str) -> str:
    message = document.get("userMessage")
    if not isinstance(message, str) or not message.strip():
        raise _Problem("api_connector_invalid_reply", f"{action} without a userMessage text")
    return message


def _shown(value: object) -> str:
    """A reply's value in a detail: short, so a log line never carries much of the body."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _short(exc: BaseException) -> str:
    return _shown(str(exc)).strip("'\"")


def new_reference() -> str:
    """A fresh failure reference: 10 base32 characters (50 random bits), e.g. ``K7QX2MZP4A``."""
    return base64.b32encode(secrets.token_bytes(7)).decode("ascii")[:10]


# The reference's documentation samples have trailing commas ({"a": 1,} and [1,2,]): JSON (RFC 8259)
# forbids them, and APIs written from those samples send them, so they are dropped before parsing.
# One regular expression scans the text token-aware: a string literal is matched whole (so commas inside
# strings are never touched); a comma right after "[", "{" or another comma is kept, so "[,]" and "[1,,]"
# stay invalid; a comma followed (after white space) by "}" or "]" is dropped. Nothing else changes, and
# the gateway itself never writes trailing commas.
_TRAILING_COMMA = re.compile(
    r'"[^"\\]*(?:\\.[^"\\]*)*"'  # a string literal, kept whole
    r"|[\[{,][ \t\r\n]*,"  # a comma that trails nothing, kept (json rejects it)
    r"|(,)(?=[ \t\r\n]*[}\]])"  # a trailing comma, dropped
)


def loads_lenient(text: str) -> Any:
    """``json.loads`` that accepts trailing commas and refuses duplicate member names and NaN/Infinity.

    Duplicate names are refused rather than resolved (``json.loads`` keeps the last one): an API and the
    gateway could otherwise disagree on which value counts, so such a reply is a ``ValueError``.
    """
    cleaned = _TRAILING_COMMA.sub(lambda m: "" if m.group(1) else m.group(0), text)
    return json.loads(cleaned, object_pairs_hook=_unique_members, parse_constant=_no_constant)


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    members: dict[str, Any] = {}
    for name, value in pairs:
        if name in members:
            raise ValueError(f"duplicate member {name!r}")
        members[name] = value
    return members


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def open_api_connectors(settings: Settings) -> dict[str, ApiConnectorClient]:
    """One client per configured API connector, keyed by its id (startup; ``ValueError`` on bad files)."""
    return {config.id: ApiConnectorClient.open(config) for config in settings.api_connectors}
