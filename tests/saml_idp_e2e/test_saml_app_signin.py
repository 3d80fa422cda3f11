"""A real pysaml2 SP signs in to the gateway's SAML IdP over HTTP, in-process (see ``conftest.py``).

The gateway's answers are checked where it matters, at the SP: pysaml2 verifies the signatures with
the certificates of ``/saml2/metadata`` only, decrypts, checks audience, recipient, InResponseTo and
the schema. What the assertion says is compared with the directory and the session: the pairwise
persistent NameID, the email and UPN formats, the released attributes under their configured names,
the AuthnContextClassRef (single factor after a passcode, REFEDS MFA after TOTP). The SSO session
answers a second request without a passcode; ForceAuthn asks again; conditional access refuses
with an error page and sends nothing. The produced Responses validate against the SAML 2.0 XSDs.
"""

from __future__ import annotations

import base64
import logging
import re

import httpx
import pytest
from lxml import etree
from saml2.xml.schema import XMLSchemaError
from saml2.xml.schema import validate as validate_saml_schema

from gateway.mfa import totp
from gateway.oidc.claims import ACR_MULTI_FACTOR, ACR_SINGLE_FACTOR, pairwise_sub
from gateway.settings.saml_app import NAME_FORMATS, NAME_ID_FORMATS
from tests.saml_idp_e2e.conftest import (
    EMAIL_CLAIM,
    OBJECT_ID_CLAIM,
    SamlEnv,
    decoded,
    signin_audit,
)
from tests.support import flows
from tests.support.saml_sp import post_form_of
from tests.support.trust import RESOURCE_TENANT, SECRET_ON_PAGE, step_path

ALICE = "alice@fabrikam.example"
DS_SIGNATURE = "{http://www.w3.org/2000/09/xmldsig#}Signature"
SAML_ASSERTION = "{urn:oasis:names:tc:SAML:2.0:assertion}Assertion"


def signatures(xml: bytes) -> tuple[bool, bool]:
    """Whether the Response and its (plaintext) Assertion each carry an enveloped ds:Signature."""
    root = etree.fromstring(xml, etree.XMLParser(resolve_entities=False, no_network=True))
    assertion = root.find(SAML_ASSERTION)
    response_signed = any(child.tag == DS_SIGNATURE for child in root)
    assertion_signed = assertion is not None and any(child.tag == DS_SIGNATURE for child in assertion)
    return response_signed, assertion_signed


async def test_persistent_name_id_is_pairwise_stable_and_the_sso_session_answers_again(
    saml_env: SamlEnv,
) -> None:
    env = saml_env
    first = await env.deliver(await env.sign_in("payroll", ALICE), "payroll")
    user = await env.user(ALICE)
    assert first.name_id == pairwise_sub(env.rt.pairwise_salt, "payroll", user["id"])
    assert first.name_id_format == NAME_ID_FORMATS["persistent"]
    assert first.name_id not in (user["id"], ALICE)
    mails = len(env.smtp.messages)

    # The same browser again: the SSO session answers at once, no page, no passcode.
    answer = await env.start("payroll")
    again = await env.deliver(answer, "payroll")
    assert again.name_id == first.name_id
    assert again.in_response_to != first.in_response_to

    # Another app: another pairwise value for the same user.
    wiki = await env.deliver(await env.start("wiki"), "wiki")
    assert wiki.name_id == pairwise_sub(env.rt.pairwise_salt, "wiki", user["id"])
    assert wiki.name_id != first.name_id
    assert len(env.smtp.messages) == mails
    assert env.sps["payroll"].outstanding == {} and env.sps["wiki"].outstanding == {}


async def test_email_name_id_with_response_and_assertion_signed(saml_env: SamlEnv) -> None:
    env = saml_env
    answer = await env.sign_in("mail", ALICE)
    form = env.form_for(answer, "mail")
    received = await env.deliver(answer, "mail")
    user = await env.user(ALICE)
    assert received.name_id == user["mail"] == ALICE
    assert received.name_id_format == NAME_ID_FORMATS["email"]
    assert received.assertion_signed and received.response_signed
    xml = decoded(form)
    assert signatures(xml) == (True, True)


