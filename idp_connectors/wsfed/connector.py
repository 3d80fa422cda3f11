"""The WS-Federation passive requestor connector: the gateway as relying party of one STS.

``begin`` sends the browser to ``{passive_sign_in_url}?wa=wsignin1.0&wtrealm=…&wctx=…&wreply=…&wct=…``
(``wctx`` is the gateway's single-use state, ``wreply`` its fixed callback; ``wfresh`` asks for a
fresh sign-in: ``0`` for ``prompt=login``, else ``max_age`` in whole minutes; ``wauth`` is the
first ``acr`` value, which is how the gateway asks a trusted partner for MFA). ``Redirect.state``
keeps the realm, the time, ``wreply``, ``wctx`` and the freshness asked for.

``complete`` takes the POSTed ``wa=wsignin1.0`` + ``wresult`` (+ ``wctx``, matched to this
browser's sign-in and consumed by the gateway already, compared again here) and, in order:
caps ``wresult`` at 256 KiB; parses it once through the XML gate; opens the RSTR (exactly one
SAML 1.1 or 2.0 assertion in the document, the only child of ``RequestedSecurityToken``);
verifies the assertion's enveloped signature with the configured / metadata certificates only
(``KeyInfo`` ignored); then reads everything from the verified element alone: Issuer, Conditions
with skew, every audience restriction naming the realm (and ``wsp:AppliesTo``, when present,
naming it too), bearer confirmation, one authentication statement, the ImmutableID (or, when so
configured, a persistent NameIdentifier/NameID) and the email. Last, the assertion id enters the
replay cache (``wsfed-assertion``, until NotOnOrAfter plus skew): the only thing ever written.

The identity: ``subject`` is the ImmutableID claim; ``email_verified`` is true only when the
email's domain is one of this connector's ``domains`` (WS-Federation has no verified-email
claim; the STS speaks for the domains home-realm discovery sends to it, and linking still needs
``trust_email_for_linking``); ``acr`` is the AuthenticationMethod (SAML 1.1) or
AuthnContextClassRef (SAML 2.0), ``auth_time`` its instant, ``amr`` the values of the
``claims.amr`` attribute; ``raw_claims`` maps every attribute to its value (a list when several).

Stable error codes (``ConnectorError.code``):

- Callback: ``invalid_state``, ``state_expired``, ``wreply_mismatch``, ``wctx_mismatch``,
  ``wa_unsupported`` (``wa`` is not ``wsignin1.0``), ``wresult_missing``, ``wresult_too_large``.
- XML and signature: ``xml_rejected`` (an ``XmlRejected``; ``.detail`` says which rule:
  ``xml_doctype``, ``xml_malformed``, ``xml_too_large``, ``xml_too_deep``, ``xml_duplicate_id``,
  ``xml_signature_shape``, ``xml_transform_not_allowed``, ``xml_algorithm_not_allowed``,
  ``xml_text_has_children``, ``xml_assertion_count``, ``signature_missing``, ``signature_no_key``,
  ``signature_reference_mismatch``, ``signature_invalid``).
- Envelope: ``rstr_invalid``, ``token_unsupported`` (not a plain SAML 1.1 / 2.0 assertion),
  ``applies_to_mismatch``.
- Token: ``assertion_invalid`` (malformed), ``issuer_mismatch``, ``conditions_missing`` (no
  Conditions NotOnOrAfter), ``conditions_unsupported`` (a condition we do not understand),
  ``assertion_not_yet_valid``, ``assertion_expired``, ``assertion_lifetime_too_long`` (valid for
  more than ``MAX_LIFETIME_SECONDS``), ``audience_mismatch``, ``subject_confirmation_invalid``
  (no bearer confirmation, or its data expired / for another recipient),
  ``authn_statement_missing``, ``subject_mismatch`` (statements about different subjects),
  ``max_age_exceeded`` (older sign-in than ``wfresh`` asked for), ``immutable_id_missing``,
  ``subject_missing`` (NameIdentifier mode), ``email_missing``, ``claim_invalid`` (a required
  claim with several values, over-long or with control characters), ``assertion_replayed``.
- Metadata (``federation_metadata_url``): ``metadata_unavailable``, ``metadata_invalid``.
"""

from __future__ import annotations

import hmac
import logging
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import ClassVar
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx
from cryptography import x509

from idp_connectors.base import (
    JSON,
    BeginRequest,
    Callback,
    ConnectorContext,
    ConnectorError,
    Redirect,
    UpstreamIdentity,
)
from idp_connectors.wsfed.config import WsFedConfig
from idp_connectors.wsfed.metadata import FederationMetadata
from idp_connectors.wsfed.published import rp_metadata
from idp_connectors.wsfed.token import Envelope, Token, open_envelope, read_token
from idp_connectors.xmlsecurity.gate import GatePolicy, XmlRejected, parse_inbound
from idp_connectors.xmlsecurity.signature import verify_enveloped

