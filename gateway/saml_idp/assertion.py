"""Building the SAML Response and its Assertion with lxml, then signing and encrypting them.

Pure functions of their inputs (no store, no clock): ``attribute_values`` resolves the release
list, ``build_response`` makes the ``samlp:Response`` with its Status, ``add_assertion`` the one
Assertion (NameID, bearer SubjectConfirmation with Recipient = the ACS, InResponseTo and a
five-minute NotOnOrAfter; Conditions with the SP's Audience; the AuthnStatement with the sign-in's
time, session and class; the AttributeStatement), and ``seal`` signs (RSA-SHA256, exc-c14n, one
Reference, ``idp_connectors.xmlsecurity.signature.sign_enveloped``) and encrypts
(``encrypt_assertion``: AES-256-GCM, RSA-OAEP) before serialising.

Every value is set as element text or an attribute through lxml, so markup in an upstream value
is escaped, never parsed; a value with a control character (C0, DEL, C1), a lone surrogate or a
non-character is refused with ``ReleaseRefused``, never silently changed. IDs carry 160 random
bits after an underscore.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree
from lxml.etree import _Element

from gateway.settings.saml_app import ReleasedAttribute
from idp_connectors.saml.xmltime import format_instant
from idp_connectors.xmlsecurity.encryption import encrypt_assertion
from idp_connectors.xmlsecurity.gate import SAML2, SAML2P
from idp_connectors.xmlsecurity.signature import sign_enveloped

ASSERTION_SECONDS = 300
"""SubjectConfirmationData and Conditions NotOnOrAfter: about five minutes (the SP consumes it once)."""
BEARER = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
STATUS = "urn:oasis:names:tc:SAML:2.0:status:"
TOP_LEVEL = frozenset({"Success", "Requester", "Responder", "VersionMismatch"})
REQUESTER_CODES = frozenset(
    {
        "InvalidAttrNameOrValue",
        "InvalidNameIDPolicy",
        "RequestUnsupported",
        "RequestVersionDeprecated",
        "RequestVersionTooHigh",
        "RequestVersionTooLow",
        "ResourceNotRecognized",
        "UnknownAttrProfile",
        "UnsupportedBinding",
    }
)
RESPONDER_CODES = frozenset(
    {
        "AuthnFailed",
        "NoAuthnContext",
        "NoAvailableIDP",
        "NoPassive",
        "NoSupportedIDP",
        "PartialLogout",
        "ProxyCountExceeded",
        "RequestDenied",
        "TooManyResponses",
        "UnknownPrincipal",
    }
)
_REFUSED = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff]")
Sign = Literal["assertion", "response", "both"]

P = f"{{{SAML2P}}}"
A = f"{{{SAML2}}}"


class ReleaseRefused(ValueError):
    """A value that cannot go into an assertion (a control character, a missing NameID source)."""


@dataclass(frozen=True)
class NameId:
    value: str
    format: str
    name_qualifier: str | None = None
    sp_name_qualifier: str | None = None


def new_id() -> str:
    """An ``xs:ID`` with 160 random bits: an underscore, then 40 hex digits."""
    return "_" + secrets.token_hex(20)


def clean(value: str, what: str) -> str:
    """``value`` unchanged, or ``ReleaseRefused`` when it holds a character XML must not carry."""
    if _REFUSED.search(value):
        raise ReleaseRefused(f"{what} contains a control character and cannot be released")
    return value


def status_codes(status: str) -> tuple[str, str | None]:
    """(top-level, second-level) StatusCode values for a name like ``RequestDenied`` or its URN."""
    name = status.removeprefix(STATUS)
    if name in TOP_LEVEL:
        return STATUS + name, None
    if name in REQUESTER_CODES:
        return STATUS + "Requester", STATUS + name
    if name in RESPONDER_CODES:
        return STATUS + "Responder", STATUS + name
    raise ValueError(f"{status!r} is not a SAML 2.0 status code")


def _text(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, bool):
        return ["true" if value else "false"]
    if isinstance(value, str | int):
        return [str(value)] if str(value) != "" else []
    if isinstance(value, list | tuple):
        return [text for entry in value if isinstance(entry, str | int) for text in _text(entry)]
    return []


def attribute_values(
    source: str,
    *,
    user: Mapping[str, Any],
    tenant_id: str,
    groups: Sequence[str] | None,
    roles: Sequence[str] | None,
    amr: Sequence[str],
    auth_claims: Mapping[str, Any],
) -> list[str]:
    """The values ``source`` has for this user and sign-in (``[]``: the attribute is left out)."""
    if source == "id":
        return _text(user.get("id"))
    if source == "tenantId":
        return [tenant_id]
    if source == "groups":
        return list(groups or [])
    if source == "roles":
        return list(roles or [])
    if source == "amr":
        return list(amr)
    if source in ("mfa_source", "device_compliant", "device_hybrid_joined"):
        return _text(auth_claims.get(source))
    return _text(user.get(source))


def build_response(
    *,
    issuer: str,
    destination: str,
    in_response_to: str | None,
    now: int,
    status: str = "Success",
    message: str | None = None,
) -> _Element:
    """A ``samlp:Response`` with its Issuer and Status (an Assertion is added by ``add_assertion``)."""
    response = etree.Element(P + "Response", nsmap={"samlp": SAML2P, "saml": SAML2})
    response.set("ID", new_id())
    response.set("Version", "2.0")
    response.set("IssueInstant", format_instant(now))
    response.set("Destination", destination)
    if in_response_to is not None:
        response.set("InResponseTo", in_response_to)
    etree.SubElement(response, A + "Issuer").text = issuer
    add_status(response, status, message)
    return response


def add_status(parent: _Element, status: str, message: str | None) -> None:
    top, second = status_codes(status)
    element = etree.SubElement(parent, P + "Status")
    code = etree.SubElement(element, P + "StatusCode", Value=top)
    if second is not None:
        etree.SubElement(code, P + "StatusCode", Value=second)
    if message:
        etree.SubElement(element, P + "StatusMessage").text = clean(message, "the status message")


def add_assertion(
    response: _Element,
    *,
    issuer: str,
    sp_entity_id: str,
    acs_url: str,
    in_response_to: str | None,
    name_id: NameId,
    now: int,
    authn_instant: int,
    session_index: str,
    acr: str,
    attributes: Sequence[tuple[ReleasedAttribute, Sequence[str]]],
) -> _Element:
    """Append the Assertion to ``response`` and return it."""
    expires = format_instant(now + ASSERTION_SECONDS)
    assertion = etree.SubElement(response, A + "Assertion")
    assertion.set("ID", new_id())
    assertion.set("Version", "2.0")
    assertion.set("IssueInstant", format_instant(now))
    etree.SubElement(assertion, A + "Issuer").text = issuer

    subject = etree.SubElement(assertion, A + "Subject")
    name = etree.SubElement(subject, A + "NameID", Format=name_id.format)
    if name_id.name_qualifier is not None:
        name.set("NameQualifier", name_id.name_qualifier)
    if name_id.sp_name_qualifier is not None:
        name.set("SPNameQualifier", name_id.sp_name_qualifier)
    name.text = clean(name_id.value, "the NameID")
    confirmation = etree.SubElement(subject, A + "SubjectConfirmation", Method=BEARER)
    data = etree.SubElement(
        confirmation, A + "SubjectConfirmationData", NotOnOrAfter=expires, Recipient=acs_url
    )
    if in_response_to is not None:
        data.set("InResponseTo", in_response_to)

    conditions = etree.SubElement(
        assertion, A + "Conditions", NotBefore=format_instant(now), NotOnOrAfter=expires
    )
    restriction = etree.SubElement(conditions, A + "AudienceRestriction")
    etree.SubElement(restriction, A + "Audience").text = sp_entity_id

    statement = etree.SubElement(
        assertion,
        A + "AuthnStatement",
        AuthnInstant=format_instant(authn_instant),
        SessionIndex=session_index,
    )
    context = etree.SubElement(statement, A + "AuthnContext")
    etree.SubElement(context, A + "AuthnContextClassRef").text = acr

    released = [(attribute, values) for attribute, values in attributes if values]
    if released:
        attribute_statement = etree.SubElement(assertion, A + "AttributeStatement")
        for attribute, values in released:
            element = etree.SubElement(
                attribute_statement,
                A + "Attribute",
                Name=attribute.name,
                NameFormat=attribute.name_format_uri,
            )
            for value in values:
                etree.SubElement(element, A + "AttributeValue").text = clean(
                    value, f"the value of attribute {attribute.name}"
                )
    return assertion


def seal(
    response: _Element,
    *,
    sign: Sign,
    key: rsa.RSAPrivateKey,
    certificate: x509.Certificate,
    encrypt_for: x509.Certificate | None,
) -> bytes:
    """Sign (and encrypt) in place as configured and serialise. CPU-bound: run it in a thread.

    The assertion is signed first, then encrypted, then the Response is signed (so a Response
    signature covers the EncryptedAssertion). A Response without an assertion (an error) is
    always signed.
    """
    assertions = [child for child in response if child.tag == A + "Assertion"]
    for assertion in assertions:
        if sign in ("assertion", "both"):
            sign_enveloped(assertion, key, certificate)
        if encrypt_for is not None:
            response.replace(assertion, encrypt_assertion(assertion, encrypt_for))
    if sign in ("response", "both") or not assertions:
        sign_enveloped(response, key, certificate)
    return bytes(etree.tostring(response, xml_declaration=True, encoding="UTF-8"))
