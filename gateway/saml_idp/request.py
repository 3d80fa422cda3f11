"""An SP's AuthnRequest at ``/saml2/sso``, checked completely before anything is stored or sent.

Both bindings: HTTP-Redirect (``SAMLRequest`` raw-DEFLATE + base64, ``RelayState``, ``SigAlg``,
``Signature``) and HTTP-POST (``SAMLRequest`` base64, an enveloped signature). The base64 text and
the inflated XML are capped; a repeated parameter is refused; the XML passes the inbound gate
(``idp_connectors.xmlsecurity.gate``: no DOCTYPE, comments dropped, signature shapes and
algorithms). The Issuer picks the app by entity id; its certificate (configuration only) checks a
Redirect signature over the raw, still URL-encoded ``SAMLRequest=…&RelayState=…&SigAlg=…`` in that
order, or the POST's enveloped signature; ``require_signed_requests`` makes one mandatory. Then
the ACS (exact URL, index, or the default), ``ProtocolBinding`` (HTTP-POST), ``Destination``
(required when signed), ``IssueInstant`` (fresh), the NameID policy and RelayState (≤ 80 bytes,
opaque). Last, the request ID is recorded once per app: a replay is refused. Every refusal is a
``SamlRequestError`` with a stable ``reason``; the caller shows an error page and posts nothing.

The Redirect-binding reading (``read_redirect``, ``check_redirect_signature``) and the common
header checks are shared with single logout (``gateway.saml_idp.logout``).
"""

from __future__ import annotations

import base64
import binascii
import re
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote_plus

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from lxml.etree import _Element
from starlette.requests import Request

from gateway.oidc.claims import ACR_MULTI_FACTOR, ACR_SINGLE_FACTOR
from gateway.saml_idp.metadata import BINDING_POST, sso_url
from gateway.settings.saml_app import MAX_RELAY_STATE_BYTES, SamlApplication
from idp_connectors.saml.xmltime import parse_instant
from idp_connectors.xmlsecurity import gate
from idp_connectors.xmlsecurity.gate import SAML2, SAML2P, GatePolicy, XmlRejected, parse_inbound, text_of
from idp_connectors.xmlsecurity.signature import (
    is_signed,
    redirect_signed_octets,
    verify_enveloped,
    verify_redirect_query,
)

if TYPE_CHECKING:
    from gateway.runtime import Runtime
    from gateway.settings.models import Application, Settings

MAX_ENCODED_BYTES = 32 * 1024
"""Of the base64 ``SAMLRequest`` as it arrives, before anything is decoded."""
MAX_XML_BYTES = 64 * 1024
"""Of the decoded (and for HTTP-Redirect, inflated) XML: a deflate bomb stops here."""
MAX_FORM_BYTES = 2 * MAX_ENCODED_BYTES
CLOCK_SKEW_SECONDS = 180
MAX_AGE_SECONDS = 300
"""How old an IssueInstant may be (plus the skew): the request has just been made by the SP."""
REPLAY_KIND = "saml-request"
REPLAY_TTL = MAX_AGE_SECONDS + 2 * CLOCK_SKEW_SECONDS

MFA_CLASSES = frozenset({ACR_MULTI_FACTOR, "http://schemas.microsoft.com/claims/multipleauthn"})
ENTITY_FORMAT = "urn:oasis:names:tc:SAML:2.0:nameid-format:entity"
UNSPECIFIED_FORMAT = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"
_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,255}")
_BOOLEAN = {"true": True, "1": True, "false": False, "0": False}
_RSA_SIG_ALGS = frozenset({gate.RSA_SHA256, gate.RSA_SHA384, gate.RSA_SHA512})
_EC_SIG_ALGS = frozenset({gate.ECDSA_SHA256, gate.ECDSA_SHA384, gate.ECDSA_SHA512})
_POLICY = GatePolicy(max_bytes=MAX_XML_BYTES, max_depth=32)

P = f"{{{SAML2P}}}"
A = f"{{{SAML2}}}"


