"""``private_key_jwt`` client authentication (RFC 7523 2.2 and 3, OIDC Core 9): the client signs a
short-lived JWT with its own key and sends it as ``client_assertion``.

Checked, every failure an ``invalid_client``:

- ``client_assertion_type`` is exactly ``urn:ietf:params:oauth:client-assertion-type:jwt-bearer``;
- the JWS ``alg`` is the client's ``token_endpoint_auth_signing_alg``, or else one of RS256, ES256,
  PS256 (never ``none`` or ``HS*``: a public key is no shared secret); no ``crit`` header;
- ``iss`` and ``sub`` both equal the client id (and ``client_id``, when the body names one);
- ``aud`` (a string or a list) contains the token endpoint URL or the issuer. RFC 7523 allows either,
  OIDC Core 9 says the token endpoint: both are accepted, at every endpoint that authenticates
  clients (token, revocation, introspection);
- ``exp`` is required and not past (``LEEWAY_SECONDS`` of clock skew), and at most
  ``MAX_LIFETIME_SECONDS`` ahead; ``iat``, when present, is not in the future and at most
  ``MAX_LIFETIME_SECONDS`` before ``exp``; ``nbf``, when present, is not in the future;
- the signature verifies with one of the client's keys (its ``kid``'s, or any key of the
  algorithm's type when the header names none): inline ``jwks``, or ``jwks_uri`` fetched with the
  runtime's HTTP client, cached ``JWKS_TTL_SECONDS`` and fetched again once for an unknown ``kid``
  (not more often than every ``JWKS_REFETCH_SECONDS``);
- ``jti`` is required and single-use: last of all, after everything else held, the artefact
  store's atomic ``add`` claims a keyed hash of (client id, ``jti``) until ``exp`` plus the
  leeway. The store is shared, so an assertion replayed at another replica is refused too.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey
from starlette.requests import Request

from gateway.oidc.errors import InvalidClient
from gateway.runtime import Runtime
from gateway.settings.clients import ASSERTION_ALGS, check_jwk_set, check_public_jwk
from gateway.settings.models import Application, OidcClient

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
JTI_KIND = "client-assertion-jti"
LEEWAY_SECONDS = 30
MAX_LIFETIME_SECONDS = 300
MAX_ASSERTION_CHARS = 8192
MAX_JTI_CHARS = 256
JWKS_TTL_SECONDS = 300
JWKS_REFETCH_SECONDS = 10
JWKS_TIMEOUT_SECONDS = 5.0
JWKS_MAX_BYTES = 64 * 1024
_KTY = {"RS256": "RSA", "PS256": "RSA", "ES256": "EC"}
# Header parameters this server does not know are ignored (RFC 7515 4), unless ``crit`` names them.
_REGISTRY = jws.JWSRegistry(algorithms=ASSERTION_ALGS, strict_check_header=False)

log = logging.getLogger("gateway.oidc")


@dataclass(frozen=True)
class _Fetched:
    keys: tuple[dict[str, Any], ...]
    at: int


class JwksCache:
    """The ``jwks_uri`` key sets of this process, by URI (one per app: ``cache_for``)."""

    def __init__(self) -> None:
        self._entries: dict[str, _Fetched] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._failed: dict[str, int] = {}

    async def keys(self, rt: Runtime, uri: str, kid: str | None) -> tuple[dict[str, Any], ...]:
        entry = self._entries.get(uri)
        if entry is None or not self._usable(rt, entry, kid):
            lock = self._locks.setdefault(uri, asyncio.Lock())
            async with lock:  # one fetch at a time per URI; waiters use what it fetched
                entry = self._entries.get(uri)
                if entry is None or not self._usable(rt, entry, kid):
                    failed = self._failed.get(uri)
                    if failed is not None and 0 <= rt.now() - failed < JWKS_REFETCH_SECONDS:
                        raise InvalidClient("the client's jwks_uri could not be fetched")  # no retry storm
                    try:
                        entry = await _fetch(rt, uri)
                    except InvalidClient:
                        self._failed[uri] = rt.now()
                        raise
                    self._entries[uri] = entry
                    self._failed.pop(uri, None)
        return entry.keys

    @staticmethod
    def _usable(rt: Runtime, entry: _Fetched, kid: str | None) -> bool:
        age = rt.now() - entry.at
        if age >= JWKS_TTL_SECONDS or age < 0:
            return False
        if kid is None or any(key.get("kid") == kid for key in entry.keys):
            return True
        return age < JWKS_REFETCH_SECONDS  # an unknown kid: fetch again, unless just fetched


def cache_for(request: Request) -> JwksCache:
    state = request.app.state
    cache: JwksCache | None = getattr(state, "client_jwks_cache", None)
    if cache is None:
        cache = state.client_jwks_cache = JwksCache()
    return cache


async def _fetch(rt: Runtime, uri: str) -> _Fetched:
    """The usable public signing keys at ``uri``; keys of other kinds in the set are left out."""
    try:
        response = await rt.http.get(uri, timeout=JWKS_TIMEOUT_SECONDS, follow_redirects=False)
        body = response.content
        if response.status_code != 200:
            raise ValueError(f"HTTP {response.status_code}")
        if len(body) > JWKS_MAX_BYTES:
            raise ValueError("the key set is too large")
        document = json.loads(body)
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise ValueError('not a JWK set ({"keys": [...]})')
    except (httpx.HTTPError, ValueError) as exc:
        log.warning("client jwks_uri %s could not be fetched: %s", uri, exc)
        raise InvalidClient("the client's jwks_uri could not be fetched") from exc
    usable = []
    for key in document["keys"]:
        try:
            if isinstance(key, dict):
                check_public_jwk(key)
                usable.append(key)
        except ValueError:
            continue
    return _Fetched(tuple(usable), rt.now())


def _import(jwk: Mapping[str, Any]) -> RSAKey | ECKey:
    return RSAKey.import_key(dict(jwk)) if jwk["kty"] == "RSA" else ECKey.import_key(dict(jwk))


def _candidates(keys: tuple[dict[str, Any], ...], alg: str, kid: str | None) -> list[dict[str, Any]]:
    return [
        key
        for key in keys
        if key["kty"] == _KTY[alg]
        and key.get("alg", alg) == alg
        and (kid is None or key.get("kid") == kid)
        and (alg != "ES256" or key.get("crv") == "P-256")
    ]


def _parse(assertion: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header and claims, unverified (to find the client and its key)."""
    if len(assertion) > MAX_ASSERTION_CHARS:
        raise InvalidClient("the client assertion is too large")
    try:
        compact = jws.extract_compact(assertion.encode("ascii"))
        claims = json.loads(compact.payload)
    except (JoseError, UnicodeError, ValueError) as exc:
        raise InvalidClient("the client assertion is not a signed JWT") from exc
    header = dict(compact.headers())
    if not isinstance(claims, dict):
        raise InvalidClient("the client assertion's claims are not a JSON object")
    return header, claims


