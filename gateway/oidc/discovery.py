"""Discovery (OpenID Connect Discovery 1.0) and the JWKS, both served from responses built once."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.i18n.translations import translations_for
from gateway.oidc.authorize_checks import PROMPTS, SUPPORTED_SCOPES
from gateway.oidc.claims import ACR_VALUES, CLAIMS_SUPPORTED
from gateway.runtime import Runtime
from gateway.settings.clients import ASSERTION_ALGS
from gateway.settings.models import Settings

CACHE = {"Cache-Control": "public, max-age=300"}


def discovery_document(settings: Settings, algorithms: list[str]) -> dict[str, Any]:
    base = settings.issuer
    client_auth = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]
    return {
        "issuer": base,
        "authorization_endpoint": f"{base}/oauth2/authorize",
        "token_endpoint": f"{base}/oauth2/token",
        "userinfo_endpoint": f"{base}/oauth2/userinfo",
        "jwks_uri": f"{base}/oauth2/jwks",
        "revocation_endpoint": f"{base}/oauth2/revoke",
        "introspection_endpoint": f"{base}/oauth2/introspect",
        "end_session_endpoint": f"{base}/oauth2/logout",
        "scopes_supported": list(SUPPORTED_SCOPES),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": algorithms,
        "token_endpoint_auth_methods_supported": client_auth,
        "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGS),
        "revocation_endpoint_auth_methods_supported": client_auth,
        "revocation_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGS),
        "introspection_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
        ],
        "introspection_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGS),
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": list(CLAIMS_SUPPORTED),
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "authorization_response_iss_parameter_supported": True,
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
        "prompt_values_supported": sorted(PROMPTS),
        "acr_values_supported": list(ACR_VALUES),
        "ui_locales_supported": list(translations_for(settings).languages),
    }


async def discovery(request: Request) -> Response:
    """The document, encoded once per configuration generation and set of signing algorithms: a
    reload can add languages (``ui_locales_supported``), a rotation or a new app an algorithm.
    The response itself is built once too and sent again as it is (nothing changes a response
    once made: the request-id layer copies its headers to add its own)."""
    rt: Runtime = request.app.state.runtime
    algorithms = rt.keys.algorithms()
    key = (rt.config.generation, *algorithms)
    cached: tuple[tuple[Any, ...], Response] | None = getattr(request.app.state, "discovery", None)
    if cached is None or cached[0] != key:
        document = discovery_document(rt.settings, algorithms)
        body = json.dumps(document, separators=(",", ":")).encode()
        response = Response(body, media_type="application/json", headers=CACHE)
        cached = request.app.state.discovery = (key, response)
    return cached[1]


async def jwks(request: Request) -> Response:
    """The JWK set, its response built again only when the published keys change."""
    rt: Runtime = request.app.state.runtime
    body = rt.keys.jwks()
    cached: Response | None = getattr(request.app.state, "jwks", None)
    if cached is None or cached.body is not body:
        cached = request.app.state.jwks = Response(body, media_type="application/json", headers=CACHE)
    return cached
