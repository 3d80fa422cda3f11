"""Every bad upstream answer the ``oidc`` connector must refuse, each with its stable error code.

Each test also checks that the connector kept nothing (its state stays empty) and, where it
matters, what it did not do (no code redemption after an ``iss`` mix-up, no key lookup for
a forbidden ``alg``, no userinfo call).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
import respx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from idp_connectors.base import BeginRequest, Callback, ConnectorError
from idp_connectors.oidc import metadata
from idp_connectors.oidc.connector import UpstreamError
from tests.support.oidc_idp import ISSUER, REMOVE, IdpClient, RelyingParty, b64url


@pytest.fixture
async def router() -> AsyncIterator[respx.MockRouter]:
    async with respx.mock(assert_all_called=False) as mock:
        yield mock


@pytest.fixture
async def rp(router: respx.MockRouter) -> AsyncIterator[RelyingParty]:
    harness = RelyingParty(router)
    yield harness
    await harness.http.aclose()


async def refused(rp: RelyingParty, code: str, **request: Any) -> ConnectorError:
    with pytest.raises(ConnectorError) as caught:
        await rp.sign_in(**request)
    assert caught.value.code == code, str(caught.value)
    assert str(caught.value)
    rp.assert_nothing_persisted()
    return caught.value


async def claims_refused(rp: RelyingParty, code: str, **claims: Any) -> ConnectorError:
    rp.idp.knobs.id_token_claims = claims
    return await refused(rp, code)


# -- discovery -----------------------------------------------------------------------------------


async def test_oidcc_client_test_discovery_issuer_mismatch(rp: RelyingParty) -> None:
    """oidcc-client-test-discovery-issuer-mismatch."""
    rp.idp.knobs.discovery_issuer = "https://idp.partner-a.test/"  # one slash off is another issuer
    with pytest.raises(ConnectorError) as caught:
        await rp.begin()
    assert caught.value.code == "discovery_issuer_mismatch"
    rp.assert_nothing_persisted()


@pytest.mark.parametrize(
    ("doc", "code"),
    [
        (
            {"issuer": ISSUER, "authorization_endpoint": "http://idp.partner-a.test/authorize"},
            "discovery_invalid",
        ),
        ({"issuer": ISSUER}, "discovery_invalid"),
        ([ISSUER], "discovery_invalid"),
    ],
)
async def test_bad_discovery_documents(rp: RelyingParty, doc: object, code: str) -> None:
    base = {"token_endpoint": ISSUER + "/token", "jwks_uri": ISSUER + "/jwks"}
    body = {**base, **doc} if isinstance(doc, dict) and len(doc) > 1 else doc
    rp.routes["discovery"].mock(return_value=httpx.Response(200, json=body))
    with pytest.raises(ConnectorError) as caught:
        await rp.begin()
    assert caught.value.code == code


async def test_oversized_discovery_document_is_refused(rp: RelyingParty) -> None:
    rp.routes["discovery"].mock(return_value=httpx.Response(200, content=b"{" + b" " * (1 << 20) + b"}"))
    with pytest.raises(ConnectorError) as caught:
        await rp.begin()
    assert caught.value.code == "discovery_invalid"
    assert "too large" in str(caught.value)


async def test_compressed_answers_are_refused(rp: RelyingParty) -> None:
    """We ask for identity encoding, so no decompression can get past the size cap."""
    rp.routes["discovery"].mock(
        return_value=httpx.Response(200, content=b"x", headers={"content-encoding": "gzip"})
    )
    with pytest.raises(ConnectorError) as caught:
        await rp.begin()
    assert caught.value.code == "discovery_invalid"
    assert rp.routes["discovery"].calls.last.request.headers["accept-encoding"] == "identity"


async def test_discovery_failure_is_upstream_unavailable_and_remembered_briefly(rp: RelyingParty) -> None:
    rp.routes["discovery"].mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(ConnectorError) as caught:
        await rp.begin()
    assert caught.value.code == "upstream_unavailable"
    rp.idp.mount(rp.router)
    with pytest.raises(ConnectorError):  # a down IdP is not asked again at once (no retry storm)
        await rp.begin()
    rp.clock.advance(metadata.NEGATIVE_CACHE_SECONDS)
    assert (await rp.begin()).url.startswith(ISSUER)


async def test_public_client_needs_pkce_s256_upstream(router: respx.MockRouter) -> None:
    rp = RelyingParty(router, clients=[IdpClient(client_secret=None, auth_method="none")])
    try:
        doc = {
            "issuer": ISSUER,
            "authorization_endpoint": ISSUER + "/authorize",
            "token_endpoint": ISSUER + "/token",
            "jwks_uri": ISSUER + "/jwks",
            "code_challenge_methods_supported": ["plain"],
        }
        rp.routes["discovery"].mock(return_value=httpx.Response(200, json=doc))
        with pytest.raises(ConnectorError) as caught:
            await rp.begin()
        assert caught.value.code == "pkce_unsupported"
        rp.configure(token_endpoint_auth_method="client_secret_basic", client_secret="x")
        assert (await rp.begin()).url  # a confidential client still goes (PKCE is then defence in depth)
    finally:
        await rp.http.aclose()


# -- the authorization response ------------------------------------------------------------------


async def test_rfc9207_iss_mix_up_is_refused_before_the_code_is_redeemed(rp: RelyingParty) -> None:
    """Mix-up defence (checklist section 3.1): advertised iss, wrong value."""
    rp.idp.knobs.advertise_iss = True
    rp.idp.knobs.send_iss = True
    rp.idp.knobs.response_iss = "https://attacker.example"
    await refused(rp, "iss_mismatch")
    assert rp.calls("token") == 0


async def test_rfc9207_iss_required_when_advertised(rp: RelyingParty) -> None:
    rp.idp.knobs.advertise_iss = True
    await refused(rp, "iss_missing")
    assert rp.calls("token") == 0


async def test_rfc9207_iss_checked_even_when_not_advertised(rp: RelyingParty) -> None:
    rp.idp.knobs.send_iss = True
    rp.idp.knobs.response_iss = "https://attacker.example"
    await refused(rp, "iss_mismatch")
    assert rp.calls("token") == 0


async def test_oidcc_client_test_form_post_error_access_denied(rp: RelyingParty) -> None:
    """oidcc-client-test-form-post-error: upstream error=access_denied becomes a clear error."""
    rp.idp.knobs.authorize_error = "access_denied"
    error = await refused(rp, "upstream_denied")
    assert isinstance(error, UpstreamError)
    assert error.error == "access_denied"
    assert error.error_description == "The user said no."
    assert rp.calls("token") == 0


async def test_other_upstream_errors_are_sanitised(rp: RelyingParty) -> None:
    callback = await rp.callback()
    params = {
        "state": callback.params["state"],
        "error": "login_required\r\n<b>",
        "error_description": 'a\tb\nc"d',
    }
    with pytest.raises(UpstreamError) as caught:
        await rp.connector.complete(Callback(params, callback.state, callback.callback_url))
    assert caught.value.code == "upstream_error"
    assert caught.value.error == "login_required??<b>"  # RFC 6749 charset; HTML escaping is the page's job
    assert caught.value.error_description == "a?b?c?d"
    assert "\n" not in str(caught.value) and "\r" not in str(caught.value)


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"code": None}, "code_missing"),
        ({"code": ""}, "code_missing"),
        ({"state": "someone-elses"}, "state_mismatch"),
        ({"state": None}, "state_mismatch"),
    ],
)
async def test_bad_callback_parameters(rp: RelyingParty, change: dict[str, Any], code: str) -> None:
    callback = await rp.callback()
    params = {**callback.params, **change}
    params = {k: v for k, v in params.items() if v is not None}
    with pytest.raises(ConnectorError) as caught:
        await rp.connector.complete(Callback(params, callback.state, callback.callback_url))
    assert caught.value.code == code
    assert rp.calls("token") == 0
    rp.assert_nothing_persisted()


@pytest.mark.parametrize(
    "state",
    [
        {},
        None,
        {"nonce": "x"},
        "text",
        {
            "issuer": ISSUER,
            "state": "s",
            "nonce": "n",
            "code_verifier": "v",
            "redirect_uri": "https://gateway.test/callback/partner-a",
            "issued_at": True,
            "max_age": None,
        },
    ],
)
async def test_unusable_stored_state(rp: RelyingParty, state: Any) -> None:
    callback = await rp.callback()
    with pytest.raises(ConnectorError) as caught:
        await rp.connector.complete(Callback(callback.params, state, callback.callback_url))
    assert caught.value.code == "invalid_state"
    assert rp.calls("token") == 0


async def test_state_from_another_issuer_is_refused(rp: RelyingParty) -> None:
    callback = await rp.callback()
    state = {**callback.state, "issuer": "https://other.example"}
    with pytest.raises(ConnectorError) as caught:
        await rp.connector.complete(Callback(callback.params, state, callback.callback_url))
    assert caught.value.code == "invalid_state"


async def test_callback_at_another_redirect_uri_is_refused(rp: RelyingParty) -> None:
    callback = await rp.callback()
    with pytest.raises(ConnectorError) as caught:
        await rp.connector.complete(
            Callback(callback.params, callback.state, "https://gateway.test/callback/other")
        )
    assert caught.value.code == "redirect_uri_mismatch"


async def test_stale_sign_in_is_refused(rp: RelyingParty) -> None:
    callback = await rp.callback()
    rp.clock.advance(3601)
    with pytest.raises(ConnectorError) as caught:
        await rp.connector.complete(callback)
    assert caught.value.code == "state_expired"
    assert rp.calls("token") == 0


# -- the token endpoint ------------------------------------------------------------------------


async def test_upstream_500_is_upstream_unavailable(rp: RelyingParty) -> None:
    rp.idp.knobs.token_status = 500
    await refused(rp, "upstream_unavailable")


async def test_token_endpoint_timeout_is_upstream_unavailable(rp: RelyingParty) -> None:
    rp.configure(http_timeout_seconds=0.2)
    rp.idp.knobs.token_delay = 5
    error = await refused(rp, "upstream_unavailable")
    assert "0.2 seconds" in str(error)


async def test_token_endpoint_transport_timeout_is_upstream_unavailable(rp: RelyingParty) -> None:
    rp.routes["token"].mock(side_effect=httpx.ReadTimeout("slow"))
    await refused(rp, "upstream_unavailable")


async def test_non_json_token_response_is_refused(rp: RelyingParty) -> None:
    rp.idp.knobs.token_body = b"<html>Sorry</html>"
    await refused(rp, "token_response_invalid")


@pytest.mark.parametrize(
    "body",
    [
        {"access_token": "at", "token_type": "Bearer"},
        {"id_token": "x.y.z"},
        {"id_token": 5, "access_token": "a"},
    ],
)
async def test_token_response_without_tokens_is_refused(rp: RelyingParty, body: dict[str, Any]) -> None:
    rp.routes["token"].mock(return_value=httpx.Response(200, json=body))
    await refused(rp, "token_response_invalid")


async def test_replayed_code_is_a_token_error_without_secrets(rp: RelyingParty) -> None:
    callback = await rp.callback()
    await rp.connector.complete(callback)
    with pytest.raises(ConnectorError) as caught:
        await rp.connector.complete(callback)
    assert caught.value.code == "token_error"
    assert "invalid_grant" in str(caught.value)
    assert "s3cret" not in str(caught.value) and callback.params["code"] not in str(caught.value)


async def test_wrong_client_secret_is_a_token_error(rp: RelyingParty) -> None:
    rp.configure(client_secret="not-the-secret")
    error = await refused(rp, "token_error")
    assert "invalid_client" in str(error)
    assert "not-the-secret" not in str(error)


async def test_redirect_from_the_token_endpoint_is_not_followed(rp: RelyingParty) -> None:
    rp.routes["token"].mock(
        return_value=httpx.Response(302, headers={"location": "https://attacker.example/"})
    )
    await refused(rp, "token_response_invalid")


# -- the ID token ------------------------------------------------------------------------------


async def test_oidcc_client_test_invalid_sig_rs256(rp: RelyingParty) -> None:
    """oidcc-client-test-invalid-sig-rs256: a broken signature under the published kid."""
    rp.idp.knobs.sign_with_wrong_key = True
    await refused(rp, "bad_signature")


async def test_oidcc_client_test_invalid_sig_es256(rp: RelyingParty) -> None:
    """oidcc-client-test-invalid-sig-es256."""
    rp.configure(allowed_algorithms=["ES256"])
    rp.idp.knobs.signing_alg = "ES256"
    rp.idp.knobs.sign_with_wrong_key = True
    await refused(rp, "bad_signature")


async def test_tampered_payload_is_a_bad_signature(rp: RelyingParty) -> None:
    original = rp.idp.sign

    def tampered(claims: dict[str, Any], **kw: Any) -> str:
        header, _, signature = original(claims, **kw).split(".")
        forged = original({**claims, "sub": "mallory"}, **kw).split(".")[1]
        return f"{header}.{forged}.{signature}"

    rp.idp.sign = tampered  # type: ignore[method-assign]
    await refused(rp, "bad_signature")


async def test_oidcc_client_test_idtoken_sig_none(rp: RelyingParty) -> None:
    """oidcc-client-test-idtoken-sig-none: alg none is refused before any key or userinfo call."""
    rp.configure(use_userinfo=True)
    rp.idp.knobs.header_alg = "none"
    await refused(rp, "alg_not_allowed")
    assert rp.calls("jwks") == 0
    assert rp.calls("userinfo") == 0


async def test_oidcc_client_test_invalid_sig_hs256_with_the_public_key(rp: RelyingParty) -> None:
    """oidcc-client-test-invalid-sig-hs256: HMAC keyed with the IdP's public key PEM (RFC 8725 3.1)."""
    rp.idp.knobs.header_alg = "HS256"
    error = await refused(rp, "alg_not_allowed")
    assert "HS256" in str(error)
    assert rp.calls("jwks") == 0


