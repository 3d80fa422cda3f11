"""The SAML 2.0 connector: the gateway as service provider of one partner IdP (Web Browser SSO profile).

``begin`` sends the browser to the IdP's HTTP-Redirect SSO endpoint with a fresh AuthnRequest
(``authn_request.py``) and the gateway's single-use ``state`` as ``RelayState``;
``Redirect.state`` (kept server-side by the gateway, consumed once) carries the request ID, the
time, the ACS URL and the SP entity id. ``complete`` takes the HTTP-POST answer at the ACS
(``/callback/{id}``): decode, gate, Response checks, decryption and signature (``response.py``),
assertion checks on the verified element only (``assertion.py``), attribute mapping
(``identity.py``) and, last, the replay cache: the one thing written, under kind
``saml-assertion`` until the assertion's NotOnOrAfter (plus skew). ``metadata`` is our SP
metadata (``sp_metadata.py``). Why the Response is validated here rather than by pysaml2's
parser: docs/adr/0006-saml-response-validation.md.

Stable error codes (``ConnectorError.code``):

- Callback: ``invalid_state`` (stored state unusable), ``relay_state_mismatch``,
  ``state_expired``, ``acs_mismatch`` (answer at another callback URL).
- Message: ``saml_response_missing``, ``saml_response_invalid`` (over 256 KiB of base64, or not
  base64), ``response_invalid`` (not a SAML 2.0 Response, no Status, several Issuers),
  ``upstream_status`` (StatusCode not Success; the message names it), ``issuer_missing``,
  ``issuer_mismatch`` (Response or assertion Issuer not the IdP's entityID),
  ``unsolicited_response`` (no InResponseTo), ``in_response_to_mismatch`` (Response or
  SubjectConfirmationData), ``destination_missing`` (signed Response without Destination),
  ``destination_mismatch``.
- XML and cryptography, one generic message: ``xml_rejected`` (``XmlRejected``; its ``detail``
  is logged: ``xml_doctype``, ``xml_malformed``, ``xml_too_large``, ``xml_too_deep``,
  ``xml_duplicate_id``, ``xml_signature_shape``, ``xml_transform_not_allowed``,
  ``xml_algorithm_not_allowed``, ``xml_assertion_count``, ``xml_text_has_children``,
  ``signature_invalid``, ``signature_no_key``, ``signature_missing``,
  ``signature_reference_mismatch``, ``decryption_failed``).
- Signature policy: ``assertion_not_signed`` (``want_assertions_signed``), ``not_signed``
  (neither Response nor assertion), ``encryption_not_configured`` (an EncryptedAssertion but no
  SP key).
- Assertion: ``assertion_invalid`` (not SAML 2.0, bad timestamps), ``subject_confirmation_invalid``
  (no bearer confirmation, or one without NotOnOrAfter / with NotBefore), ``recipient_mismatch``,
  ``subject_confirmation_expired``, ``assertion_not_yet_valid``, ``assertion_expired``,
  ``audience_mismatch``, ``condition_unsupported``, ``authn_statement_missing``,
  ``name_id_missing``, ``name_id_not_persistent``, ``email_missing``, ``assertion_replayed``.
- Metadata and begin: ``no_http_client``, ``metadata_unavailable``, ``metadata_invalid``,
  ``metadata_expired``, ``authn_request_signing_required`` (the IdP's metadata sets
  WantAuthnRequestsSigned but ``sign_authn_requests`` is off), ``relay_state_too_long``.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import httpx
from lxml.etree import _Element

from idp_connectors.base import (
    JSON,
    BeginRequest,
    Callback,
    ConnectorContext,
    ConnectorError,
    Redirect,
    UpstreamIdentity,
)
from idp_connectors.saml.assertion import Expected, check_assertion, same
from idp_connectors.saml.authn_request import authn_request_xml, new_request_id, redirect_url
from idp_connectors.saml.config import SamlConfig
from idp_connectors.saml.identity import to_identity
from idp_connectors.saml.metadata import IdpMetadata, MetadataCache
from idp_connectors.saml.response import check_response, decode_saml_response, verified_assertion
from idp_connectors.saml.sp_metadata import MEDIA_TYPE, sp_metadata_xml
from idp_connectors.xmlsecurity.gate import GatePolicy, XmlRejected, parse_inbound

STATE_LIFETIME_SECONDS = 3600
"""An answer later than this after ``begin`` is refused, whatever the gateway's own TTL."""
MAX_RELAY_STATE_BYTES = 80
"""SAML Bindings 3.4.3 / 3.5.3."""
REPLAY_KIND = "saml-assertion"
_UNKNOWN_KEY = frozenset({"signature_invalid", "signature_no_key"})

log = logging.getLogger("idp_connectors.saml")


@dataclass(frozen=True, slots=True)
class _Pending:
    """What ``begin`` kept for ``complete`` (the ``Redirect.state`` JSON)."""

    request_id: str
    issued_at: int
    acs: str
    sp_entity_id: str
    relay_state: str

    def to_json(self) -> JSON:
        return {
            "request_id": self.request_id,
            "issued_at": self.issued_at,
            "acs": self.acs,
            "sp_entity_id": self.sp_entity_id,
            "relay_state": self.relay_state,
        }

    @classmethod
    def from_json(cls, data: object) -> _Pending:
        unusable = ConnectorError("the sign-in state is not usable", code="invalid_state")
        if not isinstance(data, dict):
            raise unusable
        names = ("request_id", "acs", "sp_entity_id", "relay_state")
        strings = [data.get(name) for name in names]
        issued_at = data.get("issued_at")
        if not all(isinstance(value, str) and value for value in strings) or not (
            isinstance(issued_at, int) and not isinstance(issued_at, bool)
        ):
            raise unusable
        request_id, acs, sp_entity_id, relay_state = (str(value) for value in strings)
        return cls(request_id, issued_at, acs, sp_entity_id, relay_state)


