"""How an upstream identity is named in the directory and in tokens (b2b-concepts §1, §12).

``directory_issuer`` is the ``identities[].issuer`` label the user object keeps, which with
``issuerAssignedId`` keys the user: `mail` for passcodes, `google.com`, `facebook.com`, and the
upstream's own issuer URI otherwise (for Entra that URI is per home tenant, so the key is
(tenant, object id)). ``idp_claim`` is the ``idp`` claim of our tokens.
"""

from __future__ import annotations

from idp_connectors.base import UpstreamIdentity

MSA_TENANT_ID = "9188040d-6c67-4c5b-b112-36a304b66dad"
LABELS = {"email_otp": "mail", "google": "google.com", "facebook": "facebook.com"}


def directory_issuer(identity: UpstreamIdentity, connector_type: str) -> str:
    return LABELS.get(connector_type, identity.issuer)


def idp_claim(identity: UpstreamIdentity, connector_type: str) -> str:
    if connector_type == "microsoft" and identity.home_tenant_id:
        if identity.home_tenant_id == MSA_TENANT_ID:
            return "live.com"
        return f"https://sts.windows.net/{identity.home_tenant_id}/"
    return directory_issuer(identity, connector_type)
