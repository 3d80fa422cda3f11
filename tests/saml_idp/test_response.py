"""``respond`` and ``error_response``: the auto-POST page, and what a real SP (pysaml2) reads from it.

The SP is pysaml2's ``Saml2Client`` on the in-process crypto backend, configured from the
gateway's own metadata: it verifies the signatures it wants with the published certificate only,
checks Destination / Recipient / Audience / InResponseTo and the schema, and decrypts.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
from lxml import etree

from gateway.oidc.claims import pairwise_sub
from gateway.saml_idp.certificates import signer
from gateway.saml_idp.request import SamlRequest
from gateway.saml_idp.response import PARTICIPANT_KIND
from idp_connectors.xmlsecurity.gate import GatePolicy, parse_inbound, text_of
from idp_connectors.xmlsecurity.signature import verify_enveloped
from tests.saml_idp.conftest import EMAIL_CLAIM, GROUP_ID, ROLE_READER, USER, USER_ID, Idp, base
from tests.support.saml_sp import PostForm, Received, post_form_of

NS = {"samlp": "urn:oasis:names:tc:SAML:2.0:protocol", "saml": "urn:oasis:names:tc:SAML:2.0:assertion"}
STATUS = "urn:oasis:names:tc:SAML:2.0:status:"


async def checked_request(idp: Idp, app_id: str, relay_state: str = "") -> SamlRequest:
    out = await idp.sp(app_id).authn_request_url(relay_state=relay_state)
    return await idp.read(out.url)


def form_of(page: Any) -> PostForm:
    assert page.status_code == 200, page.text[:500]
    form = post_form_of(page.text)
    assert form is not None
    return form


def document_of(form: PostForm) -> etree._Element:
    return parse_inbound(base64.b64decode(form.fields["SAMLResponse"]), GatePolicy())


async def sign_in(idp: Idp, app_id: str, user: dict[str, Any] | None = None, **authn: Any) -> Received:
    saml = await checked_request(idp, app_id, relay_state="back-to/page?x=1")
    form = form_of(await idp.respond(saml, user, **authn))
    return idp.sp(app_id).consume(form.fields)


async def test_the_page_posts_the_response_to_the_acs_with_a_script_and_strict_headers(idp: Idp) -> None:
    saml = await checked_request(idp, "payroll", relay_state="opaque")
    page = await idp.respond(saml)
    form = form_of(page)
    assert form.action == base("payroll") + "/acs"
    assert set(form.fields) == {"SAMLResponse", "RelayState"} and form.fields["RelayState"] == "opaque"
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "form-action 'self' https://payroll.example;" in csp
    assert "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert page.headers["cache-control"] == "no-store"
    assert '<script src="/static/autosubmit.js"></script>' in page.text


async def test_without_relay_state_no_relay_state_field_is_posted(idp: Idp) -> None:
    saml = await checked_request(idp, "payroll")
    assert "RelayState" not in form_of(await idp.respond(saml)).fields


async def test_pysaml2_accepts_the_signed_assertion_with_a_pairwise_persistent_name_id(idp: Idp) -> None:
    received = await sign_in(idp, "payroll")
    assert received.name_id == pairwise_sub(idp.rt.pairwise_salt, "payroll", USER_ID)
    assert received.name_id_format == "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
    assert received.assertion_signed and not received.response_signed and not received.encrypted
    assert received.authn_context == "https://refeds.org/profile/mfa"
    assert received.session_index == "sid-1"
    assert received.relay_state == "back-to/page?x=1"
    assert received.issuer == f"{idp.rt.settings.issuer}/saml2/metadata"
    assert received.attributes[EMAIL_CLAIM] == [USER["mail"]]
    assert received.attribute_formats[EMAIL_CLAIM] == "urn:oasis:names:tc:SAML:2.0:attrname-format:uri"
    assert received.attributes["displayName"] == ["Ada Lovelace"]
    assert received.attributes["amr"] == ["fed", "mfa"]
    assert received.attributes["tenantId"] == [idp.rt.settings.tenant.id]
    assert received.attributes["mfaSource"] == ["home"] and received.attributes["deviceCompliant"] == ["true"]
    assert "groups" not in received.attributes and "roles" not in received.attributes


async def test_untrusted_facts_are_not_released(idp: Idp) -> None:
    received = await sign_in(
        idp, "payroll", acr="https://refeds.org/profile/sfa", amr=["fed"], auth_claims={}
    )
    assert received.authn_context == "https://refeds.org/profile/sfa"
    assert "mfaSource" not in received.attributes and "deviceCompliant" not in received.attributes


async def test_the_persistent_name_id_is_stable_per_app_and_differs_between_apps(idp: Idp) -> None:
    first, second = await sign_in(idp, "payroll"), await sign_in(idp, "payroll")
    other = await sign_in(idp, "portal")
    assert first.name_id == second.name_id != other.name_id


async def test_email_name_id_and_a_signed_response(idp: Idp) -> None:
    received = await sign_in(idp, "wiki")
    assert (received.name_id, received.name_id_format) == (
        USER["mail"],
        "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
    )
    assert received.response_signed and not received.assertion_signed


async def test_upn_name_id_with_both_signed_and_the_assertion_encrypted(idp: Idp) -> None:
    saml = await checked_request(idp, "vault")
    form = form_of(await idp.respond(saml))
    posted = document_of(form)
    assert posted.xpath("saml:Assertion", namespaces=NS) == []
    assert len(posted.xpath("saml:EncryptedAssertion", namespaces=NS)) == 1
    received = idp.sp("vault").consume(form.fields)
    assert received.name_id == USER["userPrincipalName"]
    assert received.response_signed and received.assertion_signed


async def test_groups_and_roles_are_released_as_the_directory_has_them(idp: Idp) -> None:
    store = idp.rt.store
    assert await store.create_user(dict(USER), [("mail", USER_ID)])
    await store.create_group(
        {"id": GROUP_ID, "displayName": "Payroll", "createdDateTime": "2026-11-26T00:00:00Z"}
    )
    assert await store.add_group_member(GROUP_ID, USER_ID)
    assert await store.add_app_role_assignment(
        {
            "id": "44444444-4444-4444-8444-444444444444",
            "appRoleId": ROLE_READER,
            "principalId": GROUP_ID,
            "principalType": "Group",
            "resourceId": "payroll",
            "createdDateTime": "2026-11-26T00:00:00Z",
        }
    )
    received = await sign_in(idp, "payroll")
    assert received.attributes["groups"] == [GROUP_ID]
    assert received.attributes["roles"] == ["Reader"]


async def test_a_hostile_display_name_reaches_the_sp_as_text(idp: Idp) -> None:
    hostile = '</saml:AttributeValue><saml:AttributeValue>admin"]]>'
    received = await sign_in(idp, "payroll", {**USER, "displayName": hostile})
    assert received.attributes["displayName"] == [hostile]


async def test_the_session_participation_is_recorded_for_single_logout(idp: Idp) -> None:
    await sign_in(idp, "payroll", sid="sid-42")
    record = await idp.rt.store.get(PARTICIPANT_KIND, "sid-42:payroll")
    assert record is not None
    assert record["user_id"] == USER_ID
    assert record["name_id"] == pairwise_sub(idp.rt.pairwise_salt, "payroll", USER_ID)
    assert idp.snapshot().count(PARTICIPANT_KIND) == 1


def status_of(root: etree._Element) -> list[str]:
    return [str(value) for value in root.xpath("//samlp:StatusCode/@Value", namespaces=NS)]


@pytest.mark.parametrize(
    ("app_id", "user", "message"),
    [
        ("payroll", {**USER, "displayName": "Ada\x07"}, "control character"),
        ("wiki", {key: value for key, value in USER.items() if key != "mail"}, "no mail"),
        ("gated", USER, "not assigned"),
    ],
)
async def test_what_cannot_be_released_is_a_signed_error_response_and_nothing_is_recorded(
    idp: Idp, app_id: str, user: dict[str, Any], message: str
) -> None:
    saml = await checked_request(idp, app_id)
    form = form_of(await idp.respond(saml, user))
    root = document_of(form)
    assert status_of(root)[0] in (STATUS + "Responder", STATUS + "Requester")
    assert message in text_of(root.xpath("//samlp:StatusMessage", namespaces=NS)[0])
    assert root.xpath("//saml:Assertion", namespaces=NS) == []
    assert root.get("InResponseTo") == saml.request_id and root.get("Destination") == saml.acs_url
    verify_enveloped(root, [signer(idp.rt)[1]])
    assert idp.snapshot().count(PARTICIPANT_KIND) == 0
    with pytest.raises(Exception, match=r"Responder|Requester|RequestDenied|status"):
        idp.sp(app_id).consume(form.fields)


async def test_error_response_posts_a_signed_status_to_the_validated_acs(idp: Idp) -> None:
    saml = await checked_request(idp, "payroll", relay_state="rs")
    body = {"saml": saml.to_json(), "status": "NoPassive", "message": "Sign-in needs a page."}
    form = form_of(await idp.client.post("/test/error", json=body))
    assert form.action == saml.acs_url and form.fields["RelayState"] == "rs"
    root = document_of(form)
    assert status_of(root) == [STATUS + "Responder", STATUS + "NoPassive"]
    verify_enveloped(root, [signer(idp.rt)[1]])


async def test_an_acs_no_longer_registered_gets_an_error_page_and_nothing_is_posted(idp: Idp) -> None:
    saml = await checked_request(idp, "payroll")
    moved = SamlRequest.from_json({**saml.to_json(), "acs_url": "https://evil.example/acs"})
    authn = {"sid": "s", "auth_time": 1, "acr": "a", "amr": []}
    for path, extra in (
        ("/test/respond", {"user": USER, "authn": authn}),
        ("/test/error", {"status": "RequestDenied", "message": "no"}),
    ):
        page = await idp.client.post(path, json={"saml": moved.to_json(), **extra})
        assert page.status_code == 400 and "SAMLResponse" not in page.text and "evil.example" not in page.text
    assert idp.snapshot().count(PARTICIPANT_KIND) == 0