class SamlRequestError(Exception):
    """A refused SAML message: ``reason`` is a stable code, ``message`` is for the error page."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class SamlRequest:
    """A checked AuthnRequest (or an IdP-initiated sign-on): where and how to answer."""

    app_id: str
    sp_entity_id: str
    request_id: str | None
    """None only for IdP-initiated sign-on (the response then has no InResponseTo)."""
    acs_url: str
    relay_state: str | None
    force_authn: bool
    requested_mfa: bool
    """The RequestedAuthnContext asks for an MFA class (REFEDS mfa or multipleauthn)."""
    is_passive: bool = False
    """``IsPassive``: answer without any page (an SSO session), else a ``NoPassive`` error."""

    def to_json(self) -> dict[str, Any]:
        return {
            "app_id": self.app_id,
            "sp_entity_id": self.sp_entity_id,
            "request_id": self.request_id,
            "acs_url": self.acs_url,
            "relay_state": self.relay_state,
            "force_authn": self.force_authn,
            "requested_mfa": self.requested_mfa,
            "is_passive": self.is_passive,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SamlRequest:
        def text(name: str) -> str:
            value = data.get(name)
            if not isinstance(value, str):
                raise ValueError(f"SamlRequest.{name} must be a string")
            return value

        def optional(name: str) -> str | None:
            value = data.get(name)
            return None if value is None else text(name)

        return cls(
            app_id=text("app_id"),
            sp_entity_id=text("sp_entity_id"),
            request_id=optional("request_id"),
            acs_url=text("acs_url"),
            relay_state=optional("relay_state"),
            force_authn=data.get("force_authn") is True,
            requested_mfa=data.get("requested_mfa") is True,
            is_passive=data.get("is_passive") is True,
        )


def _refuse(reason: str, message: str) -> SamlRequestError:
    return SamlRequestError(reason, message)


# --- the bindings -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Inbound:
    """One SAML message as it arrived: its XML, RelayState and, for HTTP-Redirect, what was signed."""

    xml: bytes
    relay_state: str | None
    redirect_signature: tuple[bytes, str, str] | None = None
    """(signed octets, Signature, SigAlg) of an HTTP-Redirect message that carried a Signature."""
    redirect: bool = False
    """Arrived over HTTP-Redirect: only the query signature counts (Bindings 3.4.4.1 says an
    enveloped signature is removed before deflating; one left in signs neither RelayState nor the binding)."""


def _single(pairs: list[tuple[str, str]]) -> dict[str, str]:
    found: dict[str, str] = {}
    for name, value in pairs:
        if name in found:
            raise _refuse("duplicated_parameter", f"The {name} parameter is repeated.")
        found[name] = value
    return found


def _relay_state(value: str | None) -> str | None:
    if value is not None and len(value.encode("utf-8")) > MAX_RELAY_STATE_BYTES:
        raise _refuse("relay_state_too_long", f"RelayState is longer than {MAX_RELAY_STATE_BYTES} bytes.")
    return value


def _base64(value: str) -> bytes:
    if len(value) > MAX_ENCODED_BYTES:
        raise _refuse("request_too_large", "The SAML message is too large.")
    try:
        return base64.b64decode("".join(value.split()).encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise _refuse("request_malformed", "The SAML message is not valid base64.") from None


def _inflate(data: bytes) -> bytes:
    inflater = zlib.decompressobj(-15)
    try:
        xml = inflater.decompress(data, MAX_XML_BYTES + 1)
    except zlib.error:
        raise _refuse("request_malformed", "The SAML message is not valid DEFLATE data.") from None
    if len(xml) > MAX_XML_BYTES or inflater.unconsumed_tail:
        raise _refuse("request_too_large", "The SAML message is too large once inflated.")
    if not inflater.eof or inflater.unused_data:
        raise _refuse("request_malformed", "The SAML message is not valid DEFLATE data.")
    return xml


def read_redirect(raw_query: str, message: str) -> Inbound:
    """An HTTP-Redirect message (``message`` is ``SAMLRequest`` or ``SAMLResponse``) from the raw query."""
    raw: list[tuple[str, str]] = []
    for pair in raw_query.split("&"):
        if pair:
            name, _, value = pair.partition("=")
            raw.append((unquote_plus(name), value))
    params = _single(raw)
    if message not in params:
        raise _refuse("request_malformed", f"The {message} parameter is missing.")
    relay_state = _relay_state(unquote_plus(params["RelayState"]) if "RelayState" in params else None)
    xml = _inflate(_base64(unquote_plus(params[message])))
    signature = None
    if "Signature" in params or "SigAlg" in params:
        if "Signature" not in params or "SigAlg" not in params:
            raise _refuse("bad_request_signature", "Signature and SigAlg go together.")
        try:
            signature = redirect_signed_octets(raw_query, message)
        except (XmlRejected, UnicodeEncodeError):
            raise _refuse(
                "bad_request_signature", "The request signature parameters are malformed."
            ) from None
    return Inbound(xml, relay_state, signature, redirect=True)


async def _read_post(request: Request) -> Inbound:
    if request.headers.get("content-type", "").split(";", 1)[0].strip().lower() != (
        "application/x-www-form-urlencoded"
    ):
        raise _refuse("request_malformed", "The SAML message must be posted as a form.")
    length = request.headers.get("content-length")
    if length is None or not length.isdigit() or int(length) > MAX_FORM_BYTES:
        raise _refuse("request_too_large", "The SAML message is too large.")
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise _refuse("request_too_large", "The SAML message is too large.")
    try:
        pairs = parse_qsl(
            body.decode("utf-8"), keep_blank_values=True, max_num_fields=20, strict_parsing=False
        )
    except (UnicodeDecodeError, ValueError):
        raise _refuse("request_malformed", "The form is not valid.") from None
    params = _single(pairs)
    if "SAMLRequest" not in params:
        raise _refuse("request_malformed", "The SAMLRequest parameter is missing.")
    return Inbound(_base64(params["SAMLRequest"]), _relay_state(params.get("RelayState")))


def raw_query(request: Request) -> str:
    """The query string exactly as it arrived (still URL-encoded)."""
    return bytes(request.scope.get("query_string", b"")).decode("latin-1")


# --- the message ------------------------------------------------------------------------------


def parse(xml: bytes, tag: str) -> _Element:
    """The gated root, which must be a SAML 2.0 ``samlp:{tag}`` with a usable ID."""
    try:
        root = parse_inbound(xml, _POLICY)
    except XmlRejected as rejected:
        if rejected.detail == "xml_too_large":
            raise _refuse("request_too_large", "The SAML message is too large.") from None
        if rejected.detail == "xml_algorithm_not_allowed":
            raise _refuse(
                "sig_alg_mismatch", "The message is signed with an algorithm not allowed."
            ) from None
        raise _refuse("request_malformed", "The SAML message is not an acceptable XML document.") from None
    if root.tag != P + tag:
        raise _refuse("request_malformed", f"The SAML message is not a {tag}.")
    if root.get("Version") != "2.0":
        raise _refuse("request_malformed", "Only SAML 2.0 messages are accepted.")
    if not _ID.fullmatch(root.get("ID") or ""):
        raise _refuse("request_malformed", "The SAML message has no valid ID.")
    return root


def children(element: _Element, tag: str) -> list[_Element]:
    return [child for child in element if child.tag == tag]


def sender(settings: Settings, root: _Element) -> Application:
    """The application whose SP entity id is the message's Issuer (``unknown_sp`` otherwise)."""
    issuers = children(root, A + "Issuer")
    if len(issuers) != 1:
        raise _refuse("request_malformed", "The SAML message must name its Issuer once.")
    try:
        issuer = text_of(issuers[0])
    except XmlRejected:
        raise _refuse("request_malformed", "The Issuer is not plain text.") from None
    if issuers[0].get("Format") not in (None, ENTITY_FORMAT):
        raise _refuse("request_malformed", "The Issuer must be an entity id.")
    for app in settings.applications:
        if app.saml is not None and app.saml.entity_id == issuer:
            return app
    raise _refuse("unknown_sp", "The service provider that sent this request is not registered.")


