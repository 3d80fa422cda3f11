"""End-to-end support for cross-tenant trust and conditional access: a gateway, partner IdPs, a browser.

``TrustEnv`` (one per test) holds a ``Clock`` shared by the gateway and two real test IdPs
(``tests/support/oidc_idp.OidcTestIdP``) mounted with respx: ``partner-a`` at ``PARTNER_ISSUER``,
the connector Fabrikam's partner entry is bound to, and ``other-idp`` at ``OTHER_ISSUER``, an
``oidc`` connector bound to no partner. Both connectors read the home tenant from ``tid``.
``env.gateway(partner=..., policies=[...], **overrides)`` runs a gateway with the apps ``demo``
and ``app-b`` (both public clients), the passcode connector, the agreement ``TERMS``, that
partner entry and those policies; its store lives in the test's ``tmp_path``, so a second
gateway on other settings sees the same directory.

``TrustGateway`` plays the browser: ``sign_in`` goes from ``/oauth2/authorize`` (with
``idp_hint``) through the IdP to the callback, ``id_claims`` redeems the code and verifies the ID
token against ``/oauth2/jwks``, ``register_totp`` / ``verify_totp`` drive the MFA pages.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from joserfc import jwt
from joserfc.jwk import KeySet

from gateway.mfa import totp
from gateway.runtime import Runtime
from tests.support import flows
from tests.support.assertions import Clock
from tests.support.gateway_app import ISSUER, default_config, make_settings, running_app
from tests.support.inspect_store import Snapshot, snapshot, users
from tests.support.oidc_idp import IdpClient, IdpUser, OidcTestIdP, authorize
from tests.support.smtp_server import SmtpServer

PARTNER_TENANT = "7d0b8a51-3f2e-4c1a-9b6d-0e5f4a3c2b10"
OTHER_TENANT = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
RESOURCE_TENANT = "4f5c2b0e-6a71-4c3e-9a8e-2f1d7c9b1a00"
PARTNER_ISSUER = "https://idp.fabrikam.test"
OTHER_ISSUER = "https://idp.elsewhere.test"
PARTNER, OTHER = "partner-a", "other-idp"
ALICE = "alice@fabrikam.example"
ALICE_OID = "5e1f0c2a-1111-4aaa-8bbb-000000000001"
APP_B_REDIRECT = "https://app-b.example/callback"
ACR_MFA = "https://refeds.org/profile/mfa"
ACR_SINGLE = "https://refeds.org/profile/sfa"
TERMS = {
    "id": "guest-terms",
    "display_name": "Guest terms",
    "url": "https://contoso.example/terms",
    "version": "2026-01",
}
GUESTS = {
    "include_guests_or_external_users": {
        "guest_or_external_user_types": ["b2bCollaborationGuest", "b2bCollaborationMember"]
    }
}
SECRET_ON_PAGE = re.compile(r'<code id="secret" class="secret">([A-Z2-7 ]+)</code>')
MFA_PAGE = re.compile(r"^(/signin/[A-Za-z0-9_-]+)/(mfa|terms)$")


def partner(**fields: Any) -> dict[str, Any]:
    """Fabrikam's partner entry, bound to ``partner-a``; ``fields`` add or replace keys."""
    return {
        "tenant_id": PARTNER_TENANT,
        "name": "Fabrikam",
        "domains": ["fabrikam.example"],
        "connector": PARTNER,
        **fields,
    }


