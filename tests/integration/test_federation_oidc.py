"""A guest from a partner organisation signs in at the partner's own OIDC IdP, through the email-first page.

The partner IdP is the real test IdP (tests/support/oidc_idp.py) reached through respx; the
gateway runs in-process. Every refusal shows an error page and leaves no session, user or link.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from joserfc import jwt
from joserfc.jwk import KeySet

from gateway.directory.users import sign_up
from idp_connectors.base import UpstreamIdentity
from tests.support import flows
from tests.support.assertions import assert_error_page
from tests.support.gateway_app import make_settings, running_app
from tests.support.inspect_store import identities, snapshot, users
from tests.support.oidc_idp import IdpClient, IdpUser, OidcTestIdP
from tests.support.smtp_server import SmtpServer

IDP_ISSUER = "https://idp.partner-a.test"
PARTNER_TENANT = "11111111-2222-4333-8444-555555555555"
CALLBACK = "http://127.0.0.1:8000/callback/partner-a"
SECRET = "s3cret with spaces & symbols"
ALICE = "alice@partner-a.example"
CONTINUE = re.compile(r'id="continue" href="([^"]+)"')


def partner_settings(tmp_path: Path, smtp: SmtpServer, **connector: Any) -> Any:
    entry = {
        "id": "partner-a",
        "type": "oidc",
        "issuer": IDP_ISSUER,
        "client_id": "gateway",
        "client_secret": SECRET,
        "display_name": "Partner A",
        **connector,
    }
    return make_settings(
        tmp_path,
        smtp,
        connectors=[{"id": "email", "type": "email_otp"}, entry],
        user_flows=[{"id": "default", "identity_providers": ["email", "partner-a"]}],
        cross_tenant_access={
            "partners": [
                {"tenant_id": PARTNER_TENANT, "domains": ["partner-a.example"], "connector": "partner-a"}
            ]
        },
    )


@pytest.fixture
def idp() -> OidcTestIdP:
    return OidcTestIdP(
        IDP_ISSUER, clients=[IdpClient(redirect_uris=[CALLBACK])], user=IdpUser(email=ALICE), fresh_keys=False
    )


@pytest.fixture
def upstream(idp: OidcTestIdP) -> Iterator[dict[str, respx.Route]]:
    with respx.mock(assert_all_called=False) as router:
        yield idp.mount(router)


@pytest.fixture
async def gateway(
    tmp_path: Path, smtp_server: SmtpServer, upstream: dict[str, respx.Route]
) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    async with running_app(partner_settings(tmp_path, smtp_server)) as running:
        yield running


async def to_idp(client: httpx.AsyncClient, email: str = ALICE, req: flows.AuthRequest | None = None) -> str:
    """Email-first page -> the continuation page; returns the IdP authorization URL."""
    path = await flows.start(client, req or flows.AuthRequest())
    sent = await flows.submit_email(client, path, email)
    assert sent.status_code == 303, sent.text
    assert sent.headers["location"] == f"{path}/upstream"
    page = await client.get(sent.headers["location"])
    assert page.status_code == 200, page.text
    assert 'http-equiv="refresh"' in page.text
    match = CONTINUE.search(page.text)
    assert match
    return match.group(1).replace("&amp;", "&")


async def at_idp(idp: OidcTestIdP, url: str) -> dict[str, str]:
    """The IdP answers the browser; returns the callback query."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=idp.app)) as browser:
        response = await browser.get(url)
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(CALLBACK)
    return flows.query_of(location)


