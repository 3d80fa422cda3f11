"""A gateway runtime with SAML apps, behind a small test app that exposes the SAML IdP's functions.

``idp`` opens a real ``Runtime`` (SQLite store in ``tmp_path``, real keys) and serves, in process:
the module's own routes (``/saml2/metadata``, ``/saml2/slo``), ``/saml2/sso`` answering the
checked request as JSON (``read_authn_request``; a refusal is a 400 with its ``reason``),
``/test/respond`` and ``/test/error`` (``respond`` / ``error_response`` for a posted
``SamlRequest``, user and ``AuthnFacts``), ``/test/session`` (starts an SSO session in the
client's cookie jar) and ``/test/logout-requests``. ``sp(app_id)`` is a pysaml2 SP
(``tests.support.saml_sp.SamlTestSP``) for that app, reading the gateway's metadata.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.runtime import Runtime, open_runtime
from gateway.saml_idp.logout import logout_requests
from gateway.saml_idp.request import SamlRequest, SamlRequestError, read_authn_request
from gateway.saml_idp.response import AuthnFacts, error_response, respond
from gateway.saml_idp.routes import ROUTES
from gateway.settings.models import Settings
from tests.support.assertions import Clock
from tests.support.gateway_app import ISSUER, make_settings
from tests.support.inspect_store import Snapshot, snapshot
from tests.support.saml_idp import key_pair
from tests.support.saml_sp import SamlTestSP, SpKnobs

EMAIL_CLAIM = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress"
SP_CERTIFICATE = key_pair("sp").certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")
ROLE_READER = "11111111-1111-4111-8111-111111111111"
GROUP_ID = "22222222-2222-4222-8222-222222222222"
USER_ID = "33333333-3333-4333-8333-333333333333"
USER: dict[str, Any] = {
    "id": USER_ID,
    "mail": "ada@fabrikam.example",
    "displayName": "Ada Lovelace",
    "givenName": "Ada",
    "surname": "Lovelace",
    "userPrincipalName": "ada_fabrikam.example#EXT#@contoso.example",
    "userType": "Guest",
    "accountEnabled": True,
}
ATTRIBUTES = [
    {"name": EMAIL_CLAIM, "source": "mail"},
    {"name": "displayName", "source": "displayName", "name_format": "basic"},
    {"name": "givenName", "source": "givenName"},
    {"name": "groups", "source": "groups"},
    {"name": "roles", "source": "roles"},
    {"name": "amr", "source": "amr"},
    {"name": "tenantId", "source": "tenantId"},
    {"name": "mfaSource", "source": "mfa_source"},
    {"name": "deviceCompliant", "source": "device_compliant"},
]


def base(app_id: str) -> str:
    return f"https://{app_id}.example"


def saml_app(app_id: str, **saml: Any) -> dict[str, Any]:
    """An application answered to the pysaml2 SP at ``https://{app_id}.example``; its ``slo_url``
    comes with the SP's certificate, which checks the logout messages it signs."""
    registration = {
        "entity_id": f"{base(app_id)}/metadata",
        "acs_urls": [f"{base(app_id)}/acs", f"{base(app_id)}/acs2"],
        "slo_url": f"{base(app_id)}/slo",
        "sp_certificate": SP_CERTIFICATE,
        **saml,
    }
    return {"id": app_id, "name": app_id.title(), "saml": registration}


APPS = [
    {
        **saml_app("payroll", attributes=ATTRIBUTES),
        "app_roles": [{"id": ROLE_READER, "value": "Reader", "display_name": "Reader"}],
    },
    saml_app("wiki", sign="response", name_id_format="email"),
    saml_app("vault", sign="both", name_id_format="upn", encrypt_assertion=True),
    saml_app("strict", require_signed_requests=True),
    saml_app("portal", idp_initiated={"enabled": True, "target": "https://portal.example/home"}),
    saml_app("quiet", slo_url=None),
    {**saml_app("gated"), "assignment_required": True},
]
SP_KNOBS: dict[str, SpKnobs] = {
    "wiki": SpKnobs(want_assertions_signed=False, want_response_signed=True),
    "vault": SpKnobs(want_response_signed=True),
    "strict": SpKnobs(sign_requests=True),
    "portal": SpKnobs(allow_unsolicited=True),
}


