"""Another instance of this gateway is a valid partner: a partner's guest signs in at the partner's gateway.

Two gateways run in-process, each with its own store: the resource gateway (``http://127.0.0.1:8000``,
an ``oidc`` connector at the partner's issuer, a partner entry for the partner's tenant and domain)
and the partner gateway (``https://partner-gw.test``, passcode sign-in, a confidential client
``resource-gw``). The resource gateway's back channel reaches the partner through respx; each
gateway has its own browser (httpx client), and the two share no cookies.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from joserfc import jwt
from joserfc.jwk import KeySet

from gateway.oidc.claims import pairwise_sub
from tests.support import flows
from tests.support.gateway_app import ISSUER, make_settings, running_app
from tests.support.inspect_store import snapshot, users
from tests.support.partner_gateway import (
    CLIENT_ID,
    CONNECTOR_ID,
    PARTNER_DOMAIN,
    PARTNER_ISSUER,
    PARTNER_TENANT,
    mount_gateway,
    partner_settings,
    resource_overrides,
)
from tests.support.smtp_server import SmtpServer, extract_passcode

BOB = f"bob@{PARTNER_DOMAIN}"
CALLBACK = f"{ISSUER}/callback/{CONNECTOR_ID}"
CONTINUE = re.compile(r'id="continue" href="([^"]+)"')

Gateway = tuple[Any, httpx.AsyncClient]


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as mock:  # any other outbound request fails the test
        yield mock


@pytest.fixture
async def partner(
    tmp_path: Path, smtp_server: SmtpServer, router: respx.MockRouter
) -> AsyncIterator[Gateway]:
    async with running_app(
        partner_settings(tmp_path / "partner", smtp_server, redirect_uri=CALLBACK)
    ) as running:
        yield running


@pytest.fixture
def partner_routes(partner: Gateway, router: respx.MockRouter) -> dict[str, respx.Route]:
    return mount_gateway(router, partner[0])


@pytest.fixture
async def resource(
    tmp_path: Path, smtp_server: SmtpServer, partner_routes: dict[str, respx.Route]
) -> AsyncIterator[Gateway]:
    (tmp_path / "resource").mkdir()
    async with running_app(
        make_settings(tmp_path / "resource", smtp_server, **resource_overrides())
    ) as running:
        yield running


async def to_partner(resource_client: httpx.AsyncClient, req: flows.AuthRequest) -> str:
    """At the resource gateway: authorize, the partner's domain on the email page; the partner's URL."""
    path = await flows.start(resource_client, req)
    sent = await flows.submit_email(resource_client, path, BOB)
    assert sent.status_code == 303 and sent.headers["location"] == f"{path}/upstream", sent.text
    page = await resource_client.get(sent.headers["location"])
    assert page.status_code == 200 and 'http-equiv="refresh"' in page.text, page.text
    link = CONTINUE.search(page.text)
    assert link, page.text
    return link.group(1).replace("&amp;", "&")


async def passcode_at_partner(partner_client: httpx.AsyncClient, smtp: SmtpServer, url: str) -> str:
    """At the partner gateway: its authorization endpoint, then its own passcode sign-in; the redirect."""
    path = flows.signin_path_of(await partner_client.get(url))
    sent = await flows.submit_email(partner_client, path, BOB)
    assert sent.status_code == 200, sent.text  # the passcode page
    passcode = extract_passcode(await smtp.wait_for(to=BOB, timeout=10))
    done = await flows.submit_passcode(partner_client, path, passcode)
    assert done.status_code == 303, done.text
    return str(done.headers["location"])


async def id_token_claims(client: httpx.AsyncClient, token: str) -> dict[str, Any]:
    jwks = KeySet.import_key_set((await client.get("/oauth2/jwks")).json())
    return dict(jwt.decode(token, jwks, algorithms=["ES256"]).claims)


async def test_partner_gateway_signs_in_a_guest_of_the_resource_gateway(
    resource: Gateway, partner: Gateway, partner_routes: dict[str, respx.Route], smtp_server: SmtpServer
) -> None:
    (resource_app, resource_client), (partner_app, partner_client) = resource, partner
    req = flows.AuthRequest()

    url = await to_partner(resource_client, req)
    assert url.startswith(f"{PARTNER_ISSUER}/oauth2/authorize?"), url
    query = flows.query_of(url)
    assert query["client_id"] == CLIENT_ID and query["redirect_uri"] == CALLBACK
    assert query["login_hint"] == BOB and query["code_challenge_method"] == "S256"

    back = await passcode_at_partner(partner_client, smtp_server, url)
    assert back.startswith(f"{CALLBACK}?"), back
    assert flows.query_of(back)["iss"] == PARTNER_ISSUER  # RFC 9207, checked by the resource's connector

    callback = await resource_client.get(back)
    assert callback.status_code == 303, callback.text
    answer = flows.query_of(callback.headers["location"])
    assert callback.headers["location"].startswith(req.redirect_uri) and answer["state"] == req.state
    tokens = await flows.exchange(resource_client, req, answer["code"])
    assert tokens.status_code == 200, tokens.text
    claims = await id_token_claims(resource_client, tokens.json()["id_token"])
    assert claims["iss"] == ISSUER and claims["aud"] == "demo"
    assert claims["idp"] == PARTNER_ISSUER
    assert claims["email"] == BOB and claims["acct"] == 1 and claims["amr"] == ["fed"]

    # The partner's ID token for `resource-gw` (read from the back channel) names Bob by a pairwise sub.
    upstream = partner_routes["token"].calls.last.response.json()
    upstream_claims = await id_token_claims(partner_client, upstream["id_token"])
    [partner_user] = users(partner_app)
    expected_sub = pairwise_sub(partner_app.state.runtime.pairwise_salt, CLIENT_ID, partner_user["id"])
    assert upstream_claims["iss"] == PARTNER_ISSUER and upstream_claims["aud"] == CLIENT_ID
    assert upstream_claims["sub"] == expected_sub != partner_user["id"]
    assert upstream_claims["tid"] == PARTNER_TENANT and upstream_claims["amr"] == ["otp"]

    # ... which is what the resource gateway keys its guest by.
    [guest] = users(resource_app)
    assert guest["identities"] == [
        {"signInType": "federated", "issuer": PARTNER_ISSUER, "issuerAssignedId": expected_sub}
    ]
    assert guest["userType"] == "Guest" and guest["mail"] == BOB
    assert guest["userPrincipalName"] == f"bob_{PARTNER_DOMAIN}#EXT#@contoso.example"
    assert partner_routes["discovery"].call_count == 1 and partner_routes["jwks"].call_count == 1
    assert partner_routes["other"].call_count == 0  # no userinfo call: the ID token said it all

    # Two hosts, two browsers: neither gateway's cookies reached the other.
    resource_jar, partner_jar = list(resource_client.cookies.jar), list(partner_client.cookies.jar)
    assert resource_jar and all(c.domain in ("127.0.0.1", "127.0.0.1.local") for c in resource_jar)
    assert partner_jar and all(c.domain.startswith("partner-gw.test") for c in partner_jar)


async def test_second_sign_in_uses_the_partner_session_and_finds_the_same_guest(
    resource: Gateway, partner: Gateway, partner_routes: dict[str, respx.Route], smtp_server: SmtpServer
) -> None:
    (resource_app, resource_client), (_, partner_client) = resource, partner
    back = await passcode_at_partner(
        partner_client, smtp_server, await to_partner(resource_client, flows.AuthRequest())
    )
    assert (await resource_client.get(back)).status_code == 303
    [guest] = users(resource_app)

    resource_client.cookies.clear()  # the resource gateway forgets Bob; the partner still knows him
    req = flows.AuthRequest()
    again = await partner_client.get(await to_partner(resource_client, req))
    assert again.status_code in (302, 303) and again.headers["location"].startswith(f"{CALLBACK}?")
    callback = await resource_client.get(again.headers["location"])
    assert callback.status_code == 303, callback.text
    assert flows.query_of(callback.headers["location"])["state"] == req.state
    assert [u["id"] for u in users(resource_app)] == [guest["id"]]
    assert len(smtp_server.messages) == 1  # one passcode, at the first sign-in only
    assert partner_routes["token"].call_count == 2 and partner_routes["discovery"].call_count == 1
    assert snapshot(resource_app).count("session") == 2  # the forgotten one and the new one


def race_first_sign_ins(store: Any) -> None:
    """Make two first sign-ins interleave as two workers can: A looks Bob up by identity (not found) and
    stalls; B looks him up, signs him up; then A goes on. Patched on this one store object only."""
    created = asyncio.Event()
    lookups = 0
    find_user_by_identity, create_user = store.find_user_by_identity, store.create_user

    async def lookup(*args: Any) -> Any:
        nonlocal lookups
        lookups += 1
        found = await find_user_by_identity(*args)
        if lookups == 1:
            with contextlib.suppress(TimeoutError):  # a fix that serialises sign-ins must not hang here
                await asyncio.wait_for(created.wait(), timeout=2)
        return found

    async def create(*args: Any) -> Any:
        result = await create_user(*args)
        created.set()
        return result

    store.find_user_by_identity, store.create_user = lookup, create


async def test_concurrent_first_sign_ins_of_one_partner_guest_both_succeed(
    resource: Gateway, partner: Gateway, smtp_server: SmtpServer
) -> None:
    """Two tabs (or a double-click, or two workers) finish Bob's first sign-in at once: one guest, no refusal.

    Fails today: the late sign-in finds no user by (issuer, subject), then finds Bob's new user by email,
    and the linking rule (email not trusted) refuses it with 403, although the user has this very identity.
    """
    (resource_app, resource_client), (_, partner_client) = resource, partner
    transport, base = resource_client._transport, str(resource_client.base_url)
    async with httpx.AsyncClient(transport=transport, base_url=base) as second_tab:
        first = await passcode_at_partner(
            partner_client, smtp_server, await to_partner(resource_client, flows.AuthRequest())
        )
        again = await partner_client.get(await to_partner(second_tab, flows.AuthRequest()))  # partner SSO
        assert again.status_code in (302, 303), again.text
        race_first_sign_ins(resource_app.state.runtime.store)
        answers = await asyncio.gather(resource_client.get(first), second_tab.get(again.headers["location"]))
    assert [a.status_code for a in answers] == [303, 303], [a.text[-700:] for a in answers]
    assert len(users(resource_app)) == 1
