"""Sign-up through a user flow for a guest who comes from a partner's OIDC IdP: the IdP's names pre-fill
the attribute page, the API connector gets them (and no ``identities``: the reference sends those only
for Google, Facebook and passcode sign-ups), and the guest keeps the IdP identity."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import respx

from gateway.settings.models import Settings
from gateway.settings.signup import ApiConnector, UserFlow
from tests.integration.test_federation_oidc import (
    ALICE,
    IDP_ISSUER,
    at_idp,
    partner_settings,
    to_idp,
)
from tests.support import flows
from tests.support.gateway_app import running_app
from tests.support.inspect_store import snapshot, users
from tests.support.oidc_idp import IdpClient, IdpUser, OidcTestIdP
from tests.support.smtp_server import SmtpServer

CALLBACK = "http://127.0.0.1:8000/callback/partner-a"
CONNECTOR = "https://approvals.contoso.example/api/post-federation"
FLOW = {
    "id": "default",
    "identity_providers": ["email", "partner-a"],
    "attributes": [{"name": "displayName", "required": True}, {"name": "givenName"}, {"name": "surname"}],
    "api_connectors": {"post_federation_signup": "check"},
}


@pytest.fixture
def idp() -> OidcTestIdP:
    return OidcTestIdP(
        IDP_ISSUER, clients=[IdpClient(redirect_uris=[CALLBACK])], user=IdpUser(email=ALICE), fresh_keys=False
    )


@pytest.fixture
def router(idp: OidcTestIdP) -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as mock:
        idp.mount(mock)
        yield mock


def settings_with_flow(tmp_path: Path, smtp: SmtpServer) -> Settings:
    """The partner test's settings, with a user flow that collects names and calls a connector."""
    connector = {
        "id": "check",
        "target_url": CONNECTOR,
        "authentication": {"basic": {"username": "g", "password": "p"}},
    }
    base = partner_settings(tmp_path, smtp)
    return base.model_copy(
        update={
            "user_flows": [UserFlow.model_validate(FLOW)],
            "api_connectors": [ApiConnector.model_validate(connector)],
        }
    )


async def test_a_partner_guest_signs_up_with_the_idps_names_prefilled(
    tmp_path: Path, smtp_server: SmtpServer, idp: OidcTestIdP, router: respx.MockRouter
) -> None:
    check = router.post(CONNECTOR).mock(
        return_value=httpx.Response(200, json={"version": "1.0.0", "action": "Continue"})
    )
    async with running_app(settings_with_flow(tmp_path, smtp_server)) as (app, client):
        req = flows.AuthRequest()
        callback = await client.get(
            "/callback/partner-a", params=await at_idp(idp, await to_idp(client, req=req))
        )
        assert callback.status_code == 303, callback.text
        path = callback.headers["location"]
        assert re.fullmatch(r"/signin/[A-Za-z0-9_-]+/signup", path)
        assert json.loads(check.calls.last.request.content) == {
            "email": ALICE,
            "displayName": "Alice Example",
            "givenName": "Alice",
            "surname": "Example",
            "ui_locales": "en",
        }
        page = await client.get(path)
        for value in ("Alice Example", "Alice", "Example"):
            assert f'value="{value}"' in page.text
        assert snapshot(app).user_count == 0
        done = await client.post(
            path,
            data={
                "csrf": flows.csrf_of(page),
                "attr-displayName": "Alice E.",
                "attr-givenName": "Alice",
                "attr-surname": "Example",
            },
        )
        assert done.status_code == 303 and done.headers["location"].startswith(flows.DEMO_REDIRECT)
        [user] = users(app)
        assert user["creationType"] == "SelfServiceSignUp" and user["displayName"] == "Alice E."
        assert user["identities"] == [
            {"signInType": "federated", "issuer": IDP_ISSUER, "issuerAssignedId": "alice-0001"}
        ]
        tokens = (await flows.exchange(client, req, flows.query_of(done.headers["location"])["code"])).json()
        claims = app.state.runtime.keys.verify(tokens["id_token"])
        assert claims["name"] == "Alice E." and claims["oid"] == user["id"]
