"""``read_authn_request``: AuthnRequests from a real SP (pysaml2) and by hand, over both bindings.

A good request becomes a ``SamlRequest`` and leaves exactly one replay record; every bad one is a
``SamlRequestError`` with its stable reason and leaves the store as it was.
"""

from __future__ import annotations

import base64
import time
import zlib
from collections.abc import Callable
from urllib.parse import quote_plus

import pytest
from saml2 import BINDING_HTTP_POST
from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

from gateway.saml_idp.request import REPLAY_KIND, SamlRequest, idp_initiated
from idp_connectors.saml.xmltime import format_instant
from tests.saml_idp.conftest import Idp, base
from tests.support.gateway_app import ISSUER
from tests.support.saml_idp import key_pair
from tests.support.saml_sp import SamlTestSP

SSO = f"{ISSUER}/saml2/sso"
SHA1 = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
SHA512 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512"
ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
REFEDS_MFA = "https://refeds.org/profile/mfa"
EMAIL_FORMAT = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"


def authn_request(
    app_id: str = "payroll",
    *,
    request_id: str = "_r1",
    issued: float | None = None,
    attributes: str = "",
    body: str = "",
    issuer: str | None = None,
    version: str = "2.0",
    root: str = "AuthnRequest",
) -> str:
    """An AuthnRequest written by hand (test input, so a template is fine here)."""
    entity = issuer if issuer is not None else f"{base(app_id)}/metadata"
    instant = format_instant(time.time() if issued is None else issued)
    return (
        f'<samlp:{root} xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" '
        f'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{request_id}" Version="{version}" '
        f'IssueInstant="{instant}" {attributes}><saml:Issuer>{entity}</saml:Issuer>{body}</samlp:{root}>'
    )


def deflated(xml: str | bytes) -> str:
    data = xml.encode() if isinstance(xml, str) else xml
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return base64.b64encode(compressor.compress(data) + compressor.flush()).decode()


def redirect(xml: str | bytes, extra: str = "") -> str:
    return f"{SSO}?SAMLRequest={quote_plus(deflated(xml))}{extra}"


async def request_xml(sp: SamlTestSP) -> str:
    """pysaml2's AuthnRequest (ACS URL, response binding HTTP-POST), unsigned, for ``redirect_url``."""
    await sp.load_idp_metadata()
    _, message = sp.client.create_authn_request(sp.sso_url, binding=BINDING_HTTP_POST, sign=False)
    return str(message)


async def assert_refused(idp: Idp, url: str, reason: str) -> None:
    before = idp.snapshot()
    assert await idp.refused(url) == reason
    assert idp.snapshot() == before, "a refused request must store nothing"


# --- good requests ------------------------------------------------------------------------------


async def test_a_redirect_request_from_pysaml2_is_read_and_its_id_recorded_once(idp: Idp) -> None:
    sp = idp.sp("payroll")
    out = await sp.authn_request_url(relay_state="opaque-state")
    saml = await idp.read(out.url)
    assert saml == SamlRequest(
        app_id="payroll",
        sp_entity_id=sp.entity_id,
        request_id=out.request_id,
        acs_url=sp.acs_url,
        relay_state="opaque-state",
        force_authn=False,
        requested_mfa=False,
    )
    assert idp.snapshot().count(REPLAY_KIND) == 1
    assert SamlRequest.from_json(saml.to_json()) == saml


async def test_force_authn_and_a_requested_mfa_class_are_read(idp: Idp) -> None:
    out = await idp.sp("payroll").authn_request_url(force_authn=True, mfa=True)
    saml = await idp.read(out.url)
    assert saml.force_authn and saml.requested_mfa and not saml.is_passive


@pytest.mark.parametrize(
    ("context", "mfa"),
    [
        (f'<saml:AuthnContextClassRef>{REFEDS_MFA}</saml:AuthnContextClassRef>', True),
        ("<saml:AuthnContextClassRef>http://schemas.microsoft.com/claims/multipleauthn"
         "</saml:AuthnContextClassRef>", True),
        ("<saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
         "</saml:AuthnContextClassRef>", False),
    ],
)  # fmt: skip
async def test_requested_authn_context_classes(idp: Idp, context: str, mfa: bool) -> None:
    body = f'<samlp:RequestedAuthnContext Comparison="minimum">{context}</samlp:RequestedAuthnContext>'
    saml = await idp.read(redirect(authn_request(body=body)))
    assert saml.requested_mfa is mfa


