"""Signing and verifying the gateway's own tokens: round trips checked by an independent verifier,
and every way a token that is not ours must be refused (RFC 8725)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from joserfc import jws
from joserfc.jwk import ECKey, RSAKey

from gateway.secrets import SecretBox
from gateway.tokens import jwt as jwt_module
from gateway.tokens import keys as keys_module
from gateway.tokens.jwt import MAX_TOKEN_LENGTH, InvalidToken, b64url, half_hash
from gateway.tokens.keys import KeyRing, ensure_keys
from tests.support.memory_store import MemoryKeyStore

NOW = 1_700_000_000
CLAIMS = {"iss": "http://127.0.0.1:8000", "sub": "pairwise-sub", "aud": "demo", "iat": NOW, "exp": NOW + 300}


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def enc(value: dict[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def public_key(jwk: dict[str, str]) -> ec.EllipticCurvePublicKey | rsa.RSAPublicKey:
    """A cryptography public key built from the published JWK, without joserfc."""
    if jwk["kty"] == "EC":
        assert jwk["crv"] == "P-256"
        x, y = (int.from_bytes(unb64(jwk[name]), "big") for name in ("x", "y"))
        return ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
    n, e = (int.from_bytes(unb64(jwk[name]), "big") for name in ("n", "e"))
    return rsa.RSAPublicNumbers(e, n).public_key()


def independent_verify(token: str, jwks: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    """Verify with cryptography alone, keyed by the header kid in the published JWKS."""
    header_b64, payload_b64, signature_b64 = token.split(".")
    header = json.loads(unb64(header_b64))
    jwk = next(key for key in json.loads(jwks)["keys"] if key["kid"] == header["kid"])
    key = public_key(jwk)
    message = f"{header_b64}.{payload_b64}".encode()
    signature = unb64(signature_b64)
    if isinstance(key, ec.EllipticCurvePublicKey):
        assert header["alg"] == "ES256" and len(signature) == 64
        r, s = (int.from_bytes(half, "big") for half in (signature[:32], signature[32:]))
        der = encode_dss_signature(r, s)
        key.verify(der, message, ec.ECDSA(hashes.SHA256()))
    else:
        assert header["alg"] == "RS256"
        key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    return header, json.loads(unb64(payload_b64))


@pytest.fixture
async def ring() -> KeyRing:
    store = MemoryKeyStore()
    box = SecretBox(["k" * 40])
    await ensure_keys(store, box, {"ES256", "RS256"}, NOW)
    return await KeyRing.load(store, box, clock=lambda: NOW)


@pytest.mark.parametrize("alg", ["ES256", "RS256"])
async def test_round_trip_is_verified_by_an_independent_verifier(ring: KeyRing, alg: str) -> None:
    token = await ring.sign(CLAIMS, alg)

    header, claims = independent_verify(token, ring.jwks())
    assert header == {"alg": alg, "kid": ring.signing_key(alg).kid, "typ": "JWT"}
    assert claims == CLAIMS
    assert ring.verify(token) == CLAIMS
    assert ring.verify(token, algorithms={alg}) == CLAIMS


@pytest.mark.parametrize("alg", ["ES256", "RS256"])
async def test_independent_verifier_rejects_a_changed_signature_input(ring: KeyRing, alg: str) -> None:
    token = await ring.sign(CLAIMS, alg)
    header, _, signature = token.split(".")
    with pytest.raises(InvalidSignature):
        independent_verify(f"{header}.{enc({**CLAIMS, 'sub': 'x'})}.{signature}", ring.jwks())


async def test_logout_token_typ_is_signed_and_can_be_required(ring: KeyRing) -> None:
    token = await ring.sign({"events": {"http://schemas.openid.net/event/backchannel-logout": {}}}, "ES256",
                            typ="logout+jwt")
    header, _ = independent_verify(token, ring.jwks())
    assert header["typ"] == "logout+jwt"
    assert ring.verify(token, typ="logout+jwt")["events"]
    with pytest.raises(InvalidToken, match="unexpected typ"):
        ring.verify(token, typ="JWT")


async def test_rs256_signs_off_the_event_loop_and_es256_inline(
    ring: KeyRing, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: dict[str, int] = {}
    real_encode = jwt_module.encode

    def recording_encode(claims: dict[str, Any], key: Any, *, alg: str, kid: str, typ: str) -> str:
        threads[alg] = threading.get_ident()
        return real_encode(claims, key, alg=alg, kid=kid, typ=typ)

    monkeypatch.setattr(keys_module, "encode", recording_encode)
    await ring.sign(CLAIMS, "ES256")
    await ring.sign(CLAIMS, "RS256")
    assert threads["ES256"] == threading.get_ident()
    assert threads["RS256"] != threading.get_ident()


async def test_alg_none_is_refused(ring: KeyRing) -> None:
    kid = ring.signing_key("ES256").kid
    token = f"{enc({'alg': 'none', 'kid': kid, 'typ': 'JWT'})}.{enc(CLAIMS)}."
    with pytest.raises(InvalidToken, match="alg not allowed"):
        ring.verify(token)
    with pytest.raises(ValueError, match="must be among"):
        ring.verify(token, algorithms={"none"})


def _hs256(header: dict[str, Any], secret: bytes) -> str:
    signing_input = f"{enc(header)}.{enc(CLAIMS)}"
    return f"{signing_input}.{b64url(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())}"


@pytest.mark.parametrize("alg", ["ES256", "RS256"])
async def test_hs256_signed_with_our_public_key_is_refused(ring: KeyRing, alg: str) -> None:
    """RFC 8725 section 3.1: the public key used as an HMAC secret must not verify."""
    key = ring.signing_key(alg)
    pem = key.jwk.as_bytes(private=False)
    assert b"PUBLIC KEY" in pem
    secrets = [
        pem,
        json.dumps(dict(key.public)).encode(),
        public_key(dict(key.public)).public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        ring.jwks(),
    ]
    for secret in secrets:
        token = _hs256({"alg": "HS256", "kid": key.kid, "typ": "JWT"}, secret)
        with pytest.raises(InvalidToken, match="alg not allowed"):
            ring.verify(token)
    with pytest.raises(ValueError, match="must be among"):
        ring.verify(token, algorithms={"HS256"})


async def test_unknown_and_missing_kid_are_refused(ring: KeyRing) -> None:
    stranger = ECKey.generate_key("P-256")
    claims = json.dumps(CLAIMS).encode()
    foreign = jws.serialize_compact({"alg": "ES256", "kid": stranger.thumbprint()}, claims, stranger)
    with pytest.raises(InvalidToken, match="unknown kid"):
        ring.verify(foreign)
    no_kid = jws.serialize_compact({"alg": "ES256"}, claims, stranger)
    with pytest.raises(InvalidToken, match="missing kid"):
        ring.verify(no_kid)
    # A stranger's key presenting our kid fails on the signature.
    impostor = jws.serialize_compact({"alg": "ES256", "kid": ring.signing_key("ES256").kid}, claims, stranger)
    with pytest.raises(InvalidToken, match="bad signature"):
        ring.verify(impostor)


@pytest.mark.parametrize("alg", ["ES256", "RS256"])
async def test_tampered_payload_and_header_are_refused(ring: KeyRing, alg: str) -> None:
    header, _, signature = (await ring.sign(CLAIMS, alg)).split(".")
    with pytest.raises(InvalidToken, match="bad signature"):
        ring.verify(f"{header}.{enc({**CLAIMS, 'sub': 'someone-else'})}.{signature}")
    other_header = enc({"alg": alg, "kid": ring.signing_key(alg).kid, "typ": "logout+jwt"})
    with pytest.raises(InvalidToken, match="bad signature"):
        ring.verify(f"{other_header}.{enc(CLAIMS)}.{signature}")


async def test_a_kid_whose_key_type_does_not_fit_the_alg_is_refused(ring: KeyRing) -> None:
    """Signed validly by our RSA key, but naming our EC key's kid (and the reverse)."""
    es, rs = ring.signing_key("ES256"), ring.signing_key("RS256")
    payload = json.dumps(CLAIMS).encode()
    cross = [
        jws.serialize_compact({"alg": "RS256", "kid": es.kid}, payload, rs.jwk),
        jws.serialize_compact({"alg": "ES256", "kid": rs.kid}, payload, es.jwk),
    ]
    for token in cross:
        with pytest.raises(InvalidToken, match="key does not fit alg"):
            ring.verify(token)


