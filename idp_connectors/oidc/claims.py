"""Claim mapping: the validated ID token (and userinfo) claims become an ``UpstreamIdentity``.

Nothing here decides trust. Values are reported as the upstream said them, typed
defensively: a field whose claim has the wrong JSON type is left unset rather than
coerced, except that ``email_verified`` is True only for JSON ``true`` or the string
``"true"`` (some IdPs send strings). ``subject`` comes from the ID token alone; the other
fields prefer the ID token and fall back to userinfo.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from idp_connectors.base import ConnectorError, UpstreamIdentity
from idp_connectors.oidc.config import ClaimMapping

MAX_STRING_CHARS = 1024


def merge(id_token: Mapping[str, Any], userinfo: Mapping[str, Any] | None) -> dict[str, Any]:
    """Userinfo claims overlaid by the ID token's: the signed token wins where both speak."""
    return {**(userinfo or {}), **id_token}


def _string(claims: Mapping[str, Any], name: str | None) -> str | None:
    if name is None:
        return None
    value = claims.get(name)
    return value if isinstance(value, str) and 0 < len(value) <= MAX_STRING_CHARS else None


def _verified(value: object) -> bool:
    return value is True or value == "true"


def _strings(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(item for item in value if isinstance(item, str))


def _auth_time(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)


def to_identity(
    *,
    connector_id: str,
    issuer: str,
    mapping: ClaimMapping,
    id_token: Mapping[str, Any],
    userinfo: Mapping[str, Any] | None = None,
) -> UpstreamIdentity:
    """Build the identity; ``subject_missing`` when the mapped subject claim is absent or not a string."""
    subject = _string(id_token, mapping.subject)
    if subject is None:
        raise ConnectorError(
            f"the ID token has no usable `{mapping.subject}` claim for the subject", code="subject_missing"
        )
    claims = merge(id_token, userinfo)
    return UpstreamIdentity(
        connector_id=connector_id,
        issuer=issuer,
        subject=subject,
        email=_string(claims, mapping.email),
        email_verified=mapping.email_verified is not None and _verified(claims.get(mapping.email_verified)),
        name=_string(claims, mapping.name),
        given_name=_string(claims, mapping.given_name),
        family_name=_string(claims, mapping.family_name),
        home_tenant_id=_string(claims, mapping.home_tenant_id),
        amr=_strings(claims.get(mapping.amr)) if mapping.amr is not None else (),
        acr=_string(claims, mapping.acr),
        auth_time=_auth_time(id_token.get("auth_time")),
        device={ours: claims[theirs] for ours, theirs in mapping.device.items() if theirs in claims},
        raw_claims=claims,
    )
