"""The upstream's discovery document and signing keys, fetched through the shared client and cached.

One ``ProviderCache`` per connector instance. Both documents live ``CACHE_TTL_SECONDS``;
concurrent callers share one fetch (a lock per document, checked again once held). A discovery
fetch that fails because the upstream is out of reach (``upstream_unavailable``: refused, timed
out, 5xx) is remembered for ``NEGATIVE_CACHE_SECONDS``: callers in that window get the same error
at once, without a request, so a burst of users cannot hammer a down IdP (one request per window
per replica); the first call after it tries again. The
JWKS is parsed once per fetch into ``VerificationKey``s: only public RSA (2048 bits or
more), EC and OKP signing keys are kept, symmetric keys never.

Key lookup (``keys_for``), given the ``alg`` already checked against the allow-list:

- a ``kid``: the keys with that ``kid`` whose type fits ``alg``; a ``kid`` that exists
  but does not fit is ``key_alg_mismatch`` (no refetch).
- no ``kid``: the one key whose type fits ``alg``; several such keys are refused
  (``kid_missing``) rather than tried in turn.
- nothing found: ONE refetch of the JWKS for this token, at most one such refetch per
  ``REFETCH_INTERVAL_SECONDS`` per connector (a flood of random ``kid``s costs one fetch a
  minute), then fail closed (``unknown_kid`` / ``no_suitable_key``).
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import ECKey, JWKRegistry, Key, OKPKey, RSAKey

from idp_connectors.base import ConnectorError
from idp_connectors.oidc.config import OidcConfig
from idp_connectors.oidc.fetch import json_object, send
from idp_connectors.urls import url_problem

CACHE_TTL_SECONDS = 3600
NEGATIVE_CACHE_SECONDS = 5.0
REFETCH_INTERVAL_SECONDS = 60
MAX_KEYS = 100
MIN_RSA_BITS = 2048
_PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth")
_CURVES = {"ES256": ("P-256",), "ES384": ("P-384",), "EdDSA": ("Ed25519", "Ed448")}


@dataclass(frozen=True, slots=True)
class ProviderMetadata:
    """The parts of an upstream discovery document the connector uses."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None
    iss_parameter_supported: bool
    code_challenge_methods: tuple[str, ...] | None

    @classmethod
    def parse(cls, doc: dict[str, Any], expected_issuer: str) -> ProviderMetadata:
        """Check ``doc`` (issuer exact, endpoints https or loopback http) and keep what we use."""
        issuer = doc.get("issuer")
        if issuer != expected_issuer:
            raise ConnectorError(
                "the discovery document names another issuer than the one configured",
                code="discovery_issuer_mismatch",
            )
        endpoints: dict[str, str | None] = {}
        for name in ("authorization_endpoint", "token_endpoint", "jwks_uri", "userinfo_endpoint"):
            value = doc.get(name)
            if value is None and name == "userinfo_endpoint":
                endpoints[name] = None
                continue
            problem = "is missing" if not isinstance(value, str) else url_problem(value)
            if problem:
                raise ConnectorError(f"the discovered {name} {problem}", code="discovery_invalid")
            endpoints[name] = value
        methods = doc.get("code_challenge_methods_supported")
        return cls(
            issuer=issuer,
            authorization_endpoint=str(endpoints["authorization_endpoint"]),
            token_endpoint=str(endpoints["token_endpoint"]),
            jwks_uri=str(endpoints["jwks_uri"]),
            userinfo_endpoint=endpoints["userinfo_endpoint"],
            iss_parameter_supported=doc.get("authorization_response_iss_parameter_supported") is True,
            code_challenge_methods=(
                tuple(m for m in methods if isinstance(m, str)) if isinstance(methods, list) else None
            ),
        )


@dataclass(frozen=True, slots=True)
class VerificationKey:
    kid: str | None
    kty: str
    crv: str | None
    alg: str | None
    key: Key

    def fits(self, alg: str) -> bool:
        """Whether this key can verify ``alg`` (its type, curve and any pinned ``alg``)."""
        if self.alg is not None and self.alg != alg:
            return False
        if alg[:2] in ("RS", "PS"):
            return self.kty == "RSA"
        expected_kty = "OKP" if alg == "EdDSA" else "EC"
        return self.kty == expected_kty and self.crv in _CURVES.get(alg, ())


def _import(member: object) -> VerificationKey | None:
    """One JWKS member as a public verification key, or None when it is not one we may use."""
    if not isinstance(member, dict):
        return None
    kty, kid, alg = member.get("kty"), member.get("kid"), member.get("alg")
    if kty not in ("RSA", "EC", "OKP") or member.get("use", "sig") != "sig":
        return None
    ops = member.get("key_ops")
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        return None
    if (kid is not None and not isinstance(kid, str)) or (alg is not None and not isinstance(alg, str)):
        return None
    public = {k: v for k, v in member.items() if k not in _PRIVATE_MEMBERS and k != "key_ops"}
    try:
        with warnings.catch_warnings(action="ignore", category=SecurityWarning):  # small keys: refused below
            key = JWKRegistry.import_key(public, kty)
    except (JoseError, ValueError, TypeError, KeyError):
        return None
    crv = key.curve_name if isinstance(key, ECKey | OKPKey) else None
    if isinstance(key, RSAKey) and key.public_key.key_size < MIN_RSA_BITS:
        return None
    return VerificationKey(kid=kid, kty=str(kty), crv=crv, alg=alg, key=key)


