"""The partner IdP's SAML metadata: parsed through the XML gate, cached, refreshed, rollover-aware.

``parse_idp_metadata`` reads one document (an ``EntityDescriptor`` or an ``EntitiesDescriptor``
aggregate) through ``xmlsecurity.gate.parse_inbound`` (no DTD, size and depth caps) and keeps
what the connector uses: the entityID (equal to ``idp_entity_id`` when configured; otherwise
the document must describe exactly one SAML 2.0 IdP), the HTTP-Redirect ``SingleSignOnService``
(https, or http to a loopback host), ``WantAuthnRequestsSigned`` and EVERY signing certificate
(``KeyDescriptor`` with ``use="signing"`` or no ``use``), so an IdP that publishes its next
certificate beside the current one is verified with either: that is rollover. Certificates that
``xmlsecurity`` refuses (RSA under 2048 bits, unknown key types) are skipped and logged; none
left is an error. A ``validUntil`` in the past makes the document unusable.

``MetadataCache`` holds the last good document of one connector. The file is read when the
connector opens; a URL on first use, through the shared HTTP client (bounded, no redirects).
Both are read again every ``metadata_refresh_seconds``, and at most once a minute after a
signature that no known certificate verifies (an unannounced rollover). A failed refresh keeps
the last good document, logs, and is retried a minute later; with none at all, sign-ins fail
with ``metadata_unavailable``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from lxml.etree import _Element

from idp_connectors.base import ConnectorError
from idp_connectors.oidc.fetch import send
from idp_connectors.saml.xmltime import parse_instant
from idp_connectors.urls import url_problem
from idp_connectors.xmlsecurity.gate import DS, SAML2P, GatePolicy, XmlRejected, parse_inbound, text_of
from idp_connectors.xmlsecurity.keys import CertificateRejected, load_certificates

if TYPE_CHECKING:
    from idp_connectors.saml.config import SamlConfig

MD = "urn:oasis:names:tc:SAML:2.0:metadata"
BINDING_HTTP_REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
MAX_METADATA_BYTES = 1 << 20
RETRY_SECONDS = 60
"""After a failed refresh, and between refreshes forced by an unknown signing key."""

_ENTITY_DESCRIPTOR = f"{{{MD}}}EntityDescriptor"
_ENTITIES_DESCRIPTOR = f"{{{MD}}}EntitiesDescriptor"
_IDPSSO = f"{{{MD}}}IDPSSODescriptor"
_KEY_DESCRIPTOR = f"{{{MD}}}KeyDescriptor"
_SSO_SERVICE = f"{{{MD}}}SingleSignOnService"
_X509_CERTIFICATE = f"{{{DS}}}KeyInfo/{{{DS}}}X509Data/{{{DS}}}X509Certificate"

log = logging.getLogger("idp_connectors.saml")


@dataclass(frozen=True, slots=True)
class IdpMetadata:
    """What the connector uses from the IdP's metadata."""

    entity_id: str
    sso_redirect_url: str
    signing_certificates: tuple[x509.Certificate, ...]
    want_authn_requests_signed: bool
    valid_until: float | None

    def usable_at(self, now: float) -> bool:
        return self.valid_until is None or now < self.valid_until


def _invalid(message: str) -> ConnectorError:
    return ConnectorError(f"the IdP metadata {message}", code="metadata_invalid")


def _is_saml2_idp(descriptor: _Element) -> bool:
    return SAML2P in (descriptor.get("protocolSupportEnumeration") or "").split()


def _entities(root: _Element) -> list[_Element]:
    if root.tag == _ENTITY_DESCRIPTOR:
        return [root]
    if root.tag == _ENTITIES_DESCRIPTOR:
        return list(root.iter(_ENTITY_DESCRIPTOR))
    raise _invalid("is not an EntityDescriptor or EntitiesDescriptor")


