"""Guests sign in through a partner's WS-Federation passive STS, end to end in-process (the gateway as RP).

The STS (``tests/support/wsfed_sts.py``) issues genuinely signed SAML 1.1 tokens; the gateway has
its certificate inline. A good ``wresult`` creates the guest keyed by (STS issuer, ImmutableID);
a refused one shows the error page, leaves an audit record with the connector's code and creates
nothing (only the upstream state is spent). An invited guest whose address is in the connector's
domains redeems the invitation through the STS: its email counts as verified there.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from lxml import etree

from gateway.signin.repost import UPSTREAM_STATE
from tests.admin.helpers import REDIRECT, Api, body
from tests.admin.helpers import config as admin_config
from tests.support import flows
from tests.support.assertions import assert_error_page
from tests.support.smtp_server import SmtpServer
from tests.support.trust import ACR_SINGLE, audit_records, capture_audit, decided
from tests.support.xml_federation import (
    ADA,
    ADA_IMMUTABLE_ID,
    STS_ENTITY_ID,
    WSFED_CALLBACK,
    WSFED_ID,
    WSFED_REALM,
    XmlGateway,
    artefact_rows,
    sets_session,
    xml_gateway,
)

MD = "urn:oasis:names:tc:SAML:2.0:metadata"
FED = "http://docs.oasis-open.org/wsfed/federation/200706"
WSA = "http://www.w3.org/2005/08/addressing"
FAILED_TITLE = "Sign-in failed at your organisation"
XML_REFUSED = "The identity provider's response could not be accepted."


@pytest.fixture
def audit_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    return capture_audit(caplog)


def failures(audit_log: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [r for r in audit_records(audit_log) if r["result"] == "failure"]


# -- the good path ----------------------------------------------------------------------------------


async def test_a_guest_found_by_domain_signs_in_through_the_sts(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    async with xml_gateway(tmp_path, smtp_server) as gw:
        req = flows.AuthRequest()
        url = await gw.to_upstream(req, ADA)  # home-realm discovery: woodgrove.example is the connector's
        query = flows.query_of(url)
        assert set(query) == {"wa", "wtrealm", "wctx", "wreply", "wct"}  # no wfresh, no wauth
        assert query["wa"] == "wsignin1.0"
        assert query["wtrealm"] == WSFED_REALM and query["wreply"] == WSFED_CALLBACK
        pending = await gw.rt.store.get(UPSTREAM_STATE, query["wctx"])
        assert pending is not None and pending["connector_id"] == WSFED_ID  # wctx is our state
        fields = await gw.wsfed_answer(url)
        assert fields["wctx"] == query["wctx"] and fields["wa"] == "wsignin1.0"
        assert "urn:oasis:names:tc:SAML:1.0:assertion" in fields["wresult"]  # a SAML 1.1 token
        done = await gw.post(WSFED_ID, fields)
        assert artefact_rows(gw.app)[(UPSTREAM_STATE, query["wctx"])][1] == 1  # consumed once
        assert sets_session(done)
        claims = await gw.id_claims(req, done)
        [user] = gw.users()
        assert gw.snapshot().count("wsfed-assertion") == 1  # the replay marker
    assert claims["idp"] == STS_ENTITY_ID
    assert claims["amr"] == ["fed"] and claims["acr"] == ACR_SINGLE
    assert claims["email"] == ADA and claims["email_verified"] is True
    assert claims["oid"] == user["id"]
    assert user["identities"] == [
        {"signInType": "federated", "issuer": STS_ENTITY_ID, "issuerAssignedId": ADA_IMMUTABLE_ID}
    ]
    assert user["userType"] == "Guest" and user["mail"] == ADA
    assert (user["givenName"], user["surname"], user["displayName"]) == ("Ada", "Lovelace", "Ada Lovelace")


async def test_the_next_sign_in_finds_the_guest_by_issuer_and_immutable_id(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    async with xml_gateway(tmp_path, smtp_server) as gw:
        first_req, first = await gw.wsfed_sign_in()
        first_claims = await gw.id_claims(first_req, first)
        gw.sts.user.email = "ada.lovelace@woodgrove.example"  # a renamed mailbox: still the same guest
        async with gw.browser() as other:
            req, again = await gw.wsfed_sign_in(client=other)
            claims = await gw.id_claims(req, again, other)
        assert len(gw.users()) == 1 and len(gw.sts.requests) == 2
    assert claims["oid"] == first_claims["oid"] and claims["sub"] == first_claims["sub"]


async def test_the_rp_metadata_names_the_realm_and_the_wreply(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    async with xml_gateway(tmp_path, smtp_server) as gw:
        response = await gw.client.get(f"/callback/{WSFED_ID}/metadata")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/samlmetadata+xml"
    root = etree.fromstring(response.content)
    assert root.tag == f"{{{MD}}}EntityDescriptor" and root.get("entityID") == WSFED_REALM
    endpoint = root.find(f".//{{{FED}}}PassiveRequestorEndpoint/{{{WSA}}}EndpointReference/{{{WSA}}}Address")
    assert endpoint is not None and endpoint.text == WSFED_CALLBACK


# -- refused answers --------------------------------------------------------------------------------

REFUSALS = [
    pytest.param(
        {"audience": "urn:federation:another-relying-party"},
        "audience_mismatch",
        "the token is not for this realm (Audience)",
        id="wrong-audience",
    ),
    pytest.param(
        {"applies_to": "https://another-rp.example/"},
        "applies_to_mismatch",
        "the sign-in result applies to another realm than ours",
        id="applies-to-mismatch",
    ),
    pytest.param({"signer": "attacker"}, "xml_rejected", XML_REFUSED, id="attacker-signed"),
    pytest.param({"lifetime": -600}, "assertion_expired", "the token has expired", id="expired"),
]


@pytest.mark.parametrize(("knobs", "code", "message"), REFUSALS)
async def test_a_bad_wresult_is_refused_with_a_clear_page_and_nothing_created(
    tmp_path: Path,
    smtp_server: SmtpServer,
    audit_log: pytest.LogCaptureFixture,
    knobs: dict[str, Any],
    code: str,
    message: str,
) -> None:
    async with xml_gateway(tmp_path, smtp_server) as gw:
        for name, value in knobs.items():
            setattr(gw.sts.knobs, name, value)
        fields = await gw.wsfed_answer(await gw.to_upstream(flows.AuthRequest(), ADA))
        before = gw.store_state()
        refused = await gw.post(WSFED_ID, fields)
        assert_error_page(refused, 400)
        page = html.unescape(refused.text)
        assert FAILED_TITLE in page and message in page
        assert not sets_session(refused)
        gw.assert_only_state_consumed(before)
        assert gw.users() == []
    [record] = failures(audit_log)
    assert record["reason"] == code and record["connector"] == WSFED_ID
    assert decided(record, "upstream", "failed", code)


async def test_a_wresult_replayed_in_the_same_browser_is_refused(
    tmp_path: Path, smtp_server: SmtpServer, audit_log: pytest.LogCaptureFixture
) -> None:
    async with xml_gateway(tmp_path, smtp_server) as gw:
        req = flows.AuthRequest()
        fields = await gw.wsfed_answer(await gw.to_upstream(req, ADA))
        await gw.id_claims(req, await gw.post(WSFED_ID, fields))
        before = gw.store_state()
        replayed = await gw.post(WSFED_ID, fields)  # its wctx is spent
        assert_error_page(replayed, 400)
        assert "Sign-in not recognised" in replayed.text and not sets_session(replayed)
        gw.assert_only_state_consumed(before, fields["wctx"])
    assert failures(audit_log)[-1]["reason"] == "invalid_state"


async def test_a_wresult_replayed_into_another_browser_s_sign_in_is_refused(
    tmp_path: Path, smtp_server: SmtpServer, audit_log: pytest.LogCaptureFixture
) -> None:
    """WS-Federation has no InResponseTo: the captured token fits the second browser's sign-in but
    for its assertion ID, which the replay cache already holds."""
    async with xml_gateway(tmp_path, smtp_server) as gw:
        req = flows.AuthRequest()
        captured = await gw.wsfed_answer(await gw.to_upstream(req, ADA))
        await gw.id_claims(req, await gw.post(WSFED_ID, captured))
        async with gw.browser() as second:
            wctx = flows.query_of(await gw.to_upstream(flows.AuthRequest(), ADA, second))["wctx"]
            before = gw.store_state()
            refused = await gw.post(WSFED_ID, {**captured, "wctx": wctx}, second)
            assert_error_page(refused, 400)
            assert FAILED_TITLE in refused.text and "this sign-in result was already used" in refused.text
            assert not sets_session(refused)
            gw.assert_only_state_consumed(before)
        assert len(gw.users()) == 1
    assert failures(audit_log)[-1]["reason"] == "assertion_replayed"


# -- an invited guest redeems through the STS -------------------------------------------------------


async def invite(api: Api, email: str = ADA) -> tuple[str, str]:
    """An invitation by the automation app: the guest's id and the redeem link (path and query)."""
    response = await api.invite(await api.app_token(), body(email))
    assert response.status_code == 201, response.text
    created = response.json()
    link = urlsplit(created["inviteRedeemUrl"])
    return created["invitedUser"]["id"], f"{link.path}?{link.query}"