async def test_better_than_single_factor_asks_for_mfa_and_maximum_never_does(idp: Idp) -> None:
    better = (
        '<samlp:RequestedAuthnContext Comparison="better"><saml:AuthnContextClassRef>'
        "https://refeds.org/profile/sfa</saml:AuthnContextClassRef></samlp:RequestedAuthnContext>"
    )
    maximum = f'<samlp:RequestedAuthnContext Comparison="maximum"><saml:AuthnContextClassRef>' \
        f'{REFEDS_MFA}</saml:AuthnContextClassRef></samlp:RequestedAuthnContext>'  # fmt: skip
    assert (await idp.read(redirect(authn_request(request_id="_b", body=better)))).requested_mfa
    assert not (await idp.read(redirect(authn_request(request_id="_m", body=maximum)))).requested_mfa


async def test_is_passive_is_read(idp: Idp) -> None:
    saml = await idp.read(redirect(authn_request(attributes='IsPassive="true" ForceAuthn="false"')))
    assert saml.is_passive and not saml.force_authn


@pytest.mark.parametrize(
    ("attributes", "acs"),
    [
        ("", "/acs"),
        ('AssertionConsumerServiceURL="https://payroll.example/acs2"', "/acs2"),
        ('AssertionConsumerServiceIndex="1"', "/acs2"),
        ('AssertionConsumerServiceIndex="0" ProtocolBinding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"',
         "/acs"),
    ],
)  # fmt: skip
async def test_the_acs_is_the_default_a_registered_url_or_an_index(
    idp: Idp, attributes: str, acs: str
) -> None:
    saml = await idp.read(redirect(authn_request(attributes=attributes)))
    assert saml.acs_url == base("payroll") + acs


async def test_a_signed_redirect_request_is_accepted_whatever_the_order_of_the_url_parameters(
    idp: Idp,
) -> None:
    sp = idp.sp("strict")
    xml = await request_xml(sp)
    url = sp.redirect_url(
        xml, relay_state="r s", sign=True, url_order=("Signature", "SigAlg", "RelayState", "SAMLRequest")
    )
    saml = await idp.read(url)
    assert (saml.app_id, saml.relay_state) == ("strict", "r s")


async def test_pysaml2_signed_redirect_request_is_accepted(idp: Idp) -> None:
    out = await idp.sp("strict").authn_request_url(relay_state="x")
    assert (await idp.read(out.url)).request_id == out.request_id


async def _posted_request(idp: Idp, app_id: str, *, sign: bool) -> str:
    sp = idp.sp(app_id)
    await sp.load_idp_metadata()
    _, message = sp.client.create_authn_request(
        sp.sso_url,
        binding=BINDING_HTTP_POST,
        sign=sign,
        sign_alg=SIG_RSA_SHA256 if sign else None,
        digest_alg=DIGEST_SHA256 if sign else None,
    )
    return str(message)


async def post(idp: Idp, xml: str | bytes, relay_state: str | None = None) -> dict[str, str]:
    data = {"SAMLRequest": base64.b64encode(xml.encode() if isinstance(xml, str) else xml).decode()}
    if relay_state is not None:
        data["RelayState"] = relay_state
    answer = await idp.client.post("/saml2/sso", data=data)
    return dict(answer.json())


async def test_a_post_request_with_an_enveloped_signature_is_verified_and_read(idp: Idp) -> None:
    xml = await _posted_request(idp, "strict", sign=True)
    read = await post(idp, xml, relay_state="posted")
    assert (read["app_id"], read["relay_state"]) == ("strict", "posted")


async def test_an_unsigned_post_request_is_read_when_signatures_are_optional(idp: Idp) -> None:
    xml = await _posted_request(idp, "payroll", sign=False)
    assert (await post(idp, xml))["app_id"] == "payroll"


async def test_idp_initiated_uses_the_fixed_target_and_the_default_acs(idp: Idp) -> None:
    saml = idp_initiated(idp.rt, "portal")
    assert saml.request_id is None and saml.relay_state == "https://portal.example/home"
    assert saml.acs_url == base("portal") + "/acs"


@pytest.mark.parametrize(
    ("app_id", "reason"), [("payroll", "idp_initiated_disabled"), ("nope", "unknown_sp")]
)
def test_idp_initiated_refusals(idp: Idp, app_id: str, reason: str) -> None:
    from gateway.saml_idp.request import SamlRequestError

    with pytest.raises(SamlRequestError) as refused:
        idp_initiated(idp.rt, app_id)
    assert refused.value.reason == reason


# --- bad requests -------------------------------------------------------------------------------


async def test_an_unknown_sp_is_refused(idp: Idp) -> None:
    stranger = SamlTestSP(
        "https://stranger.example", idp_metadata_url=f"{ISSUER}/saml2/metadata", http=idp.client
    )
    await assert_refused(idp, (await stranger.authn_request_url()).url, "unknown_sp")