def _pick_entity(root: _Element, expected_entity_id: str | None) -> tuple[_Element, _Element]:
    """The entity (and its SAML 2.0 IDPSSODescriptor) this connector federates with."""
    idps = [
        (entity, descriptor)
        for entity in _entities(root)
        for descriptor in [next((d for d in entity.findall(_IDPSSO) if _is_saml2_idp(d)), None)]
        if descriptor is not None
    ]
    if expected_entity_id is not None:
        named = [pair for pair in idps if pair[0].get("entityID") == expected_entity_id]
        if not named:
            raise _invalid(f"describes no SAML 2.0 IdP with entityID {expected_entity_id!r}")
        idps = named
    if len(idps) != 1:
        if not idps:
            raise _invalid("describes no SAML 2.0 IdP (IDPSSODescriptor)")
        raise _invalid("describes several IdPs: set idp_entity_id to choose one")
    return idps[0]


def _valid_until(entity: _Element) -> float | None:
    """The earliest ``validUntil`` on the entity and the aggregates around it."""
    limits: list[float] = []
    node: _Element | None = entity
    while node is not None:
        text = node.get("validUntil")
        if text is not None:
            parsed = parse_instant(text)
            if parsed is None:
                raise _invalid(f"has an unreadable validUntil {text[:40]!r}")
            limits.append(parsed)
        node = node.getparent()
    return min(limits) if limits else None


def _signing_certificates(descriptor: _Element, entity_id: str) -> tuple[x509.Certificate, ...]:
    found: list[x509.Certificate] = []
    for key_descriptor in descriptor.findall(_KEY_DESCRIPTOR):
        if key_descriptor.get("use", "signing") != "signing":
            continue
        for element in key_descriptor.findall(_X509_CERTIFICATE):
            try:
                found.extend(load_certificates([text_of(element)]))
            except (CertificateRejected, XmlRejected) as exc:
                log.warning(
                    "SAML IdP %s: a signing certificate in its metadata is skipped: %s", entity_id, exc
                )
    unique = {certificate.fingerprint(hashes.SHA256()): certificate for certificate in found}
    if not unique:
        raise _invalid("has no usable signing certificate (RSA of 2048 bits or more, or EC)")
    return tuple(unique.values())


def parse_idp_metadata(data: bytes, config: SamlConfig, *, now: float | None) -> IdpMetadata:
    """Gate, parse and check one metadata document; ``metadata_invalid`` / ``metadata_expired``."""
    policy = GatePolicy(max_bytes=MAX_METADATA_BYTES, allow_sha1=config.allow_sha1)
    try:
        root = parse_inbound(data, policy)
    except XmlRejected as exc:
        raise _invalid(f"was refused by the XML gate ({exc.detail})") from None
    entity, descriptor = _pick_entity(root, config.idp_entity_id)
    entity_id = entity.get("entityID") or ""
    valid_until = _valid_until(entity)
    if now is not None and valid_until is not None and now >= valid_until:
        raise ConnectorError("the IdP metadata has expired (validUntil)", code="metadata_expired")
    locations = [
        service.get("Location") or ""
        for service in descriptor.findall(_SSO_SERVICE)
        if service.get("Binding") == BINDING_HTTP_REDIRECT
    ]
    if not locations:
        raise _invalid("names no HTTP-Redirect SingleSignOnService")
    if problem := url_problem(locations[0]):
        raise _invalid(f"SingleSignOnService location {problem}")
    return IdpMetadata(
        entity_id=entity_id,
        sso_redirect_url=locations[0],
        signing_certificates=_signing_certificates(descriptor, entity_id),
        want_authn_requests_signed=descriptor.get("WantAuthnRequestsSigned") in ("true", "1"),
        valid_until=valid_until,
    )


