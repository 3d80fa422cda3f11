"""Binding, freshness and content refusals (saml-wsfed-security.md §6), each with its code."""

from __future__ import annotations

import base64
from dataclasses import replace

import pytest
from lxml import etree
from saml2 import saml, samlp

from idp_connectors.base import Callback
from tests.connectors.saml.conftest import NS, edited, refused, with_response
from tests.support.saml_idp import EMAIL, REMOVE, ServiceProvider

TRANSIENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"


async def expect(sp: ServiceProvider, code: str, callback: Callback | None = None) -> str:
    """``complete`` refuses with ``code`` and the connector state stays empty; returns the message."""
    error = await refused(sp, callback or await sp.callback(), code)
    sp.assert_nothing_persisted()
    return str(error)


# -- the callback itself ------------------------------------------------------------------------


async def test_a_relay_state_that_is_not_this_sign_ins_is_refused(sp: ServiceProvider) -> None:
    callback = await sp.callback()
    await expect(sp, "relay_state_mismatch", replace(callback, params={**callback.params, "RelayState": "x"}))


async def test_an_answer_at_another_callback_url_is_refused(sp: ServiceProvider) -> None:
    callback = await sp.callback()
    await expect(sp, "acs_mismatch", replace(callback, callback_url=callback.callback_url + "-other"))


async def test_an_answer_after_an_hour_is_refused(sp: ServiceProvider) -> None:
    callback = await sp.callback()
    sp.clock.advance(3601)
    await expect(sp, "state_expired", callback)


@pytest.mark.parametrize(
    "state",
    [None, {}, {"request_id": "_x", "issued_at": "1", "acs": "a", "sp_entity_id": "b", "relay_state": "c"}],
)
async def test_an_unusable_stored_state_is_refused(sp: ServiceProvider, state: object) -> None:
    callback = await sp.callback()
    await expect(sp, "invalid_state", replace(callback, state=state))  # type: ignore[arg-type]


async def test_a_callback_without_saml_response_is_refused(sp: ServiceProvider) -> None:
    callback = await sp.callback()
    params = {k: v for k, v in callback.params.items() if k != "SAMLResponse"}
    await expect(sp, "saml_response_missing", replace(callback, params=params))


@pytest.mark.parametrize("value", ["not base64!", "QUJD=", "QUJDRA===", "QUJ\x00D"])
async def test_a_saml_response_that_is_not_strict_base64_is_refused(sp: ServiceProvider, value: str) -> None:
    callback = await sp.callback()
    await expect(
        sp, "saml_response_invalid", replace(callback, params={**callback.params, "SAMLResponse": value})
    )


async def test_an_oversized_saml_response_is_refused_before_decoding(sp: ServiceProvider) -> None:
    callback = await sp.callback()
    huge = "A" * (256 * 1024 + 4)
    await expect(
        sp, "saml_response_invalid", replace(callback, params={**callback.params, "SAMLResponse": huge})
    )


async def test_line_breaks_in_the_base64_are_tolerated(sp: ServiceProvider) -> None:
    callback = await sp.callback()
    value = callback.params["SAMLResponse"]
    wrapped = "\r\n".join(value[i : i + 76] for i in range(0, len(value), 76))
    identity = await sp.connector.complete(
        replace(callback, params={**callback.params, "SAMLResponse": wrapped})
    )
    assert identity.email == "alice@fabrikam.example"


async def test_a_document_that_is_not_a_response_is_refused(sp: ServiceProvider) -> None:
    callback = await sp.callback()
    await expect(
        sp,
        "response_invalid",
        with_response(
            callback,
            b"<samlp:LogoutResponse xmlns:samlp="
            b'"urn:oasis:names:tc:SAML:2.0:protocol" ID="_a" Version="2.0"/>',
        ),
    )


# -- Response-level checks ----------------------------------------------------------------------


async def test_a_failed_status_is_refused_with_the_status_code(sp: ServiceProvider) -> None:
    sp.idp.knobs.status = samlp.STATUS_AUTHN_FAILED
    message = await expect(sp, "upstream_status")
    assert "Responder/AuthnFailed" in message


async def test_an_unsigned_failed_status_is_refused_too(sp: ServiceProvider) -> None:
    sp.idp.knobs.status = samlp.STATUS_REQUEST_DENIED
    sp.idp.knobs.sign_response = False
    assert "RequestDenied" in await expect(sp, "upstream_status")


async def test_another_issuer_is_refused(sp: ServiceProvider) -> None:
    sp.idp.knobs.issuer = "https://idp.evil.test/metadata"
    await expect(sp, "issuer_mismatch")


async def test_another_assertion_issuer_under_an_unsigned_response_is_refused(sp: ServiceProvider) -> None:
    # The IdP signs an assertion that names another issuer; the unsigned Response names the right one.
    sp.idp.knobs.sign_response = False
    sp.idp.knobs.issuer = "https://idp.evil.test/metadata"
    callback = await sp.callback()
    callback = edited(callback, lambda root: _set_issuer(root.find("saml:Issuer", NS)))
    await expect(sp, "issuer_mismatch", callback)


