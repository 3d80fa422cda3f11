"""Reading a WS-Federation sign-in result: the RSTR envelope, then the one SAML token inside it.

``open_envelope`` runs on the gated tree before any cryptography. It finds the
``RequestSecurityTokenResponse`` (WS-Trust February 2005 or 1.3, bare or as the single member
of a ``...Collection``), requires exactly one SAML assertion in the whole document and that it
is the only child of the RSTR's ``RequestedSecurityToken``, and reads ``wsp:AppliesTo``. Nothing
else in the envelope is read (it is unsigned).

``read_token`` reads a SAML 1.1 or SAML 2.0 assertion into a ``Token``; the connector calls it
with the element ``verify_enveloped`` returned, and only with that. Only that element's own
children are read (never a lookup elsewhere in the document), and every leaf value through
``text_of``, so a comment-split or element-stuffed value is never read short.

Refusals raise ``ConnectorError`` with the codes ``rstr_invalid``, ``token_unsupported``,
``applies_to_mismatch`` (several or empty ``AppliesTo``) and ``assertion_invalid``, or
``XmlRejected`` (``xml_assertion_count``, ``xml_text_has_children``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from lxml import etree
from lxml.etree import _Element

from idp_connectors.base import ConnectorError
from idp_connectors.xmlsecurity.gate import SAML1, SAML2, XmlRejected, assertions_of, text_of

TRUST_NAMESPACES = (
    "http://schemas.xmlsoap.org/ws/2005/02/trust",
    "http://docs.oasis-open.org/ws-sx/ws-trust/200512",
)
POLICY_NAMESPACES = ("http://schemas.xmlsoap.org/ws/2004/09/policy", "http://www.w3.org/ns/ws-policy")
ADDRESSING_NAMESPACES = (
    "http://www.w3.org/2005/08/addressing",
    "http://schemas.xmlsoap.org/ws/2004/08/addressing",
)

SamlVersion = Literal["1.1", "2.0"]


def _tags(namespaces: Iterable[str], local: str) -> frozenset[str]:
    return frozenset(f"{{{namespace}}}{local}" for namespace in namespaces)


_RSTR = _tags(TRUST_NAMESPACES, "RequestSecurityTokenResponse")
_RSTR_COLLECTION = _tags(TRUST_NAMESPACES[1:], "RequestSecurityTokenResponseCollection")
_APPLIES_TO = _tags(POLICY_NAMESPACES, "AppliesTo")
_ENDPOINT_REFERENCE = _tags(ADDRESSING_NAMESPACES, "EndpointReference")
_ADDRESS = _tags(ADDRESSING_NAMESPACES, "Address")


def _q(namespace: str, local: str) -> str:
    return f"{{{namespace}}}{local}"


def _children(element: _Element, tags: Iterable[str] | None = None) -> list[_Element]:
    wanted = None if tags is None else frozenset(tags)
    return [
        child for child in element if isinstance(child.tag, str) and (wanted is None or child.tag in wanted)
    ]


def _invalid(message: str) -> ConnectorError:
    return ConnectorError(f"the token {message}", code="assertion_invalid")


@dataclass(frozen=True, slots=True)
class Envelope:
    """The RSTR's single (still unverified) assertion and what the envelope says it applies to."""

    assertion: _Element
    saml_version: SamlVersion
    applies_to: str | None
    """The ``wsp:AppliesTo`` endpoint address; None when the RSTR has no AppliesTo."""

    @property
    def id_attribute(self) -> str:
        """The attribute that holds the assertion's ID (what its signature's Reference names)."""
        return "AssertionID" if self.saml_version == "1.1" else "ID"


def _rstr(root: _Element) -> _Element:
    if root.tag in _RSTR:
        return root
    if root.tag in _RSTR_COLLECTION:
        members = _children(root)
        member = _q(str(etree.QName(root).namespace), "RequestSecurityTokenResponse")
        if len(members) == 1 and members[0].tag == member:
            return members[0]
    raise ConnectorError(
        "the sign-in result is not one WS-Trust RequestSecurityTokenResponse", code="rstr_invalid"
    )


def _applies_to(rstr: _Element) -> str | None:
    applies = _children(rstr, _APPLIES_TO)
    if not applies:
        return None
    mismatch = ConnectorError(
        "the sign-in result's AppliesTo does not name one address", code="applies_to_mismatch"
    )
    if len(applies) != 1:
        raise mismatch
    references = _children(applies[0], _ENDPOINT_REFERENCE)
    addresses = _children(references[0], _ADDRESS) if len(references) == 1 else []
    if len(addresses) != 1:
        raise mismatch
    address = text_of(addresses[0]).strip()
    if not address:
        raise mismatch
    return address