def policy(
    policy_id: str,
    *controls: str,
    terms: tuple[str, ...] = (),
    apps: tuple[str, ...] = ("All",),
    users: dict[str, Any] | None = None,
    state: str = "enabled",
    session: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A conditional-access policy for guests (or ``users``) on ``apps`` with an AND grant of
    ``controls`` and ``terms``; ``session`` is its sign-in frequency, if any."""
    entry: dict[str, Any] = {
        "id": policy_id,
        "display_name": policy_id.replace("-", " ").capitalize(),
        "state": state,
        "conditions": {
            "users": users or GUESTS,
            "applications": {"include_applications": list(apps)},
        },
    }
    if controls or terms:
        entry["grant_controls"] = {
            "operator": "AND",
            "built_in_controls": list(controls),
            "terms_of_use": list(terms),
        }
    if session is not None:
        entry["session_controls"] = {"sign_in_frequency": session}
    return entry


def _connector(connector_id: str, issuer: str) -> dict[str, Any]:
    return {
        "id": connector_id,
        "type": "oidc",
        "issuer": issuer,
        "client_id": "gateway",
        "client_secret": IdpClient().client_secret,
        "claims": {"home_tenant_id": "tid"},
    }


def settings_data(partners: list[dict[str, Any]], policies: list[dict[str, Any]]) -> dict[str, Any]:
    """The overrides of the default configuration every gateway here runs with."""
    demo = next(a for a in default_config()["applications"] if a["id"] == "demo")
    app_b = {
        "id": "app-b",
        "name": "App B",
        "user_flow": "default",
        "oidc": {"client_id": "app-b", "client_secret": None, "redirect_uris": [APP_B_REDIRECT]},
    }
    return {
        "connectors": [
            {"id": "email", "type": "email_otp"},
            _connector(PARTNER, PARTNER_ISSUER),
            _connector(OTHER, OTHER_ISSUER),
        ],
        "applications": [demo, app_b],
        "user_flows": [{"id": "default", "identity_providers": ["email", PARTNER, OTHER]}],
        "passcode": {"resend_interval_seconds": 0, "max_sends_per_address_per_hour": 100},
        "cross_tenant_access": {"partners": partners},
        "terms_of_use": [TERMS],
        "conditional_access": policies,
    }


def audit_records(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    """The sign-in records on ``gateway.audit`` (the caller set the level to INFO)."""
    found = [json.loads(r.getMessage()) for r in caplog.records if r.name == "gateway.audit"]
    return [record for record in found if record.get("event") == "signin"]


def capture_audit(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="gateway.audit")
    return caplog


def decided(record: dict[str, Any], step: str, outcome: str, reason: str) -> bool:
    """Whether an audit record lists this decision."""
    return {"step": step, "outcome": outcome, "reason": reason} in record["decisions"]


def policy_results(record: dict[str, Any]) -> dict[str, str]:
    """``appliedConditionalAccessPolicies`` of an audit record: policy id -> result."""
    return {entry["id"]: entry["result"] for entry in record["appliedConditionalAccessPolicies"]}


@dataclass
class Upstream:
    """One test IdP behind one connector, with its respx routes (to count back-channel calls)."""

    connector_id: str
    idp: OidcTestIdP
    routes: dict[str, respx.Route]

    @property
    def callback(self) -> str:
        return f"{ISSUER}/callback/{self.connector_id}"

    def says(self, **claims: Any) -> None:
        """What the IdP's tokens carry besides the profile (``amr``, ``tid``, device claims...)."""
        self.idp.user.extra = dict(claims)


@dataclass
class TrustGateway:
    app: Any
    client: httpx.AsyncClient
    clock: Clock
    upstreams: dict[str, Upstream]
    smtp: SmtpServer

    @property
    def rt(self) -> Runtime:
        runtime: Runtime = self.app.state.runtime
        return runtime

    @property
    def partner(self) -> Upstream:
        return self.upstreams[PARTNER]

    @asynccontextmanager
    async def browser(self) -> AsyncIterator[httpx.AsyncClient]:
        """Another browser: no cookies of ``client``."""
        async with httpx.AsyncClient(
            transport=self.app.state.demo_transport, base_url=self.rt.settings.issuer
        ) as other:
            yield other

    async def to_idp(
        self, req: flows.AuthRequest, connector: str = PARTNER, client: httpx.AsyncClient | None = None
    ) -> str:
        """The app's authorization request with ``idp_hint``: the home IdP's authorization URL."""
        req.extra = {"idp_hint": connector, **(req.extra or {})}
        started = await (client or self.client).get(f"/oauth2/authorize?{req.query()}")
        assert started.status_code == 303, started.text
        location = started.headers["location"]
        assert location.startswith(self.upstreams[connector].idp.url("/authorize?")), location
        return location

    async def from_idp(
        self, url: str, connector: str = PARTNER, client: httpx.AsyncClient | None = None
    ) -> httpx.Response:
        """The browser at the IdP (auto-approve), then back at the connector's callback."""
        upstream = self.upstreams[connector]
        target, params = await authorize(upstream.idp, url)
        assert target == upstream.callback, target
        return await (client or self.client).get(f"/callback/{connector}", params=params)

    async def sign_in(
        self,
        req: flows.AuthRequest | None = None,
        connector: str = PARTNER,
        client: httpx.AsyncClient | None = None,
    ) -> tuple[flows.AuthRequest, httpx.Response]:
        """A whole upstream sign-in; returns the request and the callback's response."""
        req = req or flows.AuthRequest()
        url = await self.to_idp(req, connector, client)
        return req, await self.from_idp(url, connector, client)

    async def id_claims(
        self, req: flows.AuthRequest, response: httpx.Response, client: httpx.AsyncClient | None = None
    ) -> dict[str, Any]:
        """``response`` carries a code to the app: redeem it, verify the ID token, return its claims."""
        assert response.status_code == 303, response.text
        location = response.headers["location"]
        assert location.startswith(req.redirect_uri + "?"), location
        query = flows.query_of(location)
        assert query["state"] == req.state and query["iss"] == ISSUER
        tokens = await flows.exchange(client or self.client, req, query["code"])
        assert tokens.status_code == 200, tokens.text
        jwks = KeySet.import_key_set((await self.client.get("/oauth2/jwks")).json())
        claims: dict[str, Any] = jwt.decode(tokens.json()["id_token"], jwks, algorithms=["ES256"]).claims
        assert claims["iss"] == ISSUER and claims["aud"] == req.client_id and claims["nonce"] == req.nonce
        return claims

    def code(self, secret: str, offset: int = 0) -> str:
        """The TOTP code at the gateway's clock."""
        return totp.code_at(secret, totp.time_step(self.rt.now()) + offset)

    async def register_totp(
        self, path: str, client: httpx.AsyncClient | None = None
    ) -> tuple[str, httpx.Response]:
        """The registration page (a QR code and the secret), then a right code: the secret and the answer."""
        client = client or self.client
        page = await client.get(f"{path}/mfa")
        assert page.status_code == 200, page.text
        assert "<svg" in page.text and "Set up your authenticator app" in page.text
        match = SECRET_ON_PAGE.search(page.text)
        assert match, page.text[:500]
        secret = match.group(1).replace(" ", "")
        done = await client.post(f"{path}/mfa", data={"csrf": flows.csrf_of(page), "code": self.code(secret)})
        return secret, done

    async def verify_totp(
        self, path: str, secret: str, client: httpx.AsyncClient | None = None
    ) -> httpx.Response:
        """The code page of a registered user (no QR code, no secret), then a fresh right code."""
        client = client or self.client
        page = await client.get(f"{path}/mfa")
        assert page.status_code == 200, page.text
        assert "Enter your code" in page.text
        assert "<svg" not in page.text and 'id="secret"' not in page.text
        self.clock.advance(totp.PERIOD)  # the last accepted code is spent: the next one
        return await client.post(f"{path}/mfa", data={"csrf": flows.csrf_of(page), "code": self.code(secret)})

    def snapshot(self) -> Snapshot:
        return snapshot(self.app)  # the store's clock is the wall clock

    def users(self) -> list[dict[str, Any]]:
        return users(self.app)

    async def user(self, email: str = ALICE) -> dict[str, Any]:
        [found] = await self.rt.store.find_users_by_mail(email)
        return found


def step_path(response: httpx.Response, step: str) -> str:
    """The sign-in path (``/signin/{id}``) of a redirect to its ``mfa`` or ``terms`` page."""
    assert response.status_code == 303, response.text
    match = MFA_PAGE.fullmatch(response.headers["location"])
    assert match and match.group(2) == step, response.headers["location"]
    return match.group(1)


@dataclass
class TrustEnv:
    tmp_path: Path
    smtp: SmtpServer
    clock: Clock
    upstreams: dict[str, Upstream] = field(default_factory=dict)

    @asynccontextmanager
    async def gateway(
        self,
        *,
        partners: list[dict[str, Any]] | None = None,
        policies: list[dict[str, Any]] | None = None,
        **overrides: Any,
    ) -> AsyncIterator[TrustGateway]:
        data = settings_data([partner()] if partners is None else partners, policies or [])
        settings = make_settings(self.tmp_path, self.smtp, **{**data, **overrides})
        async with running_app(settings, clock=self.clock) as (app, client):
            yield TrustGateway(app, client, self.clock, self.upstreams, self.smtp)


@contextmanager
def trust_env(tmp_path: Path, smtp: SmtpServer) -> Iterator[TrustEnv]:
    """Both IdPs mounted with respx for the duration; Alice at the partner's IdP, MFA claimed."""
    clock = Clock()
    env = TrustEnv(tmp_path, smtp, clock)
    with respx.mock(assert_all_called=False) as router:
        for connector_id, issuer in ((PARTNER, PARTNER_ISSUER), (OTHER, OTHER_ISSUER)):
            idp = OidcTestIdP(
                issuer,
                clients=[IdpClient(redirect_uris=[f"{ISSUER}/callback/{connector_id}"])],
                user=IdpUser(sub=f"{connector_id}-alice", email=ALICE),
                clock=clock,
            )
            env.upstreams[connector_id] = Upstream(connector_id, idp, idp.mount(router))
        env.upstreams[PARTNER].says(amr=["pwd", "mfa"], tid=PARTNER_TENANT, oid=ALICE_OID)
        yield env
