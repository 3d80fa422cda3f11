"""The ``saml`` connector's good paths against pysaml2 as the IdP: identity, AuthnRequest, SP metadata."""

from __future__ import annotations

import base64
import re
import time
import zlib
from urllib.parse import parse_qs, urlsplit

import pytest
import respx
from lxml import etree

from idp_connectors.base import PublishesMetadata, RedirectConnector, state_parameter
from tests.connectors.saml.conftest import NS
from tests.support.saml_idp import (
    CALLBACK,
    DISPLAY_NAME,
    EMAIL,
    IDP_ENTITY_ID,
    PASSWORD,
    SP_ENTITY_ID,
    SSO_URL,
    ServiceProvider,
    key_pair,
)

MFA = "http://schemas.microsoft.com/claims/multipleauthn"


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def authn_request(url: str) -> etree._Element:
    """The AuthnRequest carried by an HTTP-Redirect URL (raw DEFLATE + base64)."""
    data = base64.b64decode(query(url)["SAMLRequest"])
    return etree.fromstring(zlib.decompress(data, -15))


async def test_a_good_sign_in_reports_what_the_idp_asserted(sp: ServiceProvider) -> None:
    identity = await sp.sign_in()
    assert identity.connector_id == "fabrikam"
    assert identity.issuer == IDP_ENTITY_ID
    assert identity.subject == "7f3c9a2e-5b1d-4e8f-a6c0-fabrikam-0001"
    assert identity.email == "alice@fabrikam.example"
    assert identity.email_verified is True  # fabrikam.example is one of the connector's domains
    assert (identity.given_name, identity.family_name, identity.name) == ("Alice", "Example", "Alice Example")
    assert identity.acr == PASSWORD
    assert identity.amr == ()
    assert identity.auth_time is not None and abs(identity.auth_time - time.time()) < 5
    assert identity.home_tenant_id is None and identity.device == {}
    assert identity.raw_claims[EMAIL] == "alice@fabrikam.example"
    assert identity.raw_claims[DISPLAY_NAME] == "Alice Example"


async def test_the_only_thing_written_is_the_assertion_id_until_it_expires(sp: ServiceProvider) -> None:
    callback = await sp.callback()
    root = etree.fromstring(base64.b64decode(callback.params["SAMLResponse"]))
    assertion_id = root.find("saml:Assertion", NS).get("ID")
    await sp.connector.complete(callback)
    assert list(sp.replay_cache()) == [f"saml-assertion:fabrikam\n{assertion_id}"]
    assert sp.state.counters == {}
    assert len(sp.state.entries) == 1
    ttl = await sp.state.ttl("saml-assertion", f"saml-assertion:fabrikam\n{assertion_id}")
    assert ttl is not None and 5 * 60 <= ttl <= 5 * 60 + 120 + 5  # NotOnOrAfter (5 min) plus the skew


async def test_an_email_outside_the_connector_domains_is_not_verified(sp: ServiceProvider) -> None:
    sp.configure(domains=["fabrikam.example"], trust_email_for_linking=True)
    sp.idp.knobs.attributes[EMAIL] = ["alice@elsewhere.example"]
    identity = await sp.sign_in()
    assert identity.email == "alice@elsewhere.example" and identity.email_verified is False


async def test_home_tenant_and_device_come_from_mapped_attributes(sp: ServiceProvider) -> None:
    tenant = "http://schemas.microsoft.com/identity/claims/tenantid"
    sp.configure(claims={"home_tenant_id": tenant, "device": {"compliant": "urn:device:compliant"}})
    sp.idp.knobs.attributes = {tenant: "3f2b-home", "urn:device:compliant": "true", "urn:groups": ["a", "b"]}
    identity = await sp.sign_in()
    assert identity.home_tenant_id == "3f2b-home"
    assert identity.device == {"compliant": "true"}
    assert identity.raw_claims["urn:groups"] == ["a", "b"]


async def test_an_encrypted_assertion_is_decrypted(sp: ServiceProvider) -> None:
    sp.idp.knobs.encrypt = True
    callback = await sp.callback()
    root = etree.fromstring(base64.b64decode(callback.params["SAMLResponse"]))
    assert root.find("saml:Assertion", NS) is None
    assert root.find("saml:EncryptedAssertion/xenc:EncryptedData", NS) is not None
    identity = await sp.connector.complete(callback)
    assert identity.subject == "7f3c9a2e-5b1d-4e8f-a6c0-fabrikam-0001"
    assert identity.email == "alice@fabrikam.example"
    assert len(sp.replay_cache()) == 1


