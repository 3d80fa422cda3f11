"""A callback answer POSTed from another site is re-POSTed from our origin before anything is consumed.

The upstream here is the OIDC test IdP (its answer POSTed, as SAML ACS and WS-Fed wreply answers
are); the browser that started the sign-in is an httpx client with the gateway's cookies, and the
cross-site POST is the same request sent without them (what SameSite=Lax does to a cross-site POST).
"""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from tests.integration.test_federation_oidc import (
    ALICE,
    CALLBACK,
    IDP_ISSUER,
    at_idp,
    partner_settings,
    to_idp,
)
from tests.support.gateway_app import running_app
from tests.support.inspect_store import snapshot
from tests.support.oidc_idp import IdpClient, IdpUser, OidcTestIdP
from tests.support.smtp_server import SmtpServer


@pytest.fixture
def idp() -> Iterator[OidcTestIdP]:
    idp = OidcTestIdP(
        IDP_ISSUER, clients=[IdpClient(redirect_uris=[CALLBACK])], user=IdpUser(email=ALICE), fresh_keys=False
    )
    with respx.mock(assert_all_called=False) as router:
        idp.mount(router)
        yield idp


@pytest.fixture
async def gateway(
    tmp_path: Path, smtp_server: SmtpServer, idp: OidcTestIdP
) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    async with running_app(partner_settings(tmp_path, smtp_server)) as running:
        yield running


FIELD = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


def fields_of(page: str) -> dict[str, str]:
    return {html.unescape(name): html.unescape(value) for name, value in FIELD.findall(page)}


async def test_a_cookieless_post_gets_the_repost_page_and_nothing_is_consumed(
    app: Any, client: httpx.AsyncClient, idp: OidcTestIdP
) -> None:
    answer = await at_idp(idp, await to_idp(client))
    before = snapshot(app)
    async with httpx.AsyncClient(transport=client._transport, base_url=str(client.base_url)) as cross_site:
        page = await cross_site.post("/callback/partner-a", data=answer)
    assert page.status_code == 200, page.text
    assert snapshot(app) == before  # the state is still there: nothing consumed, nothing written
    assert '<form id="repost" method="post" action="/callback/partner-a">' in page.text
    assert '<script src="/static/autosubmit.js"></script>' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    assert fields_of(page.text) == {**answer, "_gw_repost": "1"}
    # The browser submits it from our origin, now with its cookies: the sign-in completes.
    done = await client.post("/callback/partner-a", data=fields_of(page.text))
    assert done.status_code == 303, done.text
    assert "code=" in done.headers["location"]


async def test_a_reposted_answer_without_the_cookie_is_refused_as_another_browser(
    app: Any, client: httpx.AsyncClient, idp: OidcTestIdP
) -> None:
    answer = await at_idp(idp, await to_idp(client))
    async with httpx.AsyncClient(transport=client._transport, base_url=str(client.base_url)) as stranger:
        refused = await stranger.post("/callback/partner-a", data={**answer, "_gw_repost": "1"})
    assert refused.status_code == 403 and "another browser" in refused.text


async def test_field_values_are_escaped_on_the_repost_page(client: httpx.AsyncClient) -> None:
    hostile = '"><script>alert(1)</script>'
    async with httpx.AsyncClient(transport=client._transport, base_url=str(client.base_url)) as cross_site:
        page = await cross_site.post("/callback/partner-a", data={"state": hostile, "code": "x"})
    assert page.status_code == 200
    assert "<script>alert(1)</script>" not in page.text
    assert fields_of(page.text)["state"] == hostile


async def test_metadata_of_a_connector_without_it_is_not_found(client: httpx.AsyncClient) -> None:
    response = await client.get("/callback/partner-a/metadata")
    assert response.status_code == 404
