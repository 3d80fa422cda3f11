"""Guests sign in through a partner's SAML 2.0 IdP, end to end in-process (the gateway as SP).

The IdP is pysaml2 (``tests/support/saml_idp.py``) with its metadata fetched over https through
respx; the browser is an httpx client that has the gateway's cookies, so answers POSTed to the ACS
need no same-origin re-POST (``tests/support/xml_federation.py``). A good answer creates the
guest keyed by (IdP entityID, persistent NameID); every refused answer shows the error page,
leaves an audit record with the connector's code and creates nothing (no user, session, code or
replay-cache entry: only the upstream state is spent). The AuthnContextClassRef and a mapped
device attribute feed the partner's trust settings, in the sign-in and in What-If alike.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from lxml import etree
from saml2 import BINDING_HTTP_POST, saml

from gateway.mfa import totp
from gateway.mfa.methods import METHODS_KEY
from gateway.settings.federation import DEFAULT_MFA_ACR_VALUES
from gateway.signin.repost import UPSTREAM_STATE
from gateway.whatif import WhatIfQuery, what_if
from tests.support import flows
from tests.support.assertions import assert_error_page
from tests.support.saml_idp import IDP_ENTITY_ID, PASSWORD
from tests.support.smtp_server import SmtpServer
from tests.support.trust import (
    ACR_MFA,
    ACR_SINGLE,
    PARTNER_TENANT,
    SECRET_ON_PAGE,
    audit_records,
    capture_audit,
    decided,
    partner,
    policy,
    step_path,
)
from tests.support.xml_federation import (
    ALICE,
    ALICE_NAME_ID,
    COMPLIANT,
    SAML_CALLBACK,
    SAML_ID,
    SAML_MFA,
    SAML_MULTIPLE_AUTHN,
    SP_ENTITY_ID,
    XmlGateway,
    artefact_rows,
    connectors,
    saml_xml,
    sets_session,
    with_doctype,
    with_saml_xml,
    wrapped,
    xml_gateway,
)

MD = "urn:oasis:names:tc:SAML:2.0:metadata"
NOTHING_MINTED = {"code": 0, "access": 0, "refresh": 0, "session": 0}
XML_REFUSED = "The identity provider's response could not be accepted."
FAILED_TITLE = "Sign-in failed at your organisation"
TRUST_MFA = {"inbound_trust": {"mfa_accepted": True}}
DEVICE_CONNECTOR = {"claims": {"device": {"compliant": COMPLIANT}}}
DEVICE_MAPPING = {"compliant_device": {"claim": "compliant"}}


@pytest.fixture
def audit_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    return capture_audit(caplog)


def fabrikam(**fields: Any) -> dict[str, Any]:
    """Fabrikam's partner entry, bound to the SAML connector (which claims its domain)."""
    return partner(connector=SAML_ID, domains=[], **fields)  # the connector claims fabrikam.example