async def test_partner_guest_signs_in_at_their_own_idp(
    app: Any, client: httpx.AsyncClient, idp: OidcTestIdP
) -> None:
    req = flows.AuthRequest()
    url = await to_idp(client, req=req)
    assert url.startswith(f"{IDP_ISSUER}/authorize?")
    assert "login_hint=alice%40partner-a.example" in url
    callback = await client.get("/callback/partner-a", params=await at_idp(idp, url))
    assert callback.status_code == 303, callback.text
    query = flows.query_of(callback.headers["location"])
    assert query["state"] == req.state
    tokens = (await flows.exchange(client, req, query["code"])).json()
    jwks = KeySet.import_key_set((await client.get("/oauth2/jwks")).json())
    claims = jwt.decode(tokens["id_token"], jwks, algorithms=["ES256"]).claims
    assert claims["idp"] == IDP_ISSUER
    assert claims["amr"] == ["fed"]  # the upstream said pwd+mfa; not trusted (yet)
    assert claims["email"] == ALICE and claims["acct"] == 1
    [user] = users(app)
    assert user["identities"] == [
        {"signInType": "federated", "issuer": IDP_ISSUER, "issuerAssignedId": "alice-0001"}
    ]
    assert user["userPrincipalName"] == "alice_partner-a.example#EXT#@contoso.example"


async def test_second_sign_in_finds_the_user_by_issuer_and_subject(
    app: Any, client: httpx.AsyncClient, idp: OidcTestIdP
) -> None:
    for _ in range(2):
        client.cookies.delete("gw_session")
        callback = await client.get("/callback/partner-a", params=await at_idp(idp, await to_idp(client)))
        assert callback.status_code == 303
    assert len(users(app)) == 1


async def test_replayed_state_is_refused(app: Any, client: httpx.AsyncClient, idp: OidcTestIdP) -> None:
    params = await at_idp(idp, await to_idp(client))
    assert (await client.get("/callback/partner-a", params=params)).status_code == 303
    before = snapshot(app)
    replay = await client.get("/callback/partner-a", params=params)
    assert_error_page(replay, 400)
    assert snapshot(app).minted() == before.minted()


@pytest.mark.parametrize("state", [None, "unknown-state-value"])
async def test_missing_or_unknown_state_is_refused(
    app: Any, client: httpx.AsyncClient, state: str | None
) -> None:
    before = snapshot(app)
    params = {"code": "x"} | ({"state": state} if state else {})
    assert_error_page(await client.get("/callback/partner-a", params=params), 400)
    assert snapshot(app).minted() == before.minted() and snapshot(app).user_count == 0


async def test_callback_in_another_browser_is_refused(
    app: Any, client: httpx.AsyncClient, idp: OidcTestIdP
) -> None:
    params = await at_idp(idp, await to_idp(client))
    before = snapshot(app)
    async with httpx.AsyncClient(transport=client._transport, base_url=str(client.base_url)) as other:
        assert_error_page(await other.get("/callback/partner-a", params=params), 403)
    after = snapshot(app)
    assert after.minted() == before.minted() and after.user_count == 0


async def test_state_is_bound_to_its_connector(app: Any, client: httpx.AsyncClient, idp: OidcTestIdP) -> None:
    """Mix-up defence: a response delivered to another connector's callback is refused."""
    params = await at_idp(idp, await to_idp(client))
    assert_error_page(await client.get("/callback/email", params=params), 404)
    assert_error_page(await client.get("/callback/nope", params=params), 404)
    assert snapshot(app).user_count == 0


async def test_iss_mix_up_is_refused(app: Any, client: httpx.AsyncClient, idp: OidcTestIdP) -> None:
    idp.knobs.advertise_iss = idp.knobs.send_iss = True
    idp.knobs.response_iss = "https://attacker.example"
    response = await client.get("/callback/partner-a", params=await at_idp(idp, await to_idp(client)))
    assert_error_page(response, 400)
    assert snapshot(app).user_count == 0 and snapshot(app).count("session") == 0


async def test_upstream_access_denied_is_an_error_page(
    app: Any, client: httpx.AsyncClient, idp: OidcTestIdP
) -> None:
    idp.knobs.authorize_error = "access_denied"
    response = await client.get("/callback/partner-a", params=await at_idp(idp, await to_idp(client)))
    assert_error_page(response, 400)
    assert "access_denied" in response.text or "denied" in response.text.lower()
    assert snapshot(app).user_count == 0 and snapshot(app).count("session") == 0


async def test_upstream_token_endpoint_failure(app: Any, client: httpx.AsyncClient, idp: OidcTestIdP) -> None:
    idp.knobs.token_status = 500
    response = await client.get("/callback/partner-a", params=await at_idp(idp, await to_idp(client)))
    assert_error_page(response, 400)
    assert snapshot(app).user_count == 0


