"""The hand-written ES256 signer (docs/adr/0009): what it writes is what joserfc writes and reads.

The header and payload segments are byte for byte joserfc's own (only the ECDSA signature, which is
randomised, differs); joserfc verifies every token it makes; the signature is the fixed-width
``R || S`` of RFC 7518 3.4 even when R or S is short; and it refuses the keys joserfc would.
"""

from __future__ import annotations

import base64
import json
from typing import Any, cast

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from joserfc import jws
from joserfc.jwk import ECKey, RSAKey

from gateway.tokens.jwt import encode, es256_compact, protected_header

CLAIMS: dict[str, Any] = {
    "iss": "http://127.0.0.1:8000",
    "sub": "pairwise-sub",
    "aud": "demo",
    "iat": 1_700_000_000,
    "exp": 1_700_000_300,
    "amr": ["otp"],
    "name": "Zoë Ünïcode ✓",  # non-ASCII stays UTF-8 in the payload, as before
    "email_verified": True,
}
REGISTRY = jws.JWSRegistry(algorithms=["ES256"])


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@pytest.fixture(scope="module")
def key() -> ECKey:
    return ECKey.generate_key("P-256", private=True)


def joserfc_token(claims: dict[str, Any], key: ECKey, kid: str, typ: str) -> str:
    """What ``encode`` wrote before it signed ES256 itself: joserfc's generic path."""
    payload = json.dumps(claims, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
    header = {"alg": "ES256", "kid": kid, "typ": typ}
    return jws.serialize_compact(header, payload, key, registry=REGISTRY)


@pytest.mark.parametrize("typ", ["JWT", "logout+jwt"])
def test_header_and_payload_segments_are_joserfcs_own(key: ECKey, typ: str) -> None:
    ours = encode(CLAIMS, key, alg="ES256", kid="kid-1", typ=typ).split(".")
    theirs = joserfc_token(CLAIMS, key, "kid-1", typ).split(".")
    assert ours[:2] == theirs[:2]
    assert len(ours) == 3 and len(unb64(ours[2])) == 64


def test_joserfc_verifies_every_token_and_reads_back_header_and_claims(key: ECKey) -> None:
    public = ECKey.import_key(key.as_dict(private=False))
    for index in range(200):  # R or S shorter than 32 octets turns up about once in 128 signatures
        claims = {**CLAIMS, "jti": str(index)}
        token = encode(claims, key, alg="ES256", kid="kid-1", typ="JWT")
        found = jws.deserialize_compact(token, public, registry=REGISTRY)
        assert found.headers() == {"alg": "ES256", "kid": "kid-1", "typ": "JWT"}
        assert json.loads(found.payload) == claims


def test_a_changed_payload_does_not_verify_with_joserfc(key: ECKey) -> None:
    header, _, signature = encode(CLAIMS, key, alg="ES256", kid="kid-1", typ="JWT").split(".")
    forged_payload = base64.urlsafe_b64encode(json.dumps({**CLAIMS, "sub": "x"}).encode()).rstrip(b"=")
    with pytest.raises(Exception, match="signature"):
        jws.deserialize_compact(f"{header}.{forged_payload.decode()}.{signature}", key, registry=REGISTRY)


class _FixedSigner:
    """Stands in for the private key: returns a chosen DER signature, to test the R || S layout."""

    def __init__(self, r: int, s: int) -> None:
        self.der = encode_dss_signature(r, s)

    def sign(self, data: bytes, algorithm: ec.EllipticCurveSignatureAlgorithm) -> bytes:
        return self.der


@pytest.mark.parametrize(("r", "s"), [(1, 2), (2**255 + 7, 5), (3, 2**256 - 1)])
def test_short_r_and_s_are_left_padded_to_32_octets_each(r: int, s: int) -> None:
    signer = cast(ec.EllipticCurvePrivateKey, _FixedSigner(r, s))
    token = es256_compact(b"{}", signer, protected_header("ES256", "k", "JWT"))
    signature = unb64(token.split(".")[2])
    assert len(signature) == 64
    assert (int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")) == (r, s)


def test_keys_that_do_not_fit_es256_are_refused(key: ECKey) -> None:
    public_only = ECKey.import_key(key.as_dict(private=False))
    with pytest.raises(ValueError, match="public key"):
        encode(CLAIMS, public_only, alg="ES256", kid="k", typ="JWT")
    with pytest.raises(ValueError, match="cannot sign"):
        encode(CLAIMS, ECKey.generate_key("P-384", private=True), alg="ES256", kid="k", typ="JWT")
    with pytest.raises(ValueError, match="cannot sign"):
        encode(CLAIMS, RSAKey.generate_key(2048, private=True), alg="ES256", kid="k", typ="JWT")


@pytest.mark.parametrize(
    "parameters",
    [{"use": "enc"}, {"alg": "ES384"}, {"key_ops": ["verify"]}],
    ids=["use-enc", "alg-ES384", "key_ops-verify"],
)
def test_a_key_whose_parameters_forbid_signing_es256_is_refused(
    key: ECKey, parameters: dict[str, Any]
) -> None:
    restricted = ECKey.import_key(key.as_dict(private=True), parameters)
    with pytest.raises(ValueError, match="cannot sign 'ES256' with this key"):
        encode(CLAIMS, restricted, alg="ES256", kid="k", typ="JWT")
    allowed = ECKey.import_key(key.as_dict(private=True), {"use": "sig", "alg": "ES256", "key_ops": ["sign"]})
    assert encode(CLAIMS, allowed, alg="ES256", kid="k", typ="JWT").count(".") == 2