def failures(audit_log: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [r for r in audit_records(audit_log) if r["result"] == "failure"]


# -- the good path ----------------------------------------------------------------------------------


async def test_a_guest_found_by_domain_signs_in_through_the_saml_idp(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    async with xml_gateway(tmp_path, smtp_server) as gw:
        req = flows.AuthRequest()
        url = await gw.to_upstream(req)  # home-realm discovery: fabrikam.example is the connector's
        query = flows.query_of(url)
        assert set(query) == {"SAMLRequest", "RelayState"}  # HTTP-Redirect, unsigned
        pending = await gw.rt.store.get(UPSTREAM_STATE, query["RelayState"])
        assert pending is not None and pending["connector_id"] == SAML_ID  # RelayState is our state
        fields = await gw.saml_answer(url)
        [request] = gw.idp.requests  # what pysaml2 parsed and checked against our SP metadata
        assert request.destination == gw.idp.sso_url
        assert request.assertion_consumer_service_url == SAML_CALLBACK
        assert request.protocol_binding == BINDING_HTTP_POST
        assert request.issuer.text == SP_ENTITY_ID
        assert request.force_authn is None and request.requested_authn_context is None
        assert fields["RelayState"] == query["RelayState"]
        done = await gw.post(SAML_ID, fields)
        assert artefact_rows(gw.app)[(UPSTREAM_STATE, query["RelayState"])][1] == 1  # consumed once
        assert sets_session(done)
        claims = await gw.id_claims(req, done)
        [user] = gw.users()
        assert gw.snapshot().count("saml-assertion") == 1  # the replay cache holds its ID
    assert claims["idp"] == IDP_ENTITY_ID
    assert claims["amr"] == ["fed"] and claims["acr"] == ACR_SINGLE and "mfa_source" not in claims
    assert claims["email"] == ALICE and claims["email_verified"] is True
    assert claims["oid"] == user["id"]
    assert user["identities"] == [
        {"signInType": "federated", "issuer": IDP_ENTITY_ID, "issuerAssignedId": ALICE_NAME_ID}
    ]
    assert user["userType"] == "Guest" and user["mail"] == ALICE
    assert user["userPrincipalName"] == "alice_fabrikam.example#EXT#@contoso.example"
    assert (user["givenName"], user["surname"], user["displayName"]) == ("Alice", "Example", "Alice Example")


async def test_the_next_sign_in_finds_the_guest_by_entity_id_and_name_id(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    async with xml_gateway(tmp_path, smtp_server) as gw:
        first_req, first = await gw.saml_sign_in()
        first_claims = await gw.id_claims(first_req, first)
        async with gw.browser() as other:  # no SSO session there: the IdP is asked again
            req, again = await gw.saml_sign_in(client=other)
            claims = await gw.id_claims(req, again, other)
        assert len(gw.users()) == 1 and len(gw.idp.requests) == 2
        assert gw.metadata_route.call_count == 1  # the IdP's metadata is cached
    assert claims["oid"] == first_claims["oid"] and claims["sub"] == first_claims["sub"]


async def test_the_sp_metadata_names_our_entity_id_and_acs(tmp_path: Path, smtp_server: SmtpServer) -> None:
    async with xml_gateway(tmp_path, smtp_server) as gw:
        response = await gw.client.get(f"/callback/{SAML_ID}/metadata")
        missing = await gw.client.get("/callback/email/metadata")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/samlmetadata+xml"
    root = etree.fromstring(response.content)
    assert root.tag == f"{{{MD}}}EntityDescriptor" and root.get("entityID") == SP_ENTITY_ID
    [acs] = root.findall(f"{{{MD}}}SPSSODescriptor/{{{MD}}}AssertionConsumerService")
    assert acs.get("Location") == SAML_CALLBACK and acs.get("Binding") == BINDING_HTTP_POST
    assert missing.status_code == 404


# -- refused answers --------------------------------------------------------------------------------


def _expire_conditions(assertion: saml.Assertion) -> None:
    assertion.conditions.not_on_or_after = "2020-01-01T00:00:00Z"


@dataclass(frozen=True)
class Refusal:
    code: str
    message: str
    knobs: dict[str, Any] = field(default_factory=dict)
    edit: Callable[[bytes], bytes] | None = None
    late_by: int = 0
    """Seconds the gateway's clock moves on between the IdP's answer and its delivery."""
    detail: str | None = None
    """The XML layer's reason, logged by the connector (its page and audit code stay generic)."""


REFUSALS = [
    pytest.param(
        Refusal("xml_rejected", XML_REFUSED, edit=wrapped, detail="xml_assertion_count"),
        id="signature-wrapping",
    ),
    pytest.param(
        Refusal(
            "audience_mismatch",
            "the assertion is meant for another service provider (audience)",
            knobs={"audience": "https://other-sp.example/metadata"},
        ),
        id="wrong-audience",
    ),
    pytest.param(
        Refusal(
            "assertion_expired", "the assertion has expired", knobs={"edit_assertion": _expire_conditions}
        ),
        id="expired-assertion",
    ),
    pytest.param(
        Refusal(
            "subject_confirmation_expired",
            "the assertion has expired (SubjectConfirmationData NotOnOrAfter)",
            late_by=15 * 60,
        ),
        id="delivered-too-late",
    ),
    pytest.param(
        Refusal("xml_rejected", XML_REFUSED, edit=with_doctype, detail="xml_doctype"), id="doctype-xxe"
    ),
    pytest.param(
        Refusal("xml_rejected", XML_REFUSED, knobs={"attacker_key": True}, detail="signature_invalid"),
        id="attacker-signed",
    ),
    pytest.param(
        Refusal(
            "in_response_to_mismatch",
            "the answer belongs to another sign-in request",
            knobs={"in_response_to": "_another-request-0001"},
        ),
        id="other-in-response-to",
    ),
]


@pytest.mark.parametrize("case", REFUSALS)
async def test_a_bad_answer_is_refused_with_a_clear_page_and_nothing_created(
    tmp_path: Path, smtp_server: SmtpServer, audit_log: pytest.LogCaptureFixture, case: Refusal
) -> None:
    async with xml_gateway(tmp_path, smtp_server) as gw:
        for name, value in case.knobs.items():
            setattr(gw.idp.knobs, name, value)
        fields = await gw.saml_answer(await gw.to_upstream(flows.AuthRequest()))
        if case.edit is not None:
            fields = with_saml_xml(fields, case.edit(saml_xml(fields)))
        gw.clock.advance(case.late_by)
        before = gw.store_state()
        refused = await gw.post(SAML_ID, fields)
        assert_error_page(refused, 400)
        page = html.unescape(refused.text)
        assert FAILED_TITLE in page and case.message in page
        assert not sets_session(refused)
        gw.assert_only_state_consumed(before)
        assert gw.users() == []
    [record] = failures(audit_log)
    assert record["reason"] == case.code and record["connector"] == SAML_ID
    assert decided(record, "upstream", "failed", case.code)
    logged = [r.getMessage() for r in audit_log.records if r.name == "idp_connectors.saml"]
    assert logged == ([f"SAML connector {SAML_ID} refused a response: {case.detail}"] if case.detail else [])


async def test_the_same_post_replayed_after_a_sign_in_is_refused(
    tmp_path: Path, smtp_server: SmtpServer, audit_log: pytest.LogCaptureFixture
) -> None:
    async with xml_gateway(tmp_path, smtp_server) as gw:
        req = flows.AuthRequest()
        fields = await gw.saml_answer(await gw.to_upstream(req))
        await gw.id_claims(req, await gw.post(SAML_ID, fields))
        before = gw.store_state()
        replayed = await gw.post(SAML_ID, fields)  # its RelayState is spent
        assert_error_page(replayed, 400)
        assert "Sign-in not recognised" in replayed.text and not sets_session(replayed)
        gw.assert_only_state_consumed(before, fields["RelayState"])
        assert len(gw.users()) == 1
    assert failures(audit_log)[-1]["reason"] == "invalid_state"


async def test_a_response_replayed_into_another_browser_s_sign_in_is_refused(
    tmp_path: Path, smtp_server: SmtpServer, audit_log: pytest.LogCaptureFixture
) -> None:
    """The second browser has its own RelayState; the captured Response answers the first request."""
    async with xml_gateway(tmp_path, smtp_server) as gw:
        req = flows.AuthRequest()
        captured = await gw.saml_answer(await gw.to_upstream(req))
        await gw.id_claims(req, await gw.post(SAML_ID, captured))
        async with gw.browser() as second:
            own_request = await gw.to_upstream(flows.AuthRequest(), client=second)
            relay_state = flows.query_of(own_request)["RelayState"]
            before = gw.store_state()
            refused = await gw.post(SAML_ID, {**captured, "RelayState": relay_state}, second)
            assert_error_page(refused, 400)
            assert FAILED_TITLE in refused.text and not sets_session(refused)
            gw.assert_only_state_consumed(before)
        assert len(gw.users()) == 1
    assert failures(audit_log)[-1]["reason"] == "in_response_to_mismatch"


async def test_an_assertion_id_seen_before_is_refused_in_the_next_sign_in(
    tmp_path: Path, smtp_server: SmtpServer, audit_log: pytest.LogCaptureFixture
) -> None:
    """The replay cache: a genuinely signed answer to the second browser's own request, reusing the
    first sign-in's assertion ID, is refused although everything else about it is right."""
    async with xml_gateway(tmp_path, smtp_server) as gw:
        req = flows.AuthRequest()
        first = await gw.saml_answer(await gw.to_upstream(req))
        await gw.id_claims(req, await gw.post(SAML_ID, first))
        used_id = etree.fromstring(saml_xml(first)).find(f"{{{saml.NAMESPACE}}}Assertion").get("ID")

        def reuse(assertion: saml.Assertion) -> None:
            assertion.id = used_id

        gw.idp.knobs.edit_assertion = reuse
        async with gw.browser() as second:
            answer = await gw.saml_answer(await gw.to_upstream(flows.AuthRequest(), client=second))
            before = gw.store_state()
            refused = await gw.post(SAML_ID, answer, second)
            assert_error_page(refused, 400)
            assert "this assertion was already used" in refused.text and not sets_session(refused)
            gw.assert_only_state_consumed(before)
        assert len(gw.users()) == 1
    assert failures(audit_log)[-1]["reason"] == "assertion_replayed"


# -- the partner's trust settings -------------------------------------------------------------------


async def register_totp(gw: XmlGateway, path: str) -> httpx.Response:
    """The TOTP registration page, then a right code: the answer."""
    page = await gw.client.get(f"{path}/mfa")
    assert page.status_code == 200 and "Set up your authenticator app" in page.text, page.text[:300]
    match = SECRET_ON_PAGE.search(page.text)
    assert match, page.text[:500]
    code = totp.code_at(match.group(1).replace(" ", ""), totp.time_step(gw.rt.now()))
    return await gw.client.post(f"{path}/mfa", data={"csrf": flows.csrf_of(page), "code": code})


@pytest.mark.parametrize("class_ref", [SAML_MFA, SAML_MULTIPLE_AUTHN])
async def test_mfa_at_a_trusted_home_idp_satisfies_the_policy_without_a_prompt(
    tmp_path: Path, smtp_server: SmtpServer, audit_log: pytest.LogCaptureFixture, class_ref: str
) -> None:
    async with xml_gateway(
        tmp_path,
        smtp_server,
        cross_tenant_access={"partners": [fabrikam(**TRUST_MFA)]},
        conditional_access=[policy("guests-mfa", "mfa")],
    ) as gw:
        gw.idp.knobs.authn_context = class_ref
        req, done = await gw.saml_sign_in()
        claims = await gw.id_claims(req, done)  # the callback answers with the code: no local prompt
        [user] = gw.users()
        assert len(gw.idp.requests) == 1
    assert claims["amr"] == ["fed", "mfa"] and claims["acr"] == ACR_MFA
    assert claims["mfa_source"] == "home"
    assert METHODS_KEY not in user
    [record] = [r for r in audit_records(audit_log) if r["result"] == "success"]
    assert record["homeTenantId"] == PARTNER_TENANT
    assert decided(record, "trust", "mfa_trusted", "mfa_trusted_from_home")


@pytest.mark.parametrize("second_class", [SAML_MFA, PASSWORD], ids=["mfa-done", "still-password"])
async def test_a_trusted_home_idp_that_did_password_only_is_asked_again_for_mfa(
    tmp_path: Path, smtp_server: SmtpServer, audit_log: pytest.LogCaptureFixture, second_class: str
) -> None:
    async with xml_gateway(
        tmp_path,
        smtp_server,
        cross_tenant_access={"partners": [fabrikam(**TRUST_MFA)]},
        conditional_access=[policy("guests-mfa", "mfa")],
    ) as gw:
        gw.idp.knobs.authn_context = PASSWORD
        req, first = await gw.saml_sign_in()
        # The answer was POSTed: a page that moves on by itself goes back home (CSP form-action).
        assert first.status_code == 200, first.text
        home = re.search(r'id="continue" href="([^"]+)"', first.text)
        assert home, first.text
        step_up = html.unescape(home.group(1))
        assert gw.snapshot().minted() == NOTHING_MINTED
        gw.idp.knobs.authn_context = second_class
        answer = await gw.saml_answer(step_up)
        initial, again = gw.idp.requests
        assert initial.requested_authn_context is None and initial.force_authn is None
        assert again.force_authn == "true"
        context = again.requested_authn_context
        assert context.comparison == "exact"
        assert [ref.text for ref in context.authn_context_class_ref] == DEFAULT_MFA_ACR_VALUES
        done = await gw.post(SAML_ID, answer)
        if second_class == SAML_MFA:
            claims = await gw.id_claims(req, done)
            assert claims["amr"] == ["fed", "mfa"] and claims["mfa_source"] == "home"
            [record] = [r for r in audit_records(audit_log) if r["result"] == "success"]
            assert decided(record, "mfa", "requested", "mfa_requested_from_home")
            return
        assert_error_page(done, 403)
        assert "Multi-factor authentication is required" in done.text and not sets_session(done)
        assert gw.snapshot().minted() == NOTHING_MINTED
        [user] = gw.users()
        assert METHODS_KEY not in user  # no TOTP offered instead
    [record] = failures(audit_log)
    assert record["reason"] == "mfa_not_satisfied_at_home" and record["homeTenantId"] == PARTNER_TENANT


async def test_mfa_at_an_untrusted_home_idp_leads_to_totp_here(
    tmp_path: Path, smtp_server: SmtpServer, audit_log: pytest.LogCaptureFixture
) -> None:
    async with xml_gateway(
        tmp_path,
        smtp_server,
        cross_tenant_access={"partners": [fabrikam()]},
        conditional_access=[policy("guests-mfa", "mfa")],
    ) as gw:
        gw.idp.knobs.authn_context = SAML_MFA
        req, callback = await gw.saml_sign_in()
        path = step_path(callback, "mfa")
        assert gw.snapshot().minted() == NOTHING_MINTED
        claims = await gw.id_claims(req, await register_totp(gw, path))
        assert len(gw.idp.requests) == 1  # the home IdP is not asked again
    assert claims["amr"] == ["fed", "otp", "mfa"] and claims["mfa_source"] == "resource"
    [record] = [r for r in audit_records(audit_log) if r["result"] == "success"]
    assert decided(record, "trust", "mfa_not_trusted", "mfa_claim_not_trusted")


@pytest.mark.parametrize(
    ("accepted", "value", "compliant"),
    [(True, "true", True), (False, "true", False), (True, "false", False)],
    ids=["trusted", "not-trusted", "not-compliant"],
)
async def test_a_mapped_device_attribute_counts_only_when_the_partner_trusts_devices(
    tmp_path: Path, smtp_server: SmtpServer, accepted: bool, value: str, compliant: bool
) -> None:
    trust = {"inbound_trust": {"compliant_device_accepted": accepted}, "claims_mapping": DEVICE_MAPPING}
    async with xml_gateway(
        tmp_path,
        smtp_server,
        connectors=connectors(saml=DEVICE_CONNECTOR),
        cross_tenant_access={"partners": [fabrikam(**trust)]},
    ) as gw:
        gw.idp.knobs.attributes = {COMPLIANT: value}
        req, done = await gw.saml_sign_in()
        claims = await gw.id_claims(req, done)
    assert claims.get("device_compliant") is (True if compliant else None)
    assert "device_hybrid_joined" not in claims


async def test_a_compliant_device_policy_refuses_an_untrusted_device_attribute(
    tmp_path: Path, smtp_server: SmtpServer, audit_log: pytest.LogCaptureFixture
) -> None:
    async with xml_gateway(
        tmp_path,
        smtp_server,
        connectors=connectors(saml=DEVICE_CONNECTOR),
        cross_tenant_access={"partners": [fabrikam(claims_mapping=DEVICE_MAPPING)]},
        conditional_access=[policy("devices", "compliantDevice")],
    ) as gw:
        gw.idp.knobs.attributes = {COMPLIANT: "true"}
        _, refused = await gw.saml_sign_in()
        assert_error_page(refused, 403)
        assert "A compliant device is required" in refused.text
        assert gw.snapshot().minted() == NOTHING_MINTED
    [record] = failures(audit_log)
    assert record["reason"] == "device_not_compliant"
    assert "device_claim_not_trusted" in [d["reason"] for d in record["decisions"]]


# -- What-If with the SAML connector ----------------------------------------------------------------


async def ask_what_if(gw: XmlGateway, user_id: str, claims: dict[str, Any]) -> dict[str, Any]:
    """What-If for a sign-in of ``user_id`` to the demo app through the SAML connector with ``claims``."""
    query = WhatIfQuery(user_id, "demo", connector_id=SAML_ID, claims=claims)
    return await what_if(gw.rt.settings, gw.rt.store, query, gw.rt.now())


@pytest.mark.parametrize("accepted", [True, False], ids=["devices-trusted", "devices-not-trusted"])
async def test_what_if_reads_a_saml_class_ref_and_device_attribute_as_the_sign_in_does(
    tmp_path: Path, smtp_server: SmtpServer, accepted: bool
) -> None:
    trust = {
        "inbound_trust": {"mfa_accepted": True, "compliant_device_accepted": accepted},
        "claims_mapping": DEVICE_MAPPING,
    }
    async with xml_gateway(
        tmp_path,
        smtp_server,
        connectors=connectors(saml=DEVICE_CONNECTOR),
        cross_tenant_access={"partners": [fabrikam(**trust)]},
        conditional_access=[policy("guests-mfa", "mfa")],
    ) as gw:
        gw.idp.knobs.authn_context = SAML_MFA
        gw.idp.knobs.attributes = {COMPLIANT: "true"}
        req, done = await gw.saml_sign_in()
        token = await gw.id_claims(req, done)
        [user] = gw.users()
        before = gw.store_state()
        mfa = await ask_what_if(gw, user["id"], {"acr": SAML_MFA, COMPLIANT: "true"})
        password = await ask_what_if(gw, user["id"], {"acr": PASSWORD, COMPLIANT: "false"})
        assert gw.store_state() == before  # What-If writes nothing
    device_reason = "compliant_device_trusted_from_home" if accepted else "device_claim_not_trusted"
    assert mfa["connector"] == SAML_ID and mfa["connectorChosenBy"] == "request"
    assert mfa["homeTenantId"] == PARTNER_TENANT
    assert mfa["trust"] == {
        "mfa": True,
        "compliantDevice": accepted,
        "hybridJoinedDevice": False,
        "upstreamMfa": True,
        "upstreamCompliantDevice": True,
        "upstreamHybridJoinedDevice": False,
        "reasons": ["mfa_trusted_from_home", device_reason],
    }
    assert mfa["mfaSource"] == "home" and mfa["amr"] == ["fed", "mfa"] and mfa["outcome"] == "grant"
    # The real sign-in with the same attributes earned the same facts.
    assert token["mfa_source"] == "home" and token.get("device_compliant") is (True if accepted else None)
    assert password["trust"]["upstreamMfa"] is False and password["trust"]["mfa"] is False
    assert password["trust"]["upstreamCompliantDevice"] is False and password["trust"]["reasons"] == []
    assert password["outcome"] == "userActionRequired" and password["required"] == ["mfa"]
    assert password["mfaChallenge"] == "home" and password["amr"] == ["fed"]
