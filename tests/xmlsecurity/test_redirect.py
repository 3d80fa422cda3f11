"""HTTP-Redirect binding signatures (SAML Bindings 3.4.4.1): over the raw, still URL-encoded
values exactly as they arrived, in the fixed order; duplicates refused; SHA-256 or stronger."""

from __future__ import annotations

import base64
from urllib.parse import quote_plus

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from idp_connectors.xmlsecurity import gate
from idp_connectors.xmlsecurity.gate import XmlRejected
from idp_connectors.xmlsecurity.signature import (
    redirect_signed_octets,
    sign_redirect_query,
    verify_redirect_query,
)
from tests.xmlsecurity.samples import KeyPair, rsa_key

REQUEST = quote_plus(base64.b64encode(b"deflated AuthnRequest bytes / + =").decode())
RELAY = quote_plus("opaque state/with+symbols")


def query(sig_alg: str = gate.RSA_SHA256, relay: bool = True) -> str:
    parts = [f"SAMLRequest={REQUEST}"]
    if relay:
        parts.append(f"RelayState={RELAY}")
    parts.append(f"SigAlg={quote_plus(sig_alg)}")
    return "&".join(parts)


def signed_query(pair: KeyPair, sig_alg: str = gate.RSA_SHA256, relay: bool = True) -> str:
    unsigned = query(sig_alg, relay)
    return unsigned + "&Signature=" + quote_plus(sign_redirect_query(unsigned, pair.key))


@pytest.mark.parametrize("relay", [True, False])
def test_rsa_round_trip(idp: KeyPair, relay: bool) -> None:
    octets, signature, sig_alg = redirect_signed_octets(signed_query(idp, relay=relay))
    assert octets == query(relay=relay).encode()
    assert sig_alg == gate.RSA_SHA256
    assert verify_redirect_query(octets, signature, sig_alg, [idp.cert])


def test_ecdsa_round_trip_uses_raw_r_s(idp_ec: KeyPair) -> None:
    octets, signature, sig_alg = redirect_signed_octets(signed_query(idp_ec, gate.ECDSA_SHA256))
    assert len(base64.b64decode(signature)) == 64  # r||s for P-256, not DER
    assert verify_redirect_query(octets, signature, sig_alg, [idp_ec.cert])


def test_reordered_parameters_fail(idp: KeyPair) -> None:
    """A verifier that re-sorts or decodes the parameters would sign-check different octets."""
    signature = sign_redirect_query(query(), idp.key)
    reordered = f"RelayState={RELAY}&SAMLRequest={REQUEST}&SigAlg={quote_plus(gate.RSA_SHA256)}"
    assert not verify_redirect_query(reordered.encode(), signature, gate.RSA_SHA256, [idp.cert])
    # ...while the binding's own rebuild from the reordered query restores the signed order:
    octets, _, _ = redirect_signed_octets(reordered + "&Signature=" + quote_plus(signature))
    assert verify_redirect_query(octets, signature, gate.RSA_SHA256, [idp.cert])


def test_values_are_never_decoded_and_re_encoded(idp: KeyPair) -> None:
    unsigned = query().replace("%2F", "%2f")  # same value, different octets
    signature = sign_redirect_query(unsigned, idp.key)
    octets, _, _ = redirect_signed_octets(unsigned + "&Signature=" + quote_plus(signature))
    assert octets == unsigned.encode()
    assert verify_redirect_query(octets, signature, gate.RSA_SHA256, [idp.cert])
    assert not verify_redirect_query(query().encode(), signature, gate.RSA_SHA256, [idp.cert])


def test_tampered_request_fails(idp: KeyPair) -> None:
    octets, signature, sig_alg = redirect_signed_octets(signed_query(idp))
    assert not verify_redirect_query(
        octets.replace(b"RelayState=", b"RelayState=x"), signature, sig_alg, [idp.cert]
    )


def test_wrong_certificate_fails(idp: KeyPair, attacker: KeyPair, idp_ec: KeyPair, weak: KeyPair) -> None:
    octets, signature, sig_alg = redirect_signed_octets(signed_query(idp))
    assert not verify_redirect_query(octets, signature, sig_alg, [attacker.cert, idp_ec.cert])
    assert not verify_redirect_query(octets, signature, sig_alg, [])