def check_redirect_signature(signature: tuple[bytes, str, str], sp: SamlApplication) -> None:
    octets, value, sig_alg = signature
    certificate = sp.certificate()
    assert certificate is not None
    key = certificate.public_key()
    allowed = _RSA_SIG_ALGS if isinstance(key, rsa.RSAPublicKey) else _EC_SIG_ALGS
    if sig_alg not in allowed or not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise _refuse("sig_alg_mismatch", "SigAlg is not allowed, or does not fit the SP's certificate.")
    if not verify_redirect_query(octets, value, sig_alg, [certificate]):
        raise _refuse("bad_request_signature", "The request signature does not verify.")


def check_signature(inbound: Inbound, root: _Element, sp: SamlApplication) -> bool:
    """Verify what is signed with the SP's certificate; True when the message was verified.

    Without a configured certificate a signature cannot be checked and the message counts as
    unsigned; ``require_signed_requests`` then refuses it (configuration ensures a certificate).
    """
    certificate = sp.certificate()
    signed = False
    if certificate is not None and inbound.redirect_signature is not None:
        check_redirect_signature(inbound.redirect_signature, sp)
        signed = True
    elif certificate is not None and not inbound.redirect and is_signed(root):
        try:
            verify_enveloped(root, [certificate], policy=_POLICY)
        except XmlRejected as rejected:
            if rejected.detail in ("signature_no_key", "xml_algorithm_not_allowed"):
                raise _refuse(
                    "sig_alg_mismatch", "The signature algorithm does not fit the SP's certificate."
                ) from None
            raise _refuse("bad_request_signature", "The request signature does not verify.") from None
        signed = True
    if sp.require_signed_requests and not signed:
        raise _refuse("request_not_signed", "This service provider must sign its requests.")
    return signed


