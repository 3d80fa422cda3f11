"""Another instance of this gateway as a partner organisation's IdP, for federation tests.

``partner_settings(tmp_path, smtp, redirect_uri=...)`` builds the partner's own settings: issuer
``PARTNER_ISSUER`` (https, not loopback, so a secret is set), its own tenant (``PARTNER_TENANT``,
``PARTNER_DOMAIN``), its own store under ``tmp_path``, passcode sign-in, and one confidential
client ``resource-gw`` (the resource organisation's gateway) whose redirect URI is the resource
gateway's callback. ``resource_connector()`` is the ``oidc`` connector entry the resource gateway
uses to reach it, ``resource_overrides()`` the rest of the resource gateway's overrides.

``mount_gateway(router, app, issuer)`` routes every request to ``issuer`` made through httpx
(the resource gateway's back channel) to the in-process ``app`` with respx, and returns the routes
by name (``discovery``, ``jwks``, ``token``, ``other``) so tests can count calls and read the
responses (``route.calls.last.response.json()``: each answer is read in full before it is returned).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import respx

from gateway.settings.models import Settings
from tests.support.gateway_app import make_settings

PARTNER_ISSUER = "https://partner-gw.test"
PARTNER_TENANT = "7d0b8a51-3f2e-4c1a-9b6d-0e5f4a3c2b10"
PARTNER_DOMAIN = "fabrikam.example"
CONNECTOR_ID = "partner-gw"
CLIENT_ID = "resource-gw"
CLIENT_SECRET = "partner gateway client secret: 7b1e1c0f"


def partner_settings(tmp_path: Path, smtp: Any, *, redirect_uri: str, **overrides: Any) -> Settings:
    """The partner gateway's settings; ``redirect_uri`` is the resource gateway's callback URL."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = {
        "issuer": PARTNER_ISSUER,
        "tenant": {"id": PARTNER_TENANT, "domain": PARTNER_DOMAIN, "name": "Fabrikam"},
        "applications": [
            {
                "id": CLIENT_ID,
                "name": "Contoso's federation gateway",
                "oidc": {
                    "client_id": CLIENT_ID,
                    "client_secret": CLIENT_SECRET,
                    "redirect_uris": [redirect_uri],
                },
                "user_flow": "default",
            }
        ],
        "demo": {"enabled": False},
    }
    data.update(overrides)
    return make_settings(tmp_path, smtp, **data)


def resource_connector(**overrides: Any) -> dict[str, Any]:
    """The resource gateway's ``oidc`` connector entry for the partner gateway."""
    return {
        "id": CONNECTOR_ID,
        "type": "oidc",
        "issuer": PARTNER_ISSUER,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "allowed_algorithms": ["ES256"],
        "display_name": "Fabrikam",
        **overrides,
    }


def resource_overrides(**connector: Any) -> dict[str, Any]:
    """Connectors, user flow and the partner entry that send ``PARTNER_DOMAIN`` to the partner gateway."""
    return {
        "connectors": [{"id": "email", "type": "email_otp"}, resource_connector(**connector)],
        "user_flows": [{"id": "default", "identity_providers": ["email", CONNECTOR_ID]}],
        "cross_tenant_access": {
            "partners": [
                {"tenant_id": PARTNER_TENANT, "domains": [PARTNER_DOMAIN], "connector": CONNECTOR_ID}
            ]
        },
    }


def mount_gateway(router: respx.MockRouter, app: Any, issuer: str = PARTNER_ISSUER) -> dict[str, respx.Route]:
    """Route httpx requests for ``issuer`` to the ASGI ``app``; the routes by name."""
    parts = urlsplit(issuer)
    transport = httpx.ASGITransport(app=app, client=("198.51.100.20", 40000))

    async def handler(request: httpx.Request) -> httpx.Response:
        # Read in full here: ``route.calls.last.response`` stays readable after the caller read its copy.
        answer = await transport.handle_async_request(request)
        body = await answer.aread()
        return httpx.Response(answer.status_code, headers=answer.headers, content=body)

    paths = {
        "discovery": "/.well-known/openid-configuration",
        "jwks": "/oauth2/jwks",
        "token": "/oauth2/token",
    }
    routes = {
        name: router.route(scheme=parts.scheme, host=parts.hostname, path=path).mock(side_effect=handler)
        for name, path in paths.items()
    }
    routes["other"] = router.route(scheme=parts.scheme, host=parts.hostname).mock(side_effect=handler)
    return routes