@pytest.mark.parametrize(
    ("attributes", "reason"),
    [
        ('AssertionConsumerServiceURL="https://evil.example/acs"', "acs_not_registered"),
        ('AssertionConsumerServiceURL="https://payroll.example/acs/"', "acs_not_registered"),
        ('AssertionConsumerServiceIndex="2"', "acs_not_registered"),
        ('AssertionConsumerServiceIndex="-1"', "acs_not_registered"),
        ('AssertionConsumerServiceURL="https://payroll.example/acs" AssertionConsumerServiceIndex="0"',
         "request_malformed"),
        ('ProtocolBinding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Artifact"', "unsupported_binding"),
        ('Destination="https://elsewhere.example/saml2/sso"', "destination_mismatch"),
        ('ForceAuthn="yes"', "request_malformed"),
    ],
)  # fmt: skip
async def test_bad_request_attributes_are_refused(idp: Idp, attributes: str, reason: str) -> None:
    await assert_refused(idp, redirect(authn_request(attributes=attributes)), reason)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: authn_request(issued=time.time() - 3600), "request_expired"),
        (lambda: authn_request(issued=time.time() + 600), "request_expired"),
        (lambda: authn_request(version="1.1"), "request_malformed"),
        (lambda: authn_request(request_id="1-starts-with-a-digit"), "request_malformed"),
        (lambda: authn_request(root="LogoutRequest"), "request_malformed"),
        (lambda: authn_request(issuer=""), "unknown_sp"),
        (lambda: authn_request(body="<saml:Issuer>https://wiki.example/metadata</saml:Issuer>"),
         "request_malformed"),
        (lambda: authn_request(body=f'<samlp:NameIDPolicy Format="{EMAIL_FORMAT}"/>'),
         "name_id_format_unsupported"),
        (lambda: authn_request(body="<saml:Subject><saml:NameID>someone</saml:NameID></saml:Subject>"),
         "subject_not_supported"),
        (lambda: '<!DOCTYPE r [<!ENTITY x "y">]>' + authn_request(), "request_malformed"),
        (lambda: "<not-xml", "request_malformed"),
    ],
)  # fmt: skip
async def test_bad_request_documents_are_refused(idp: Idp, make: Callable[[], str], reason: str) -> None:
    """Each document is written when its test runs: a request written at collection time would age
    (or, written for the future, come due) while the rest of the suite runs."""
    await assert_refused(idp, redirect(make()), reason)


async def test_a_requested_persistent_name_id_is_accepted(idp: Idp) -> None:
    policy = f'<samlp:NameIDPolicy Format="{PERSISTENT}" AllowCreate="true"/>'
    assert (await idp.read(redirect(authn_request(body=policy)))).app_id == "payroll"


async def test_a_replayed_request_id_is_refused_and_stores_nothing_more(idp: Idp) -> None:
    out = await idp.sp("payroll").authn_request_url()
    await idp.read(out.url)
    await assert_refused(idp, out.url, "request_replayed")
    assert idp.snapshot().count(REPLAY_KIND) == 1


async def test_the_same_request_id_from_another_sp_is_not_a_replay(idp: Idp) -> None:
    await idp.read(redirect(authn_request("payroll", request_id="_same")))
    assert (await idp.read(redirect(authn_request("wiki", request_id="_same")))).app_id == "wiki"


async def test_an_unsigned_request_is_refused_when_signatures_are_required(idp: Idp) -> None:
    sp = idp.sp("strict")
    await assert_refused(idp, sp.redirect_url(await request_xml(sp), relay_state="x"), "request_not_signed")


async def test_a_signature_over_reordered_parameters_is_refused(idp: Idp) -> None:
    sp = idp.sp("strict")
    xml = await request_xml(sp)
    url = sp.redirect_url(
        xml, relay_state="x", sign=True, signed_order=("RelayState", "SigAlg", "SAMLRequest")
    )
    await assert_refused(idp, url, "bad_request_signature")


@pytest.mark.parametrize(
    ("sig_alg", "declared", "reason"),
    [
        (SIG_RSA_SHA256, SHA512, "bad_request_signature"),
        (SIG_RSA_SHA256, ECDSA_SHA256, "sig_alg_mismatch"),
        (SHA1, None, "sig_alg_mismatch"),
        (SIG_RSA_SHA256, "http://www.w3.org/2000/09/xmldsig#hmac-sha1", "sig_alg_mismatch"),
    ],
)
async def test_a_mismatched_or_disallowed_sig_alg_is_refused(
    idp: Idp, sig_alg: str, declared: str | None, reason: str
) -> None:
    sp = idp.sp("strict")
    xml = await request_xml(sp)
    url = sp.redirect_url(xml, sign=True, sig_alg=sig_alg, declared_sig_alg=declared)
    await assert_refused(idp, url, reason)