def check_header(root: _Element, *, destination: str, signed: bool, now: int) -> None:
    """``Destination`` (required when signed, Bindings 3.4.5.2 / 3.5.5.2) and a fresh IssueInstant."""
    found = root.get("Destination")
    if (found is None and signed) or (found is not None and found != destination):
        raise _refuse("destination_mismatch", f"The message's Destination must be {destination}.")
    issued = parse_instant(root.get("IssueInstant"))
    if issued is None:
        raise _refuse("request_malformed", "The message has no valid IssueInstant.")
    if issued > now + CLOCK_SKEW_SECONDS or issued < now - MAX_AGE_SECONDS - CLOCK_SKEW_SECONDS:
        raise _refuse("request_expired", "The request is too old or from the future; try again from the app.")


def _boolean(root: _Element, name: str) -> bool:
    value = root.get(name)
    if value is None:
        return False
    if value.strip() not in _BOOLEAN:
        raise _refuse("request_malformed", f"{name} is not a boolean.")
    return _BOOLEAN[value.strip()]


def _acs(root: _Element, sp: SamlApplication) -> str:
    url, index = root.get("AssertionConsumerServiceURL"), root.get("AssertionConsumerServiceIndex")
    binding = root.get("ProtocolBinding")
    if url is not None and index is not None:
        raise _refuse("request_malformed", "Give AssertionConsumerServiceURL or its index, not both.")
    if url is not None and url not in sp.acs_urls:
        raise _refuse("acs_not_registered", "The AssertionConsumerServiceURL is not registered.")
    if index is not None and (not index.isdigit() or int(index) >= len(sp.acs_urls)):
        raise _refuse("acs_not_registered", "The AssertionConsumerServiceIndex is not registered.")
    if binding is not None and binding != BINDING_POST:
        raise _refuse("unsupported_binding", "Responses are sent with the HTTP-POST binding only.")
    if url is not None:
        return str(url)
    return sp.acs_urls[int(index)] if index is not None else sp.acs_urls[0]


