"""Signing certificates from the STS's federation metadata: fetch, cache, refresh and rollover."""

from __future__ import annotations

import httpx
import pytest

from idp_connectors.base import ConnectorError
from idp_connectors.wsfed import metadata as metadata_module
from tests.support.wsfed_sts import WsFedRelyingParty, certificate_pem, make_signer, shared_signer


def from_metadata(rp: WsFedRelyingParty, **overrides: object) -> None:
    rp.configure(signing_certificates=[], federation_metadata_url=rp.sts.metadata_url, **overrides)


async def refused(rp: WsFedRelyingParty, code: str, detail: str | None = None) -> ConnectorError:
    """Refused with ``code``, and nothing written (earlier sign-ins' replay markers aside)."""
    before = dict(rp.state.entries)
    with pytest.raises(ConnectorError) as caught:
        await rp.sign_in()
    assert caught.value.code == code, f"{caught.value.code}: {caught.value}"
    if detail is not None:
        assert getattr(caught.value, "detail", None) == detail
    assert rp.state.entries == before and rp.state.counters == {}
    return caught.value


async def test_certificates_from_metadata_verify_and_are_cached(rp: WsFedRelyingParty) -> None:
    from_metadata(rp)
    await rp.sign_in()
    await rp.sign_in()
    assert rp.metadata_route.call_count == 1
    rp.clock.advance(86400)
    await rp.sign_in()
    assert rp.metadata_route.call_count == 2


async def test_rollover_a_new_certificate_is_picked_up_on_first_use(rp: WsFedRelyingParty) -> None:
    from_metadata(rp)
    await rp.sign_in()
    rp.sts.rotate(keep_old=True)  # the STS now signs with a key the cached metadata does not list
    identity = await rp.sign_in()
    assert identity.subject == rp.sts.user.immutable_id
    assert rp.metadata_route.call_count == 2


async def test_rollover_a_removed_certificate_stops_verifying(rp: WsFedRelyingParty) -> None:
    from_metadata(rp)
    old = rp.sts.signer
    rp.sts.rotate(keep_old=True)
    await rp.sign_in()  # the new key
    rp.sts.signer = old
    await rp.sign_in()  # the old key, still published
    new = rp.sts.published[-1]
    rp.sts.published = [new]
    rp.clock.advance(86400)  # the next scheduled refresh drops the old certificate
    await refused(rp, "xml_rejected", "signature_invalid")


async def test_unknown_keys_refetch_at_most_once_a_minute(rp: WsFedRelyingParty) -> None:
    from_metadata(rp)
    rp.sts.knobs.signer = "attacker"
    await refused(rp, "xml_rejected", "signature_invalid")
    await refused(rp, "xml_rejected", "signature_invalid")
    assert rp.metadata_route.call_count == 2  # the first fetch and one forced re-read
    rp.clock.advance(metadata_module.REFETCH_INTERVAL_SECONDS)
    await refused(rp, "xml_rejected", "signature_invalid")
    assert rp.metadata_route.call_count == 3


async def test_configured_and_metadata_certificates_both_count(rp: WsFedRelyingParty) -> None:
    attacker_certificate = shared_signer("attacker")[1]
    rp.configure(
        signing_certificates=[certificate_pem(attacker_certificate)],
        federation_metadata_url=rp.sts.metadata_url,
    )
    await rp.sign_in()  # signed by the STS key, listed only in the metadata
    rp.sts.knobs.signer = "attacker"
    await rp.sign_in()  # signed by the configured certificate's key


async def test_metadata_unavailable_fails_closed(rp: WsFedRelyingParty) -> None:
    from_metadata(rp)
    rp.sts.metadata_status = 503
    await refused(rp, "metadata_unavailable")
    rp.sts.metadata_status = 200
    await refused(rp, "metadata_unavailable")  # not retried before RETRY_SECONDS
    rp.clock.advance(metadata_module.RETRY_SECONDS)
    await rp.sign_in()


async def test_a_failed_refresh_keeps_the_last_good_certificates(rp: WsFedRelyingParty) -> None:
    from_metadata(rp)
    await rp.sign_in()
    rp.sts.metadata_status = 500
    rp.clock.advance(86400)
    await rp.sign_in()
    assert rp.metadata_route.call_count == 2


async def test_metadata_of_another_entity_is_refused(rp: WsFedRelyingParty) -> None:
    from_metadata(rp)
    rp.sts.entity_id = "http://sts.other.test/adfs/services/trust"
    error = await refused(rp, "metadata_invalid")
    assert "another entity" in str(error)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>', "xml_doctype"),
        (b"<EntityDescriptor/>", "is not an EntityDescriptor"),
        (b"not xml", "xml_malformed"),
        (b"<r>" + b"x" * (1 << 20) + b"</r>", "too large"),
    ],
)
async def test_bad_metadata_documents(rp: WsFedRelyingParty, body: bytes, reason: str) -> None:
    from_metadata(rp)
    rp.metadata_route.mock(return_value=httpx.Response(200, content=body))
    error = await refused(rp, "metadata_invalid")
    assert reason in str(error)


async def test_metadata_without_a_usable_certificate(rp: WsFedRelyingParty) -> None:
    from_metadata(rp)
    rp.sts.published = []
    error = await refused(rp, "metadata_invalid")
    assert "no usable signing certificate" in str(error)


async def test_no_http_client(rp: WsFedRelyingParty) -> None:
    from_metadata(rp)
    rp.connector.ctx = type(rp.connector.ctx)(
        state=rp.state, mail=rp.connector.ctx.mail, keyed_hash=rp.connector.ctx.keyed_hash, tenant_name="C"
    )
    error = await refused(rp, "metadata_unavailable")
    assert "no HTTP client" in str(error)


async def test_a_weak_certificate_in_metadata_is_ignored(rp: WsFedRelyingParty) -> None:
    from_metadata(rp)
    weak = make_signer("weak.fabrikam.test", bits=1024)[1]
    rp.sts.published = [weak]
    error = await refused(rp, "metadata_invalid")
    assert "no usable signing certificate" in str(error)
    rp.sts.published = [weak, rp.sts.signer[1]]
    rp.clock.advance(metadata_module.RETRY_SECONDS)
    await rp.sign_in()