def open_envelope(root: _Element) -> Envelope:
    """The RSTR's one assertion (unverified) and its AppliesTo; refuses any other shape."""
    rstr = _rstr(root)
    namespace = str(etree.QName(rstr).namespace)
    holders = _children(rstr, [_q(namespace, "RequestedSecurityToken")])
    if len(holders) != 1:
        raise ConnectorError("the sign-in result has no single RequestedSecurityToken", code="rstr_invalid")
    inside = _children(holders[0])
    everywhere = assertions_of(root)
    if len(inside) == 1 and not everywhere:
        raise ConnectorError(
            "the sign-in result carries a token that is not a SAML assertion (an encrypted token?)",
            code="token_unsupported",
        )
    if len(everywhere) != 1 or len(inside) != 1 or inside[0] is not everywhere[0]:
        raise XmlRejected("xml_assertion_count")
    assertion = inside[0]
    if assertion.tag == _q(SAML1, "Assertion"):
        version: SamlVersion = "1.1"
    elif assertion.tag == _q(SAML2, "Assertion"):
        version = "2.0"
    else:  # a SAML 2.0 EncryptedAssertion: we publish no encryption key
        raise ConnectorError(
            "the sign-in result carries an encrypted assertion, which this connector does not accept",
            code="token_unsupported",
        )
    return Envelope(assertion=assertion, saml_version=version, applies_to=_applies_to(rstr))


# -- the token ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NameId:
    value: str
    format: str | None


@dataclass(frozen=True, slots=True)
class Confirmation:
    method: str
    not_before: float | None = None
    not_on_or_after: float | None = None
    recipient: str | None = None


@dataclass(frozen=True, slots=True)
class Token:
    """What a verified assertion says, read from that element only."""

    saml_version: SamlVersion
    assertion_id: str
    issuer: str
    not_before: float | None
    not_on_or_after: float | None
    has_conditions: bool
    audience_restrictions: tuple[tuple[str, ...], ...]
    """One tuple of audiences per restriction element; each restriction must name us."""
    unknown_conditions: tuple[str, ...]
    authn_statements: int
    authn_instant: float | None
    authn_method: str | None
    name_ids: tuple[NameId, ...]
    """The subject of each statement (SAML 1.1 statements each carry one; SAML 2.0 has one)."""
    confirmations: tuple[Confirmation, ...]
    attributes: dict[str, tuple[str, ...]] = field(default_factory=dict)


def instant(value: str | None, what: str) -> float | None:
    """An ``xs:dateTime`` as POSIX seconds (UTC when no offset is given); None when absent."""
    if value is None:
        return None
    text = value.strip()
    try:
        if len(text) < 19 or text[10] != "T":
            raise ValueError(text)
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise _invalid(f"has an invalid {what} ({value[:40]!r})") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _attribute(element: _Element, name: str) -> str | None:
    value = element.get(name)
    return None if value is None else str(value)


def _at_most_one(parent: _Element, tag: str, what: str) -> _Element | None:
    found = _children(parent, [tag])
    if len(found) > 1:
        raise _invalid(f"has more than one {what}")
    return found[0] if found else None


def _conditions(
    conditions: _Element | None, ns: str, restriction: str, known: frozenset[str]
) -> tuple[float | None, float | None, tuple[tuple[str, ...], ...], tuple[str, ...]]:
    if conditions is None:
        return None, None, (), ()
    not_before = instant(_attribute(conditions, "NotBefore"), "Conditions NotBefore")
    not_on_or_after = instant(_attribute(conditions, "NotOnOrAfter"), "Conditions NotOnOrAfter")
    restrictions: list[tuple[str, ...]] = []
    unknown: list[str] = []
    for condition in _children(conditions):
        if condition.tag == _q(ns, restriction):
            audiences = tuple(text_of(a).strip() for a in _children(condition, [_q(ns, "Audience")]))
            restrictions.append(audiences)
        elif condition.tag not in known:
            unknown.append(str(etree.QName(condition).localname))
    return not_before, not_on_or_after, tuple(restrictions), tuple(unknown)


def _add_attribute(attributes: dict[str, tuple[str, ...]], name: str, attribute: _Element, ns: str) -> None:
    values = tuple(text_of(value) for value in _children(attribute, [_q(ns, "AttributeValue")]))
    attributes[name] = attributes.get(name, ()) + values


