"""Config of private_key_jwt clients and CORS origins: each bad value is refused with a clear message."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from gateway.settings.models import Limits, OidcClient
from tests.clients.keys import ec_key, public_jwks, rsa_key

RSA = rsa_key("r1")
EC = ec_key("e1")


def rsa_1024() -> dict[str, Any]:
    from cryptography.hazmat.primitives.asymmetric import rsa
    from joserfc.jwk import RSAKey

    return RSAKey.import_key(rsa.generate_private_key(65537, 1024).public_key()).as_dict(private=False)


def client(**changes: Any) -> OidcClient:
    return OidcClient.model_validate(
        {"client_id": "spa", "redirect_uris": ["https://spa.example/cb"], **changes}
    )


def pkjwt(**changes: Any) -> OidcClient:
    return client(token_endpoint_auth_method="private_key_jwt", **changes)


def test_a_private_key_jwt_client_is_confidential_and_keeps_its_settings() -> None:
    registered = pkjwt(jwks=public_jwks(RSA, EC), token_endpoint_auth_signing_alg="ES256")
    assert not registered.is_public and not registered.pkce_required
    assert pkjwt(jwks_uri="https://spa.example/jwks").jwks_uri == "https://spa.example/jwks"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"token_endpoint_auth_method": "private_key_jwt"}, "needs exactly one of jwks and jwks_uri"),
        (
            {
                "token_endpoint_auth_method": "private_key_jwt",
                "jwks": public_jwks(RSA),
                "jwks_uri": "https://spa.example/jwks",
            },
            "needs exactly one of jwks and jwks_uri",
        ),
        (
            {
                "token_endpoint_auth_method": "private_key_jwt",
                "jwks": public_jwks(RSA),
                "client_secret": "s" * 20,
            },
            "has no client_secret",
        ),
        ({"jwks": public_jwks(RSA)}, "need private_key_jwt"),
        ({"jwks_uri": "https://spa.example/jwks"}, "need private_key_jwt"),
        ({"token_endpoint_auth_signing_alg": "RS256", "client_secret": "s" * 20}, "need private_key_jwt"),
        ({"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "http://spa.example/jwks"}, "https"),
        (
            {
                "token_endpoint_auth_method": "private_key_jwt",
                "jwks": public_jwks(RSA),
                "token_endpoint_auth_signing_alg": "HS256",
            },
            "token_endpoint_auth_signing_alg",
        ),
        (
            {
                "token_endpoint_auth_method": "private_key_jwt",
                "jwks": public_jwks(RSA),
                "token_endpoint_auth_signing_alg": "none",
            },
            "token_endpoint_auth_signing_alg",
        ),
        (
            {"token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [RSA.as_dict(private=True)]}},
            "public keys only",
        ),
        (
            {
                "token_endpoint_auth_method": "private_key_jwt",
                "jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]},
            },
            "symmetric keys are never accepted",
        ),
        ({"token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": []}}, "1 to 20 keys"),
        ({"token_endpoint_auth_method": "private_key_jwt", "jwks": [RSA.as_dict(private=False)]}, "dict"),
        (
            {
                "token_endpoint_auth_method": "private_key_jwt",
                "jwks": {"keys": [RSA.as_dict(private=False), RSA.as_dict(private=False)]},
            },
            "duplicate kid",
        ),
        (
            {
                "token_endpoint_auth_method": "private_key_jwt",
                "jwks": {"keys": [{**EC.as_dict(private=False), "use": "enc"}]},
            },
            "use must be sig",
        ),
        (
            {"token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [rsa_1024()]}},
            "at least 2048 bits",
        ),
    ],
    ids=[
        "no keys",
        "both key sources",
        "with a secret",
        "jwks without the method",
        "jwks_uri without the method",
        "alg without the method",
        "http jwks_uri",
        "HS256",
        "none",
        "private key",
        "symmetric key",
        "empty set",
        "not a set",
        "duplicate kid",
        "encryption key",
        "short RSA key",
    ],
)
def test_bad_client_key_config(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        client(**changes)


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("https://spa.example", "https://spa.example"),
        ("HTTPS://SPA.Example:443", "https://spa.example"),
        ("https://spa.example:8443", "https://spa.example:8443"),
        ("http://localhost:3000", "http://localhost:3000"),
        ("http://[::1]:3000", "http://[::1]:3000"),
    ],
)
def test_origins_are_stored_as_browsers_send_them(given: str, stored: str) -> None:
    assert client(allowed_origins=[given]).allowed_origins == [stored]


@pytest.mark.parametrize(
    ("origin", "message"),
    [
        ("https://spa.example/", "no path"),
        ("https://spa.example/app", "no path"),
        ("https://spa.example?x=1", "no path"),
        ("https://spa.example#top", "no path"),
        ("http://spa.example", "must use https"),
        ("spa.example", "scheme://host"),
        ("*", "scheme://host"),
        ("null", "scheme://host"),
        ("ftp://spa.example", "scheme://host"),
        ("https://user@spa.example", "user name"),
        ("https://spa.example:99999", "port"),
    ],
)
def test_bad_origins_are_refused(origin: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message) as caught:
        client(allowed_origins=[origin])
    assert caught.value.errors()[0]["loc"] == ("allowed_origins", 0)


def test_limits_defaults_and_bad_values() -> None:
    limits = Limits()
    assert limits.passcode_sends_per_ip_per_hour == 30
    assert limits.signin_failures_per_ip_per_hour == 50
    assert limits.signin_failures_per_address_per_hour == 10
    assert limits.token_requests_per_client_per_minute == 3000
    with pytest.raises(ValidationError, match="greater than 0"):
        Limits(token_requests_per_client_per_minute=0)
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        Limits.model_validate({"token_requests_per_client_per_hour": 5})
