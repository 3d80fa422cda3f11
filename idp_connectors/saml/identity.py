"""A checked assertion as an ``UpstreamIdentity``: what the IdP asserted, mapped by the YAML ``claims``.

``subject`` is the persistent NameID (whole, exactly as sent) and ``issuer`` the IdP's entityID.
The email attribute is required (b2b-concepts §9). SAML has no "email verified" statement, so
``email_verified`` is true only when the email's domain is one of this connector's ``domains``:
the IdP speaks for the domains home-realm discovery sends to it (as the ``wsfed`` connector
does); linking an existing user by it still needs ``trust_email_for_linking``. ``acr`` is the
AuthnContextClassRef and ``auth_time`` the AuthnInstant, as the IdP said them; ``amr`` stays
empty (SAML has no such list). ``raw_claims`` maps each attribute name to its value, or to the
list of values when there are several.
"""

from __future__ import annotations

import re
from typing import Any

from idp_connectors.base import ConnectorError, UpstreamIdentity
from idp_connectors.saml.assertion import AssertionFacts
from idp_connectors.saml.config import SamlConfig

MAX_STRING_CHARS = 1024
_EMAIL = re.compile(r"[^\s@\x00-\x1f\x7f]{1,64}@[^\s@\x00-\x1f\x7f]{1,253}")


def _first(attributes: dict[str, list[str]], name: str | None) -> str | None:
    if name is None:
        return None
    values = attributes.get(name) or []
    value = values[0] if values else None
    return value if value is not None and 0 < len(value) <= MAX_STRING_CHARS else None


def _claim(values: list[str]) -> Any:
    return values[0] if len(values) == 1 else list(values)


def to_identity(config: SamlConfig, issuer: str, facts: AssertionFacts) -> UpstreamIdentity:
    """Map the attributes; ``email_missing`` when the email attribute is absent or not an address."""
    attributes = facts.attributes
    mapping = config.claims
    email = _first(attributes, mapping.email)
    if email is None or not _EMAIL.fullmatch(email):
        raise ConnectorError(
            "the identity provider did not send a usable email address "
            f"(the {mapping.email} attribute is required)",
            code="email_missing",
        )
    return UpstreamIdentity(
        connector_id=config.id,
        issuer=issuer,
        subject=facts.name_id,
        email=email,
        email_verified=email.rsplit("@", 1)[1].lower() in config.domains,
        name=_first(attributes, mapping.name),
        given_name=_first(attributes, mapping.given_name),
        family_name=_first(attributes, mapping.family_name),
        home_tenant_id=_first(attributes, mapping.home_tenant_id),
        amr=(),
        acr=facts.authn_context_class_ref or None,
        auth_time=facts.authn_instant,
        device={
            ours: _claim(attributes[theirs])
            for ours, theirs in mapping.device.items()
            if attributes.get(theirs)
        },
        raw_claims={name: _claim(values) for name, values in attributes.items() if values},
    )
