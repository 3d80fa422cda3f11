"""The AuthnRequest and its HTTP-Redirect URL (SAML Core 3.4.1, Bindings 3.4).

The request is built with pysaml2's schema classes (``saml2.samlp.AuthnRequest``): a fresh ID
of 160 random bits that starts with an underscore, ``Destination`` = the IdP's HTTP-Redirect
SSO URL, ``AssertionConsumerServiceURL`` = our callback with ``ProtocolBinding`` HTTP-POST, a
persistent ``NameIDPolicy`` (``AllowCreate``), ``ForceAuthn`` when the gateway asks for a fresh
login and a ``RequestedAuthnContext`` (``Comparison="exact"``) carrying ``acr_values``, which is
how the gateway asks a trusted partner for MFA. On the wire it is raw DEFLATE + base64 in
``SAMLRequest``, with ``RelayState``; when signing, ``SigAlg`` (RSA-SHA256) and ``Signature``
over ``SAMLRequest=…&RelayState=…&SigAlg=…`` exactly as they appear in the URL.
"""

from __future__ import annotations

import base64
import logging
import re
import secrets
import zlib
from urllib.parse import quote_plus, urlencode, urlsplit

from cryptography.hazmat.primitives.asymmetric import rsa
from saml2 import BINDING_HTTP_POST, VERSION, saml, samlp

from idp_connectors.saml.xmltime import format_instant
from idp_connectors.xmlsecurity.gate import RSA_SHA256
from idp_connectors.xmlsecurity.signature import sign_redirect_query

NAMEID_FORMAT_PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
MAX_ACR_VALUES = 10
_ACR_VALUE = re.compile(r"[^\s\x00-\x1f\x7f]{1,1024}")

log = logging.getLogger("idp_connectors.saml")


def new_request_id() -> str:
    """An ID with 160 random bits that is a valid ``xs:ID`` (starts with an underscore)."""
    return "_" + secrets.token_hex(20)


def authn_request_xml(
    *,
    request_id: str,
    issued_at: float,
    destination: str,
    acs_url: str,
    sp_entity_id: str,
    force_authn: bool,
    acr_values: tuple[str, ...],
) -> bytes:
    """The AuthnRequest document (UTF-8)."""
    classes = [value for value in acr_values if _ACR_VALUE.fullmatch(value)][:MAX_ACR_VALUES]
    if len(classes) != len(acr_values):
        log.warning(
            "SAML AuthnRequest: %d acr_values not sent (not URIs, or too many)",
            len(acr_values) - len(classes),
        )
    request = samlp.AuthnRequest(
        id=request_id,
        version=VERSION,
        issue_instant=format_instant(issued_at),
        destination=destination,
        assertion_consumer_service_url=acs_url,
        protocol_binding=BINDING_HTTP_POST,
        issuer=saml.Issuer(text=sp_entity_id),
        name_id_policy=samlp.NameIDPolicy(format=NAMEID_FORMAT_PERSISTENT, allow_create="true"),
        force_authn="true" if force_authn else None,
        requested_authn_context=(
            samlp.RequestedAuthnContext(
                authn_context_class_ref=[saml.AuthnContextClassRef(text=value) for value in classes],
                comparison="exact",
            )
            if classes
            else None
        ),
    )
    xml = request.to_string()
    return xml if isinstance(xml, bytes) else str(xml).encode("utf-8")


def deflate_base64(xml: bytes) -> str:
    """Raw DEFLATE (RFC 1951, no zlib header) then base64, as the HTTP-Redirect binding wants."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return base64.b64encode(compressor.compress(xml) + compressor.flush()).decode("ascii")


def redirect_url(sso_url: str, xml: bytes, relay_state: str, signing_key: rsa.RSAPrivateKey | None) -> str:
    """``sso_url`` carrying the request (and its signature when ``signing_key`` is given)."""
    params = [("SAMLRequest", deflate_base64(xml)), ("RelayState", relay_state)]
    if signing_key is not None:
        params.append(("SigAlg", RSA_SHA256))
    query = urlencode(params, quote_via=quote_plus)
    if signing_key is not None:
        query += "&Signature=" + quote_plus(sign_redirect_query(query, signing_key))
    if urlsplit(sso_url).query:
        return f"{sso_url.rstrip('&')}&{query}"
    return f"{sso_url.rstrip('?')}?{query}"
