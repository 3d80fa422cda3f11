"""Creating and finding users. Objects follow Microsoft Graph's `user` shape (see b2b-concepts §1)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

from gateway.store.base import DirectoryStore
from idp_connectors.base import UpstreamIdentity


def guest_upn(email: str, tenant_domain: str) -> str:
    """`user@partner.example` -> `user_partner.example#EXT#@contoso.example`."""
    return f"{email.replace('@', '_')}#EXT#@{tenant_domain}"


def iso(timestamp: int) -> str:
    # ``time.gmtime`` rather than an aware ``datetime``: the same text in a third of the time.
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def identity_object(issuer: str, subject: str) -> dict[str, str]:
    """A Graph ``objectIdentity`` for an identity issued by an outside issuer."""
    return {"signInType": "federated", "issuer": issuer, "issuerAssignedId": subject}


def new_self_service_guest(
    identity: UpstreamIdentity,
    issuer: str,
    tenant_domain: str,
    now: int,
    properties: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The guest a sign-up user flow creates; ``issuer`` is the directory label (``directory_issuer``).
    ``properties``: what the flow collected (Graph names, ``extension_<app id>_<name>``), over the IdP's."""
    assert identity.email is not None
    user = {
        "id": str(uuid.uuid4()),
        "userType": "Guest",
        "creationType": "SelfServiceSignUp",
        "accountEnabled": True,
        "displayName": identity.name,
        "givenName": identity.given_name,
        "surname": identity.family_name,
        "mail": identity.email,
        "otherMails": [],
        "userPrincipalName": guest_upn(identity.email, tenant_domain),
        "identities": [identity_object(issuer, identity.subject)],
        "externalUserState": None,
        "externalUserStateChangeDateTime": None,
        "createdDateTime": iso(now),
    }
    user.update(properties or {})
    return user


async def sign_up(
    store: DirectoryStore,
    identity: UpstreamIdentity,
    issuer: str,
    tenant_domain: str,
    now: int,
    *,
    properties: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Create the guest; if a concurrent sign-up created it first, return that one."""
    user = new_self_service_guest(identity, issuer, tenant_domain, now, properties)
    if await store.create_user(user, [(issuer, identity.subject)]):
        return user
    existing = await store.find_user_by_identity(issuer, identity.subject)
    if existing is None:
        raise RuntimeError("the identity is taken but its user cannot be found")
    return existing


async def create_bootstrap_admin(
    store: DirectoryStore, identity: UpstreamIdentity, issuer: str, now: int
) -> dict[str, Any]:
    """A Member of the organisation for a bootstrap administrator (their roles come from YAML)."""
    assert identity.email is not None
    user = {
        "id": str(uuid.uuid4()),
        "userType": "Member",
        "creationType": None,
        "accountEnabled": True,
        "displayName": identity.name,
        "mail": identity.email,
        "otherMails": [],
        "userPrincipalName": identity.email,
        "identities": [identity_object(issuer, identity.subject)],
        "externalUserState": None,
        "externalUserStateChangeDateTime": None,
        "createdDateTime": iso(now),
    }
    if await store.create_user(user, [(issuer, identity.subject)]):
        return user
    existing = await store.find_user_by_identity(issuer, identity.subject)
    if existing is None:
        raise RuntimeError("the identity is taken but its user cannot be found")
    return existing
