"""Upstream signing keys: kid lookup, rotation, the bounded refetch on unknown kids, JWKS hygiene."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import respx
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, OKPKey, RSAKey

from idp_connectors.base import ConnectorError
from idp_connectors.oidc.metadata import REFETCH_INTERVAL_SECONDS, KeySnapshot
from tests.support.oidc_idp import RelyingParty, generate_key


@pytest.fixture
async def rp() -> AsyncIterator[RelyingParty]:
    async with respx.mock(assert_all_called=False) as router:
        harness = RelyingParty(router)
        yield harness
        await harness.http.aclose()


async def outcome(rp: RelyingParty) -> str:
    try:
        await rp.sign_in()
    except ConnectorError as error:
        return error.code
    return "ok"


async def test_unknown_kid_flood_costs_one_jwks_fetch_a_minute(rp: RelyingParty) -> None:
    """Checklist section 3.3: random kids may not turn the gateway into a fetch amplifier."""
    assert await outcome(rp) == "ok"
    assert rp.calls("jwks") == 1
    rp.idp.knobs.kid = lambda: secrets.token_urlsafe(12)
    results = await asyncio.gather(*(outcome(rp) for _ in range(40)))
    assert set(results) == {"unknown_kid"}
    assert rp.calls("jwks") == 2  # the first forged kid bought one refetch; the other 39 none
    for _ in range(20):
        assert await outcome(rp) == "unknown_kid"
    assert rp.calls("jwks") == 2
    rp.clock.advance(REFETCH_INTERVAL_SECONDS + 1)
    results = await asyncio.gather(*(outcome(rp) for _ in range(40)))
    assert set(results) == {"unknown_kid"}
    assert rp.calls("jwks") == 3
    rp.assert_nothing_persisted()


async def test_unknown_kid_refetches_once_then_fails_closed(rp: RelyingParty) -> None:
    rp.idp.knobs.kid = "no-such-key"
    assert await outcome(rp) == "unknown_kid"
    assert rp.calls("jwks") == 2  # the first fetch, then exactly one refetch for this token


async def test_oidcc_client_test_signing_key_rotation(rp: RelyingParty) -> None:
    """oidcc-client-test-signing-key-rotation: a new kid triggers a refetch and verifies."""
    assert await outcome(rp) == "ok"
    rp.clock.advance(300)
    rp.idp.rotate("RS256")
    assert await outcome(rp) == "ok"
    assert rp.calls("jwks") == 2


async def test_oidcc_client_test_signing_key_rotation_just_before_signing(rp: RelyingParty) -> None:
    """oidcc-client-test-signing-key-rotation-just-before-signing: a rotation right after our fetch."""
    callback = await rp.callback()
    await rp.connector.provider.keys_for("RS256", rp.idp.keys["RSA"].kid)  # JWKS cached now
    rp.idp.rotate("RS256")
    await rp.connector.complete(callback)  # the token is signed with the new key
    assert rp.calls("jwks") == 2


async def test_second_rotation_within_the_interval_waits_for_it(rp: RelyingParty) -> None:
    rp.idp.rotate("RS256")
    assert await outcome(rp) == "ok"  # first fetch already has it
    rp.idp.rotate("RS256")
    assert await outcome(rp) == "ok"  # one kid-triggered refetch
    rp.idp.rotate("RS256")
    assert await outcome(rp) == "unknown_kid"  # rate-limited: fail closed
    rp.clock.advance(REFETCH_INTERVAL_SECONDS + 1)
    assert await outcome(rp) == "ok"
    assert rp.calls("jwks") == 3


async def test_oidcc_client_test_kid_absent_single_jwks(rp: RelyingParty) -> None:
    """oidcc-client-test-kid-absent-single-jwks: one RSA key (beside an EC one) is used."""
    rp.idp.knobs.omit_kid = True
    assert await outcome(rp) == "ok"


async def test_oidcc_client_test_kid_absent_multiple_jwks(rp: RelyingParty) -> None:
    """oidcc-client-test-kid-absent-multiple-jwks: our choice is to refuse, never to try each key."""
    rp.idp.rotate("RS256", keep_old=True)
    rp.idp.knobs.omit_kid = True
    assert await outcome(rp) == "kid_missing"


async def test_oidcc_client_test_discovery_jwks_uri_keys(rp: RelyingParty) -> None:
    """oidcc-client-test-discovery-jwks-uri-keys: keys come from the discovered jwks_uri."""
    assert await outcome(rp) == "ok"
    request = rp.routes["jwks"].calls.last.request
    assert str(request.url) == rp.idp.url("/jwks")


async def test_jwks_is_refreshed_after_its_ttl(rp: RelyingParty) -> None:
    assert await outcome(rp) == "ok"
    rp.clock.advance(3601)
    assert await outcome(rp) == "ok"
    assert rp.calls("jwks") == 2


@pytest.mark.parametrize(
    ("response", "code"),
    [
        (httpx.Response(500), "upstream_unavailable"),
        (httpx.Response(404), "jwks_invalid"),
        (httpx.Response(200, text="keys"), "jwks_invalid"),
        (httpx.Response(200, json={"keys": {}}), "jwks_invalid"),
        (httpx.Response(200, json={"keys": []}), "no_suitable_key"),
    ],
)
async def test_bad_jwks_responses(rp: RelyingParty, response: httpx.Response, code: str) -> None:
    rp.routes["jwks"].mock(return_value=response)
    rp.idp.knobs.omit_kid = code == "no_suitable_key"
    assert await outcome(rp) == code


def _public(key: Any, **extra: Any) -> dict[str, Any]:
    return {**key.as_dict(private=False), **extra}


def test_jwks_parsing_keeps_only_public_asymmetric_signing_keys() -> None:
    rsa = generate_key("RSA")
    with pytest.warns(SecurityWarning):
        small = RSAKey.generate_key(1024, auto_kid=True)
    ec = ECKey.generate_key("P-256", auto_kid=True)
    okp = OKPKey.generate_key("Ed25519", auto_kid=True)
    doc = {
        "keys": [
            {**rsa.as_dict(private=True), "kid": "rsa-with-private-parts"},
            _public(small, kid="too-small"),
            _public(ec, kid="for-encryption", use="enc"),
            _public(ec, kid="ops-without-verify", key_ops=["encrypt"]),
            {"kty": "oct", "k": "c2VjcmV0", "kid": "symmetric"},
            {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"},
            "not-an-object",
            _public(ec, kid="ec"),
            _public(okp, kid="ed"),
        ]
    }
    snapshot = KeySnapshot.parse(doc, fetched_at=0)
    assert [k.kid for k in snapshot.keys] == ["rsa-with-private-parts", "ec", "ed"]
    assert not any(k.key.is_private for k in snapshot.keys)


@pytest.mark.parametrize(
    ("alg", "kid", "expected"),
    [
        ("RS256", "rsa", ["rsa"]),
        ("PS256", "rsa", ["rsa"]),
        ("ES256", "p256", ["p256"]),
        ("ES384", "p384", ["p384"]),
        ("EdDSA", "ed", ["ed"]),
        ("ES256", None, ["p256"]),
        ("ES384", "unknown", []),
    ],
)
def test_key_selection_fits_the_algorithm(alg: str, kid: str | None, expected: list[str]) -> None:
    snapshot = KeySnapshot.parse(
        {
            "keys": [
                _public(generate_key("RSA"), kid="rsa"),
                _public(ECKey.generate_key("P-256"), kid="p256"),
                _public(ECKey.generate_key("P-384"), kid="p384"),
                _public(OKPKey.generate_key("Ed25519"), kid="ed"),
            ]
        },
        fetched_at=0,
    )
    assert [k.kid for k in snapshot.select(alg, kid)] == expected


@pytest.mark.parametrize(("alg", "kid"), [("ES384", "p256"), ("RS256", "p256"), ("ES256", "rs-pinned")])
def test_a_key_that_does_not_fit_the_algorithm_is_refused(alg: str, kid: str) -> None:
    snapshot = KeySnapshot.parse(
        {
            "keys": [
                _public(ECKey.generate_key("P-256"), kid="p256"),
                _public(generate_key("RSA"), kid="rs-pinned", alg="RS256"),
            ]
        },
        fetched_at=0,
    )
    with pytest.raises(ConnectorError) as caught:
        snapshot.select(alg, kid)
    assert caught.value.code == "key_alg_mismatch"
