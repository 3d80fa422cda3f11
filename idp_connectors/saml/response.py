"""The ACS answer: ``SAMLResponse`` decoded, the Response checked, the assertion decrypted and verified.

The order (saml-wsfed-security.md §1, §6, §7; ADR 0006):

1. ``decode_saml_response``: the base64 text capped at ``MAX_BASE64_CHARS`` before decoding,
   strict alphabet and padding (line breaks tolerated).
2. ``xmlsecurity.gate.parse_inbound`` (by the caller): the one parse whose tree is consumed.
3. ``check_response``: a SAML 2.0 ``samlp:Response``; Status Success (else ``upstream_status``
   with the StatusCode); Issuer, when present (required if the Response is signed or the
   assertion encrypted), the IdP; ``InResponseTo`` our pending request; ``Destination`` our ACS
   exactly (required when the Response is signed); exactly one ``Assertion`` or
   ``EncryptedAssertion`` in the whole document, and it is a direct child of the Response.
4. ``verified_assertion``: a signed Response is verified first (before any decryption); an
   encrypted assertion is decrypted with the SP key (one generic error for any failure); then
   the assertion's own signature is verified when it has one. With ``want_assertions_signed``
   an unsigned assertion is refused; otherwise it is accepted only as the direct child of the
   verified Response. The element returned is the one the verifier covered, and the caller
   reads the identity from it alone (``assertion.check_assertion``).

Keys come only from the IdP's metadata; ``KeyInfo`` in the message is never used.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml.etree import _Element

from idp_connectors.base import ConnectorError
from idp_connectors.oidc.fetch import sanitise
from idp_connectors.saml.assertion import ASSERTION, ISSUER, Expected, issuer_matches, same
from idp_connectors.xmlsecurity.encryption import decrypt_assertion
from idp_connectors.xmlsecurity.gate import SAML2, SAML2P, XmlRejected, assertions_of
from idp_connectors.xmlsecurity.signature import is_signed, verify_enveloped

MAX_BASE64_CHARS = 256 * 1024
SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
RESPONSE = f"{{{SAML2P}}}Response"
ENCRYPTED_ASSERTION = f"{{{SAML2}}}EncryptedAssertion"
_STATUS_CODE = f"{{{SAML2P}}}Status/{{{SAML2P}}}StatusCode"
_NESTED_STATUS_CODE = f"{{{SAML2P}}}StatusCode"
_LINE_BREAKS = re.compile(r"[\r\n\t ]+")
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")


def decode_saml_response(value: str | None) -> bytes:
    """The XML carried by the ``SAMLResponse`` form field (HTTP-POST binding, Bindings 3.5.4)."""
    if not value:
        raise ConnectorError("the answer carries no SAMLResponse", code="saml_response_missing")
    if len(value) > MAX_BASE64_CHARS:
        raise ConnectorError("the SAMLResponse is too large", code="saml_response_invalid")
    compact = _LINE_BREAKS.sub("", value)
    if len(compact) % 4 or not _BASE64.fullmatch(compact):
        raise ConnectorError("the SAMLResponse is not base64", code="saml_response_invalid")
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise ConnectorError("the SAMLResponse is not base64", code="saml_response_invalid") from None


def _status(root: _Element) -> None:
    code = root.find(_STATUS_CODE)
    if code is None:
        raise ConnectorError("the SAML Response has no Status", code="response_invalid")
    value = code.get("Value") or ""
    if value == SUCCESS:
        return
    nested = code.find(_NESTED_STATUS_CODE)
    detail = sanitise(value.rsplit(":", 1)[-1], 64) or "unknown"
    if nested is not None:
        detail += "/" + (sanitise((nested.get("Value") or "").rsplit(":", 1)[-1], 64) or "unknown")
    raise ConnectorError(
        f"the identity provider refused the sign-in (status {detail})", code="upstream_status"
    )


def check_response(root: _Element, expected: Expected) -> _Element:
    """The Response-level checks; returns the one ``Assertion``/``EncryptedAssertion`` child."""
    if root.tag != RESPONSE or root.get("Version") != "2.0" or not root.get("ID"):
        raise ConnectorError("the answer is not a SAML 2.0 Response", code="response_invalid")
    _status(root)
    found = assertions_of(root)
    if (
        len(found) != 1
        or found[0].getparent() is not root
        or found[0].tag not in (ASSERTION, ENCRYPTED_ASSERTION)
    ):
        raise XmlRejected("xml_assertion_count")
    child = found[0]
    signed = is_signed(root)
    issuers = root.findall(ISSUER)
    if len(issuers) > 1:
        raise ConnectorError("the SAML Response has several Issuers", code="response_invalid")
    if issuers and not issuer_matches(issuers[0], expected):
        raise ConnectorError("the answer was issued by another identity provider", code="issuer_mismatch")
    if not issuers and (signed or child.tag == ENCRYPTED_ASSERTION):
        raise ConnectorError("the signed or encrypted SAML Response names no Issuer", code="issuer_missing")
    in_response_to = root.get("InResponseTo")
    if in_response_to is None:
        raise ConnectorError(
            "unsolicited answers (without InResponseTo) are not accepted; start again from the application",
            code="unsolicited_response",
        )
    if not same(in_response_to, expected.request_id):
        raise ConnectorError("the answer belongs to another sign-in request", code="in_response_to_mismatch")
    destination = root.get("Destination")
    if destination is None and signed:
        raise ConnectorError("the signed SAML Response names no Destination", code="destination_missing")
    if destination is not None and not same(destination, expected.acs_url):
        raise ConnectorError(
            "the answer was sent to another address (Destination)", code="destination_mismatch"
        )
    return child


def verified_assertion(
    root: _Element,
    child: _Element,
    certificates: Sequence[x509.Certificate],
    expected: Expected,
    sp_key: rsa.RSAPrivateKey | None,
) -> _Element:
    """The assertion that a metadata certificate's signature covers (decrypted when encrypted)."""
    policy = expected.policy
    response_verified = False
    if is_signed(root):
        verified_root = verify_enveloped(root, certificates, policy=policy)
        direct = [element for element in verified_root if element.tag in (ASSERTION, ENCRYPTED_ASSERTION)]
        if direct != [child]:
            raise XmlRejected("xml_assertion_count")
        response_verified = True
    if child.tag == ENCRYPTED_ASSERTION:
        if sp_key is None:
            raise ConnectorError(
                "the identity provider encrypted the assertion but no SP key is configured",
                code="encryption_not_configured",
            )
        assertion = decrypt_assertion(child, sp_key, policy=policy)
        if assertion.tag != ASSERTION:
            raise XmlRejected("decryption_failed")
    else:
        assertion = child
    if is_signed(assertion):
        return verify_enveloped(assertion, certificates, policy=policy)
    if expected.want_assertions_signed:
        raise ConnectorError("the identity provider did not sign the assertion", code="assertion_not_signed")
    if not response_verified:
        raise ConnectorError(
            "the identity provider signed neither the Response nor the assertion", code="not_signed"
        )
    return assertion
