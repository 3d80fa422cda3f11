"""Config types of an OIDC client's keys and browser origins: the inline ``jwks`` and ``jwks_uri`` of a
``private_key_jwt`` client (RFC 7523 2.2) and the ``allowed_origins`` of a single-page app (CORS).

``OidcClient`` in ``gateway.settings.models`` uses them; the checks here say what is wrong with a
value so the loader can name the key.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey
from pydantic import AfterValidator

AssertionAlg = Literal["RS256", "ES256", "PS256"]
"""Signing algorithms a client assertion may use: asymmetric only, never ``none`` or ``HS*``."""

ASSERTION_ALGS: tuple[str, ...] = ("RS256", "ES256", "PS256")
MAX_CLIENT_KEYS = 20
MIN_RSA_BITS = 2048
_PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")
_DEFAULT_PORTS = {"https": 443, "http": 80}


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_public_jwk(jwk: dict[str, Any]) -> None:
    """A public RSA (at least 2048 bits) or EC P-256 signing key; ValueError saying what is wrong."""
    kty = jwk.get("kty")
    if kty not in ("RSA", "EC"):
        raise ValueError(f"kty must be RSA or EC, not {kty!r} (symmetric keys are never accepted)")
    if any(member in jwk for member in _PRIVATE_MEMBERS):
        raise ValueError("a client key set holds public keys only (remove the private members)")
    if jwk.get("use") not in (None, "sig"):
        raise ValueError("use must be sig")
    kid = jwk.get("kid")
    if kid is not None and (not isinstance(kid, str) or not kid):
        raise ValueError("kid must be a non-empty string")
    alg = jwk.get("alg")
    if alg is not None and alg not in ASSERTION_ALGS:
        raise ValueError(f"alg must be one of {', '.join(ASSERTION_ALGS)}")
    try:
        if kty == "RSA":
            rsa = RSAKey.import_key(jwk)
            if rsa.raw_value.key_size < MIN_RSA_BITS:
                raise ValueError(f"an RSA key must have at least {MIN_RSA_BITS} bits")
        else:
            ec = ECKey.import_key(jwk)
            if ec.curve_name != "P-256":
                raise ValueError("an EC key must use the P-256 curve (ES256)")
    except (JoseError, TypeError, KeyError) as exc:
        raise ValueError(f"not a valid {kty} key: {exc}") from exc


def check_jwk_set(value: dict[str, Any]) -> dict[str, Any]:
    """``{"keys": [...]}`` of 1..20 public signing keys, ``kid`` values unique."""
    if set(value) != {"keys"} or not isinstance(value["keys"], list):
        raise ValueError('a JWK set is {"keys": [...]} and nothing else')
    keys: list[Any] = value["keys"]
    if not 1 <= len(keys) <= MAX_CLIENT_KEYS:
        raise ValueError(f"a JWK set holds 1 to {MAX_CLIENT_KEYS} keys")
    kids: set[str] = set()
    for index, jwk in enumerate(keys):
        if not isinstance(jwk, dict):
            raise ValueError(f"keys[{index}]: a JWK is an object")
        try:
            check_public_jwk(jwk)
        except ValueError as exc:
            raise ValueError(f"keys[{index}]: {exc}") from exc
        kid = jwk.get("kid")
        if kid is not None:
            if kid in kids:
                raise ValueError(f"keys[{index}]: duplicate kid {kid!r}")
            kids.add(kid)
    return value


def check_jwks_uri(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname or parts.fragment or parts.username:
        raise ValueError("must be an absolute https URL without fragment or credentials")
    return value


def normalise_origin(value: str) -> str:
    """A web origin (RFC 6454) as browsers send it in ``Origin``: ``scheme://host[:port]``, lower
    case, the default port left out. https, or http for a loopback host; no path, query or fragment."""
    parts = urlsplit(value)
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError("an origin is scheme://host[:port], e.g. https://spa.example")
    if parts.path or parts.query or parts.fragment or value.endswith(("?", "#")):
        raise ValueError(f"an origin has no path, query or fragment (write {parts.scheme}://{parts.netloc})")
    if parts.username is not None or parts.password is not None:
        raise ValueError("an origin has no user name or password")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError("the port must be a number from 1 to 65535") from exc
    host = parts.hostname
    if parts.scheme == "http" and not _is_loopback(host):
        raise ValueError("must use https (http is allowed only for loopback addresses)")
    if ":" in host:
        host = f"[{host}]"
    if port is None or port == _DEFAULT_PORTS[parts.scheme]:
        return f"{parts.scheme}://{host}"
    return f"{parts.scheme}://{host}:{port}"


JwkSet = Annotated[dict[str, Any], AfterValidator(check_jwk_set)]
JwksUri = Annotated[str, AfterValidator(check_jwks_uri)]
Origin = Annotated[str, AfterValidator(normalise_origin)]


def private_key_jwt_problem(secret: str | None, jwks: dict[str, Any] | None, jwks_uri: str | None) -> None:
    """A ``private_key_jwt`` client has keys (``jwks`` or ``jwks_uri``, exactly one) and no secret."""
    if secret is not None:
        raise ValueError("a private_key_jwt client has no client_secret (it signs with its own key)")
    if (jwks is None) == (jwks_uri is None):
        raise ValueError("token_endpoint_auth_method private_key_jwt needs exactly one of jwks and jwks_uri")