def _read_saml11(assertion: _Element) -> Token:
    ns = SAML1
    if (_attribute(assertion, "MajorVersion"), _attribute(assertion, "MinorVersion")) != ("1", "1"):
        raise _invalid("is not a SAML 1.1 assertion (MajorVersion 1, MinorVersion 1)")
    assertion_id = _attribute(assertion, "AssertionID") or ""
    instant(_attribute(assertion, "IssueInstant"), "IssueInstant")
    conditions = _at_most_one(assertion, _q(ns, "Conditions"), "Conditions")
    not_before, not_on_or_after, restrictions, unknown = _conditions(
        conditions,
        ns,
        "AudienceRestrictionCondition",
        frozenset({_q(ns, "DoNotCacheCondition")}),
    )
    name_ids: list[NameId] = []
    confirmations: list[Confirmation] = []
    attributes: dict[str, tuple[str, ...]] = {}
    authn = _children(assertion, [_q(ns, "AuthenticationStatement")])
    for statement in _children(assertion, [_q(ns, "AuthenticationStatement"), _q(ns, "AttributeStatement")]):
        subject = _at_most_one(statement, _q(ns, "Subject"), "Subject in a statement")
        if subject is None:
            raise _invalid("has a statement without a Subject")
        identifier = _at_most_one(subject, _q(ns, "NameIdentifier"), "NameIdentifier")
        if identifier is not None:
            name_ids.append(NameId(text_of(identifier), _attribute(identifier, "Format")))
        for confirmation in _children(subject, [_q(ns, "SubjectConfirmation")]):
            for method in _children(confirmation, [_q(ns, "ConfirmationMethod")]):
                confirmations.append(Confirmation(method=text_of(method).strip()))
        for attribute in _children(statement, [_q(ns, "Attribute")]):
            namespace = _attribute(attribute, "AttributeNamespace")
            local = _attribute(attribute, "AttributeName")
            if not local:
                raise _invalid("has an Attribute without an AttributeName")
            _add_attribute(attributes, f"{namespace}/{local}" if namespace else local, attribute, ns)
    first = authn[0] if authn else None
    return Token(
        saml_version="1.1",
        assertion_id=assertion_id,
        issuer=_attribute(assertion, "Issuer") or "",
        not_before=not_before,
        not_on_or_after=not_on_or_after,
        has_conditions=conditions is not None,
        audience_restrictions=restrictions,
        unknown_conditions=unknown,
        authn_statements=len(authn),
        authn_instant=None
        if first is None
        else instant(_attribute(first, "AuthenticationInstant"), "AuthenticationInstant"),
        authn_method=None if first is None else _attribute(first, "AuthenticationMethod"),
        name_ids=tuple(name_ids),
        confirmations=tuple(confirmations),
        attributes=attributes,
    )


def _confirmation20(confirmation: _Element) -> Confirmation:
    data = _at_most_one(confirmation, _q(SAML2, "SubjectConfirmationData"), "SubjectConfirmationData")
    method = _attribute(confirmation, "Method") or ""
    if data is None:
        return Confirmation(method=method)
    return Confirmation(
        method=method,
        not_before=instant(_attribute(data, "NotBefore"), "SubjectConfirmationData NotBefore"),
        not_on_or_after=instant(_attribute(data, "NotOnOrAfter"), "SubjectConfirmationData NotOnOrAfter"),
        recipient=_attribute(data, "Recipient"),
    )


def _read_saml20(assertion: _Element) -> Token:
    ns = SAML2
    if _attribute(assertion, "Version") != "2.0":
        raise _invalid("is not a SAML 2.0 assertion (Version 2.0)")
    instant(_attribute(assertion, "IssueInstant"), "IssueInstant")
    issuers = _children(assertion, [_q(ns, "Issuer")])
    if len(issuers) != 1:
        raise _invalid("does not have exactly one Issuer")
    conditions = _at_most_one(assertion, _q(ns, "Conditions"), "Conditions")
    not_before, not_on_or_after, restrictions, unknown = _conditions(
        conditions,
        ns,
        "AudienceRestriction",
        frozenset({_q(ns, "OneTimeUse"), _q(ns, "ProxyRestriction")}),
    )
    name_ids: list[NameId] = []
    confirmations: list[Confirmation] = []
    subject = _at_most_one(assertion, _q(ns, "Subject"), "Subject")
    if subject is not None:
        name_id = _at_most_one(subject, _q(ns, "NameID"), "NameID")
        if name_id is not None:
            name_ids.append(NameId(text_of(name_id), _attribute(name_id, "Format")))
        confirmations = [_confirmation20(c) for c in _children(subject, [_q(ns, "SubjectConfirmation")])]
    attributes: dict[str, tuple[str, ...]] = {}
    for statement in _children(assertion, [_q(ns, "AttributeStatement")]):
        for attribute in _children(statement, [_q(ns, "Attribute")]):
            name = _attribute(attribute, "Name")
            if not name:
                raise _invalid("has an Attribute without a Name")
            _add_attribute(attributes, name, attribute, ns)
    authn = _children(assertion, [_q(ns, "AuthnStatement")])
    method = None
    if authn:
        context = _at_most_one(authn[0], _q(ns, "AuthnContext"), "AuthnContext")
        refs = [] if context is None else _children(context, [_q(ns, "AuthnContextClassRef")])
        method = text_of(refs[0]).strip() if len(refs) == 1 else None
    return Token(
        saml_version="2.0",
        assertion_id=_attribute(assertion, "ID") or "",
        issuer=text_of(issuers[0]),
        not_before=not_before,
        not_on_or_after=not_on_or_after,
        has_conditions=conditions is not None,
        audience_restrictions=restrictions,
        unknown_conditions=unknown,
        authn_statements=len(authn),
        authn_instant=instant(_attribute(authn[0], "AuthnInstant"), "AuthnInstant") if authn else None,
        authn_method=method,
        name_ids=tuple(name_ids),
        confirmations=tuple(confirmations),
        attributes=attributes,
    )


def read_token(verified: _Element, saml_version: SamlVersion) -> Token:
    """Everything the connector checks and maps, from the verified assertion element only."""
    token = _read_saml11(verified) if saml_version == "1.1" else _read_saml20(verified)
    if not token.assertion_id:
        raise _invalid("has no assertion ID")
    return token