async def test_allowed_but_unpinned_algorithm_is_refused(rp: RelyingParty) -> None:
    rp.idp.knobs.signing_alg = "ES256"  # the connector is pinned to RS256 (the default)
    await refused(rp, "alg_not_allowed")
    assert rp.calls("jwks") == 0


async def test_key_of_the_wrong_type_is_refused(rp: RelyingParty) -> None:
    rp.idp.knobs.kid = rp.idp.keys["P-256"].kid  # an RS256 token naming the EC key
    await refused(rp, "key_alg_mismatch")


@pytest.mark.parametrize("token", ["not-a-jwt", "a.b", "e30.e30.", "\u00e9.e30.e30"])
async def test_malformed_id_tokens(rp: RelyingParty, token: str) -> None:
    rp.routes["token"].mock(
        return_value=httpx.Response(
            200, json={"id_token": token, "access_token": "at", "token_type": "Bearer"}
        )
    )
    await refused(rp, "id_token_malformed")


async def test_critical_header_extension_is_refused(rp: RelyingParty) -> None:
    key = rp.idp.keys["RSA"]
    header = {"alg": "RS256", "kid": key.kid, "crit": ["urn:example:ext"], "urn:example:ext": 1}
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(b'{}')}"
    private = key.private_key
    assert isinstance(private, rsa.RSAPrivateKey)
    signature = private.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    token = f"{signing_input}.{b64url(signature)}"
    rp.routes["token"].mock(
        return_value=httpx.Response(
            200, json={"id_token": token, "access_token": "at", "token_type": "Bearer"}
        )
    )
    await refused(rp, "id_token_malformed")


