"""The SAML IdP's routes owned here: ``GET /saml2/metadata`` and ``GET /saml2/slo``.

``/saml2/sso`` is ``gateway.saml_idp.sso``'s. The metadata is public and cacheable for an hour
(``cacheDuration`` says the same); the logout endpoint is ``gateway.saml_idp.logout.slo``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.runtime import Runtime
from gateway.saml_idp.logout import slo
from gateway.saml_idp.metadata import CACHE_SECONDS, MEDIA_TYPE, metadata_xml


async def metadata(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    return Response(
        metadata_xml(rt),
        media_type=MEDIA_TYPE,
        headers={"Cache-Control": f"public, max-age={CACHE_SECONDS}", "X-Content-Type-Options": "nosniff"},
    )


ROUTES = [
    Route("/saml2/metadata", metadata, methods=["GET"]),
    Route("/saml2/slo", slo, methods=["GET"]),
]
