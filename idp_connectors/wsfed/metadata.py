"""The STS's federation metadata: its signing certificates, read over https and refreshed.

``FederationMetadata`` fetches ``federation_metadata_url`` through the shared HTTP client
(bounded: deadline, 1 MiB, no redirects; ``idp_connectors.oidc.fetch``), parses it through the
XML gate (no DTD or entities, comments dropped, depth capped) and keeps the signing
certificates of the entity whose ``entityID`` is the configured issuer: every ``KeyDescriptor``
with ``use="signing"`` (or no ``use``) of its ``fed:SecurityTokenServiceType`` role descriptors
and ``IDPSSODescriptor``s, so both certificates of a rollover verify.

Trust in the document rests on https to the configured URL (as Entra's own domain federation
does); a signature the document may carry is not verified, so its algorithms are not held to
the token policy (its shape still is, and the gate's other limits apply).

Refresh: the certificates live ``metadata_refresh_seconds``; concurrent callers share one fetch.
A failed refresh keeps the last good set (logged) and is retried after ``RETRY_SECONDS``; with
no good set yet it fails closed (``metadata_unavailable``). ``refresh_after_failure`` re-reads
the document at most once per ``REFETCH_INTERVAL_SECONDS``, for a token signed by a certificate
the STS has just rolled over to.

Codes (only while no good certificate set is held): ``metadata_unavailable`` (the document could
not be had: no HTTP client, network, HTTP status, or a failed fetch less than ``RETRY_SECONDS``
ago) and ``metadata_invalid`` (too large, not acceptable XML, not federation metadata for this
issuer, or no usable certificate).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import httpx
from cryptography import x509
from lxml.etree import _Element

from idp_connectors.base import ConnectorError
from idp_connectors.oidc.fetch import MAX_RESPONSE_BYTES, send
from idp_connectors.wsfed.config import WsFedConfig
from idp_connectors.xmlsecurity.gate import DS, GatePolicy, XmlRejected, parse_inbound, text_of
from idp_connectors.xmlsecurity.keys import CertificateRejected, load_certificates

MD = "urn:oasis:names:tc:SAML:2.0:metadata"
FED = "http://docs.oasis-open.org/wsfed/federation/200706"
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
REFETCH_INTERVAL_SECONDS = 60
RETRY_SECONDS = 300
MAX_CERTIFICATES = 20

METADATA_POLICY = GatePolicy(max_bytes=MAX_RESPONSE_BYTES, allow_sha1=True, allow_inclusive_c14n=True)
"""The gate for metadata: bigger than a token, and its (unverified) signature's algorithms are moot."""

log = logging.getLogger(__name__)


def _invalid(message: str) -> ConnectorError:
    return ConnectorError(f"the STS federation metadata {message}", code="metadata_invalid")


def _is_sts_role(element: _Element) -> bool:
    if element.tag == f"{{{MD}}}IDPSSODescriptor":
        return True
    if element.tag != f"{{{MD}}}RoleDescriptor":
        return False
    prefix, _, local = str(element.get(XSI_TYPE) or "").rpartition(":")
    return local == "SecurityTokenServiceType" and element.nsmap.get(prefix or None) == FED


def signing_certificates(root: _Element, issuer: str) -> tuple[x509.Certificate, ...]:
    """The signing certificates the metadata (a gated tree) gives for the entity ``issuer``."""
    if root.tag != f"{{{MD}}}EntityDescriptor":
        raise _invalid("is not an EntityDescriptor")
    if root.get("entityID") != issuer:
        raise _invalid("describes another entity than the configured issuer")
    encoded: list[str] = []
    for role in root:
        if not isinstance(role.tag, str) or not _is_sts_role(role):
            continue
        for descriptor in role.iterchildren(f"{{{MD}}}KeyDescriptor"):
            if descriptor.get("use", "signing") != "signing":
                continue
            for value in descriptor.iterfind(f"{{{DS}}}KeyInfo/{{{DS}}}X509Data/{{{DS}}}X509Certificate"):
                encoded.append(text_of(value))
    usable: list[x509.Certificate] = []
    for text in encoded[:MAX_CERTIFICATES]:
        try:
            usable.extend(load_certificates([text]))
        except CertificateRejected as exc:
            log.warning("wsfed metadata for %s: a signing certificate is ignored: %s", issuer, exc)
    if not usable:
        raise _invalid("lists no usable signing certificate (RSA of 2048 bits or more, or EC)")
    return tuple(dict.fromkeys(usable))