def asserted_client_id(params: Mapping[str, str]) -> str:
    """The client an assertion claims to come from (its ``iss``), checked against ``client_id``."""
    if params.get("client_assertion_type") != ASSERTION_TYPE:
        raise InvalidClient(f"client_assertion_type must be {ASSERTION_TYPE}")
    assertion = params.get("client_assertion")
    if not assertion:
        raise InvalidClient("client_assertion is required with client_assertion_type")
    _, claims = _parse(assertion)
    issuer, subject = claims.get("iss"), claims.get("sub")
    if not isinstance(issuer, str) or not issuer or issuer != subject:
        raise InvalidClient("the client assertion's iss and sub must both be the client id")
    named = params.get("client_id")
    if named is not None and named != issuer:
        raise InvalidClient("client_id does not match the client assertion")
    return issuer


def _number(claims: Mapping[str, Any], name: str, *, required: bool) -> int | None:
    value = claims.get(name)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidClient(f"the client assertion needs a numeric {name}")
    return int(value)


def _check_claims(rt: Runtime, claims: Mapping[str, Any]) -> tuple[str, int]:
    """``aud``, the times and ``jti``; returns the ``jti`` and the seconds the assertion has left."""
    issuer = rt.settings.issuer
    audience = claims.get("aud")
    audiences = [audience] if isinstance(audience, str) else audience
    accepted = {issuer, f"{issuer}/oauth2/token"}
    if not isinstance(audiences, list) or not accepted & {a for a in audiences if isinstance(a, str)}:
        raise InvalidClient("the client assertion's aud must contain the token endpoint URL or the issuer")
    now = rt.now()
    exp = _number(claims, "exp", required=True)
    iat = _number(claims, "iat", required=False)
    nbf = _number(claims, "nbf", required=False)
    assert exp is not None
    if exp <= now - LEEWAY_SECONDS:
        raise InvalidClient("the client assertion has expired")
    if exp > now + MAX_LIFETIME_SECONDS + LEEWAY_SECONDS:
        raise InvalidClient(f"the client assertion's exp is more than {MAX_LIFETIME_SECONDS} s ahead")
    if iat is not None and iat > now + LEEWAY_SECONDS:
        raise InvalidClient("the client assertion's iat is in the future")
    if iat is not None and exp - iat > MAX_LIFETIME_SECONDS:
        raise InvalidClient(f"the client assertion may live at most {MAX_LIFETIME_SECONDS} s (exp - iat)")
    if nbf is not None and nbf > now + LEEWAY_SECONDS:
        raise InvalidClient("the client assertion is not valid yet (nbf)")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti or len(jti) > MAX_JTI_CHARS:
        raise InvalidClient("the client assertion needs a jti (a string of 1 to 256 characters)")
    return jti, exp + LEEWAY_SECONDS - now