async def test_bad_id_token_signature_is_refused(
    app: Any, client: httpx.AsyncClient, idp: OidcTestIdP
) -> None:
    idp.knobs.sign_with_wrong_key = True
    response = await client.get("/callback/partner-a", params=await at_idp(idp, await to_idp(client)))
    assert_error_page(response, 400)
    assert snapshot(app).user_count == 0 and snapshot(app).count("session") == 0


async def existing_guest(app: Any, email: str = ALICE) -> dict[str, Any]:
    identity = UpstreamIdentity(
        connector_id="email", issuer="mail", subject=email, email=email, email_verified=True
    )
    return await sign_up(app.state.runtime.store, identity, "mail", "contoso.example", int(time.time()))


async def test_unverified_email_equal_to_an_existing_guest_is_not_linked(
    app: Any, client: httpx.AsyncClient, idp: OidcTestIdP
) -> None:
    guest = await existing_guest(app)
    idp.user.email_verified = False
    response = await client.get("/callback/partner-a", params=await at_idp(idp, await to_idp(client)))
    assert_error_page(response, 403)
    assert [u["id"] for u in users(app)] == [guest["id"]]
    assert [i for i in identities(app) if i[0] == IDP_ISSUER] == []
    assert snapshot(app).count("session") == 0


async def test_verified_email_is_not_linked_unless_the_connector_trusts_it(
    app: Any, client: httpx.AsyncClient, idp: OidcTestIdP
) -> None:
    await existing_guest(app)
    response = await client.get("/callback/partner-a", params=await at_idp(idp, await to_idp(client)))
    assert_error_page(response, 403)
    assert len(users(app)) == 1 and snapshot(app).count("session") == 0


async def test_verified_email_links_when_the_connector_trusts_it(
    tmp_path: Path, smtp_server: SmtpServer, upstream: dict[str, respx.Route], idp: OidcTestIdP
) -> None:
    async with running_app(partner_settings(tmp_path, smtp_server, trust_email_for_linking=True)) as (
        app,
        client,
    ):
        guest = await existing_guest(app)
        response = await client.get("/callback/partner-a", params=await at_idp(idp, await to_idp(client)))
        assert response.status_code == 303, response.text
        [user] = users(app)
        assert user["id"] == guest["id"]
        assert {i["issuer"] for i in user["identities"]} == {"mail", IDP_ISSUER}


async def test_idp_button_and_domain_hint(tmp_path: Path, smtp_server: SmtpServer, upstream: Any) -> None:
    async with running_app(partner_settings(tmp_path, smtp_server)) as (_, client):
        req = flows.AuthRequest(extra={"domain_hint": "partner-a.example"})
        hinted = await client.get(f"/oauth2/authorize?{req.query()}")
        assert hinted.status_code == 303 and hinted.headers["location"].startswith(f"{IDP_ISSUER}/authorize?")


async def test_discovery_is_fetched_once_for_many_sign_ins(
    app: Any, client: httpx.AsyncClient, idp: OidcTestIdP, upstream: dict[str, respx.Route]
) -> None:
    for _ in range(3):
        client.cookies.delete("gw_session")
        await client.get("/callback/partner-a", params=await at_idp(idp, await to_idp(client)))
    assert upstream["discovery"].call_count == 1
    assert upstream["jwks"].call_count == 1
    assert upstream["token"].call_count == 3


async def test_prompt_max_age_and_acr_values_are_forwarded_upstream(client: httpx.AsyncClient) -> None:
    req = flows.AuthRequest(extra={"prompt": "login", "max_age": "300", "acr_values": "urn:test:mfa"})
    url = await to_idp(client, req=req)
    query = flows.query_of(url)
    assert query["prompt"] == "login"
    assert query["max_age"] == "300"
    assert query["acr_values"] == "urn:test:mfa"
    assert query["redirect_uri"] == CALLBACK
    assert query["code_challenge_method"] == "S256" and query["nonce"]
