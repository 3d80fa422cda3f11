"""``create_app``: the Starlette application with every route, built around one ``Runtime``.

With ``config_path`` (as ``gateway serve`` runs it) the lifespan also starts the configuration
reload of that file (``gateway.reload``); every HTTP request reads one configuration generation.
The demo routes are always routed and answer 404 while ``demo.enabled`` is false, so that switch
follows a reload too.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from gateway.admin.auth_methods import ROUTES as AUTH_METHOD_ROUTES
from gateway.admin.routes import ROUTES as ADMIN_ROUTES
from gateway.adminpages.routes import ROUTES as ADMIN_PAGE_ROUTES
from gateway.demo.routes import ROUTES as DEMO_ROUTES
from gateway.invitations.block_pages import ROUTES as INVITATION_BLOCK_ROUTES
from gateway.myapps.routes import ROUTES as MYAPPS_ROUTES
from gateway.observability import endpoints as observability
from gateway.observability.hub import Hub
from gateway.observability.middleware import RequestMiddleware
from gateway.oidc.authorize import authorize
from gateway.oidc.cors import ROUTES as CORS_ROUTES
from gateway.oidc.discovery import discovery, jwks
from gateway.oidc.logout import logout
from gateway.oidc.revocation import introspect, revoke
from gateway.oidc.token_endpoint import token
from gateway.oidc.userinfo import userinfo
from gateway.ownerpages.routes import ROUTES as OWNER_ROUTES
from gateway.reload import Reloader, digest_of
from gateway.routing import IndexedRouter
from gateway.runtime import Runtime, open_runtime
from gateway.saml_idp.routes import ROUTES as SAML_IDP_ROUTES
from gateway.saml_idp.sso import ROUTES as SAML_SSO_ROUTES
from gateway.settings.loader import load_settings
from gateway.settings.models import Settings
from gateway.signin.federation import ROUTES as FEDERATION_ROUTES
from gateway.signin.mfa_pages import ROUTES as MFA_ROUTES
from gateway.signin.redemption import ROUTES as REDEMPTION_ROUTES
from gateway.signin.routes import ROUTES as SIGNIN_ROUTES
from gateway.signup.pages import ROUTES as SIGNUP_ROUTES
from gateway.unavailable import EXCEPTION_HANDLERS as STORE_UNAVAILABLE_HANDLERS

STATIC = Path(__file__).parent / "static"


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def _while_demo_enabled(route: Route) -> Route:
    """The demo route, answering 404 (as an unknown path) while ``demo.enabled`` is false."""
    endpoint = route.endpoint

    async def guarded(request: Request) -> Response:
        rt: Runtime = request.app.state.runtime
        if not rt.settings.demo.enabled:
            raise HTTPException(status_code=404)
        response: Response = await endpoint(request)
        return response

    return Route(route.path, guarded, methods=sorted(route.methods or ()), name=route.name)


def routes(settings: Settings) -> list[Route | Mount]:
    table: list[Route | Mount] = [
        Route("/.well-known/openid-configuration", discovery, methods=["GET"]),
        Route("/oauth2/authorize", authorize, methods=["GET", "POST"]),
        Route("/oauth2/token", token, methods=["POST"]),
        Route("/oauth2/userinfo", userinfo, methods=["GET", "POST"]),
        Route("/oauth2/revoke", revoke, methods=["POST"]),
        Route("/oauth2/introspect", introspect, methods=["POST"]),
        Route("/oauth2/logout", logout, methods=["GET", "POST"]),
        Route("/oauth2/jwks", jwks, methods=["GET"]),
        *CORS_ROUTES,  # OPTIONS (CORS preflight) of /oauth2/token and /oauth2/userinfo
        Route("/healthz", healthz, methods=["GET"]),
        Route("/healthz/live", observability.live, methods=["GET"]),
        Route("/healthz/ready", observability.ready, methods=["GET"]),
        Route("/metrics", observability.metrics, methods=["GET"]),
        *SIGNIN_ROUTES,
        *FEDERATION_ROUTES,
        *REDEMPTION_ROUTES,
        *MFA_ROUTES,
        *SIGNUP_ROUTES,
        *SAML_SSO_ROUTES,
        *SAML_IDP_ROUTES,
        *AUTH_METHOD_ROUTES,
        *ADMIN_ROUTES,
        *MYAPPS_ROUTES,
        *INVITATION_BLOCK_ROUTES,
        *OWNER_ROUTES,
        *ADMIN_PAGE_ROUTES,
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]
    table.extend(_while_demo_enabled(route) for route in DEMO_ROUTES)
    return table


class Gateway(Starlette):
    """``Starlette`` with ``RequestMiddleware`` as its only middleware: it also does the work of the
    ``ServerErrorMiddleware`` and ``ExceptionMiddleware`` Starlette puts around it (one layer and
    one ``send`` wrapper per request instead of three)."""

    def __init__(self, hub: Hub, **options: Any) -> None:
        self.hub = hub
        super().__init__(**options)

    def build_middleware_stack(self) -> ASGIApp:
        # What Starlette's own stack would add is refused rather than silently left out.
        if self.user_middleware or self.debug or getattr(self, "max_body_size", None) is not None:
            raise RuntimeError("Gateway builds RequestMiddleware alone: no user middleware, debug or limit")
        return RequestMiddleware(self.router, self.hub, exception_handlers=self.exception_handlers)


def create_app(
    settings: Settings,
    *,
    clock: Callable[[], float] | None = None,
    config_path: str | Path | None = None,
    digest: str | None = None,
) -> Starlette:
    """The app of ``settings``; with ``config_path`` (the file they came from; ``digest``: the SHA-256
    of the content they were loaded from) the file is watched and SIGHUP reloads it."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        runtime = await open_runtime(settings, **({"clock": clock} if clock else {}), digest=digest)
        app.state.runtime = runtime
        reloader = Reloader(runtime, config_path) if config_path is not None else None
        app.state.reloader = reloader
        hub.start(runtime)
        try:
            if reloader is not None:
                await reloader.start()
            yield
        finally:
            if reloader is not None:
                await reloader.stop()
            await hub.stop()
            await runtime.close()

    table = routes(settings)
    hub = Hub(table)
    app = Gateway(hub, lifespan=lifespan, exception_handlers=dict(STORE_UNAVAILABLE_HANDLERS))
    app.router = IndexedRouter(table, lifespan=lifespan)  # Starlette's routing, fewer regexes
    app.state.observability = hub
    return app


def create_app_from_env() -> Starlette:
    """The uvicorn factory: settings from ``$GATEWAY_CONFIG`` (set by ``gateway serve``), reloaded
    when the file changes and on SIGHUP."""
    path = Path(os.environ.get("GATEWAY_CONFIG", "config/gateway.yaml"))
    digest = digest_of(path.read_bytes())  # read before loading: a change in between is seen as one
    return create_app(load_settings(path), config_path=path, digest=digest)