@dataclass(frozen=True, slots=True)
class KeySnapshot:
    keys: tuple[VerificationKey, ...]
    fetched_at: float

    @classmethod
    def parse(cls, doc: dict[str, Any], fetched_at: float) -> KeySnapshot:
        members = doc.get("keys")
        if not isinstance(members, list) or len(members) > MAX_KEYS:
            raise ConnectorError("the upstream JWKS has no usable `keys` list", code="jwks_invalid")
        keys = tuple(k for k in map(_import, members) if k is not None)
        return cls(keys=keys, fetched_at=fetched_at)

    def select(self, alg: str, kid: str | None) -> tuple[VerificationKey, ...]:
        """The keys that may verify a token with this ``alg``/``kid``; empty when none is known."""
        if kid is not None:
            named = [k for k in self.keys if k.kid == kid]
            fitting = tuple(k for k in named if k.fits(alg))
            if named and not fitting:
                raise ConnectorError(f"the upstream key {kid!r} cannot verify {alg}", code="key_alg_mismatch")
            return fitting
        fitting = tuple(k for k in self.keys if k.fits(alg))
        if len(fitting) > 1:
            raise ConnectorError(
                f"the ID token names no key (`kid`) and the upstream has several {alg} keys",
                code="kid_missing",
            )
        return fitting


class ProviderCache:
    """Discovery and JWKS of one upstream, cached in-process with single-flight fetches."""

    def __init__(
        self,
        config: OidcConfig,
        client: Callable[[], httpx.AsyncClient],
        clock: Callable[[], float],
    ) -> None:
        self._config = config
        self._client = client
        self._clock = clock
        self._metadata: ProviderMetadata | None = None
        self._metadata_expires = 0.0
        self._metadata_lock = asyncio.Lock()
        self._metadata_failure: tuple[ConnectorError, float] | None = None
        self._keys: KeySnapshot | None = None
        self._keys_lock = asyncio.Lock()
        self._last_refetch: float | None = None

    async def metadata(self) -> ProviderMetadata:
        """The discovery document, fetched at most once per ``CACHE_TTL_SECONDS``; while a failed
        fetch is remembered (``NEGATIVE_CACHE_SECONDS``), its error without a new request."""
        if self._metadata is not None and self._clock() < self._metadata_expires:
            return self._metadata
        self._raise_remembered_failure()
        async with self._metadata_lock:
            if self._metadata is not None and self._clock() < self._metadata_expires:
                return self._metadata
            self._raise_remembered_failure()
            config = self._config
            try:
                fetched = await send(
                    self._client(),
                    "GET",
                    config.discovery_document_url,
                    what="upstream discovery endpoint",
                    deadline=config.http_timeout_seconds,
                    invalid_code="discovery_invalid",
                    headers={"accept": "application/json"},
                )
            except ConnectorError as exc:
                if exc.code == "upstream_unavailable":
                    self._metadata_failure = (exc, self._clock() + NEGATIVE_CACHE_SECONDS)
                raise
            self._metadata_failure = None
            if fetched.status != 200:
                raise ConnectorError(
                    f"the upstream discovery endpoint answered HTTP {fetched.status}",
                    code="discovery_invalid",
                )
            doc = json_object(fetched.body, what="upstream discovery", code="discovery_invalid")
            self._metadata = ProviderMetadata.parse(doc, config.issuer)
            self._metadata_expires = self._clock() + CACHE_TTL_SECONDS
            return self._metadata

    def _raise_remembered_failure(self) -> None:
        """Raise (a copy of) the last discovery failure while it is remembered."""
        failure = self._metadata_failure
        if failure is None:
            return
        exc, until = failure
        if self._clock() >= until:
            self._metadata_failure = None
            return
        raise ConnectorError(str(exc), code=exc.code)

    async def _fetch_keys(self) -> KeySnapshot:
        """Fetch and parse the JWKS (the caller holds ``_keys_lock``)."""
        metadata = await self.metadata()
        fetched = await send(
            self._client(),
            "GET",
            metadata.jwks_uri,
            what="upstream JWKS endpoint",
            deadline=self._config.http_timeout_seconds,
            invalid_code="jwks_invalid",
            headers={"accept": "application/json, application/jwk-set+json"},
        )
        if fetched.status != 200:
            raise ConnectorError(
                f"the upstream JWKS endpoint answered HTTP {fetched.status}", code="jwks_invalid"
            )
        doc = json_object(fetched.body, what="upstream JWKS", code="jwks_invalid")
        self._keys = KeySnapshot.parse(doc, self._clock())
        return self._keys

    def _fresh(self) -> KeySnapshot | None:
        keys = self._keys
        return keys if keys is not None and self._clock() < keys.fetched_at + CACHE_TTL_SECONDS else None

    async def _current_keys(self) -> KeySnapshot:
        if (keys := self._fresh()) is not None:
            return keys
        async with self._keys_lock:
            if (keys := self._fresh()) is not None:
                return keys
            return await self._fetch_keys()

    async def _refetch_keys(self, seen: KeySnapshot) -> KeySnapshot | None:
        """A newer JWKS than ``seen``: another caller's, or one fetch of ours if the rate limit allows."""
        async with self._keys_lock:
            if self._keys is not seen and self._keys is not None:
                return self._keys
            now = self._clock()
            if self._last_refetch is not None and now - self._last_refetch < REFETCH_INTERVAL_SECONDS:
                return None
            self._last_refetch = now
            return await self._fetch_keys()

    async def keys_for(self, alg: str, kid: str | None) -> tuple[Key, ...]:
        """The upstream keys that may verify a token signed with ``alg`` (checked already) and ``kid``."""
        keys = await self._current_keys()
        found = keys.select(alg, kid)
        if not found:
            newer = await self._refetch_keys(keys)
            found = newer.select(alg, kid) if newer is not None else ()
        if not found:
            if kid is not None:
                raise ConnectorError(f"the upstream has no signing key {kid!r}", code="unknown_kid")
            raise ConnectorError(f"the upstream has no key for {alg}", code="no_suitable_key")
        return tuple(k.key for k in found)