async def test_a_request_signed_with_another_key_is_refused(idp: Idp) -> None:
    sp = idp.sp("strict")
    xml = await request_xml(sp)
    await assert_refused(
        idp, sp.redirect_url(xml, sign=True, key=key_pair("attacker").key), "bad_request_signature"
    )


async def test_a_signed_request_must_name_its_destination(idp: Idp) -> None:
    sp = idp.sp("strict")
    url = sp.redirect_url(authn_request("strict"), sign=True, destination=SSO)  # no Destination attribute
    await assert_refused(idp, url, "destination_mismatch")


async def test_a_signature_needs_its_sig_alg(idp: Idp) -> None:
    sp = idp.sp("strict")
    xml = await request_xml(sp)
    url = sp.redirect_url(xml, sign=True).replace("&SigAlg=", "&Ignored=")
    await assert_refused(idp, url, "bad_request_signature")


@pytest.mark.parametrize("parameter", ["SAMLRequest", "RelayState", "Signature", "SigAlg"])
async def test_a_duplicated_parameter_is_refused(idp: Idp, parameter: str) -> None:
    sp = idp.sp("strict")
    xml = await request_xml(sp)
    url = sp.redirect_url(xml, relay_state="x", sign=True)
    value = next(pair for pair in url.split("?", 1)[1].split("&") if pair.startswith(parameter + "="))
    await assert_refused(idp, f"{url}&{value}", "duplicated_parameter")


async def test_a_relay_state_over_80_bytes_is_refused(idp: Idp) -> None:
    await assert_refused(
        idp, redirect(authn_request(), "&RelayState=" + quote_plus("é" * 41)), "relay_state_too_long"
    )
    assert (await idp.read(redirect(authn_request(), "&RelayState=" + "r" * 80))).relay_state == "r" * 80


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("SAMLRequest=" + "A" * 40_000, "request_too_large"),
        ("SAMLRequest=" + quote_plus(deflated(b" " * 5_000_000)), "request_too_large"),
        ("SAMLRequest=not*base64", "request_malformed"),
        ("SAMLRequest=" + quote_plus(base64.b64encode(b"not deflate data").decode()), "request_malformed"),
        ("SAMLRequest=" + quote_plus(deflated(authn_request())[:-8]), "request_malformed"),
        ("RelayState=x", "request_malformed"),
    ],
)
async def test_oversized_bombs_and_garbage_are_refused(idp: Idp, query: str, reason: str) -> None:
    await assert_refused(idp, f"{SSO}?{query}", reason)


async def test_a_post_request_with_a_tampered_signature_is_refused(idp: Idp) -> None:
    xml = await _posted_request(idp, "strict", sign=True)
    tampered = xml.replace('Version="2.0"', 'Version="2.0" ForceAuthn="true"', 1)
    before = idp.snapshot()
    assert (await post(idp, tampered))["reason"] == "bad_request_signature"
    assert idp.snapshot() == before


async def test_an_unsigned_post_request_is_refused_when_signatures_are_required(idp: Idp) -> None:
    xml = await _posted_request(idp, "strict", sign=False)
    assert (await post(idp, xml))["reason"] == "request_not_signed"


async def test_a_post_request_with_repeated_fields_or_no_form_is_refused(idp: Idp) -> None:
    xml = base64.b64encode(authn_request().encode()).decode()
    body = f"SAMLRequest={quote_plus(xml)}&SAMLRequest={quote_plus(xml)}"
    headers = {"content-type": "application/x-www-form-urlencoded"}
    repeated = await idp.client.post("/saml2/sso", content=body, headers=headers)
    assert repeated.json()["reason"] == "duplicated_parameter"
    not_a_form = await idp.client.post("/saml2/sso", content=xml, headers={"content-type": "text/plain"})
    assert not_a_form.json()["reason"] == "request_malformed"
    too_large = await idp.client.post("/saml2/sso", content="SAMLRequest=" + "A" * 70_000, headers=headers)
    assert too_large.json()["reason"] == "request_too_large"
    assert idp.snapshot().count(REPLAY_KIND) == 0


async def test_an_enveloped_signature_does_not_sign_a_redirect_request(idp: Idp) -> None:
    """Bindings 3.4.4.1: over HTTP-Redirect only the query is signed (RelayState and SigAlg with it);
    a validly signed XML message sent there without a query signature counts as unsigned."""
    sp = idp.sp("strict")
    signed_xml = await _posted_request(idp, "strict", sign=True)
    before = idp.snapshot()
    await assert_refused(idp, sp.redirect_url(signed_xml, relay_state="x", sign=False), "request_not_signed")
    assert idp.snapshot() == before
