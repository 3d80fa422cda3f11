"""``create_app``: the Starlette application with every route, built around one ``Runtime``."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from gateway.admin.auth_methods import ROUTES as AUTH_METHOD_ROUTES
from gateway.admin.routes import ROUTES as ADMIN_ROUTES
from gateway.adminpages.routes import ROUTES as ADMIN_PAGE_ROUTES
from gateway.demo.routes import ROUTES as DEMO_ROUTES
from gateway.invitations.block_pages import ROUTES as INVITATION_BLOCK_ROUTES
from gateway.myapps.routes import ROUTES as MYAPPS_ROUTES
from gateway.oidc.authorize import authorize
from gateway.oidc.discovery import discovery, jwks
from gateway.oidc.logout import logout
from gateway.oidc.revocation import introspect, revoke
from gateway.oidc.token_endpoint import token
from gateway.oidc.userinfo import userinfo
from gateway.ownerpages.routes import ROUTES as OWNER_ROUTES
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

STATIC = Path(__file__).parent / "static"


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def ready(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    try:
        await rt.store.get("health", "probe")
    except Exception:
        return JSONResponse({"status": "unavailable", "store": "unreachable"}, status_code=503)
    return JSONResponse({"status": "ok"})


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
        Route("/healthz", healthz, methods=["GET"]),
        Route("/healthz/live", healthz, methods=["GET"]),
        Route("/healthz/ready", ready, methods=["GET"]),
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
    if settings.demo.enabled:
        table.extend(DEMO_ROUTES)
    return table


def create_app(settings: Settings, *, clock: Callable[[], float] | None = None) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        runtime = await open_runtime(settings, **({"clock": clock} if clock else {}))
        app.state.runtime = runtime
        try:
            yield
        finally:
            await runtime.close()

    return Starlette(routes=routes(settings), lifespan=lifespan)


def create_app_from_env() -> Starlette:
    """The uvicorn factory: settings from ``$GATEWAY_CONFIG`` (set by ``gateway serve``)."""
    return create_app(load_settings(os.environ.get("GATEWAY_CONFIG", "config/gateway.yaml")))