async def test_oidcc_client_test_invalid_iss(rp: RelyingParty) -> None:
    """oidcc-client-test-invalid-iss."""
    await claims_refused(rp, "invalid_iss", iss="https://idp.partner-b.test")


async def test_missing_iss(rp: RelyingParty) -> None:
    await claims_refused(rp, "invalid_iss", iss=REMOVE)


async def test_oidcc_client_test_invalid_aud(rp: RelyingParty) -> None:
    """oidcc-client-test-invalid-aud."""
    await claims_refused(rp, "invalid_aud", aud="someone-else")


async def test_oidcc_client_test_missing_aud(rp: RelyingParty) -> None:
    """oidcc-client-test-missing-aud."""
    await claims_refused(rp, "invalid_aud", aud=REMOVE)


async def test_several_audiences_without_azp(rp: RelyingParty) -> None:
    """oidcc-client-test-invalid-aud (several audiences): azp is required."""
    await claims_refused(rp, "azp_missing", aud=["gateway", "other-api"])


async def test_azp_naming_another_client(rp: RelyingParty) -> None:
    await claims_refused(rp, "invalid_azp", aud=["gateway", "other-api"], azp="other-api")


async def test_single_audience_with_wrong_azp(rp: RelyingParty) -> None:
    await claims_refused(rp, "invalid_azp", azp="other-api")


