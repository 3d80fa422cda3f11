"""The checks on a VERIFIED assertion (SAML Profiles 4.1.4.2-4.1.4.3, saml-wsfed-security.md §6).

``check_assertion`` takes the element that ``verify_enveloped`` returned (or that sits directly
under the verified Response) and reads everything from it alone, never from the rest of the
document: Issuer, a bearer ``SubjectConfirmation`` (Recipient = our ACS, NotOnOrAfter in the
future, InResponseTo = our request, no NotBefore), ``Conditions`` (NotBefore / NotOnOrAfter
with the configured skew, every ``AudienceRestriction`` naming our SP entityID, no condition
we do not understand), an ``AuthnStatement`` (AuthnInstant, SessionNotOnOrAfter,
AuthnContextClassRef), a persistent ``NameID`` and the attributes. Text is read with
``gate.text_of``, which refuses any element with children, so a value split by an injected
comment or element is never read short; attribute values with element content are skipped.
"""

from __future__ import annotations

import hmac
import math
from dataclasses import dataclass, field

from lxml.etree import _Element

from idp_connectors.base import ConnectorError
from idp_connectors.saml.xmltime import parse_instant
from idp_connectors.xmlsecurity.gate import SAML2, GatePolicy, text_of

BEARER = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
ENTITY_FORMAT = "urn:oasis:names:tc:SAML:2.0:nameid-format:entity"
PERSISTENT_FORMAT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
XSI_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"
MAX_NAME_ID_CHARS = 256
"""SAML Core 8.3.7: a persistent identifier is at most 256 characters."""
MAX_VALUES_PER_ATTRIBUTE = 100

ASSERTION = f"{{{SAML2}}}Assertion"
ISSUER = f"{{{SAML2}}}Issuer"
_SUBJECT = f"{{{SAML2}}}Subject"
_NAME_ID = f"{{{SAML2}}}NameID"
_CONFIRMATION = f"{{{SAML2}}}SubjectConfirmation"
_CONFIRMATION_DATA = f"{{{SAML2}}}SubjectConfirmationData"
_CONDITIONS = f"{{{SAML2}}}Conditions"
_AUDIENCE_RESTRICTION = f"{{{SAML2}}}AudienceRestriction"
_AUDIENCE = f"{{{SAML2}}}Audience"
_ONE_TIME_USE = f"{{{SAML2}}}OneTimeUse"
_PROXY_RESTRICTION = f"{{{SAML2}}}ProxyRestriction"
_AUTHN_STATEMENT = f"{{{SAML2}}}AuthnStatement"
_CLASS_REF = f"{{{SAML2}}}AuthnContext/{{{SAML2}}}AuthnContextClassRef"
_ATTRIBUTE = f"{{{SAML2}}}AttributeStatement/{{{SAML2}}}Attribute"
_ATTRIBUTE_VALUE = f"{{{SAML2}}}AttributeValue"


@dataclass(frozen=True, slots=True)
class Expected:
    """What the answer must match: from metadata, the pending request and the configuration."""

    idp_entity_id: str
    acs_url: str
    sp_entity_id: str
    request_id: str
    now: float
    skew: int
    want_assertions_signed: bool
    policy: GatePolicy


@dataclass(frozen=True, slots=True)
class AssertionFacts:
    """What a verified, checked assertion says."""

    assertion_id: str
    name_id: str
    authn_instant: int
    authn_context_class_ref: str | None
    expires_at: float
    """The last instant the assertion could still be accepted (its replay-cache lifetime)."""
    attributes: dict[str, list[str]] = field(default_factory=dict)


def _fail(message: str, code: str) -> ConnectorError:
    return ConnectorError(message, code=code)


def same(value: str | None, expected: str) -> bool:
    """Constant-time equality of an untrusted string with an expected one."""
    return value is not None and hmac.compare_digest(value.encode("utf-8"), expected.encode("utf-8"))


def issuer_matches(issuer: _Element, expected: Expected) -> bool:
    """An ``Issuer`` names the IdP: its whole text, and no Format other than ``entity``."""
    return issuer.get("Format") in (None, ENTITY_FORMAT) and same(text_of(issuer), expected.idp_entity_id)


def _instant(element: _Element, name: str, *, required: bool) -> float | None:
    text = element.get(name)
    if text is None and not required:
        return None
    value = parse_instant(text)
    if value is None:
        raise _fail(f"the assertion has no valid {name}", "assertion_invalid")
    return value


def _bearer_problem(data: _Element | None, expected: Expected) -> tuple[str, str] | None:
    """Why this bearer confirmation does not hold (Profiles 4.1.4.2), or ``None`` when it does."""
    if data is None:
        return "the bearer confirmation has no SubjectConfirmationData", "subject_confirmation_invalid"
    if not same(data.get("Recipient"), expected.acs_url):
        return "the assertion is for another recipient (not this sign-in address)", "recipient_mismatch"
    not_on_or_after = parse_instant(data.get("NotOnOrAfter"))
    if not_on_or_after is None or data.get("NotBefore") is not None:
        return (
            "the bearer confirmation has no valid NotOnOrAfter, or a NotBefore",
            "subject_confirmation_invalid",
        )
    if expected.now >= not_on_or_after + expected.skew:
        return (
            "the assertion has expired (SubjectConfirmationData NotOnOrAfter)",
            "subject_confirmation_expired",
        )
    if not same(data.get("InResponseTo"), expected.request_id):
        return "the assertion answers another sign-in request (InResponseTo)", "in_response_to_mismatch"
    return None


