"""Bad AuthnRequests at ``/saml2/sso`` over HTTP: an error page (400), no assertion POSTed anywhere,
nothing stored, and the refusal's reason in the sign-in audit record.

The requests are made by the real SP (pysaml2) and, where a binding detail is the attack, by hand
(``SamlTestSP.redirect_url``): a signature over the parameters in another order than Bindings
3.4.4.1's, a ``SigAlg`` that is not the one signed with or does not fit the SP's key, a key the
SP's registration does not name. RelayState is opaque and bounded (80 bytes); IdP-initiated
sign-on uses its configured target whatever RelayState the request carries.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
import pytest
from saml2.xmldsig import SIG_RSA_SHA256

from tests.saml_idp_e2e.conftest import PORTAL_TARGET, SamlEnv, signin_audit
from tests.support import flows
from tests.support.gateway_app import ISSUER
from tests.support.saml_idp import key_pair
from tests.support.saml_sp import SamlTestSP, post_form_of

ALICE = "alice@fabrikam.example"
SHA1 = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
SHA512 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512"
ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
EVIL = "https://evil.example/acs"


def assert_nothing_sent(env: SamlEnv, page: httpx.Response) -> None:
    """An error page: no SAMLResponse, no form toward any ACS (nor the attacker's)."""
    assert page.status_code == 400, page.text[:500]
    assert "SAMLResponse" not in page.text
    form = post_form_of(page.text)
    assert form is None or "SAMLResponse" not in form.fields, form
    for sp in env.sps.values():
        assert sp.acs_url not in page.text
    assert EVIL not in page.text


async def _acs_not_registered(env: SamlEnv) -> str:
    sp = env.sps["payroll"]
    _, xml = await sp.authn_request_xml(assertion_consumer_service_url=EVIL)
    return sp.redirect_url(xml)


async def _unsigned_when_required(env: SamlEnv) -> str:
    sp = env.sps["strict"]
    _, xml = await sp.authn_request_xml()
    return sp.redirect_url(xml, relay_state="from-strict")


async def _signed_over_reordered_parameters(env: SamlEnv) -> str:
    sp = env.sps["strict"]
    _, xml = await sp.authn_request_xml()
    order = ("RelayState", "SigAlg", "SAMLRequest")  # signed and sent in this (wrong) order
    return sp.redirect_url(xml, relay_state="from-strict", sign=True, signed_order=order)


async def _declared_sig_alg_is_not_the_signed_one(env: SamlEnv) -> str:
    sp = env.sps["strict"]
    _, xml = await sp.authn_request_xml()
    return sp.redirect_url(xml, relay_state="x", sign=True, sig_alg=SIG_RSA_SHA256, declared_sig_alg=SHA512)


async def _sig_alg_does_not_fit_the_key(env: SamlEnv) -> str:
    sp = env.sps["strict"]
    _, xml = await sp.authn_request_xml()
    return sp.redirect_url(xml, sign=True, sig_alg=SIG_RSA_SHA256, declared_sig_alg=ECDSA_SHA256)


async def _sha1(env: SamlEnv) -> str:
    sp = env.sps["strict"]
    _, xml = await sp.authn_request_xml()
    return sp.redirect_url(xml, sign=True, sig_alg=SHA1)


async def _signed_with_another_key(env: SamlEnv) -> str:
    sp = env.sps["strict"]
    _, xml = await sp.authn_request_xml()
    return sp.redirect_url(xml, sign=True, key=key_pair("attacker").key)


async def _unknown_sp(env: SamlEnv) -> str:
    stranger = SamlTestSP(
        "https://stranger.example", idp_metadata_url=f"{ISSUER}/saml2/metadata", http=env.client
    )
    out = await stranger.authn_request_url()
    return out.url


async def _idp_initiated_when_disabled(env: SamlEnv) -> str:
    return f"{ISSUER}/saml2/sso?app=payroll&RelayState=https%3A%2F%2Fevil.example%2Facs"


async def _relay_state_too_long(env: SamlEnv) -> str:
    out = await env.sps["payroll"].authn_request_url(relay_state="r" * 81)
    return out.url


@dataclass(frozen=True)
class Case:
    make: Callable[[SamlEnv], Awaitable[str]]
    reason: str


CASES = {
    "acs-not-registered": Case(_acs_not_registered, "acs_not_registered"),
    "unsigned-when-required": Case(_unsigned_when_required, "request_not_signed"),
    "signature-over-reordered-parameters": Case(_signed_over_reordered_parameters, "bad_request_signature"),
    "declared-sigalg-not-the-signed-one": Case(
        _declared_sig_alg_is_not_the_signed_one, "bad_request_signature"
    ),
    "sigalg-does-not-fit-the-key": Case(_sig_alg_does_not_fit_the_key, "sig_alg_mismatch"),
    "sha1-sigalg": Case(_sha1, "sig_alg_mismatch"),
    "signed-with-another-key": Case(_signed_with_another_key, "bad_request_signature"),
    "unknown-sp": Case(_unknown_sp, "unknown_sp"),
    "idp-initiated-disabled": Case(_idp_initiated_when_disabled, "idp_initiated_disabled"),
    "relay-state-over-80-bytes": Case(_relay_state_too_long, "relay_state_too_long"),
}


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
async def test_a_bad_request_gets_an_error_page_and_nothing_is_stored_or_sent(
    saml_env: SamlEnv, case: Case, caplog: pytest.LogCaptureFixture
) -> None:
    env = saml_env
    caplog.set_level(logging.INFO, logger="gateway.audit")
    url = await case.make(env)
    before = env.snapshot()
    page = await env.client.get(url)
    assert_nothing_sent(env, page)
    assert env.snapshot() == before
    assert all(sp.received == [] for sp in env.sps.values())
    [record] = signin_audit(caplog)
    assert (record["result"], record["reason"]) == ("failure", case.reason)


async def test_a_correctly_signed_request_is_accepted_whatever_the_order_of_its_url_parameters(
    saml_env: SamlEnv,
) -> None:
    """The control for the signature cases: signed in the spec's order, listed in any order."""
    sp = saml_env.sps["strict"]
    for url_order in (None, ("Signature", "SigAlg", "RelayState", "SAMLRequest")):
        _, xml = await sp.authn_request_xml()
        url = sp.redirect_url(xml, relay_state="from-strict", sign=True, url_order=url_order)
        flows.signin_path_of(await saml_env.client.get(url))
    # And the SP's own signed request (pysaml2's Redirect signing), all the way to the assertion.
    answer = await saml_env.sign_in("strict", ALICE, relay_state="from-strict")
    received = await saml_env.deliver(answer, "strict")
    assert received.relay_state == "from-strict"


async def test_a_replayed_request_id_is_refused_and_stores_nothing_more(
    saml_env: SamlEnv, caplog: pytest.LogCaptureFixture
) -> None:
    env = saml_env
    out = await env.sps["payroll"].authn_request_url()
    flows.signin_path_of(await env.client.get(out.url))
    caplog.set_level(logging.INFO, logger="gateway.audit")
    before = env.snapshot()
    page = await env.client.get(out.url)
    assert_nothing_sent(env, page)
    assert env.snapshot() == before
    [record] = signin_audit(caplog)
    assert record["reason"] == "request_replayed"


async def test_a_replayed_request_id_is_refused_even_with_an_sso_session(saml_env: SamlEnv) -> None:
    env = saml_env
    out = await env.sps["payroll"].authn_request_url()
    answer = await env.passcode(await env.client.get(out.url), ALICE)
    await env.deliver(answer, "payroll")
    before = env.snapshot()
    assert_nothing_sent(env, await env.client.get(out.url))
    assert env.snapshot() == before
    assert len(env.sps["payroll"].received) == 1


async def test_idp_initiated_sign_on_posts_the_fixed_target_never_the_requested_relay_state(
    saml_env: SamlEnv,
) -> None:
    env = saml_env
    await env.deliver(await env.sign_in("payroll", ALICE), "payroll")
    answer = await env.client.get(
        "/saml2/sso", params={"app": "portal", "RelayState": "https://evil.example/phish"}
    )
    form = env.form_for(answer, "portal")
    assert form.fields["RelayState"] == PORTAL_TARGET
    assert "evil.example" not in answer.text
    assert answer.headers.get("location") is None
    received = await env.deliver(answer, "portal")
    assert received.in_response_to is None and received.relay_state == PORTAL_TARGET