MAX_WRESULT_CHARS = 256 * 1024
STATE_LIFETIME_SECONDS = 3600
MAX_LIFETIME_SECONDS = 24 * 3600
"""A token valid for longer than this is refused (and so no replay entry outlives a day)."""
MAX_CLAIM_CHARS = 1024
REPLAY_KIND = "wsfed-assertion"
BEARER = frozenset({"urn:oasis:names:tc:SAML:1.0:cm:bearer", "urn:oasis:names:tc:SAML:2.0:cm:bearer"})
UNSTABLE_NAME_FORMATS = frozenset(
    {
        "urn:oasis:names:tc:SAML:2.0:nameid-format:transient",
        "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
    }
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

log = logging.getLogger(__name__)


def _with_query(endpoint: str, params: dict[str, str]) -> str:
    parts = urlsplit(endpoint)
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def _timestamp(seconds: float) -> str:
    return datetime.fromtimestamp(int(seconds), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class _Pending:
    """What ``begin`` kept for ``complete`` (the ``Redirect.state`` JSON)."""

    realm: str
    issued_at: int
    wreply: str
    wctx: str
    max_age: int | None
    """Seconds; 0 for ``prompt=login`` (the sign-in must be newer than ``issued_at``)."""

    def to_json(self) -> JSON:
        return {
            "realm": self.realm,
            "issued_at": self.issued_at,
            "wreply": self.wreply,
            "wctx": self.wctx,
            "max_age": self.max_age,
        }

    @classmethod
    def from_json(cls, data: object) -> _Pending:
        unusable = ConnectorError("the sign-in state is not usable", code="invalid_state")
        if not isinstance(data, dict):
            raise unusable
        realm, wreply, wctx = data.get("realm"), data.get("wreply"), data.get("wctx")
        issued_at, max_age = data.get("issued_at"), data.get("max_age")
        if (
            not all(isinstance(value, str) and value for value in (realm, wreply, wctx))
            or not isinstance(issued_at, int)
            or isinstance(issued_at, bool)
            or not (max_age is None or (isinstance(max_age, int) and not isinstance(max_age, bool)))
        ):
            raise unusable
        return cls(str(realm), issued_at, str(wreply), str(wctx), max_age)


class WsFedConnector:
    """One WS-Federation passive STS (``type: wsfed``)."""

    state_parameter: ClassVar[str] = "wctx"

    def __init__(self, config: WsFedConfig, ctx: ConnectorContext) -> None:
        self.id = config.id
        self.config = config
        self.ctx = ctx
        self._clock = ctx.clock or time.time
        self._policy = GatePolicy(allow_sha1=config.allow_sha1)
        self.federation_metadata = (
            FederationMetadata(config, self._client, self._clock)
            if config.federation_metadata_url is not None
            else None
        )
        if config.allow_sha1:
            log.warning("wsfed connector %s accepts SHA-1 signatures (allow_sha1)", config.id)

    def _client(self) -> httpx.AsyncClient:
        if self.ctx.http is None:
            raise ConnectorError("the gateway lent this connector no HTTP client", code="no_http_client")
        return self.ctx.http

    # -- begin ----------------------------------------------------------------------------------

    async def begin(self, request: BeginRequest) -> Redirect:
        """The ``wsignin1.0`` URL; the realm, time, wreply, wctx and freshness kept for ``complete``."""
        now = int(self._clock())
        realm = self.config.realm_for(request.callback_url)
        params = {
            "wa": "wsignin1.0",
            "wtrealm": realm,
            "wctx": request.state,
            "wreply": request.callback_url,
            "wct": _timestamp(now),
        }
        max_age = 0 if request.prompt == "login" else request.max_age
        if max_age is not None:
            params["wfresh"] = str(max_age // 60)
        if request.acr_values:
            params["wauth"] = request.acr_values[0]
        pending = _Pending(realm, now, request.callback_url, request.state, max_age)
        return Redirect(url=_with_query(self.config.passive_sign_in_url, params), state=pending.to_json())

    # -- complete -------------------------------------------------------------------------------

    def _check_callback(self, callback: Callback, pending: _Pending) -> bytes:
        """The callback's parameters against what ``begin`` kept; returns the ``wresult`` bytes."""
        params = callback.params
        if pending.realm != self.config.realm_for(pending.wreply):
            raise ConnectorError("the sign-in began for another realm", code="invalid_state")
        if self._clock() - pending.issued_at > STATE_LIFETIME_SECONDS:
            raise ConnectorError("the sign-in took too long; start again", code="state_expired")
        if callback.callback_url != pending.wreply:
            raise ConnectorError("the sign-in result arrived at another wreply", code="wreply_mismatch")
        if not hmac.compare_digest(params.get("wctx", "").encode(), pending.wctx.encode()):
            raise ConnectorError("the sign-in result's wctx is not this sign-in's", code="wctx_mismatch")
        if params.get("wa") != "wsignin1.0":
            raise ConnectorError(
                "the STS answer is not a sign-in result (wa=wsignin1.0)", code="wa_unsupported"
            )
        wresult = params.get("wresult")
        if not wresult:
            raise ConnectorError("the sign-in result has no wresult", code="wresult_missing")
        if len(wresult) > MAX_WRESULT_CHARS:
            raise ConnectorError("the sign-in result is too large", code="wresult_too_large")
        return wresult.encode("utf-8")

    def _with_configured(self, fetched: tuple[x509.Certificate, ...]) -> tuple[x509.Certificate, ...]:
        configured = self.config.certificates
        return configured + tuple(c for c in fetched if c not in configured)

    def _verify_with(self, envelope: Envelope, certificates: tuple[x509.Certificate, ...]) -> Token:
        verified = verify_enveloped(
            envelope.assertion, certificates, id_attribute=envelope.id_attribute, policy=self._policy
        )
        return read_token(verified, envelope.saml_version)

    async def _verify(self, envelope: Envelope) -> Token:
        """Verify the assertion's signature and read the verified element (nothing else).

        With federation metadata, a signature no known certificate verifies makes one re-read
        of the metadata (rate-limited) and, when it lists other certificates, one more try.
        """
        metadata = self.federation_metadata
        if metadata is None:
            return self._verify_with(envelope, self.config.certificates)
        fetched = await metadata.certificates()
        try:
            return self._verify_with(envelope, self._with_configured(fetched))
        except XmlRejected as exc:
            if exc.detail not in ("signature_invalid", "signature_no_key"):
                raise
            fresh = await metadata.refresh_after_failure(fetched)
            if fresh is None:
                raise
        return self._verify_with(envelope, self._with_configured(fresh))

    async def complete(self, callback: Callback) -> UpstreamIdentity:
        """Check the callback, gate and open the RSTR, verify, check and map the token; remember its id."""
        pending = _Pending.from_json(callback.state)
        data = self._check_callback(callback, pending)
        envelope = open_envelope(parse_inbound(data, self._policy))
        if envelope.applies_to is not None and envelope.applies_to != pending.realm:
            raise ConnectorError(
                "the sign-in result applies to another realm than ours", code="applies_to_mismatch"
            )
        token = await self._verify(envelope)
        now = self._clock()
        not_on_or_after = self._check_token(token, pending, now)
        identity = self._identity(token)
        ttl = max(1, math.ceil(not_on_or_after + self.config.clock_skew_seconds - now))
        key = self.ctx.keyed_hash(REPLAY_KIND, f"{self.config.issuer}\n{token.assertion_id}")
        if not await self.ctx.state.add(REPLAY_KIND, key, {"connector_id": self.id}, ttl):
            raise ConnectorError("this sign-in result was already used", code="assertion_replayed")
        return identity

    # -- token checks ---------------------------------------------------------------------------

    def _check_token(self, token: Token, pending: _Pending, now: float) -> float:
        """Issuer, lifetime, audience, confirmation, statements, freshness; returns NotOnOrAfter."""
        skew = self.config.clock_skew_seconds
        if not hmac.compare_digest(token.issuer.encode(), self.config.issuer.encode()):
            raise ConnectorError("the token comes from another issuer", code="issuer_mismatch")
        if not token.has_conditions or token.not_on_or_after is None:
            raise ConnectorError(
                "the token has no validity period (Conditions NotOnOrAfter)", code="conditions_missing"
            )
        if token.unknown_conditions:
            raise ConnectorError(
                f"the token has a condition not understood here ({token.unknown_conditions[0]})",
                code="conditions_unsupported",
            )
        if token.not_before is not None and now + skew < token.not_before:
            raise ConnectorError("the token is not valid yet", code="assertion_not_yet_valid")
        if now - skew >= token.not_on_or_after:
            raise ConnectorError("the token has expired", code="assertion_expired")
        if token.not_on_or_after - now > MAX_LIFETIME_SECONDS:
            raise ConnectorError("the token is valid for too long", code="assertion_lifetime_too_long")
        if not token.audience_restrictions or any(
            pending.realm not in audiences for audiences in token.audience_restrictions
        ):
            raise ConnectorError("the token is not for this realm (Audience)", code="audience_mismatch")
        self._check_confirmation(token, pending, now)
        if token.authn_statements == 0:
            raise ConnectorError("the token has no authentication statement", code="authn_statement_missing")
        if token.authn_statements > 1 or token.authn_instant is None:
            raise ConnectorError(
                "the token's authentication statement is malformed", code="assertion_invalid"
            )
        if len({name_id.value for name_id in token.name_ids}) > 1:
            raise ConnectorError("the token's statements name different subjects", code="subject_mismatch")
        if pending.max_age is not None:
            oldest = pending.issued_at if pending.max_age == 0 else now - pending.max_age
            if token.authn_instant < oldest - skew:
                raise ConnectorError(
                    "the STS did not sign the user in again as asked (wfresh)", code="max_age_exceeded"
                )
        return token.not_on_or_after

    def _check_confirmation(self, token: Token, pending: _Pending, now: float) -> None:
        skew = self.config.clock_skew_seconds
        bearer = [c for c in token.confirmations if c.method in BEARER]
        if not bearer and (token.confirmations or token.saml_version == "2.0"):
            raise ConnectorError("the token is not a bearer token", code="subject_confirmation_invalid")
        for confirmation in bearer:
            if confirmation.not_on_or_after is not None and now - skew >= confirmation.not_on_or_after:
                raise ConnectorError(
                    "the token's subject confirmation has expired", code="subject_confirmation_invalid"
                )
            if confirmation.recipient is not None and confirmation.recipient != pending.wreply:
                raise ConnectorError(
                    "the token's subject confirmation names another recipient",
                    code="subject_confirmation_invalid",
                )

    # -- claims ---------------------------------------------------------------------------------

    @staticmethod
    def _single(token: Token, name: str, missing_code: str, what: str) -> str:
        values = [v for v in token.attributes.get(name, ()) if v.strip()]
        if not values:
            raise ConnectorError(f"the token has no {what} claim ({name})", code=missing_code)
        if len(values) > 1 or len(values[0]) > MAX_CLAIM_CHARS or _CONTROL.search(values[0]):
            raise ConnectorError(f"the token's {what} claim is not one usable value", code="claim_invalid")
        return values[0]

    def _subject(self, token: Token) -> str:
        claim = self.config.claims.immutable_id
        if claim is not None:
            return self._single(token, claim, "immutable_id_missing", "ImmutableID")
        usable = [n for n in token.name_ids if n.value.strip() and n.format not in UNSTABLE_NAME_FORMATS]
        if not usable or len(usable) != len(token.name_ids):
            raise ConnectorError(
                "the token names no persistent subject (NameIdentifier / NameID)", code="subject_missing"
            )
        value = usable[0].value
        if len(value) > MAX_CLAIM_CHARS or _CONTROL.search(value):
            raise ConnectorError("the token's subject is not usable", code="claim_invalid")
        return value

    def _identity(self, token: Token) -> UpstreamIdentity:
        mapping = self.config.claims
        subject = self._subject(token)
        email = self._single(token, mapping.email, "email_missing", "email")
        local, at, domain = email.rpartition("@")
        if not at or not local or not domain or any(ch.isspace() for ch in email):
            raise ConnectorError("the token's email claim is not an email address", code="claim_invalid")
        raw: dict[str, object] = {
            name: values[0] if len(values) == 1 else list(values) for name, values in token.attributes.items()
        }
        return UpstreamIdentity(
            connector_id=self.id,
            issuer=self.config.issuer,
            subject=subject,
            email=email,
            email_verified=domain.lower() in self.config.domains,
            name=_optional(token.attributes, mapping.name),
            given_name=_optional(token.attributes, mapping.given_name),
            family_name=_optional(token.attributes, mapping.family_name),
            home_tenant_id=_optional(token.attributes, mapping.home_tenant_id),
            amr=tuple(token.attributes.get(mapping.amr, ())) if mapping.amr is not None else (),
            acr=token.authn_method,
            auth_time=int(token.authn_instant) if token.authn_instant is not None else None,
            device={ours: raw[theirs] for ours, theirs in mapping.device.items() if theirs in raw},
            raw_claims=raw,
        )

    # -- published metadata ---------------------------------------------------------------------

    def metadata(self, callback_url: str) -> tuple[bytes, str]:
        """Our RP metadata (WS-Federation 1.2 ApplicationServiceType) for the STS administrator."""
        claims = self.config.claims
        required = [uri for uri in (claims.immutable_id, claims.email) if uri is not None]
        document = rp_metadata(self.config.realm_for(callback_url), callback_url, required)
        return document, "application/samlmetadata+xml"


def _optional(attributes: Mapping[str, tuple[str, ...]], name: str | None) -> str | None:
    values = attributes.get(name, ()) if name is not None else ()
    if len(values) != 1:
        return None
    value = values[0].strip()
    return value if 0 < len(value) <= MAX_CLAIM_CHARS and not _CONTROL.search(value) else None
