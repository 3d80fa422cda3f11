"""An example approval service for the gateway's self-service sign-up (the API connector approval pattern).

The gateway calls ``POST /api/post-federation-signup`` and ``POST /api/post-attribute-collection`` with
HTTP Basic credentials. A first sign-up files a pending access request and is blocked; an admin approves
it on ``/admin`` (or through ``/admin/api/requests``); the user's next sign-up goes through. ``/healthz``
answers 200 while the database is readable.

``create_app(database, connector_user, connector_password, admin_password)`` builds the app; the
module-level ``app`` is built from the environment (``APPROVAL_DB``, default ``approvals.db``;
``APPROVAL_CONNECTOR_USERNAME``, ``APPROVAL_CONNECTOR_PASSWORD`` and ``APPROVAL_ADMIN_PASSWORD``, which
have no defaults: without them importing this module raises ``ConfigurationError``, so uvicorn does not
start). Run it with ``uvicorn --app-dir deploy/examples/approval_service app:app`` (README.md). It needs
Starlette, uvicorn and the standard library only.
"""

from __future__ import annotations

import hmac
import logging
import os
import sqlite3
from collections.abc import Mapping

from approval_admin import ADMIN_USER, CsrfTokens
from approval_admin import routes as admin_routes
from approval_auth import BasicRealm
from approval_connector import routes as connector_routes
from approval_http import NO_STORE
from approval_store import ApprovalStore
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

DEFAULT_DATABASE = "approvals.db"
REQUIRED_ENVIRONMENT = (
    "APPROVAL_CONNECTOR_USERNAME",
    "APPROVAL_CONNECTOR_PASSWORD",
    "APPROVAL_ADMIN_PASSWORD",
)
MIN_PASSWORD = 12


class ConfigurationError(RuntimeError):
    """The service cannot start with these settings; the message names the setting and the rule."""


def _check(database: str, connector_user: str, connector_password: str, admin_password: str) -> None:
    if not database or database == ":memory:" or database.startswith("file:"):
        raise ConfigurationError("the database (APPROVAL_DB) must be a file path")
    if not connector_user or ":" in connector_user or not connector_user.isprintable():
        raise ConfigurationError(
            "the connector user name (APPROVAL_CONNECTOR_USERNAME) must be printable text without ':' "
            "(RFC 7617)"
        )
    for label, variable, value in (
        ("connector password", "APPROVAL_CONNECTOR_PASSWORD", connector_password),
        ("admin password", "APPROVAL_ADMIN_PASSWORD", admin_password),
    ):
        if len(value) < MIN_PASSWORD:
            raise ConfigurationError(f"the {label} ({variable}) must be at least {MIN_PASSWORD} characters")
    if hmac.compare_digest(admin_password.encode(), connector_password.encode()):
        raise ConfigurationError(
            "the admin password (APPROVAL_ADMIN_PASSWORD) must differ from the connector password"
        )


def create_app(database: str, connector_user: str, connector_password: str, admin_password: str) -> Starlette:
    """The service on the SQLite file ``database`` (created when missing). The gateway authenticates
    with ``connector_user`` / ``connector_password``; the admin with ``admin`` / ``admin_password``."""
    _check(database, connector_user, connector_password, admin_password)
    try:
        store = ApprovalStore(database)
    except (OSError, sqlite3.Error) as exc:
        raise ConfigurationError(f"cannot open the database {database!r} (APPROVAL_DB): {exc}") from exc
    connector_realm = BasicRealm("approval service API connector", connector_user, connector_password)
    admin_realm = BasicRealm("approval service admin", ADMIN_USER, admin_password)

    async def healthz(request: Request) -> Response:
        await run_in_threadpool(store.ping)
        return PlainTextResponse("ok\n", headers=NO_STORE)

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        *connector_routes(store, connector_realm),
        *admin_routes(store, admin_realm, CsrfTokens(admin_password)),
    ]
    return Starlette(routes=routes)


def from_environment(environ: Mapping[str, str]) -> Starlette:
    """``create_app`` with the settings read from ``environ`` (see the module docstring)."""
    missing = [name for name in REQUIRED_ENVIRONMENT if not environ.get(name)]
    if missing:
        raise ConfigurationError(
            f"set {', '.join(missing)}: the approval service does not start without them (README.md)"
        )
    return create_app(
        environ.get("APPROVAL_DB") or DEFAULT_DATABASE,
        environ["APPROVAL_CONNECTOR_USERNAME"],
        environ["APPROVAL_CONNECTOR_PASSWORD"],
        environ["APPROVAL_ADMIN_PASSWORD"],
    )


def _log_to_stderr() -> None:
    """Filed requests and decisions are logged at INFO (ids only, no personal data)."""
    logger = logging.getLogger("approval_service")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


app = from_environment(os.environ)
_log_to_stderr()
