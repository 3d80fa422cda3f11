"""The ``oidc`` connector's happy paths against the test IdP: algorithms, client auth, forwarding, claims."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import respx

from tests.support.oidc_idp import CALLBACK, ISSUER, NOW, REMOVE, IdpClient, IdpUser, RelyingParty


@pytest.fixture
async def router() -> AsyncIterator[respx.MockRouter]:
    async with respx.mock(assert_all_called=False) as mock:
        yield mock


@pytest.fixture
async def rp(router: respx.MockRouter) -> AsyncIterator[RelyingParty]:
    harness = RelyingParty(router)
    yield harness
    await harness.http.aclose()


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def form(request: httpx.Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(request.content.decode()).items()}


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
    assert rp.calls("token") == 1
    rp.assert_nothing_persisted()


async def test_identity_reports_the_claims_as_the_upstream_said_them(rp: RelyingParty) -> None:
    identity = await rp.sign_in()
    assert identity.email == "alice@partner-a.example"
    assert identity.email_verified is True
    assert (identity.name, identity.given_name, identity.family_name) == ("Alice Example", "Alice", "Example")
    assert identity.amr == ("pwd", "mfa")
    assert identity.acr == "urn:test:mfa"
    assert identity.auth_time == int(NOW)
    assert identity.home_tenant_id is None
    assert identity.device == {}
    assert identity.raw_claims["sub"] == "alice-0001"
    assert identity.raw_claims["aud"] == "gateway"
    assert "nonce" in identity.raw_claims


@pytest.mark.parametrize(
    ("said", "expected"),
    [
        (True, True),
        ("true", True),
        ("True", False),
        (False, False),
        ("false", False),
        (1, False),
        (REMOVE, False),
    ],
)
async def test_email_verified_only_for_json_true_or_the_string_true(
    rp: RelyingParty, said: object, expected: bool
) -> None:
    rp.idp.knobs.id_token_claims = {"email_verified": said}
    identity = await rp.sign_in()
    assert identity.email_verified is expected


async def test_claim_mapping_picks_the_configured_claims(rp: RelyingParty) -> None:
    rp.idp.user.extra = {"oid": "oid-77", "tid": "tenant-9", "device_compliant": True, "amr": "pwd"}
    rp.configure(
        claims={
            "subject": "oid",
            "home_tenant_id": "tid",
            "email": None,
            "device": {"compliant": "device_compliant", "managed": "not_sent"},
        }
    )
    identity = await rp.sign_in()
    assert identity.subject == "oid-77"
    assert identity.home_tenant_id == "tenant-9"
    assert identity.email is None
    assert identity.device == {"compliant": True}
    assert identity.amr == ()  # a string is not an amr array


async def test_begin_builds_a_code_pkce_nonce_request(rp: RelyingParty) -> None:
    redirect = await rp.begin(state="st-123")
    assert redirect.url.startswith(ISSUER + "/authorize?")
    params = query(redirect.url)
    assert params["response_type"] == "code"
    assert params["client_id"] == "gateway"
    assert params["redirect_uri"] == CALLBACK
    assert params["scope"] == "openid profile email"
    assert params["state"] == "st-123"
    assert params["nonce"] == redirect.state["nonce"]
    assert len(redirect.state["nonce"]) >= 32
    verifier = redirect.state["code_verifier"]
    assert 43 <= len(verifier) <= 128
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    assert params["code_challenge"] == challenge
    assert params["code_challenge_method"] == "S256"
    assert redirect.state["issued_at"] == int(NOW)
    assert "client_secret" not in redirect.url and "s3cret" not in str(redirect.state)
    again = await rp.begin(state="st-123")
    assert again.state["nonce"] != redirect.state["nonce"]
    assert again.state["code_verifier"] != verifier


async def test_begin_forwards_hints_when_configured(rp: RelyingParty) -> None:
    request: dict[str, Any] = {
        "login_hint": "alice@partner-a.example",
        "prompt": "login",
        "max_age": 600,
        "acr_values": ("urn:a", "urn:b"),
    }
    params = query((await rp.begin(**request)).url)
    assert params["login_hint"] == "alice@partner-a.example"
    assert params["prompt"] == "login"
    assert params["max_age"] == "600"
    assert params["acr_values"] == "urn:a urn:b"
    rp.configure(
        forward_login_hint=False, forward_prompt=False, forward_max_age=False, forward_acr_values=False
    )
    redirect = await rp.begin(**request)
    assert not {"login_hint", "prompt", "max_age", "acr_values"} & set(query(redirect.url))
    assert redirect.state["max_age"] is None


async def test_max_age_round_trip_accepts_a_fresh_sign_in(rp: RelyingParty) -> None:
    identity = await rp.sign_in(max_age=300)
    assert identity.auth_time == int(NOW)


async def test_extra_authorize_params_are_sent(rp: RelyingParty) -> None:
    rp.configure(extra_authorize_params={"ui_locales": "fr", "prompt": "select_account"})
    params = query((await rp.begin()).url)
    assert params["ui_locales"] == "fr"
    assert params["prompt"] == "select_account"
    assert query((await rp.begin(prompt="login")).url)["prompt"] == "login"  # the request's own wins


async def test_authorization_endpoint_query_is_kept(rp: RelyingParty) -> None:
    rp.routes["discovery"].mock(
        return_value=httpx.Response(
            200,
            json={
                "issuer": ISSUER,
                "authorization_endpoint": ISSUER + "/authorize?p=b2c_1_signin",
                "token_endpoint": ISSUER + "/token",
                "jwks_uri": ISSUER + "/jwks",
            },
        )
    )
    url = (await rp.begin()).url
    assert url.startswith(ISSUER + "/authorize?p=b2c_1_signin&")
    assert query(url)["response_type"] == "code"


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post", "none"])
async def test_oidcc_client_test_client_secret_basic_and_other_methods(
    router: respx.MockRouter, method: str
) -> None:
    """oidcc-client-test-client-secret-basic (and the post / public-client variants)."""
    secret = None if method == "none" else "s3cret with spaces & symbols"
    rp = RelyingParty(router, clients=[IdpClient(client_secret=secret, auth_method=method)])  # type: ignore[arg-type]
    try:
        identity = await rp.sign_in()
        assert identity.subject == "alice-0001"
        request = rp.routes["token"].calls.last.request
        body = form(request)
        assert body["grant_type"] == "authorization_code"
        assert body["redirect_uri"] == CALLBACK
        assert len(body["code_verifier"]) >= 43
        if method == "client_secret_basic":
            expected = base64.b64encode(b"gateway:s3cret+with+spaces+%26+symbols").decode()
            assert request.headers["authorization"] == f"Basic {expected}"
            assert "client_secret" not in body
        else:
            assert "authorization" not in request.headers
            assert body["client_id"] == "gateway"
            assert body.get("client_secret") == secret
    finally:
        await rp.http.aclose()


async def test_no_userinfo_call_unless_configured(rp: RelyingParty) -> None:
    await rp.sign_in()
    assert rp.calls("userinfo") == 0


async def test_oidcc_client_test_scope_userinfo_claims_and_bearer_header(rp: RelyingParty) -> None:
    """oidcc-client-test-scope-userinfo-claims, oidcc-client-test-userinfo-bearer-header."""
    rp.configure(use_userinfo=True)
    rp.idp.knobs.claims_in_id_token = False
    identity = await rp.sign_in()
    assert identity.email == "alice@partner-a.example"
    assert identity.name == "Alice Example"
    assert identity.raw_claims["email"] == "alice@partner-a.example"
    assert rp.calls("userinfo") == 1
    request = rp.routes["userinfo"].calls.last.request
    assert request.headers["authorization"].startswith("Bearer ")
    assert request.url.query == b""


async def test_oidcc_client_test_userinfo_signed(rp: RelyingParty) -> None:
    """oidcc-client-test-userinfo-signed: a signed userinfo response is verified and used."""
    rp.configure(use_userinfo=True)
    rp.idp.knobs.claims_in_id_token = False
    rp.idp.knobs.userinfo_signed = True
    identity = await rp.sign_in()
    assert identity.email == "alice@partner-a.example"


async def test_id_token_claims_win_over_userinfo(rp: RelyingParty) -> None:
    rp.configure(use_userinfo=True)
    rp.idp.knobs.userinfo_claims = {"name": "Mallory", "locale": "de"}
    identity = await rp.sign_in()
    assert identity.name == "Alice Example"
    assert identity.raw_claims["locale"] == "de"


async def test_discovery_and_jwks_are_cached_for_an_hour(rp: RelyingParty) -> None:
    for _ in range(3):
        await rp.sign_in()
    assert (rp.calls("discovery"), rp.calls("jwks"), rp.calls("token")) == (1, 1, 3)
    rp.clock.advance(3601)
    await rp.sign_in()
    assert (rp.calls("discovery"), rp.calls("jwks")) == (2, 2)


async def test_concurrent_callers_share_one_fetch(rp: RelyingParty) -> None:
    callbacks = await asyncio.gather(*(rp.callback() for _ in range(10)))
    assert rp.calls("discovery") == 1
    identities = await asyncio.gather(*(rp.connector.complete(cb) for cb in callbacks))
    assert {i.subject for i in identities} == {"alice-0001"}
    assert rp.calls("jwks") == 1


async def test_several_audiences_with_azp_are_accepted(rp: RelyingParty) -> None:
    rp.idp.knobs.id_token_claims = {"aud": ["gateway", "other-api"], "azp": "gateway"}
    assert (await rp.sign_in()).subject == "alice-0001"


async def test_expiry_within_the_clock_skew_is_accepted(rp: RelyingParty) -> None:
    rp.idp.knobs.exp_offset = -60
    rp.idp.knobs.iat_offset = -400
    assert (await rp.sign_in()).subject == "alice-0001"


async def test_missing_at_hash_is_accepted_in_the_code_flow(rp: RelyingParty) -> None:
    """oidcc-client-test-missing-athash: at_hash is optional for tokens from the token endpoint."""
    rp.idp.knobs.include_at_hash = False
    assert (await rp.sign_in()).subject == "alice-0001"


async def test_rfc9207_iss_parameter_is_accepted_when_right(rp: RelyingParty) -> None:
    rp.idp.knobs.advertise_iss = True
    rp.idp.knobs.send_iss = True
    assert (await rp.sign_in()).subject == "alice-0001"


async def test_custom_user_is_reported(router: respx.MockRouter) -> None:
    rp = RelyingParty(router, user=IdpUser(sub="bob", email="bob@partner-a.example", email_verified=False))
    try:
        identity = await rp.sign_in()
        assert (identity.subject, identity.email, identity.email_verified) == (
            "bob",
            "bob@partner-a.example",
            False,
        )
    finally:
        await rp.http.aclose()