def _name_id_policy(root: _Element, sp: SamlApplication) -> None:
    policies = children(root, P + "NameIDPolicy")
    if len(policies) > 1:
        raise _refuse("request_malformed", "NameIDPolicy is repeated.")
    requested = policies[0].get("Format") if policies else None
    if requested not in (None, UNSPECIFIED_FORMAT, sp.name_id_format_uri):
        raise _refuse(
            "name_id_format_unsupported",
            f"This service provider is registered for NameID format {sp.name_id_format_uri}.",
        )


def _requested_mfa(root: _Element) -> bool:
    contexts = children(root, P + "RequestedAuthnContext")
    if not contexts:
        return False
    if len(contexts) > 1:
        raise _refuse("request_malformed", "RequestedAuthnContext is repeated.")
    comparison = contexts[0].get("Comparison", "exact")
    if comparison not in ("exact", "minimum", "better", "maximum"):
        raise _refuse("request_malformed", "RequestedAuthnContext has an unknown Comparison.")
    try:
        classes = {text_of(ref).strip() for ref in children(contexts[0], A + "AuthnContextClassRef")}
    except XmlRejected:
        raise _refuse("request_malformed", "An AuthnContextClassRef is not plain text.") from None
    if comparison in ("exact", "minimum"):
        return bool(classes & MFA_CLASSES)
    if comparison == "better":
        return bool(classes & (MFA_CLASSES | {ACR_SINGLE_FACTOR}))
    return False


async def read_authn_request(rt: Runtime, request: Request) -> SamlRequest:
    """The AuthnRequest of this ``/saml2/sso`` request (GET: HTTP-Redirect, POST: HTTP-POST), checked."""
    if request.method == "GET":
        inbound = read_redirect(raw_query(request), "SAMLRequest")
    elif request.method == "POST":
        inbound = await _read_post(request)
    else:
        raise _refuse("request_malformed", "Use GET (HTTP-Redirect) or POST (HTTP-POST).")
    root = parse(inbound.xml, "AuthnRequest")
    app = sender(rt.settings, root)
    sp = app.saml
    assert sp is not None
    signed = check_signature(inbound, root, sp)
    now = rt.now()
    check_header(root, destination=sso_url(rt.settings), signed=signed, now=now)
    acs_url = _acs(root, sp)
    _name_id_policy(root, sp)
    if children(root, A + "Subject"):
        raise _refuse("subject_not_supported", "Requests naming a Subject are not supported.")
    saml = SamlRequest(
        app_id=app.id,
        sp_entity_id=sp.entity_id,
        request_id=str(root.get("ID")),
        acs_url=acs_url,
        relay_state=inbound.relay_state,
        force_authn=_boolean(root, "ForceAuthn"),
        requested_mfa=_requested_mfa(root),
        is_passive=_boolean(root, "IsPassive"),
    )
    if not await rt.store.add(REPLAY_KIND, f"{app.id}:{saml.request_id}", {}, REPLAY_TTL):
        raise _refuse("request_replayed", "This request was already used; start again from the app.")
    return saml


def idp_initiated(rt: Runtime, app_id: str) -> SamlRequest:
    """IdP-initiated sign-on to ``app_id`` (``/saml2/sso?app=<id>``): its default ACS and fixed target."""
    app = rt.settings.application(app_id)
    if app is None or app.saml is None:
        raise _refuse("unknown_sp", "There is no SAML application with this id.")
    if not app.saml.idp_initiated.enabled:
        raise _refuse("idp_initiated_disabled", "This application does not accept sign-on started here.")
    return SamlRequest(
        app_id=app.id,
        sp_entity_id=app.saml.entity_id,
        request_id=None,
        acs_url=app.saml.acs_urls[0],
        relay_state=app.saml.idp_initiated.target,
        force_authn=False,
        requested_mfa=False,
    )