async def test_upn_name_id_in_an_encrypted_assertion_decrypted_by_the_sp(saml_env: SamlEnv) -> None:
    env = saml_env
    answer = await env.sign_in("upn", ALICE)
    xml = decoded(env.form_for(answer, "upn"))
    received = await env.deliver(answer, "upn")
    user = await env.user(ALICE)
    assert received.encrypted and received.assertion_signed
    assert received.name_id == user["userPrincipalName"] and "#EXT#" in received.name_id
    assert received.name_id_format == NAME_ID_FORMATS["upn"]
    # On the wire nothing about the user is readable: only the SP's key opens it.
    assert b"EncryptedAssertion" in xml
    for secret in (user["userPrincipalName"], ALICE, "AuthnContextClassRef"):
        assert secret.encode() not in xml


async def test_sign_response_only_is_verified_by_an_sp_that_wants_a_signed_response(
    saml_env: SamlEnv,
) -> None:
    env = saml_env
    await env.deliver(await env.sign_in("payroll", ALICE), "payroll")
    answer = await env.start("wiki")
    form = env.form_for(answer, "wiki")
    assert signatures(decoded(form)) == (True, False)
    # pysaml2 really looks: an SP that wants a signed assertion refuses this one.
    wiki = env.sps["wiki"]
    wiki.configure(want_assertions_signed=True)
    assert (await env.post_to_sp("wiki", form.fields)).status_code == 400
    assert wiki.received == [] and "signature" in wiki.refused[-1].lower()
    wiki.configure(want_assertions_signed=False)
    received = await env.deliver(answer, "wiki")
    assert received.response_signed and not received.assertion_signed


async def test_attributes_are_released_under_the_configured_names_and_formats(saml_env: SamlEnv) -> None:
    env = saml_env
    received = await env.deliver(await env.sign_in("payroll", ALICE), "payroll")
    user = await env.user(ALICE)
    assert user.get("displayName") is None  # a passcode guest has none yet: the attribute is left out
    assert received.attributes == {
        EMAIL_CLAIM: [ALICE],
        OBJECT_ID_CLAIM: [user["id"]],
        "tenantId": [RESOURCE_TENANT],
        "userType": ["Guest"],
    }
    await env.rt.store.update_user({**user, "displayName": "Alice Example"})
    received = await env.deliver(await env.start("payroll"), "payroll")
    assert received.attributes["displayName"] == ["Alice Example"]
    assert received.attribute_formats == {
        EMAIL_CLAIM: NAME_FORMATS["uri"],
        "displayName": NAME_FORMATS["basic"],
        OBJECT_ID_CLAIM: NAME_FORMATS["uri"],
        "tenantId": NAME_FORMATS["basic"],
        "userType": NAME_FORMATS["unspecified"],
    }
    assert received.issuer == f"{env.rt.settings.issuer}/saml2/metadata"


async def test_a_hostile_directory_value_stays_one_attribute_value(saml_env: SamlEnv) -> None:
    env = saml_env
    await env.deliver(await env.sign_in("payroll", ALICE), "payroll")
    user = await env.user(ALICE)
    hostile = 'Eve</saml:AttributeValue><saml:AttributeValue>admin</saml:AttributeValue> "]]> &amp; <b>'
    await env.rt.store.update_user({**user, "displayName": hostile})
    received = await env.deliver(await env.start("payroll"), "payroll")
    assert received.attributes["displayName"] == [hostile]
    assert len(received.attributes) == 5


async def test_a_passcode_sign_in_is_single_factor_with_a_signed_assertion(saml_env: SamlEnv) -> None:
    env = saml_env
    answer = await env.sign_in("payroll", ALICE)
    assert signatures(decoded(env.form_for(answer, "payroll"))) == (False, True)
    received = await env.deliver(answer, "payroll")
    assert received.authn_context == ACR_SINGLE_FACTOR
    assert received.assertion_signed and not received.response_signed and not received.encrypted
    assert received.session_index


async def _register_totp(env: SamlEnv, step: str) -> httpx.Response:
    """The TOTP registration page, then a right code: the gateway's answer."""
    page = await env.client.get(f"{step}/mfa")
    assert page.status_code == 200, page.text[:500]
    match = SECRET_ON_PAGE.search(page.text)
    assert match, page.text[:500]
    secret = match.group(1).replace(" ", "")
    code = totp.code_at(secret, totp.time_step(env.rt.now()))
    return await env.client.post(f"{step}/mfa", data={"csrf": flows.csrf_of(page), "code": code})


