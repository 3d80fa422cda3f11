"""Minting the token response: opaque access token, signed ID token, optional rotating refresh token."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from typing import Any

from gateway.directory.app_access import app_access, needs_access_data
from gateway.observability.events import tokens_issued
from gateway.oidc import bearer, grants
from gateway.oidc.claims import pairwise_sub, user_claims
from gateway.oidc.codes import new_grant_id
from gateway.oidc.errors import InvalidGrant, InvalidScope, UnauthorizedClient
from gateway.runtime import Runtime
from gateway.settings.models import Application


@dataclass(frozen=True)
class Authentication:
    """How and when the user authenticated: carried from the session through every token of a grant."""

    user_id: str
    sid: str
    auth_time: int
    amr: list[str]
    acr: str
    idp: str
    auth_claims: dict[str, Any] = field(default_factory=dict)
    """``mfa_source`` and trusted device claims (``gateway.signin.standing``): ID token only."""


def at_hash(access_token: str) -> str:
    """OIDC Core 3.1.3.6: left half of SHA-256 (ES256 and RS256 both use SHA-256)."""
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()


async def mint(
    rt: Runtime,
    app: Application,
    user: dict[str, Any],
    authn: Authentication,
    *,
    scopes: list[str],
    grant_id: str,
    nonce: str | None,
    refresh_scopes: list[str] | None = None,
    refresh_absolute_expiry: int | None = None,
) -> dict[str, Any]:
    assert app.oidc is not None
    lifetimes = rt.settings.tokens
    now = rt.now()
    sub = pairwise_sub(rt.pairwise_salt, app.id, user["id"])
    claims = user_claims(user, scopes, idp=authn.idp, tenant_id=rt.settings.tenant.id)
    if needs_access_data(app):
        access = await app_access(rt.store, app, user["id"])
        if app.assignment_required and not access.assigned:
            raise InvalidGrant("the user is not assigned to this application")
        if app.claims.groups:
            claims["groups"] = access.groups
        if app.claims.roles:
            claims["roles"] = access.roles
    access_ttl = lifetimes.access_token_seconds
    record = {
        "client_id": app.oidc.client_id,
        "app_id": app.id,
        "user_id": user["id"],
        "sub": sub,
        "scopes": scopes,
        "grant_id": grant_id,
        "sid": authn.sid,
        "iat": now,
        "exp": now + access_ttl,
        "userinfo": {"sub": sub, **claims},
    }
    access_token = await bearer.issue(rt.store, bearer.ACCESS, record, access_ttl, grant_id)
    id_claims: dict[str, Any] = {
        "iss": rt.settings.issuer,
        "sub": sub,
        "aud": app.oidc.client_id,
        "exp": now + lifetimes.id_token_seconds,
        "iat": now,
        "auth_time": authn.auth_time,
        "amr": authn.amr,
        "acr": authn.acr,
        "sid": authn.sid,
        "at_hash": at_hash(access_token),
        **authn.auth_claims,
        **claims,
    }
    if nonce is not None:
        id_claims["nonce"] = nonce
    alg = app.oidc.id_token_signed_response_alg or rt.settings.keys.algorithm
    body: dict[str, Any] = {
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": lifetimes.access_token_seconds,
        "scope": " ".join(scopes),
        "id_token": await rt.keys.sign(id_claims, alg),
    }
    kept_scopes = refresh_scopes if refresh_scopes is not None else scopes
    if "offline_access" in kept_scopes:
        absolute = refresh_absolute_expiry or now + lifetimes.refresh_token_absolute_seconds
        ttl = min(lifetimes.refresh_token_idle_seconds, absolute - now)
        if ttl > 0:
            refresh_record = {
                "client_id": app.oidc.client_id,
                "app_id": app.id,
                "sub": sub,
                "scopes": kept_scopes,
                "grant_id": grant_id,
                "absolute_expiry": absolute,
                "iat": now,
                "exp": now + ttl,
                "authn": {
                    "user_id": authn.user_id,
                    "sid": authn.sid,
                    "auth_time": authn.auth_time,
                    "amr": authn.amr,
                    "acr": authn.acr,
                    "idp": authn.idp,
                    "auth_claims": authn.auth_claims,
                },
            }
            body["refresh_token"] = await bearer.issue(
                rt.store, bearer.REFRESH, refresh_record, ttl, grant_id
            )
    if await grants.is_revoked(rt.store, grant_id):
        # The family was revoked while these tokens were written (a concurrent replay).
        await rt.store.revoke_grant(grant_id)
        raise InvalidGrant("the grant was revoked")
    tokens_issued(app.id, "access", "id", *(("refresh",) if "refresh_token" in body else ()))
    return body


async def mint_for_app(rt: Runtime, app: Application, scope: str | None) -> dict[str, Any]:
    """``client_credentials`` (RFC 6749 4.4): an access token carrying the app's API permissions as ``roles``.

    Only confidential apps with ``api_permissions`` may use it. ``scope`` may be left out or name
    the admin API's ``{issuer}/.default`` (as Graph clients send it); no refresh or ID token.
    """
    assert app.oidc is not None
    if app.oidc.is_public or not app.api_permissions:
        raise UnauthorizedClient("this client may not use client_credentials (it has no api_permissions)")
    if scope is not None and scope.split() != [f"{rt.settings.issuer}/.default"]:
        raise InvalidScope(f"client_credentials takes no scope or {rt.settings.issuer}/.default")
    now = rt.now()
    ttl = rt.settings.tokens.access_token_seconds
    grant_id = new_grant_id()
    record = {
        "client_id": app.oidc.client_id,
        "app_id": app.id,
        "kind": "app",
        "roles": list(app.api_permissions),
        "scopes": [],
        "grant_id": grant_id,
        "iat": now,
        "exp": now + ttl,
    }
    token = await bearer.issue(rt.store, bearer.ACCESS, record, ttl, grant_id)
    tokens_issued(app.id, "access")
    return {"access_token": token, "token_type": "Bearer", "expires_in": ttl}