async def _client_keys(
    rt: Runtime, request: Request, oidc: OidcClient, kid: str | None
) -> tuple[dict[str, Any], ...]:
    if oidc.jwks is not None:
        return tuple(check_jwk_set(oidc.jwks)["keys"])
    assert oidc.jwks_uri is not None
    return await cache_for(request).keys(rt, oidc.jwks_uri, kid)


def _verify_signature(assertion: str, candidates: list[dict[str, Any]], alg: str) -> None:
    for jwk in candidates:
        try:
            jws.deserialize_compact(assertion, _import(jwk), algorithms=[alg], registry=_REGISTRY)
            return
        except (JoseError, ValueError):
            continue
    raise InvalidClient("the client assertion's signature does not verify with the client's keys")


async def verify_client_assertion(
    rt: Runtime, request: Request, app: Application, params: Mapping[str, str]
) -> None:
    """Authenticate ``app`` (a ``private_key_jwt`` client) by ``params``' assertion, or raise
    ``InvalidClient``. The ``jti`` is used up only when everything else held."""
    oidc = app.oidc
    assert oidc is not None and oidc.token_endpoint_auth_method == "private_key_jwt"
    assertion = params["client_assertion"]
    header, claims = _parse(assertion)
    alg = header.get("alg")
    registered = oidc.token_endpoint_auth_signing_alg
    allowed = (registered,) if registered else ASSERTION_ALGS
    if not isinstance(alg, str) or alg not in allowed:
        raise InvalidClient(f"the client assertion must be signed with {' or '.join(allowed)}")
    if "crit" in header:
        raise InvalidClient("the client assertion has a crit header this server does not understand")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise InvalidClient("the client assertion's kid must be a string")
    jti, seconds_left = _check_claims(rt, claims)
    keys = await _client_keys(rt, request, oidc, kid)
    _verify_signature(assertion, _candidates(keys, alg, kid), alg)
    marker = rt.box.keyed_hash(JTI_KIND, json.dumps([oidc.client_id, jti]))
    if not await rt.store.add(JTI_KIND, marker, {}, max(1, seconds_left)):
        raise InvalidClient("the client assertion was already used (jti)")
