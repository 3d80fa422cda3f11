"""The ``google`` connector: ``OidcConnector`` with Google's issuer, hosted domains and verified email.

The generic machinery does the protocol (discovery, code flow with PKCE, nonce and state,
RS256 signature via the cached JWKS, ``aud``/``exp``/``iat``/``nonce``). On top, in order:

- ``iss`` may be ``https://accounts.google.com`` or its legacy spelling ``accounts.google.com``
  and nothing else (``invalid_iss``); the identity's issuer is always the https form.
- with ``hosted_domains`` set, the ID token's ``hd`` (present only for Google Workspace
  accounts) must be one of them, else ``hosted_domain_not_allowed``.
- with ``require_verified_email`` (the default), an email Google does not assert verified
  (or no email at all) is refused with ``email_not_verified``; without it, the email is
  reported with ``email_verified`` False.

The identity: issuer ``https://accounts.google.com``, subject ``sub`` (Google's stable
account id), no home organisation id; ``hd`` stays in ``raw_claims``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from idp_connectors.base import ConnectorContext, ConnectorError, UpstreamIdentity
from idp_connectors.google.config import GoogleConfig
from idp_connectors.oidc.connector import OidcConnector


class GoogleConnector(OidcConnector):
    """Google sign-in (``type: google``)."""

    def __init__(self, config: GoogleConfig, ctx: ConnectorContext) -> None:
        super().__init__(config.oidc_config(), ctx)
        self.preset = config

    def expected_issuer(self, claims: Mapping[str, Any]) -> str:
        iss = claims.get("iss")
        if not isinstance(iss, str) or iss not in self.preset.accepted_issuers:
            raise ConnectorError("the ID token does not come from Google", code="invalid_iss")
        return iss

    def identity(self, claims: Mapping[str, Any], userinfo: Mapping[str, Any] | None) -> UpstreamIdentity:
        preset = self.preset
        if preset.hosted_domains:
            hd = claims.get("hd")
            if not isinstance(hd, str) or hd.lower() not in preset.hosted_domains:
                raise ConnectorError(
                    "this Google account does not belong to an allowed Google Workspace domain",
                    code="hosted_domain_not_allowed",
                )
        identity = super().identity(claims, userinfo)
        if preset.require_verified_email and (identity.email is None or not identity.email_verified):
            raise ConnectorError(
                "Google did not confirm that this account's email address is verified",
                code="email_not_verified",
            )
        return identity
