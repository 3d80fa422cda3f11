"""Automatic redemption (b2b-concepts §3.5): a partner that agreed to it skips the consent page.

The partner's own OIDC IdP is the test IdP behind respx. With ``automatic_user_consent.inbound_allowed``
on the partner entry, the invited guest who signs in through the partner's connector is redeemed
as they arrive (no consent page) and gets a notification mail that needs no action; without it, or
through any other connector, the consent page is shown as usual.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import respx

from tests.admin.conftest import ApiFactory
from tests.admin.helpers import REDIRECT, Api
from tests.admin.test_redemption import invite, open_link
from tests.support import flows
from tests.support.oidc_idp import IdpClient, IdpUser, OidcTestIdP, authorize

IDP_ISSUER = "https://idp.partner-a.test"
PARTNER_TENANT = "11111111-2222-4333-8444-555555555555"
CALLBACK = "http://127.0.0.1:8000/callback/partner-a"
ALICE = "alice@partner-a.example"
CONTINUE = re.compile(r'id="continue" href="([^"]+)"')


@pytest.fixture
def idp() -> Iterator[OidcTestIdP]:
    idp = OidcTestIdP(
        IDP_ISSUER, clients=[IdpClient(redirect_uris=[CALLBACK])], user=IdpUser(email=ALICE), fresh_keys=False
    )
    with respx.mock(assert_all_called=False) as router:
        idp.mount(router)
        yield idp


def overrides(*, automatic: bool | None) -> dict[str, Any]:
    partner: dict[str, Any] = {
        "tenant_id": PARTNER_TENANT,
        "domains": ["partner-a.example"],
        "connector": "partner-a",
    }
    if automatic is not None:
        partner["automatic_user_consent"] = {"inbound_allowed": automatic}
    return {
        "connectors": [
            {"id": "email", "type": "email_otp"},
            {"id": "partner-a", "type": "oidc", "issuer": IDP_ISSUER, "client_id": "gateway",
             "client_secret": IdpClient.client_secret},
        ],
        "cross_tenant_access": {"partners": [partner]},
    }  # fmt: skip


async def sign_in_at_partner(api: Api, idp: OidcTestIdP) -> Any:
    """Open the redeem link, go to the partner's IdP, come back: the callback's answer."""
    _, link = await invite_alice(api)
    signin = await open_link(api, link)
    page = await api.client.get(signin)
    sent = await api.client.post(f"{signin}/email", data={"csrf": flows.csrf_of(page), "email": ALICE})
    assert sent.status_code == 303, sent.text
    continuation = await api.client.get(sent.headers["location"])
    match = CONTINUE.search(continuation.text)
    assert match, continuation.text
    target, params = await authorize(idp, match.group(1).replace("&amp;", "&"))
    assert target == CALLBACK
    return await api.client.get("/callback/partner-a", params=params)


async def invite_alice(api: Api) -> tuple[str, str]:
    return await invite(api, ALICE)


async def test_an_agreed_partner_redeems_without_the_consent_page(
    api_with: ApiFactory, idp: OidcTestIdP
) -> None:
    async with api_with(**overrides(automatic=True)) as api:
        done = await sign_in_at_partner(api, idp)
        assert done.status_code == 303, done.text
        assert done.headers["location"] == REDIRECT  # straight on: no consent page
        [guest] = [u for u in api.state().users.values() if u.get("mail") == ALICE]
        assert guest["externalUserState"] == "Accepted"
        assert guest["identities"][0]["issuer"] == IDP_ISSUER
        notice = await api.smtp.wait_for(to=ALICE, timeout=10)
        assert notice["Subject"] == "You now have access to applications within Contoso"
        text = notice.get_body(("plain",))
        assert text is not None and "You don't need to do anything" in text.get_content()


@pytest.mark.parametrize("automatic", [False, None], ids=["not-agreed", "inherited-default"])
async def test_without_the_agreement_the_consent_page_is_shown(
    api_with: ApiFactory, idp: OidcTestIdP, automatic: bool | None
) -> None:
    async with api_with(**overrides(automatic=automatic)) as api:
        done = await sign_in_at_partner(api, idp)
        assert done.status_code == 303, done.text
        assert done.headers["location"].endswith("/consent")
        [guest] = [u for u in api.state().users.values() if u.get("mail") == ALICE]
        assert guest["externalUserState"] == "PendingAcceptance"  # nothing accepted before consent


async def test_invitation_terms_of_use_keep_the_consent_page(api_with: ApiFactory, idp: OidcTestIdP) -> None:
    terms = {"display_name": "Guest terms", "url": "https://contoso.example/terms", "version": "1"}
    async with api_with(**overrides(automatic=True), invitations={"terms_of_use": terms}) as api:
        done = await sign_in_at_partner(api, idp)
        assert done.headers["location"].endswith("/consent")
