"""IdP metadata: file or URL, cached, refreshed, certificate rollover, failures keep the last good copy."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest
import respx

from idp_connectors.base import ConnectorError
from idp_connectors.saml.metadata import RETRY_SECONDS
from tests.connectors.saml.conftest import rejected
from tests.support.saml_idp import IDP_ENTITY_ID, METADATA_URL, REMOVE, SSO_URL, ServiceProvider, key_pair

DAY = 86400
REFRESH = 60
"""The shortest refresh interval: tests move the clock past it and still get fresh assertions
(pysaml2 stamps real times, valid for 5 minutes)."""


async def test_metadata_is_read_once_and_cached(sp: ServiceProvider) -> None:
    await sp.sign_in()
    await sp.sign_in()
    assert sp.calls("metadata") == 1
    metadata = await sp.connector.idp_metadata.current()
    assert metadata.entity_id == IDP_ENTITY_ID
    assert metadata.sso_redirect_url == SSO_URL
    assert metadata.signing_certificates == (key_pair("idp").certificate,)
    assert metadata.want_authn_requests_signed is False


async def test_metadata_is_read_again_after_the_refresh_interval(sp: ServiceProvider) -> None:
    sp.configure(metadata_refresh_seconds=3600)
    await sp.begin()
    sp.clock.advance(3599)
    await sp.begin()
    assert sp.calls("metadata") == 1
    sp.clock.advance(2)
    await sp.begin()
    assert sp.calls("metadata") == 2


async def test_rollover_both_certificates_verify_then_the_old_one_is_refused(sp: ServiceProvider) -> None:
    sp.configure(metadata_refresh_seconds=REFRESH)
    await sp.sign_in()
    sp.idp.publish("idp", "idp-next")  # the IdP announces its next certificate
    sp.clock.advance(REFRESH + 1)
    assert (await sp.sign_in()).subject  # old key, refreshed metadata lists both
    assert sp.calls("metadata") == 2
    sp.idp.sign_with("idp-next")
    assert (await sp.sign_in()).subject  # new key
    sp.idp.publish("idp-next")  # the old certificate is withdrawn
    sp.clock.advance(REFRESH + 1)
    await sp.begin()
    assert sp.calls("metadata") == 3
    sp.idp.sign_with("idp")
    await rejected(sp, await sp.callback(), "signature_invalid")


async def test_an_unannounced_new_key_is_picked_up_by_reading_the_metadata_again(sp: ServiceProvider) -> None:
    await sp.sign_in()
    sp.idp.publish("idp-next")
    sp.idp.sign_with("idp-next")
    identity = await sp.sign_in()  # fails with the cached certificate, reads the metadata, verifies
    assert identity.subject
    assert sp.calls("metadata") == 2


async def test_a_key_unknown_after_a_forced_read_is_refused_and_reads_wait_a_minute(
    sp: ServiceProvider,
) -> None:
    sp.idp.knobs.attacker_key = True
    await rejected(sp, await sp.callback(), "signature_invalid")
    await rejected(sp, await sp.callback(), "signature_invalid")
    assert sp.calls("metadata") == 2
    sp.clock.advance(RETRY_SECONDS + 1)
    await rejected(sp, await sp.callback(), "signature_invalid")
    assert sp.calls("metadata") == 3


async def test_a_failed_refresh_keeps_the_last_good_metadata(
    sp: ServiceProvider, router: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    sp.configure(metadata_refresh_seconds=REFRESH)
    await sp.sign_in()
    router.route(url=METADATA_URL).mock(return_value=httpx.Response(503))
    sp.clock.advance(REFRESH + 1)
    with caplog.at_level(logging.WARNING, logger="idp_connectors.saml"):
        identity = await sp.sign_in()
    assert identity.email == "alice@fabrikam.example"
    assert "metadata refresh failed" in caplog.text and "keeping the last good metadata" in caplog.text


async def test_a_failed_refresh_is_retried_after_a_minute_not_on_every_request(
    sp: ServiceProvider, router: respx.MockRouter
) -> None:
    await sp.begin()
    failing = router.route(url=METADATA_URL).mock(return_value=httpx.Response(500))
    before = failing.call_count
    sp.clock.advance(DAY + 1)
    await sp.begin()
    await sp.begin()
    assert failing.call_count == before + 1
    sp.clock.advance(RETRY_SECONDS + 1)
    await sp.begin()
    assert failing.call_count == before + 2


async def test_invalid_refreshed_metadata_keeps_the_last_good(
    sp: ServiceProvider, router: respx.MockRouter
) -> None:
    sp.configure(metadata_refresh_seconds=REFRESH)
    await sp.begin()
    router.route(url=METADATA_URL).mock(return_value=httpx.Response(200, content=b"<not-metadata/>"))
    sp.clock.advance(REFRESH + 1)
    assert (await sp.sign_in()).email == "alice@fabrikam.example"


async def test_without_any_metadata_sign_ins_fail_closed(router: respx.MockRouter) -> None:
    harness = ServiceProvider(router)
    try:
        router.route(url=METADATA_URL).mock(return_value=httpx.Response(404))
        with pytest.raises(ConnectorError) as caught:
            await harness.begin()
        assert caught.value.code == "metadata_unavailable"
        harness.assert_nothing_persisted()
    finally:
        await harness.http.aclose()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'<!DOCTYPE x [<!ENTITY e "e">]><x/>', "XML gate (xml_doctype)"),
        (b"<EntityDescriptor/>", "is not an EntityDescriptor"),
        (
            b'<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="x"/>',
            "describes no SAML 2.0 IdP",
        ),
    ],
)
async def test_unusable_metadata_is_refused_with_a_clear_reason(
    router: respx.MockRouter, caplog: pytest.LogCaptureFixture, body: bytes, message: str
) -> None:
    harness = ServiceProvider(router)
    try:
        router.route(url=METADATA_URL).mock(return_value=httpx.Response(200, content=body))
        with pytest.raises(ConnectorError) as caught:
            await harness.begin()
        assert caught.value.code == "metadata_unavailable"
        assert message in caplog.text
    finally:
        await harness.http.aclose()


def metadata_with(xml: bytes, **attributes: str) -> bytes:
    """The IdP's metadata with attributes added to its EntityDescriptor."""
    extra = "".join(f' {name}="{value}"' for name, value in attributes.items())
    return xml.replace(b"entityID=", extra.encode() + b" entityID=", 1)