def settings_for(tmp_path: Path, applications: list[dict[str, Any]] | None = None) -> Settings:
    return make_settings(tmp_path, applications=applications or APPS, demo={"enabled": False})


@dataclass
class Idp:
    rt: Runtime
    app: Starlette
    client: httpx.AsyncClient
    clock: Clock
    sps: dict[str, SamlTestSP] = field(default_factory=dict)

    def snapshot(self) -> Snapshot:
        return snapshot(self.rt.settings)

    def sp(self, app_id: str) -> SamlTestSP:
        if app_id not in self.sps:
            self.sps[app_id] = SamlTestSP(
                base(app_id),
                idp_metadata_url=f"{ISSUER}/saml2/metadata",
                http=self.client,
                knobs=SP_KNOBS.get(app_id, SpKnobs()),
            )
        return self.sps[app_id]

    async def sso(self, url: str) -> httpx.Response:
        return await self.client.get(url.removeprefix(ISSUER))

    async def read(self, url: str) -> SamlRequest:
        answer = await self.sso(url)
        assert answer.status_code == 200, answer.text
        return SamlRequest.from_json(answer.json())

    async def refused(self, url: str) -> str:
        answer = await self.sso(url)
        assert answer.status_code == 400, answer.text
        return str(answer.json()["reason"])

    async def respond(
        self, saml: SamlRequest, user: dict[str, Any] | None = None, **authn: Any
    ) -> httpx.Response:
        body = {"saml": saml.to_json(), "user": user or USER, "authn": facts(**authn)}
        return await self.client.post("/test/respond", json=body)

    async def session(self, user_id: str = USER_ID) -> str:
        answer = await self.client.post("/test/session", json={"user_id": user_id})
        return str(answer.json()["sid"])


def facts(**overrides: Any) -> dict[str, Any]:
    values = {
        "sid": "sid-1",
        "auth_time": 1_790_000_000,
        "acr": "https://refeds.org/profile/mfa",
        "amr": ["fed", "mfa"],
        "auth_claims": {"mfa_source": "home", "device_compliant": True},
    }
    return {**values, **overrides}


async def _sso(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    try:
        saml = await read_authn_request(rt, request)
    except SamlRequestError as refused:
        return JSONResponse({"reason": refused.reason, "message": refused.message}, status_code=400)
    return JSONResponse(saml.to_json())


async def _respond(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    body = json.loads(await request.body())
    saml = SamlRequest.from_json(body["saml"])
    if "status" in body:
        return await error_response(rt, request, saml, body["status"], body["message"])
    return await respond(rt, request, saml, user=body["user"], authn=AuthnFacts(**body["authn"]))


async def _session(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    body = json.loads(await request.body())
    now = rt.now()
    session, token = await rt.sessions.create(
        user_id=body["user_id"],
        auth_time=now,
        lifetime=3600,
        amr=["otp"],
        acr="https://refeds.org/profile/sfa",
        idp="mail",
        connector_id="email",
        standing={},
    )
    response = JSONResponse({"sid": session.sid})
    rt.sessions.attach(response, token, 3600)
    return response


async def _logout_requests(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    body = json.loads(await request.body())
    return JSONResponse(await logout_requests(rt, body["user_id"], body["sid"]))


def build_app(rt: Runtime) -> Starlette:
    app = Starlette(
        routes=[
            *ROUTES,
            Route("/saml2/sso", _sso, methods=["GET", "POST"]),
            Route("/test/respond", _respond, methods=["POST"]),
            Route("/test/error", _respond, methods=["POST"]),
            Route("/test/session", _session, methods=["POST"]),
            Route("/test/logout-requests", _logout_requests, methods=["POST"]),
        ]
    )
    app.state.runtime = rt
    return app


async def open_idp(settings: Settings) -> tuple[Runtime, Starlette, Clock]:
    clock = Clock()
    rt = await open_runtime(settings, clock=clock)
    return rt, build_app(rt), clock


@pytest.fixture
async def idp(tmp_path: Path) -> AsyncIterator[Idp]:
    rt, app, clock = await open_idp(settings_for(tmp_path))
    try:
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
        async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as client:
            yield Idp(rt, app, client, clock)
    finally:
        await rt.close()