async def test_the_pinned_algorithm_set_comes_from_the_caller(ring: KeyRing) -> None:
    token = await ring.sign(CLAIMS, "ES256")
    with pytest.raises(InvalidToken, match="alg not allowed"):
        ring.verify(token, algorithms={"RS256"})


async def test_unexpected_header_parameters_are_refused(ring: KeyRing) -> None:
    key = ring.signing_key("ES256")
    payload = json.dumps(CLAIMS).encode()
    for extra in ({"jku": "https://evil.example/jwks"}, {"x5u": "https://evil.example/cert"}):
        token = jws.serialize_compact({"alg": "ES256", "kid": key.kid, **extra}, payload, key.jwk)
        with pytest.raises(InvalidToken, match="unexpected header parameter"):
            ring.verify(token)


async def test_malformed_tokens_are_refused(ring: KeyRing) -> None:
    key = ring.signing_key("ES256")
    valid = await ring.sign(CLAIMS, "ES256")
    for token in ("", "abc", "a.b", valid + ".x", "é.é.é", "x" * (MAX_TOKEN_LENGTH + 1), "!!.!!.!!"):
        with pytest.raises(InvalidToken, match="malformed token"):
            ring.verify(token)
    array = jws.serialize_compact({"alg": "ES256", "kid": key.kid}, b"[1,2]", key.jwk)
    with pytest.raises(InvalidToken, match="payload is not a JSON object"):
        ring.verify(array)
    not_json = jws.serialize_compact({"alg": "ES256", "kid": key.kid}, b"hello", key.jwk)
    with pytest.raises(InvalidToken, match="payload is not JSON"):
        ring.verify(not_json)