async def redeem_through_sts(gw: XmlGateway, link: str) -> tuple[str, httpx.Response]:
    """Open the redeem link, go on to the STS (home-realm discovery of the invited address), come back:
    the sign-in path and the callback's answer."""
    opened = await gw.client.get(link)
    assert opened.status_code == 303, opened.text
    signin = opened.headers["location"]
    page = await gw.client.get(signin)
    assert page.status_code == 200 and "readonly" in page.text and ADA in page.text
    sent = await gw.client.post(f"{signin}/email", data={"csrf": flows.csrf_of(page), "email": ADA})
    assert sent.status_code == 303 and sent.headers["location"] == f"{signin}/upstream", sent.text
    fields = await gw.wsfed_answer(await gw.continuation(sent.headers["location"]))
    return signin, await gw.post(WSFED_ID, fields)


async def test_an_invited_guest_redeems_the_invitation_through_the_sts(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    async with xml_gateway(tmp_path, smtp_server, **admin_config()) as gw:
        api = Api(gw.app, gw.client, smtp_server, gw.clock)
        guest_id, link = await invite(api)
        signin, answered = await redeem_through_sts(gw, link)
        assert answered.status_code == 303 and answered.headers["location"] == f"{signin}/consent"
        assert api.state().users[guest_id]["externalUserState"] == "PendingAcceptance"  # not before consent
        consent = await gw.client.get(f"{signin}/consent")
        assert consent.status_code == 200 and "Review permissions" in consent.text
        accepted = await gw.client.post(
            f"{signin}/consent", data={"csrf": flows.csrf_of(consent), "decision": "accept"}
        )
        assert accepted.status_code == 303 and accepted.headers["location"] == REDIRECT
        assert sets_session(accepted)
        [guest] = gw.users()  # the invited guest, no second user
    assert guest["id"] == guest_id and guest["creationType"] == "Invitation"
    assert guest["externalUserState"] == "Accepted"
    assert guest["identities"] == [
        {"signInType": "federated", "issuer": STS_ENTITY_ID, "issuerAssignedId": ADA_IMMUTABLE_ID}
    ]


async def test_an_sts_asserting_an_address_outside_its_domains_cannot_redeem(
    tmp_path: Path, smtp_server: SmtpServer, audit_log: pytest.LogCaptureFixture
) -> None:
    """The address is not verified (not one of the connector's domains) and not the invited one."""
    async with xml_gateway(tmp_path, smtp_server, **admin_config()) as gw:
        api = Api(gw.app, gw.client, smtp_server, gw.clock)
        guest_id, link = await invite(api)
        before = api.state()
        gw.sts.user.email = "ada@fabrikam.example"
        _, refused = await redeem_through_sts(gw, link)
        assert_error_page(refused, 403)
        assert "The invitation was sent to ada@woodgrove.example" in refused.text
        assert not sets_session(refused)
        api.assert_unchanged(before)
        assert api.state().users[guest_id]["externalUserState"] == "PendingAcceptance"
    assert failures(audit_log)[-1]["reason"] == "redeemer_email_mismatch"