async def test_an_encrypted_assertion_with_a_response_only_signature_is_accepted_when_allowed(
    sp: ServiceProvider,
) -> None:
    sp.configure(want_assertions_signed=False)
    sp.idp.knobs.encrypt = True
    sp.idp.knobs.sign_assertion = False
    identity = await sp.sign_in()
    assert identity.email == "alice@fabrikam.example"


async def test_a_response_only_signature_is_accepted_when_allowed(sp: ServiceProvider) -> None:
    sp.configure(want_assertions_signed=False)
    sp.idp.knobs.sign_assertion = False
    identity = await sp.sign_in()
    assert identity.subject == "7f3c9a2e-5b1d-4e8f-a6c0-fabrikam-0001"


async def test_an_assertion_signed_without_a_signed_response_is_accepted(sp: ServiceProvider) -> None:
    sp.idp.knobs.sign_response = False
    identity = await sp.sign_in()
    assert identity.email == "alice@fabrikam.example"


async def test_sha1_is_accepted_only_as_the_configured_exception(sp: ServiceProvider) -> None:
    sp.configure(allow_sha1=True)
    sp.idp.knobs.sha1 = True
    identity = await sp.sign_in()
    assert identity.email == "alice@fabrikam.example"


# -- the AuthnRequest ---------------------------------------------------------------------------


async def test_the_authn_request_is_what_saml_profiles_ask(sp: ServiceProvider) -> None:
    redirect = await sp.begin(state="relay-123")
    assert redirect.url.startswith(SSO_URL + "?")
    params = query(redirect.url)
    assert params["RelayState"] == "relay-123"
    assert "Signature" not in params and "SigAlg" not in params
    request = authn_request(redirect.url)
    request_id = request.get("ID")
    assert re.fullmatch(r"_[0-9a-f]{40}", request_id)  # 160 random bits, a valid xs:ID
    assert request.get("Version") == "2.0"
    assert request.get("Destination") == SSO_URL
    assert request.get("AssertionConsumerServiceURL") == CALLBACK
    assert request.get("ProtocolBinding") == "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
    assert request.get("ForceAuthn") is None
    assert request.find("saml:Issuer", NS).text == SP_ENTITY_ID
    policy = request.find("samlp:NameIDPolicy", NS)
    assert policy.get("Format") == "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
    assert policy.get("AllowCreate") == "true"
    assert request.find("samlp:RequestedAuthnContext", NS) is None
    assert redirect.state == {
        "request_id": request_id,
        "issued_at": int(sp.clock()),
        "acs": CALLBACK,
        "sp_entity_id": SP_ENTITY_ID,
        "relay_state": "relay-123",
    }
    sp.assert_nothing_persisted()


async def test_request_ids_are_fresh_each_time(sp: ServiceProvider) -> None:
    ids = {authn_request((await sp.begin()).url).get("ID") for _ in range(5)}
    assert len(ids) == 5


async def test_prompt_login_sends_force_authn_and_the_idp_sees_it(sp: ServiceProvider) -> None:
    await sp.sign_in(prompt="login")
    assert sp.idp.requests[-1].force_authn == "true"


async def test_acr_values_become_an_exact_requested_authn_context(sp: ServiceProvider) -> None:
    await sp.sign_in(acr_values=(MFA, PASSWORD))
    requested = sp.idp.requests[-1].requested_authn_context
    assert requested.comparison == "exact"
    assert [ref.text for ref in requested.authn_context_class_ref] == [MFA, PASSWORD]


async def test_the_idp_authn_context_is_reported_as_acr(sp: ServiceProvider) -> None:
    sp.idp.knobs.authn_context = MFA
    identity = await sp.sign_in(acr_values=(MFA,))
    assert identity.acr == MFA


async def test_a_signed_authn_request_verifies_at_the_idp(sp: ServiceProvider) -> None:
    sp.idp.require_signed_requests()
    sp.configure(sign_authn_requests=True)
    redirect = await sp.begin()
    params = query(redirect.url)
    assert params["SigAlg"] == "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
    assert list(parse_qs(urlsplit(redirect.url).query)) == [
        "SAMLRequest",
        "RelayState",
        "SigAlg",
        "Signature",
    ]
    form = await sp.idp.browse(redirect.url)  # pysaml2 checked the signature with our SP metadata's key
    assert form.action == CALLBACK
    assert len(sp.idp.requests) == 1