async def test_metadata_past_its_valid_until_is_not_used(
    sp: ServiceProvider, router: respx.MockRouter
) -> None:
    expired = metadata_with(sp.idp.metadata_xml(), validUntil="2020-01-01T00:00:00Z")
    router.route(url=METADATA_URL).mock(return_value=httpx.Response(200, content=expired))
    sp.configure()
    with pytest.raises(ConnectorError) as caught:
        await sp.begin()
    assert caught.value.code == "metadata_unavailable"


async def test_metadata_is_dropped_when_its_valid_until_passes(
    sp: ServiceProvider, router: respx.MockRouter
) -> None:
    from idp_connectors.saml.xmltime import format_instant

    soon = metadata_with(sp.idp.metadata_xml(), validUntil=format_instant(sp.clock() + 600))
    route = router.route(url=METADATA_URL).mock(return_value=httpx.Response(200, content=soon))
    sp.configure()
    await sp.begin()
    sp.clock.advance(601)
    with pytest.raises(ConnectorError) as caught:
        await sp.begin()  # read again at validUntil, still the expired copy
    assert caught.value.code == "metadata_expired"
    assert route.call_count == 2


async def test_the_configured_idp_entity_id_must_be_in_the_metadata(sp: ServiceProvider) -> None:
    sp.configure(idp_entity_id="https://idp.other.test/metadata")
    with pytest.raises(ConnectorError) as caught:
        await sp.begin()
    assert caught.value.code == "metadata_unavailable"
    sp.configure(idp_entity_id=IDP_ENTITY_ID)
    assert (await sp.sign_in()).issuer == IDP_ENTITY_ID


async def test_an_aggregate_needs_the_idp_entity_id(sp: ServiceProvider, router: respx.MockRouter) -> None:
    one = sp.idp.metadata_xml().split(b"?>", 1)[-1]
    other = one.replace(IDP_ENTITY_ID.encode(), b"https://idp.other.test/metadata")
    aggregate = b'<md:EntitiesDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata">' + one + other
    aggregate += b"</md:EntitiesDescriptor>"
    router.route(url=METADATA_URL).mock(return_value=httpx.Response(200, content=aggregate))
    sp.configure()
    with pytest.raises(ConnectorError):
        await sp.begin()
    sp.configure(idp_entity_id=IDP_ENTITY_ID)
    assert (await sp.sign_in()).issuer == IDP_ENTITY_ID


async def test_a_weak_certificate_in_metadata_is_skipped(
    sp: ServiceProvider, caplog: pytest.LogCaptureFixture
) -> None:
    sp.idp.publish(key_pair("idp-weak", 1024), "idp")
    sp.configure()
    with caplog.at_level(logging.WARNING, logger="idp_connectors.saml"):
        metadata = await sp.connector.idp_metadata.current()
    assert metadata.signing_certificates == (key_pair("idp").certificate,)
    assert "signing certificate in its metadata is skipped" in caplog.text


# -- metadata from a file -----------------------------------------------------------------------


async def test_metadata_from_a_file_needs_no_http(sp: ServiceProvider, tmp_path: Path) -> None:
    path = tmp_path / "idp.xml"
    path.write_bytes(sp.idp.metadata_xml())
    sp.configure(idp_metadata_url=REMOVE, idp_metadata_file=str(path))
    assert (await sp.sign_in()).email == "alice@fabrikam.example"
    assert sp.calls("metadata") == 0


async def test_a_metadata_file_is_read_again_for_rollover(sp: ServiceProvider, tmp_path: Path) -> None:
    path = tmp_path / "idp.xml"
    path.write_bytes(sp.idp.metadata_xml())
    sp.configure(idp_metadata_url=REMOVE, idp_metadata_file=str(path), metadata_refresh_seconds=REFRESH)
    await sp.sign_in()
    sp.idp.publish("idp-next")
    path.write_bytes(sp.idp.metadata_xml())
    sp.idp.sign_with("idp-next")
    sp.clock.advance(REFRESH + 1)
    assert (await sp.sign_in()).subject


async def test_a_metadata_file_that_disappears_keeps_the_last_good(
    sp: ServiceProvider, tmp_path: Path
) -> None:
    path = tmp_path / "idp.xml"
    path.write_bytes(sp.idp.metadata_xml())
    sp.configure(idp_metadata_url=REMOVE, idp_metadata_file=str(path), metadata_refresh_seconds=REFRESH)
    path.unlink()
    sp.clock.advance(REFRESH + 1)
    assert (await sp.sign_in()).email == "alice@fabrikam.example"
