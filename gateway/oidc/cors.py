"""CORS (the Fetch standard's CORS protocol) for single-page apps, on the token and userinfo endpoints
only, per app (``oidc.allowed_origins``: exact origins). No other endpoint answers CORS.

- Preflight (``OPTIONS``): a preflight carries no body, so no client is known yet; it is answered
  for an origin that *any* app lists, for the endpoint's methods (token: POST; userinfo: GET, POST)
  and request headers ``Authorization`` and ``Content-Type``, cached ``MAX_AGE_SECONDS``. Anything
  else gets 403 without CORS headers. An ``OPTIONS`` without ``Origin`` is no preflight: 204 + Allow.
- Actual requests: ``Access-Control-Allow-Origin`` (the origin itself, never ``*``) only when the
  request's client lists the origin: at the token endpoint the authenticated client (or, when
  authentication failed, the client its ``client_id`` names, so the app can read the error); at
  userinfo the access token's client (with no live token, any app that lists the origin, so the
  app can read the 401 and sign in again). ``Vary: Origin`` whenever an ``Origin`` came.
- Never ``Access-Control-Allow-Credentials``: the endpoints take no cookies.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.runtime import Runtime
from gateway.settings.models import Application, Settings

TOKEN_METHODS = ("POST",)
USERINFO_METHODS = ("GET", "POST")
ALLOWED_HEADERS = frozenset({"authorization", "content-type"})
MAX_AGE_SECONDS = 600


def app_allows(app: Application | None, origin: str) -> bool:
    return app is not None and app.oidc is not None and origin in app.oidc.allowed_origins


def any_app_allows(settings: Settings, origin: str) -> bool:
    return any(app_allows(app, origin) for app in settings.applications)


def allow(response: Response, request: Request, app: Application | None, *, expose: str = "") -> Response:
    """``response`` with the CORS headers of an actual request whose client is ``app``."""
    origin = request.headers.get("origin")
    if origin is None:
        return response
    response.headers.add_vary_header("Origin")
    if app_allows(app, origin):
        response.headers["Access-Control-Allow-Origin"] = origin
        if expose:
            response.headers["Access-Control-Expose-Headers"] = expose
    return response


def allow_any(response: Response, request: Request, settings: Settings, *, expose: str = "") -> Response:
    """As ``allow`` when no client is known: the origin of any app."""
    origin = request.headers.get("origin")
    if origin is None:
        return response
    app = next((a for a in settings.applications if app_allows(a, origin)), None)
    return allow(response, request, app, expose=expose)


def _requested_headers(request: Request) -> set[str]:
    raw = request.headers.get("access-control-request-headers", "")
    return {name.strip().lower() for name in raw.split(",") if name.strip()}


def _preflight(request: Request, methods: tuple[str, ...]) -> Response:
    rt: Runtime = request.app.state.runtime
    allow_header = ", ".join(("OPTIONS", *methods))
    origin = request.headers.get("origin")
    method = request.headers.get("access-control-request-method")
    if origin is None or method is None:
        return Response(status_code=204, headers={"Allow": allow_header})
    refused = Response(status_code=403, headers={"Vary": "Origin", "Allow": allow_header})
    if method not in methods or not _requested_headers(request) <= ALLOWED_HEADERS:
        return refused
    if not any_app_allows(rt.settings, origin):
        return refused
    return Response(
        status_code=204,
        headers={
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": ", ".join(methods),
            "Access-Control-Allow-Headers": "Authorization, Content-Type",
            "Access-Control-Max-Age": str(MAX_AGE_SECONDS),
            "Vary": "Origin",
            "Allow": allow_header,
        },
    )


async def token_preflight(request: Request) -> Response:
    return _preflight(request, TOKEN_METHODS)


async def userinfo_preflight(request: Request) -> Response:
    return _preflight(request, USERINFO_METHODS)


ROUTES = [
    Route("/oauth2/token", token_preflight, methods=["OPTIONS"]),
    Route("/oauth2/userinfo", userinfo_preflight, methods=["OPTIONS"]),
]