class SamlConnector:
    """One partner SAML 2.0 IdP (``type: saml``)."""

    state_parameter = "RelayState"

    def __init__(self, config: SamlConfig, ctx: ConnectorContext) -> None:
        self.id = config.id
        self.config = config
        self.ctx = ctx
        self._clock = ctx.clock or time.time
        self._keys = config.sp_key_pair()
        self._policy = GatePolicy(allow_sha1=config.allow_sha1, allow_cbc=config.allow_cbc)
        self.idp_metadata = MetadataCache(config, self._client, self._clock)
        self._sp_metadata: dict[str, bytes] = {}

    def _client(self) -> httpx.AsyncClient:
        if self.ctx.http is None:
            raise ConnectorError("the gateway lent this connector no HTTP client", code="no_http_client")
        return self.ctx.http

    def sp_entity_id(self, callback_url: str) -> str:
        """Our entityID: configured, or ``{callback_url}/metadata`` (where our metadata is served)."""
        return self.config.sp_entity_id or f"{callback_url}/metadata"

    async def begin(self, request: BeginRequest) -> Redirect:
        """The AuthnRequest on the HTTP-Redirect binding, and what ``complete`` needs to check the answer."""
        if len(request.state.encode("utf-8")) > MAX_RELAY_STATE_BYTES:
            raise ConnectorError("the RelayState would exceed 80 bytes", code="relay_state_too_long")
        metadata = await self.idp_metadata.current()
        sign = self.config.sign_authn_requests
        if metadata.want_authn_requests_signed and not sign:
            raise ConnectorError(
                "the identity provider wants signed AuthnRequests: set sign_authn_requests and the SP key",
                code="authn_request_signing_required",
            )
        now = self._clock()
        pending = _Pending(
            request_id=new_request_id(),
            issued_at=int(now),
            acs=request.callback_url,
            sp_entity_id=self.sp_entity_id(request.callback_url),
            relay_state=request.state,
        )
        xml = authn_request_xml(
            request_id=pending.request_id,
            issued_at=now,
            destination=metadata.sso_redirect_url,
            acs_url=pending.acs,
            sp_entity_id=pending.sp_entity_id,
            force_authn=request.prompt == "login" or request.max_age == 0,
            acr_values=request.acr_values,
        )
        key = self._keys.key if sign and self._keys is not None else None
        url = redirect_url(metadata.sso_redirect_url, xml, request.state, key)
        return Redirect(url=url, state=pending.to_json())

    def _check_callback(self, callback: Callback, pending: _Pending) -> None:
        if not same(callback.params.get("RelayState"), pending.relay_state):
            raise ConnectorError("the answer's RelayState is not this sign-in's", code="relay_state_mismatch")
        if self._clock() - pending.issued_at > STATE_LIFETIME_SECONDS:
            raise ConnectorError("the sign-in took too long; start again", code="state_expired")
        if callback.callback_url != pending.acs:
            raise ConnectorError("the answer arrived at another sign-in address", code="acs_mismatch")

    async def _verified(
        self, root: _Element, child: _Element, metadata: IdpMetadata, expected: Expected
    ) -> _Element:
        """The verified assertion; after a signature no known certificate verifies, the metadata is
        read again (at most once a minute) and the check repeated once with its certificates."""
        key = self._keys.key if self._keys is not None else None
        try:
            return verified_assertion(root, child, metadata.signing_certificates, expected, key)
        except XmlRejected as exc:
            if exc.detail not in _UNKNOWN_KEY:
                raise
            newer = await self.idp_metadata.after_unknown_key(metadata)
            if newer is None or newer.entity_id != metadata.entity_id:
                raise
        return verified_assertion(root, child, newer.signing_certificates, expected, key)

    async def complete(self, callback: Callback) -> UpstreamIdentity:
        """Check the answer completely; record the assertion ID; map the identity."""
        pending = _Pending.from_json(callback.state)
        self._check_callback(callback, pending)
        xml = decode_saml_response(callback.params.get("SAMLResponse"))
        try:
            root = parse_inbound(xml, self._policy)
            metadata = await self.idp_metadata.current()
            expected = Expected(
                idp_entity_id=metadata.entity_id,
                acs_url=pending.acs,
                sp_entity_id=pending.sp_entity_id,
                request_id=pending.request_id,
                now=self._clock(),
                skew=self.config.clock_skew_seconds,
                want_assertions_signed=self.config.want_assertions_signed,
                policy=self._policy,
            )
            child = check_response(root, expected)
            assertion = await self._verified(root, child, metadata, expected)
            facts = check_assertion(assertion, expected)
        except XmlRejected as exc:
            log.warning("SAML connector %s refused a response: %s", self.id, exc.detail)
            raise
        identity = to_identity(self.config, metadata.entity_id, facts)
        ttl = max(1, math.ceil(facts.expires_at - expected.now))
        replay_key = self.ctx.keyed_hash(REPLAY_KIND, f"{self.id}\n{facts.assertion_id}")
        if not await self.ctx.state.add(REPLAY_KIND, replay_key, {"connector_id": self.id}, ttl):
            raise ConnectorError("this assertion was already used; start again", code="assertion_replayed")
        return identity

    def metadata(self, callback_url: str) -> tuple[bytes, str]:
        """Our SP metadata for the IdP (``PublishesMetadata``), built once per callback URL."""
        document = self._sp_metadata.get(callback_url)
        if document is None:
            document = sp_metadata_xml(self.config, self.sp_entity_id(callback_url), callback_url)
            if len(self._sp_metadata) < 8:
                self._sp_metadata[callback_url] = document
        return document, MEDIA_TYPE
