"""The ``oidc`` connector's happy paths against the test IdP: algorithms, client auth, forwarding, claims."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import pytest
import respx

from tests.support.oidc_idp import CALLBACK, ISSUER, NOW, REMOVE, RelyingParty, IdpClient, IdpUser


@pytest.fixture
async def rp() -> AsyncIterator[RelyingParty]:
    async with respx.mock(assert_all_called=False) as router:
        harness = RelyingParty(router)
        yield harness
        await harness.http.aclose()


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"]


@pytest.mark.parametrize("alg", ALGORITHMS)
async def test_oidcc_client_test_idtoken_sig_per_algorithm(rp: RelyingParty, alg: str) -> None:
    """oidcc-client-test / oidcc-client-test-idtoken-sig-rs256: a correctly signed token is accepted."""
    rp.configure(allowed_algorithms=[alg])
    rp.idp.knobs.signing_alg = alg
    identity = await rp.sign_in()
    assert identity.subject == "alice-0001"
    assert identity.issuer == ISSUER
    assert identity.connector_id == "partner-a"
    rp.assert_nothing_persisted()