def _set_issuer(issuer: etree._Element | None) -> None:
    assert issuer is not None
    issuer.text = "https://idp.fabrikam.test/metadata"


async def test_a_signed_response_without_issuer_is_refused(sp: ServiceProvider) -> None:
    sp.configure(want_assertions_signed=True)
    callback = await sp.callback()
    callback = edited(callback, lambda root: root.remove(root.find("saml:Issuer", NS)))
    await expect(sp, "issuer_missing", callback)


async def test_an_unsolicited_response_is_refused(sp: ServiceProvider) -> None:
    sp.idp.knobs.in_response_to = REMOVE
    assert "unsolicited" in await expect(sp, "unsolicited_response")


async def test_an_answer_to_another_request_is_refused(sp: ServiceProvider) -> None:
    sp.idp.knobs.in_response_to = "_0123456789abcdef0123456789abcdef01234567"
    sp.idp.knobs.confirmation_in_response_to = "_0123456789abcdef0123456789abcdef01234567"
    await expect(sp, "in_response_to_mismatch")


async def test_a_genuine_answer_to_another_sign_in_is_refused(sp: ServiceProvider) -> None:
    first = await sp.callback()
    second = await sp.callback()
    mixed = replace(second, params={**second.params, "SAMLResponse": first.params["SAMLResponse"]})
    await expect(sp, "in_response_to_mismatch", mixed)


async def test_another_destination_is_refused(sp: ServiceProvider) -> None:
    sp.idp.knobs.destination = "https://gateway.test/callback/other"
    await expect(sp, "destination_mismatch")


async def test_a_signed_response_without_destination_is_refused(sp: ServiceProvider) -> None:
    sp.idp.knobs.destination = REMOVE
    await expect(sp, "destination_missing")


async def test_an_unsigned_response_may_omit_destination(sp: ServiceProvider) -> None:
    sp.idp.knobs.destination = REMOVE
    sp.idp.knobs.sign_response = False
    identity = await sp.sign_in()
    assert identity.email == "alice@fabrikam.example"


# -- signature policy ---------------------------------------------------------------------------


async def test_an_unsigned_assertion_is_refused_by_default(sp: ServiceProvider) -> None:
    sp.idp.knobs.sign_assertion = False
    await expect(sp, "assertion_not_signed")


async def test_nothing_signed_is_refused_even_when_response_signing_is_allowed(sp: ServiceProvider) -> None:
    sp.configure(want_assertions_signed=False)
    sp.idp.knobs.sign_assertion = False
    sp.idp.knobs.sign_response = False
    await expect(sp, "not_signed")


# -- assertion-level checks ---------------------------------------------------------------------


async def test_another_audience_is_refused(sp: ServiceProvider) -> None:
    sp.idp.knobs.audience = "https://other-sp.test/metadata"
    await expect(sp, "audience_mismatch")


async def test_another_recipient_is_refused(sp: ServiceProvider) -> None:
    sp.idp.knobs.recipient = "https://gateway.test/callback/other"
    await expect(sp, "recipient_mismatch")


async def test_a_confirmation_for_another_request_is_refused(sp: ServiceProvider) -> None:
    sp.idp.knobs.confirmation_in_response_to = "_0123456789abcdef0123456789abcdef01234567"
    await expect(sp, "in_response_to_mismatch")


async def test_a_confirmation_without_in_response_to_is_refused(sp: ServiceProvider) -> None:
    sp.idp.knobs.confirmation_in_response_to = REMOVE
    await expect(sp, "in_response_to_mismatch")


async def test_an_expired_assertion_is_refused(sp: ServiceProvider) -> None:
    callback = await sp.callback()
    sp.clock.advance(5 * 60 + 120 + 1)  # NotOnOrAfter is 5 minutes out; the skew is 120 s
    await expect(sp, "subject_confirmation_expired", callback)


async def test_an_assertion_within_the_skew_is_accepted(sp: ServiceProvider) -> None:
    callback = await sp.callback()
    sp.clock.advance(5 * 60 + 60)
    identity = await sp.connector.complete(callback)
    assert identity.email == "alice@fabrikam.example"


async def test_an_assertion_not_yet_valid_is_refused(sp: ServiceProvider) -> None:
    callback = await sp.callback()
    sp.clock.advance(-200)  # NotBefore is the issue instant; the skew is 120 s
    await expect(sp, "assertion_not_yet_valid", callback)


async def test_a_smaller_skew_is_honoured(sp: ServiceProvider) -> None:
    sp.configure(clock_skew_seconds=10)
    callback = await sp.callback()
    sp.clock.advance(5 * 60 + 11)
    await expect(sp, "subject_confirmation_expired", callback)


async def test_a_transient_name_id_is_refused(sp: ServiceProvider) -> None:
    sp.idp.knobs.name_id_format = TRANSIENT
    assert "persistent" in await expect(sp, "name_id_not_persistent")