def test_rsa_1024_certificate_never_verifies(weak: KeyPair) -> None:
    unsigned = query()
    value = rsa_key(weak).sign(unsigned.encode(), padding.PKCS1v15(), hashes.SHA256())
    assert not verify_redirect_query(
        unsigned.encode(), base64.b64encode(value).decode(), gate.RSA_SHA256, [weak.cert]
    )


@pytest.mark.parametrize(
    "sig_alg",
    [
        gate.RSA_SHA1,
        "http://www.w3.org/2000/09/xmldsig#hmac-sha1",
        "http://www.w3.org/2001/04/xmldsig-more#rsa-md5",
    ],
)
def test_weak_sig_algs_refused(idp: KeyPair, sig_alg: str) -> None:
    unsigned = query(sig_alg)
    value = rsa_key(idp).sign(unsigned.encode(), padding.PKCS1v15(), hashes.SHA1())
    assert not verify_redirect_query(unsigned.encode(), base64.b64encode(value).decode(), sig_alg, [idp.cert])


def test_sig_alg_mismatch_with_the_certificate(idp: KeyPair) -> None:
    octets, signature, _ = redirect_signed_octets(signed_query(idp))
    assert not verify_redirect_query(octets, signature, gate.ECDSA_SHA256, [idp.cert])


@pytest.mark.parametrize("signature", ["not base64!", "", "é"])
def test_malformed_signature_value(idp: KeyPair, signature: str) -> None:
    assert not verify_redirect_query(query().encode(), signature, gate.RSA_SHA256, [idp.cert])


@pytest.mark.parametrize(
    "raw",
    [
        f"SAMLRequest={REQUEST}&SAMLRequest={REQUEST}&SigAlg=x&Signature=y",
        f"SAMLRequest={REQUEST}&SigAlg=x&SigAlg=x&Signature=y",
        f"SAMLRequest={REQUEST}&RelayState=a&RelayState=b&SigAlg=x&Signature=y",
        f"SAMLRequest={REQUEST}&SigAlg=x&Signature=y&Signature=y",
        f"SAMLRequest={REQUEST}&Sig%41lg=x&SigAlg=x&Signature=y",
        f"SAMLRequest={REQUEST}&SigAlg=x",
        "SigAlg=x&Signature=y",
        f"SAMLRequest={REQUEST}&Signature=y",
    ],
    ids=[
        "dup request",
        "dup sigalg",
        "dup relay",
        "dup signature",
        "encoded dup",
        "no sig",
        "no msg",
        "no alg",
    ],
)
def test_duplicate_or_missing_parameters_refused(raw: str) -> None:
    with pytest.raises(XmlRejected) as caught:
        redirect_signed_octets(raw)
    assert caught.value.detail == "redirect_signature_shape"


def test_saml_response_parameter(idp: KeyPair) -> None:
    unsigned = query().replace("SAMLRequest=", "SAMLResponse=")
    raw = unsigned + "&Signature=" + quote_plus(sign_redirect_query(unsigned, idp.key))
    octets, signature, sig_alg = redirect_signed_octets(raw, "SAMLResponse")
    assert verify_redirect_query(octets, signature, sig_alg, [idp.cert])
    with pytest.raises(XmlRejected):
        redirect_signed_octets(raw)  # no SAMLRequest in it


@pytest.mark.parametrize("sig_alg", [gate.ECDSA_SHA256, gate.RSA_SHA1, None])
def test_signing_refuses_a_sig_alg_that_does_not_fit_the_key(idp: KeyPair, sig_alg: str | None) -> None:
    unsigned = query(sig_alg) if sig_alg else f"SAMLRequest={REQUEST}"
    with pytest.raises(ValueError, match="SigAlg"):
        sign_redirect_query(unsigned, idp.key)


def test_signing_refuses_a_weak_key(weak: KeyPair) -> None:
    with pytest.raises(ValueError, match="1024"):
        sign_redirect_query(query(), weak.key)