async def test_expired_tokens_still_verify_because_time_is_the_callers(ring: KeyRing) -> None:
    """id_token_hint may be expired; verify() checks only that the token is ours."""
    expired = {**CLAIMS, "exp": NOW - 3600}
    assert ring.verify(await ring.sign(expired, "RS256")) == expired


async def test_signing_refuses_a_key_that_does_not_fit_the_alg() -> None:
    from gateway.tokens.jwt import encode

    with pytest.raises(ValueError, match="cannot sign"):
        encode(CLAIMS, RSAKey.generate_key(2048), alg="ES256", kid="k", typ="JWT")
    with pytest.raises(ValueError, match="cannot sign"):
        encode(CLAIMS, ECKey.generate_key("P-256"), alg="HS256", kid="k", typ="JWT")


def test_half_hash_follows_oidc_core() -> None:
    # OIDC Core A.4: the c_hash of the example code.
    code = "Qcb0Orv1zh30vL1MPRsbm-diHiMwcLyZvn1arpZv-Jxf_11jnpEX3Tgfvk"
    assert half_hash(code, "RS256") == "LDktKdoQak3Pk0cnXxCltA"
    token = "jHkWEdUXMU1BwAsC4vtUsZwnNTY"
    expected = base64.urlsafe_b64encode(hashlib.sha256(token.encode()).digest()[:16]).rstrip(b"=").decode()
    assert half_hash(token, "ES256") == half_hash(token, "RS256") == expected
    assert len(half_hash(token, "ES384")) == 32  # 24 bytes of SHA-384
    for alg in ("none", "EdDSA", ""):
        with pytest.raises(ValueError, match="no OIDC half hash"):
            half_hash(token, alg)


def test_b64url_has_no_padding() -> None:
    assert b64url(b"\xfb\xff") == "-_8"
    assert b64url(b"") == ""


async def test_sign_cost_is_printed(ring: KeyRing, capsys: pytest.CaptureFixture[str]) -> None:
    """ES256 inline, RS256 in the thread pool: a measurement, reported with -s."""
    from gateway.tokens.jwt import encode

    costs = {}
    for alg, rounds in (("ES256", 400), ("RS256", 100)):
        key = ring.signing_key(alg)
        start = time.perf_counter()
        for _ in range(rounds):
            encode(CLAIMS, key.jwk, alg=alg, kid=key.kid, typ="JWT")
        costs[alg] = (time.perf_counter() - start) / rounds * 1e6
    with capsys.disabled():
        print(f"\nsign cost: ES256 {costs['ES256']:.0f} us, RS256 {costs['RS256']:.0f} us")
    assert costs["ES256"] < costs["RS256"]