async def test_a_tampered_signed_authn_request_is_refused_by_the_idp(sp: ServiceProvider) -> None:
    sp.idp.require_signed_requests()
    sp.configure(sign_authn_requests=True)
    redirect = await sp.begin(state="relay-abc")
    with pytest.raises(AssertionError, match="refused"):
        await sp.idp.browse(redirect.url.replace("RelayState=relay-abc", "RelayState=relay-abd"))
    assert sp.idp.requests == []


async def test_an_idp_that_wants_signed_requests_is_not_sent_an_unsigned_one(sp: ServiceProvider) -> None:
    sp.idp.require_signed_requests()
    sp.configure()
    with pytest.raises(Exception) as caught:
        await sp.begin()
    assert getattr(caught.value, "code", None) == "authn_request_signing_required"
    sp.assert_nothing_persisted()


async def test_a_long_relay_state_is_refused(sp: ServiceProvider) -> None:
    with pytest.raises(Exception) as caught:
        await sp.begin(state="x" * 81)
    assert getattr(caught.value, "code", None) == "relay_state_too_long"


# -- SP metadata and the connector contract -----------------------------------------------------


async def test_the_connector_meets_the_redirect_contract(sp: ServiceProvider) -> None:
    assert isinstance(sp.connector, RedirectConnector)
    assert isinstance(sp.connector, PublishesMetadata)
    assert state_parameter(sp.connector) == "RelayState"


def _sp_metadata(sp: ServiceProvider) -> etree._Element:
    document, media_type = sp.connector.metadata(CALLBACK)
    assert media_type == "application/samlmetadata+xml"
    return etree.fromstring(document)


async def test_sp_metadata_describes_the_acs_and_the_keys(sp: ServiceProvider) -> None:
    sp.configure(sign_authn_requests=True)
    root = _sp_metadata(sp)
    assert root.tag == "{urn:oasis:names:tc:SAML:2.0:metadata}EntityDescriptor"
    assert root.get("entityID") == SP_ENTITY_ID
    descriptor = root.find("md:SPSSODescriptor", NS)
    assert descriptor.get("protocolSupportEnumeration") == "urn:oasis:names:tc:SAML:2.0:protocol"
    assert descriptor.get("AuthnRequestsSigned") == "true"
    assert descriptor.get("WantAssertionsSigned") == "true"
    [acs] = descriptor.findall("md:AssertionConsumerService", NS)
    assert acs.get("Binding") == "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
    assert acs.get("Location") == CALLBACK
    assert [f.text for f in descriptor.findall("md:NameIDFormat", NS)] == [
        "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
    ]
    certificate = key_pair("sp").cert_body
    uses = {
        key.get("use"): key.find("ds:KeyInfo/ds:X509Data/ds:X509Certificate", NS).text
        for key in descriptor.findall("md:KeyDescriptor", NS)
    }
    assert uses == {"signing": certificate, "encryption": certificate}
    methods = [
        m.get("Algorithm")
        for m in descriptor.findall("md:KeyDescriptor[@use='encryption']/md:EncryptionMethod", NS)
    ]
    assert "http://www.w3.org/2009/xmlenc11#aes256-gcm" in methods
    assert not any("cbc" in m or "1_5" in m for m in methods)


async def test_sp_metadata_without_keys_and_with_a_configured_entity_id(router: respx.MockRouter) -> None:
    from tests.support.saml_idp import REMOVE

    harness = ServiceProvider(
        router, sp_key_file=REMOVE, sp_certificate_file=REMOVE, sp_entity_id="urn:contoso:gateway"
    )
    try:
        root = _sp_metadata(harness)
        assert root.get("entityID") == "urn:contoso:gateway"
        descriptor = root.find("md:SPSSODescriptor", NS)
        assert descriptor.findall("md:KeyDescriptor", NS) == []
        assert descriptor.get("AuthnRequestsSigned") == "false"
        identity = await harness.sign_in()  # the IdP's audience is the configured entity id
        assert identity.email == "alice@fabrikam.example"
        assert harness.idp.requests[-1].issuer.text == "urn:contoso:gateway"
    finally:
        await harness.http.aclose()