async def test_a_missing_email_attribute_is_refused(sp: ServiceProvider) -> None:
    sp.idp.knobs.attributes = {EMAIL: REMOVE}
    assert EMAIL in await expect(sp, "email_missing")


async def test_an_email_attribute_that_is_not_an_address_is_refused(sp: ServiceProvider) -> None:
    sp.idp.knobs.attributes = {EMAIL: "not an address"}
    await expect(sp, "email_missing")


async def test_a_replayed_assertion_is_refused(sp: ServiceProvider) -> None:
    callback = await sp.callback()
    await sp.connector.complete(callback)
    before = dict(sp.state.entries)
    await refused(sp, callback, "assertion_replayed")
    assert sp.state.entries == before and len(before) == 1


async def test_a_replay_after_the_assertion_expired_is_still_refused_as_expired(sp: ServiceProvider) -> None:
    callback = await sp.callback()
    await sp.connector.complete(callback)
    sp.clock.advance(5 * 60 + 121)
    await refused(sp, callback, "subject_confirmation_expired")


async def test_a_base64_of_garbage_is_refused_by_the_gate(sp: ServiceProvider) -> None:
    callback = await sp.callback()
    garbage = base64.b64encode(b"\x78\x9c garbage").decode()
    error = await refused(
        sp, replace(callback, params={**callback.params, "SAMLResponse": garbage}), "xml_rejected"
    )
    assert getattr(error, "detail", None) == "xml_malformed"
    sp.assert_nothing_persisted()


async def test_an_idp_session_that_already_ended_is_refused(sp: ServiceProvider) -> None:
    def ended(assertion: saml.Assertion) -> None:
        assertion.authn_statement[0].session_not_on_or_after = "2020-01-01T00:00:00Z"

    sp.idp.knobs.edit_assertion = ended
    await expect(sp, "assertion_expired")


async def test_an_assertion_without_authn_statement_is_refused(sp: ServiceProvider) -> None:
    def drop(assertion: saml.Assertion) -> None:
        assertion.authn_statement = []

    sp.idp.knobs.edit_assertion = drop
    await expect(sp, "authn_statement_missing")


async def test_a_condition_the_gateway_does_not_understand_is_refused(sp: ServiceProvider) -> None:
    def unknown(assertion: saml.Assertion) -> None:
        assertion.conditions.condition = [saml.Condition()]

    sp.idp.knobs.edit_assertion = unknown
    await expect(sp, "condition_unsupported")


async def test_one_time_use_is_understood(sp: ServiceProvider) -> None:
    def once(assertion: saml.Assertion) -> None:
        assertion.conditions.one_time_use = [saml.OneTimeUse()]

    sp.idp.knobs.edit_assertion = once
    assert (await sp.sign_in()).email == "alice@fabrikam.example"


async def test_every_audience_restriction_must_name_us(sp: ServiceProvider) -> None:
    def second(assertion: saml.Assertion) -> None:
        other = saml.AudienceRestriction(audience=[saml.Audience(text="https://other-sp.test/metadata")])
        assertion.conditions.audience_restriction.append(other)

    sp.idp.knobs.edit_assertion = second
    await expect(sp, "audience_mismatch")


async def test_a_bearer_confirmation_with_not_before_is_refused(sp: ServiceProvider) -> None:
    def not_before(assertion: saml.Assertion) -> None:
        data = assertion.subject.subject_confirmation[0].subject_confirmation_data
        data.not_before = "2020-01-01T00:00:00Z"

    sp.idp.knobs.edit_assertion = not_before
    await expect(sp, "subject_confirmation_invalid")


async def test_only_a_bearer_confirmation_counts(sp: ServiceProvider) -> None:
    def holder_of_key(assertion: saml.Assertion) -> None:
        assertion.subject.subject_confirmation[0].method = "urn:oasis:names:tc:SAML:2.0:cm:holder-of-key"

    sp.idp.knobs.edit_assertion = holder_of_key
    await expect(sp, "subject_confirmation_invalid")


async def test_a_name_id_without_format_is_not_persistent(sp: ServiceProvider) -> None:
    def no_format(assertion: saml.Assertion) -> None:
        assertion.subject.name_id.format = None

    sp.idp.knobs.edit_assertion = no_format
    await expect(sp, "name_id_not_persistent")


async def test_an_empty_name_id_is_refused(sp: ServiceProvider) -> None:
    def empty(assertion: saml.Assertion) -> None:
        assertion.subject.name_id.text = "   "

    sp.idp.knobs.edit_assertion = empty
    await expect(sp, "name_id_missing")


async def test_a_bad_timestamp_is_refused(sp: ServiceProvider) -> None:
    def bad(assertion: saml.Assertion) -> None:
        assertion.authn_statement[0].authn_instant = "yesterday"

    sp.idp.knobs.edit_assertion = bad
    await expect(sp, "assertion_invalid")