async def test_expired_id_token(rp: RelyingParty) -> None:
    rp.idp.knobs.exp_offset = -121  # beyond the 120 s skew
    rp.idp.knobs.iat_offset = -600
    await refused(rp, "id_token_expired")


async def test_id_token_without_exp(rp: RelyingParty) -> None:
    await claims_refused(rp, "id_token_malformed", exp=REMOVE)


async def test_iat_in_the_future(rp: RelyingParty) -> None:
    rp.idp.knobs.iat_offset = 121
    rp.idp.knobs.exp_offset = 900
    await refused(rp, "iat_in_future")


async def test_oidcc_client_test_missing_iat(rp: RelyingParty) -> None:
    """oidcc-client-test-missing-iat."""
    await claims_refused(rp, "iat_missing", iat=REMOVE)


async def test_non_numeric_iat(rp: RelyingParty) -> None:
    await claims_refused(rp, "id_token_malformed", iat="yesterday")


async def test_nbf_in_the_future(rp: RelyingParty) -> None:
    await claims_refused(rp, "nbf_in_future", nbf=int(rp.clock()) + 121)


async def test_oidcc_client_test_missing_sub(rp: RelyingParty) -> None:
    """oidcc-client-test-missing-sub."""
    await claims_refused(rp, "sub_missing", sub=REMOVE)