def _confirmation_deadline(subject: _Element, expected: Expected) -> float:
    """The NotOnOrAfter of the first bearer confirmation that holds; else refuse with the first problem."""
    problems: list[tuple[str, str]] = []
    for confirmation in subject.findall(_CONFIRMATION):
        if confirmation.get("Method") != BEARER:
            continue
        data = confirmation.find(_CONFIRMATION_DATA)
        problem = _bearer_problem(data, expected)
        if problem is None:
            assert data is not None
            return float(parse_instant(data.get("NotOnOrAfter")) or 0.0)
        problems.append(problem)
    message, code = (
        problems[0]
        if problems
        else ("the assertion has no bearer confirmation", "subject_confirmation_invalid")
    )
    raise _fail(message, code)


def _name_id(subject: _Element) -> str:
    name_ids = subject.findall(_NAME_ID)
    if len(name_ids) != 1:
        raise _fail("the assertion has no (plain) NameID", "name_id_missing")
    if name_ids[0].get("Format") != PERSISTENT_FORMAT:
        raise _fail("the IdP must send a persistent NameID", "name_id_not_persistent")
    value = text_of(name_ids[0])
    if not value.strip() or len(value) > MAX_NAME_ID_CHARS:
        raise _fail("the assertion's NameID is empty or too long", "name_id_missing")
    return value


def _conditions(assertion: _Element, expected: Expected) -> float | None:
    """Check ``Conditions``; returns its NotOnOrAfter (if any)."""
    conditions = assertion.findall(_CONDITIONS)
    if len(conditions) != 1:
        raise _fail("the assertion has no Conditions (AudienceRestriction is required)", "audience_mismatch")
    element = conditions[0]
    not_before = _instant(element, "NotBefore", required=False)
    not_on_or_after = _instant(element, "NotOnOrAfter", required=False)
    if not_before is not None and expected.now + expected.skew < not_before:
        raise _fail("the assertion is not valid yet (check the clocks)", "assertion_not_yet_valid")
    if not_on_or_after is not None and expected.now - expected.skew >= not_on_or_after:
        raise _fail("the assertion has expired", "assertion_expired")
    restrictions = 0
    for condition in element:
        if condition.tag == _AUDIENCE_RESTRICTION:
            restrictions += 1
            if not any(same(text_of(a), expected.sp_entity_id) for a in condition.findall(_AUDIENCE)):
                raise _fail(
                    "the assertion is meant for another service provider (audience)", "audience_mismatch"
                )
        elif condition.tag not in (_ONE_TIME_USE, _PROXY_RESTRICTION):
            raise _fail(
                "the assertion carries a condition this gateway does not understand", "condition_unsupported"
            )
    if restrictions == 0:
        raise _fail("the assertion names no audience", "audience_mismatch")
    return not_on_or_after


def _attribute_values(attribute: _Element) -> list[str]:
    values: list[str] = []
    for value in attribute.findall(_ATTRIBUTE_VALUE)[:MAX_VALUES_PER_ATTRIBUTE]:
        if len(value) or value.get(XSI_NIL) in ("true", "1"):
            continue  # element content (not a string) or nil
        values.append(text_of(value))
    return values


def attributes_of(assertion: _Element) -> dict[str, list[str]]:
    """Attribute name to its string values (attributes with the same name merged, in order)."""
    found: dict[str, list[str]] = {}
    for attribute in assertion.findall(_ATTRIBUTE):
        name = attribute.get("Name")
        if name:
            found.setdefault(name, []).extend(_attribute_values(attribute))
    return found


def check_assertion(assertion: _Element, expected: Expected) -> AssertionFacts:
    """All of Profiles 4.1.4.2-4.1.4.3 on ``assertion``, which must be the verified element."""
    assertion_id = assertion.get("ID")
    if assertion.tag != ASSERTION or assertion.get("Version") != "2.0" or not assertion_id:
        raise _fail("the answer holds no SAML 2.0 assertion", "assertion_invalid")
    _instant(assertion, "IssueInstant", required=True)
    issuers = assertion.findall(ISSUER)
    if len(issuers) != 1 or not issuer_matches(issuers[0], expected):
        raise _fail("the assertion was issued by another identity provider", "issuer_mismatch")
    subjects = assertion.findall(_SUBJECT)
    if len(subjects) != 1:
        raise _fail("the assertion has no Subject", "name_id_missing")
    confirmed_until = _confirmation_deadline(subjects[0], expected)
    conditions_until = _conditions(assertion, expected)
    statements = assertion.findall(_AUTHN_STATEMENT)
    if not statements:
        raise _fail("the assertion has no AuthnStatement", "authn_statement_missing")
    statement = statements[0]
    authn_instant = _instant(statement, "AuthnInstant", required=True)
    assert authn_instant is not None
    if authn_instant > expected.now + expected.skew:
        raise _fail(
            "the assertion's AuthnInstant is in the future (check the clocks)", "assertion_not_yet_valid"
        )
    session_until = _instant(statement, "SessionNotOnOrAfter", required=False)
    if session_until is not None and expected.now - expected.skew >= session_until:
        raise _fail("the IdP session has already ended (SessionNotOnOrAfter)", "assertion_expired")
    class_refs = statement.findall(_CLASS_REF)
    name_id = _name_id(subjects[0])
    deadlines = [confirmed_until] + ([conditions_until] if conditions_until is not None else [])
    return AssertionFacts(
        assertion_id=assertion_id,
        name_id=name_id,
        authn_instant=math.floor(authn_instant),
        authn_context_class_ref=text_of(class_refs[0]) if class_refs else None,
        expires_at=max(deadlines) + expected.skew,
        attributes=attributes_of(assertion),
    )