async def test_conditional_access_mfa_ends_in_the_refeds_mfa_class(saml_env: SamlEnv) -> None:
    env = saml_env
    after_passcode = await env.sign_in("secure", ALICE)
    step = step_path(after_passcode, "mfa")
    assert post_form_of(after_passcode.text) is None
    answer = await _register_totp(env, step)
    received = await env.deliver(answer, "secure")
    assert received.authn_context == ACR_MULTI_FACTOR


async def test_requested_mfa_context_asks_for_mfa_before_answering(saml_env: SamlEnv) -> None:
    env = saml_env
    after_passcode = await env.sign_in("payroll", ALICE, mfa=True)
    step = step_path(after_passcode, "mfa")
    received = await env.deliver(await _register_totp(env, step), "payroll")
    assert received.authn_context == ACR_MULTI_FACTOR


async def test_force_authn_asks_for_a_new_sign_in(saml_env: SamlEnv) -> None:
    env = saml_env
    await env.deliver(await env.sign_in("payroll", ALICE), "payroll")
    mails = len(env.smtp.messages)
    first = await env.start("payroll", force_authn=True)
    assert post_form_of(first.text) is None or "SAMLResponse" not in first.text
    flows.signin_path_of(first)  # the email page, not an answer
    received = await env.deliver(await env.passcode(first, ALICE), "payroll")
    assert len(env.smtp.messages) == mails + 1
    assert received.authn_context == ACR_SINGLE_FACTOR


async def test_a_tampered_response_is_refused_by_the_sp(saml_env: SamlEnv) -> None:
    env = saml_env
    answer = await env.sign_in("payroll", ALICE)
    form = env.form_for(answer, "payroll")
    xml = decoded(form)
    assert xml.count(ALICE.encode()) == 1
    forged = xml.replace(ALICE.encode(), b"mallory@fabrikam.example")
    page = await env.post_to_sp("payroll", {**form.fields, "SAMLResponse": base64.b64encode(forged).decode()})
    assert page.status_code == 400 and env.sps["payroll"].received == []
    assert "Signature" in env.sps["payroll"].refused[-1] or "signature" in env.sps["payroll"].refused[-1]
    # The genuine one still goes through (nothing was consumed by the forgery).
    assert (await env.post_to_sp("payroll", form.fields)).status_code == 200


async def test_conditional_access_block_is_an_error_page_and_nothing_is_posted(
    saml_env: SamlEnv, caplog: pytest.LogCaptureFixture
) -> None:
    env = saml_env
    caplog.set_level(logging.INFO, logger="gateway.audit")
    refused = await env.sign_in("blocked", ALICE)
    assert refused.status_code == 403, refused.text[:300]
    assert "SAMLResponse" not in refused.text and env.sps["blocked"].acs_url not in refused.text
    # Signed in elsewhere, the SSO session does not get past the policy either.
    await env.deliver(await env.sign_in("payroll", ALICE), "payroll")
    again = await env.start("blocked")
    assert again.status_code == 403, again.text[:300]
    assert "SAMLResponse" not in again.text and env.sps["blocked"].acs_url not in again.text
    assert env.sps["blocked"].received == []
    blocked = [record for record in signin_audit(caplog) if record["app"] == "blocked"]
    assert len(blocked) == 2 and all(record["result"] == "failure" for record in blocked)


@pytest.mark.parametrize("app_id", ["payroll", "wiki", "mail", "upn"])
async def test_the_response_validates_against_the_saml_schema(saml_env: SamlEnv, app_id: str) -> None:
    env = saml_env
    await env.deliver(await env.sign_in("payroll", ALICE), "payroll")
    answer = await env.start(app_id)
    xml = decoded(env.form_for(answer, app_id))
    validate_saml_schema(xml.decode("utf-8"))
    await env.deliver(answer, app_id)


async def test_the_schema_check_can_fail(saml_env: SamlEnv) -> None:
    """The validator is strict: the gateway's own Response with its Status moved last is refused."""
    env = saml_env
    xml = decoded(env.form_for(await env.sign_in("payroll", ALICE), "payroll")).decode("utf-8")
    validate_saml_schema(xml)
    status = re.search(r"<(\w+:)?Status>.*?</(\w+:)?Status>", xml, re.S)
    assert status is not None
    moved = re.sub(
        r"(</(\w+:)?Response>)\s*$",
        lambda end: status.group(0) + end.group(1),
        xml.replace(status.group(0), ""),
    )
    assert moved != xml
    with pytest.raises(XMLSchemaError):
        validate_saml_schema(moved)