class FederationMetadata:
    """The signing certificates from one STS's federation metadata, cached and refreshed."""

    def __init__(
        self,
        config: WsFedConfig,
        client: Callable[[], httpx.AsyncClient],
        clock: Callable[[], float],
    ) -> None:
        if config.federation_metadata_url is None:
            raise ValueError("the connector has no federation_metadata_url")
        self._config = config
        self._url = config.federation_metadata_url
        self._client = client
        self._clock = clock
        self._certificates: tuple[x509.Certificate, ...] | None = None
        self._next_fetch = 0.0
        self._last_forced: float | None = None
        self._lock = asyncio.Lock()

    async def _fetch(self) -> tuple[x509.Certificate, ...]:
        config = self._config
        fetched = await send(
            self._client(),
            "GET",
            self._url,
            what="STS federation metadata endpoint",
            deadline=config.http_timeout_seconds,
            invalid_code="metadata_invalid",
            headers={"accept": "application/samlmetadata+xml, application/xml, text/xml"},
        )
        if fetched.status != 200:
            raise ConnectorError(
                f"the STS federation metadata endpoint answered HTTP {fetched.status}",
                code="metadata_unavailable",
            )
        try:
            root = parse_inbound(fetched.body, METADATA_POLICY)
        except XmlRejected as exc:
            raise _invalid(f"is not acceptable XML ({exc.detail})") from exc
        return signing_certificates(root, config.issuer)

    async def _refresh(self) -> tuple[x509.Certificate, ...]:
        """Fetch now (the caller holds the lock); keep the last good set when that fails."""
        now = self._clock()
        try:
            certificates = await self._fetch()
        except ConnectorError as exc:
            self._next_fetch = now + RETRY_SECONDS
            if self._certificates is None:
                code = "metadata_invalid" if exc.code == "metadata_invalid" else "metadata_unavailable"
                raise ConnectorError(
                    f"the STS signing certificates are unavailable: {exc}", code=code
                ) from exc
            log.warning(
                "wsfed metadata refresh failed for %s (%s); keeping the last good one", self._url, exc.code
            )
            return self._certificates
        self._certificates = certificates
        self._next_fetch = now + self._config.metadata_refresh_seconds
        return certificates

    async def certificates(self) -> tuple[x509.Certificate, ...]:
        """The current signing certificates, fetched when due."""
        if self._certificates is not None and self._clock() < self._next_fetch:
            return self._certificates
        async with self._lock:
            if self._certificates is not None and self._clock() < self._next_fetch:
                return self._certificates
            if self._certificates is None and self._clock() < self._next_fetch:
                raise ConnectorError(
                    "the STS signing certificates are unavailable (the last fetch failed)",
                    code="metadata_unavailable",
                )
            return await self._refresh()

    async def refresh_after_failure(
        self, seen: tuple[x509.Certificate, ...]
    ) -> tuple[x509.Certificate, ...] | None:
        """A newer certificate set than ``seen`` (another caller's, or one fetch of ours when the rate
        limit allows); None when there is none to try."""
        async with self._lock:
            if self._certificates is not None and self._certificates != seen:
                return self._certificates
            now = self._clock()
            if self._last_forced is not None and now - self._last_forced < REFETCH_INTERVAL_SECONDS:
                return None
            self._last_forced = now
            fresh = await self._refresh()
            return fresh if fresh != seen else None