class MetadataCache:
    """The last good metadata of one IdP, read again on schedule and after unknown signing keys."""

    def __init__(
        self,
        config: SamlConfig,
        client: Callable[[], httpx.AsyncClient],
        clock: Callable[[], float],
    ) -> None:
        self._config = config
        self._client = client
        self._clock = clock
        self._current: IdpMetadata | None = None
        self._next_refresh = 0.0
        self._last_forced: float | None = None
        self._lock = asyncio.Lock()
        if config.idp_metadata_file is not None:
            self._load_file_now()

    def _load_file_now(self) -> None:
        now = self._clock()
        try:
            self._current = parse_idp_metadata(self._config.read_metadata_file(), self._config, now=now)
            self._next_refresh = self._due(self._current, now)
        except (ConnectorError, ValueError) as exc:
            log.warning("SAML connector %s: metadata file unusable: %s", self._config.id, exc)
            self._next_refresh = now + RETRY_SECONDS

    async def _read(self) -> bytes:
        config = self._config
        if config.idp_metadata_file is not None:
            try:
                return await asyncio.to_thread(config.read_metadata_file)
            except ValueError as exc:
                raise ConnectorError(str(exc), code="metadata_unavailable") from None
        assert config.idp_metadata_url is not None
        fetched = await send(
            self._client(),
            "GET",
            config.idp_metadata_url,
            what="IdP metadata URL",
            deadline=config.http_timeout_seconds,
            invalid_code="metadata_invalid",
            headers={"accept": "application/samlmetadata+xml, application/xml, text/xml"},
        )
        if fetched.status != 200:
            raise ConnectorError(
                f"the IdP metadata URL answered HTTP {fetched.status}", code="metadata_unavailable"
            )
        return fetched.body

    async def _refresh(self) -> IdpMetadata | None:
        """Read the metadata again (the caller holds the lock); the last good one stays on failure."""
        now = self._clock()
        try:
            fresh = parse_idp_metadata(await self._read(), self._config, now=now)
        except ConnectorError as exc:
            log.warning(
                "SAML connector %s: metadata refresh failed (%s: %s); keeping the last good metadata",
                self._config.id,
                exc.code,
                exc,
            )
            self._next_refresh = now + RETRY_SECONDS
            return None
        self._current = fresh
        self._next_refresh = self._due(fresh, now)
        return fresh

    def _due(self, metadata: IdpMetadata, now: float) -> float:
        """The next scheduled read: the refresh interval, or sooner when the document expires first."""
        due = now + self._config.metadata_refresh_seconds
        return (
            due if metadata.valid_until is None else min(due, max(metadata.valid_until, now + RETRY_SECONDS))
        )

    def _usable(self, now: float) -> IdpMetadata | None:
        current = self._current
        return current if current is not None and current.usable_at(now) else None

    async def current(self) -> IdpMetadata:
        """The metadata to use now, read again when due; ``metadata_unavailable`` / ``metadata_expired``."""
        now = self._clock()
        if now < self._next_refresh and (usable := self._usable(now)) is not None:
            return usable
        async with self._lock:
            now = self._clock()
            if now >= self._next_refresh:
                await self._refresh()
            usable = self._usable(now)
        if usable is not None:
            return usable
        if self._current is not None:
            raise ConnectorError("the IdP metadata has expired (validUntil)", code="metadata_expired")
        raise ConnectorError("the IdP metadata is not available", code="metadata_unavailable")

    async def after_unknown_key(self, seen: IdpMetadata) -> IdpMetadata | None:
        """Newer metadata after a signature no known certificate verified: another caller's, or one
        read of ours if none happened in the last ``RETRY_SECONDS``. ``None`` when nothing changed."""
        async with self._lock:
            if self._current is not seen and self._current is not None:
                return self._current
            now = self._clock()
            if self._last_forced is not None and now - self._last_forced < RETRY_SECONDS:
                return None
            self._last_forced = now
            fresh = await self._refresh()
        if fresh is None or set(fresh.signing_certificates) == set(seen.signing_certificates):
            return None
        return fresh