@pytest.mark.parametrize("sub", ["", 42, "x" * 256])
async def test_unusable_sub(rp: RelyingParty, sub: object) -> None:
    await claims_refused(rp, "sub_missing", sub=sub)


async def test_oidcc_client_test_nonce_invalid(rp: RelyingParty) -> None:
    """oidcc-client-test-nonce-invalid."""
    await claims_refused(rp, "invalid_nonce", nonce="not-the-nonce-we-sent")


async def test_oidcc_client_test_nonce_unless_code_flow_missing_nonce(rp: RelyingParty) -> None:
    """oidcc-client-test-nonce-unless-code-flow: we always send a nonce, so one must come back."""
    await claims_refused(rp, "invalid_nonce", nonce=REMOVE)


async def test_oidcc_client_test_invalid_athash(rp: RelyingParty) -> None:
    """oidcc-client-test-invalid-athash."""
    await claims_refused(rp, "at_hash_mismatch", at_hash="AAAAAAAAAAAAAAAAAAAAAA")


async def test_max_age_without_auth_time(rp: RelyingParty) -> None:
    rp.idp.knobs.id_token_claims = {"auth_time": REMOVE}
    await refused(rp, "auth_time_missing", max_age=60)


async def test_max_age_exceeded(rp: RelyingParty) -> None:
    rp.idp.knobs.id_token_claims = {"auth_time": int(rp.clock()) - 3600}
    await refused(rp, "max_age_exceeded", max_age=60)


async def test_mapped_subject_claim_missing(rp: RelyingParty) -> None:
    rp.configure(claims={"subject": "oid"})
    await refused(rp, "subject_missing")


# -- userinfo ----------------------------------------------------------------------------------


async def test_oidcc_client_test_userinfo_invalid_sub(rp: RelyingParty) -> None:
    """oidcc-client-test-userinfo-invalid-sub."""
    rp.configure(use_userinfo=True)
    rp.idp.knobs.userinfo_claims = {"sub": "mallory"}
    await refused(rp, "userinfo_sub_mismatch")


async def test_userinfo_without_sub(rp: RelyingParty) -> None:
    rp.configure(use_userinfo=True)
    rp.idp.knobs.userinfo_claims = {"sub": REMOVE}
    await refused(rp, "userinfo_sub_mismatch")


async def test_userinfo_refused(rp: RelyingParty) -> None:
    rp.configure(use_userinfo=True)
    rp.routes["userinfo"].mock(return_value=httpx.Response(401, json={"error": "invalid_token"}))
    await refused(rp, "userinfo_error")


async def test_userinfo_not_json(rp: RelyingParty) -> None:
    rp.configure(use_userinfo=True)
    rp.routes["userinfo"].mock(return_value=httpx.Response(200, text="<html>"))
    await refused(rp, "userinfo_invalid")


async def test_signed_userinfo_with_a_bad_signature(rp: RelyingParty) -> None:
    rp.configure(use_userinfo=True)
    rp.idp.knobs.userinfo_signed = True
    original = rp.idp.sign

    def corrupt_userinfo(claims: dict[str, Any], **kw: Any) -> str:
        token = original(claims, **kw)
        is_userinfo = "nonce" not in claims
        return token[:-6] + ("AAAAAA" if token[-6:] != "AAAAAA" else "BBBBBB") if is_userinfo else token

    rp.idp.sign = corrupt_userinfo  # type: ignore[method-assign]
    await refused(rp, "bad_signature")
    assert rp.calls("userinfo") == 1


async def test_signed_userinfo_for_another_client(rp: RelyingParty) -> None:
    rp.configure(use_userinfo=True)
    rp.idp.knobs.userinfo_signed = True
    rp.idp.knobs.userinfo_claims = {"aud": "other-client"}
    await refused(rp, "userinfo_invalid")


async def test_userinfo_without_an_endpoint(rp: RelyingParty) -> None:
    rp.configure(use_userinfo=True)
    rp.routes["discovery"].mock(
        return_value=httpx.Response(
            200,
            json={
                "issuer": ISSUER,
                "authorization_endpoint": ISSUER + "/authorize",
                "token_endpoint": ISSUER + "/token",
                "jwks_uri": ISSUER + "/jwks",
            },
        )
    )
    await refused(rp, "userinfo_unsupported")


async def test_no_http_client(rp: RelyingParty) -> None:
    connector = rp.config.open(replace(rp.connector.ctx, http=None))
    with pytest.raises(ConnectorError) as caught:
        await connector.begin(BeginRequest(state="s", callback_url="https://gateway.test/callback/partner-a"))
    assert caught.value.code == "no_http_client"
