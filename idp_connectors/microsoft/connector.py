"""The ``microsoft`` connector: ``OidcConnector`` for Entra ID's multi-tenant v2.0 endpoints.

The generic machinery does the protocol; discovery (``organizations`` / ``consumers`` /
``common``) names a ``{tenantid}`` issuer template and the JWKS is the one it points at (the
keys every tenant's tokens are signed with). What makes a multi-tenant token acceptable is
checked here, after the signature and before every other claim:

- ``tid`` must be a tenant id (``tid_missing``) this connector allows: a listed tenant for
  work accounts, the consumer tenant when personal accounts are on (``tenant_not_allowed``);
- ``iss`` must then equal ``https://{authority_host}/{tid}/v2.0`` for that same ``tid``
  (``invalid_iss``), so a token cannot claim one tenant in ``tid`` and another in ``iss``;
- ``oid`` must be a GUID (``oid_missing``).

An RFC 9207 ``iss`` on the callback must be an allowed tenant's issuer (``iss_mismatch``).

The identity: issuer ``https://{authority_host}/{tid}/v2.0`` (so the directory key is per home
tenant), subject ``oid`` (the home object id; ``sub`` is pairwise per app, useless for
linking), ``home_tenant_id`` = ``tid``. ``email`` is reported as Entra sent it, but Entra
does not verify it (any tenant admin can set any address: the nOAuth class), so
``email_verified`` is True only when the optional ``xms_edov`` claim ("email domain owner
verified", configured as an optional claim on the app registration) is true; personal
accounts never carry it. ``amr``/``acr`` are kept if present (v2.0 tokens rarely have them);
everything else stays in ``raw_claims``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from idp_connectors.base import ConnectorContext, ConnectorError, UpstreamIdentity
from idp_connectors.microsoft.config import GUID, MicrosoftConfig
from idp_connectors.oidc.claims import to_identity
from idp_connectors.oidc.connector import OidcConnector


class MicrosoftConnector(OidcConnector):
    """Entra ID work accounts and personal Microsoft accounts (``type: microsoft``)."""

    def __init__(self, config: MicrosoftConfig, ctx: ConnectorContext) -> None:
        super().__init__(config.oidc_config(), ctx)
        self.preset = config

    def _tenant(self, claims: Mapping[str, Any]) -> str:
        """The token's ``tid``, if it is a tenant this connector allows."""
        tid = claims.get("tid")
        if not isinstance(tid, str) or not GUID.fullmatch(tid):
            raise ConnectorError("the ID token names no tenant (`tid`)", code="tid_missing")
        if not self.preset.tenant_allowed(tid):
            raise ConnectorError(
                "accounts of this Microsoft tenant may not sign in here", code="tenant_not_allowed"
            )
        return tid

    def accepts_response_issuer(self, iss: str) -> bool:
        """RFC 9207: the callback's ``iss`` must be the issuer of a tenant allowed here."""
        tid = self.preset.issuer_tenant(iss)
        return tid is not None and self.preset.tenant_allowed(tid)

    def expected_issuer(self, claims: Mapping[str, Any]) -> str:
        return self.preset.tenant_issuer(self._tenant(claims))

    def identity(self, claims: Mapping[str, Any], userinfo: Mapping[str, Any] | None) -> UpstreamIdentity:
        tid = self._tenant(claims)
        oid = claims.get("oid")
        if not isinstance(oid, str) or not GUID.fullmatch(oid.lower()):
            raise ConnectorError(
                "the ID token has no object id (`oid`), the only stable key of a Microsoft account",
                code="oid_missing",
            )
        identity = to_identity(
            connector_id=self.config.id,
            issuer=self.preset.tenant_issuer(tid),
            mapping=self.config.claims,
            id_token=claims,
            userinfo=userinfo,
        )
        return replace(identity, subject=oid.lower())
