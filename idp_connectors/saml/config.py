"""Configuration of the ``saml`` connector: one partner SAML 2.0 IdP, the gateway as its service provider.

Everything that decides what the connector accepts is pinned here, never taken from the
message: where the IdP's metadata comes from (exactly one of a file or an https URL), the IdP
entity id it must name, the algorithms (SHA-1 and AES-CBC only as explicit per-IdP exceptions),
whether a Response-only signature may stand in for a signed assertion, the clock skew, the
persistent NameID, and which attributes feed which ``UpstreamIdentity`` field. The SP key pair
and a metadata file are read and vetted when the configuration is loaded, so a bad path or key
is a configuration error with its line, not a failed sign-in.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from idp_connectors.base import ConnectorConfigBase, ConnectorContext, ConnectorError
from idp_connectors.urls import url_problem
from idp_connectors.xmlsecurity.keys import CertificateRejected, check_private_key, load_certificates

if TYPE_CHECKING:
    from idp_connectors.saml.connector import SamlConnector

EMAIL_CLAIM = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress"
"""The attribute b2b-concepts §9 requires of a federated SAML IdP."""
MAX_FILE_BYTES = 1 << 20

_ATTRIBUTE_NAME = re.compile(r"[^\x00-\x1f\x7f]{1,256}")
_ENTITY_ID = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[^\s\x00-\x1f\x7f]{1,1000}")
"""An absolute URI (SAML Core 8.3.6: at most 1024 characters), no white space or controls."""


class SamlClaimMapping(BaseModel):
    """Which SAML attribute (its ``Name``) feeds each ``UpstreamIdentity`` field (``null``: never set).

    ``email`` is required: a sign-in without that attribute is refused. ``device`` maps a
    device field name of ours to the attribute that carries it (e.g. ``{compliant: isCompliant}``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    email: str = Field(EMAIL_CLAIM, pattern=_ATTRIBUTE_NAME.pattern)
    given_name: str | None = Field(
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname", pattern=_ATTRIBUTE_NAME.pattern
    )
    family_name: str | None = Field(
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname", pattern=_ATTRIBUTE_NAME.pattern
    )
    name: str | None = Field(
        "http://schemas.microsoft.com/identity/claims/displayname", pattern=_ATTRIBUTE_NAME.pattern
    )
    home_tenant_id: str | None = Field(None, pattern=_ATTRIBUTE_NAME.pattern)
    device: dict[str, str] = Field(default_factory=dict)

    @field_validator("device")
    @classmethod
    def _device_names(cls, device: dict[str, str]) -> dict[str, str]:
        for ours, theirs in device.items():
            if not _ATTRIBUTE_NAME.fullmatch(ours) or not _ATTRIBUTE_NAME.fullmatch(theirs):
                raise ValueError(f"{ours!r}: {theirs!r} is not an attribute name")
        return device


@dataclass(frozen=True, slots=True)
class SpKeyPair:
    """The SP's RSA key and certificate: signs AuthnRequests, decrypts assertions, published in metadata."""

    key: rsa.RSAPrivateKey
    certificate: x509.Certificate


def _read(path: str, what: str) -> bytes:
    file = Path(path)
    try:
        if file.stat().st_size > MAX_FILE_BYTES:
            raise ValueError(f"the {what} {path} is larger than {MAX_FILE_BYTES} bytes")
        return file.read_bytes()
    except OSError as exc:
        raise ValueError(f"the {what} {path} cannot be read ({exc.strerror or type(exc).__name__})") from None


def load_sp_key_pair(key_file: str, certificate_file: str) -> SpKeyPair:
    """Read and vet the SP key pair: PEM, RSA of 2048 bits or more, the key matching the certificate.

    Loading an RSA key checks it (tens of milliseconds), so the parsed pair is kept for the same
    file contents: validating the configuration and opening the connector parse it once.
    """
    certificate_pem = _read(certificate_file, "SP certificate file")
    key_pem = _read(key_file, "SP key file")
    return _parse_sp_key_pair(key_file, certificate_file, key_pem, certificate_pem)


@functools.lru_cache(maxsize=16)
def _parse_sp_key_pair(
    key_file: str, certificate_file: str, key_pem: bytes, certificate_pem: bytes
) -> SpKeyPair:
    try:
        certificates = load_certificates([certificate_pem])
    except CertificateRejected as exc:
        raise ValueError(f"the SP certificate file {certificate_file}: {exc}") from None
    if len(certificates) != 1:
        raise ValueError(f"the SP certificate file {certificate_file} must hold exactly one certificate")
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
        check_private_key(key)
    except (ValueError, TypeError, CertificateRejected) as exc:
        reason = str(exc) if isinstance(exc, CertificateRejected) else "not an unencrypted PEM private key"
        raise ValueError(f"the SP key file {key_file}: {reason}") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(
            f"the SP key file {key_file} must hold an RSA key (RSA-OAEP and RSA-SHA256 need one)"
        )
    certificate = certificates[0]
    public = certificate.public_key()
    if (
        not isinstance(public, rsa.RSAPublicKey)
        or public.public_numbers() != key.public_key().public_numbers()
    ):
        raise ValueError(f"the SP key file {key_file} does not match the SP certificate {certificate_file}")
    return SpKeyPair(key=key, certificate=certificate)


class SamlConfig(ConnectorConfigBase):
    """A connector entry ``{id: fabrikam, type: saml, domains: [...], idp_metadata_url: https://...}``."""

    type: Literal["saml"]
    idp_metadata_file: str | None = Field(
        None, description="A local copy of the IdP's metadata (re-read on refresh)."
    )
    idp_metadata_url: str | None = Field(None, description="Where the IdP publishes its metadata (https).")
    metadata_refresh_seconds: Annotated[int, Field(ge=60, le=7 * 86400)] = Field(
        86400, description="How often the metadata is read again (new signing certificates: rollover)."
    )
    idp_entity_id: str | None = Field(
        None, description="The IdP's entityID; required when the metadata describes several IdPs."
    )
    sp_entity_id: str | None = Field(None, description="Our entityID; default `{callback_url}/metadata`.")
    sign_authn_requests: bool = False
    sp_key_file: str | None = Field(
        None, description="PEM RSA key: signs AuthnRequests and decrypts encrypted assertions."
    )
    sp_certificate_file: str | None = Field(
        None, description="PEM certificate of sp_key_file, published in SP metadata."
    )
    want_assertions_signed: bool = Field(
        True,
        description="false: a signed Response with the assertion its direct child is enough (per IdP).",
    )
    allow_sha1: bool = Field(
        False, description="Accept RSA-SHA1 and SHA-1 digests from this IdP (an exception)."
    )
    allow_cbc: bool = Field(
        False, description="Accept AES-CBC encrypted assertions from this IdP (an exception)."
    )
    allow_unsolicited: bool = Field(
        False, description="Always false: unsolicited (IdP-initiated) responses are refused."
    )
    clock_skew_seconds: Annotated[int, Field(ge=0, le=180)] = 120
    name_id_format: Literal["persistent"] = Field(
        "persistent", description="The NameID must be persistent (b2b-concepts §9); no other format."
    )
    claims: SamlClaimMapping = Field(default_factory=SamlClaimMapping)
    trust_email_for_linking: bool = Field(
        False,
        description="The IdP's email is taken as verified: the gateway may link or redeem by it.",
    )
    http_timeout_seconds: Annotated[float, Field(gt=0, le=60)] = Field(
        10.0, description="Total time allowed for one metadata download."
    )

    @field_validator("idp_metadata_url")
    @classmethod
    def _metadata_url(cls, url: str | None) -> str | None:
        if url is not None and (problem := url_problem(url)):
            raise ValueError(f"the metadata URL {problem}")
        return url

    @field_validator("idp_entity_id", "sp_entity_id")
    @classmethod
    def _entity_id(cls, entity_id: str | None) -> str | None:
        if entity_id is not None and not _ENTITY_ID.fullmatch(entity_id):
            raise ValueError(
                "an entity id is an absolute URI of at most 1024 characters, without white space"
            )
        return entity_id

    @field_validator("allow_unsolicited")
    @classmethod
    def _unsolicited(cls, allow: bool) -> bool:
        if allow:
            raise ValueError(
                "unsolicited (IdP-initiated) responses cannot be bound to a sign-in and are always refused; "
                "remove allow_unsolicited or set it to false"
            )
        return allow

    @model_validator(mode="after")
    def _sources_and_keys(self) -> SamlConfig:
        if (self.idp_metadata_file is None) == (self.idp_metadata_url is None):
            raise ValueError("give exactly one of idp_metadata_file and idp_metadata_url")
        if (self.sp_key_file is None) != (self.sp_certificate_file is None):
            raise ValueError("sp_key_file and sp_certificate_file go together")
        if self.sign_authn_requests and self.sp_key_file is None:
            raise ValueError("sign_authn_requests needs sp_key_file and sp_certificate_file")
        if self.sp_key_file is not None and self.sp_certificate_file is not None:
            load_sp_key_pair(self.sp_key_file, self.sp_certificate_file)
        if self.idp_metadata_file is not None:
            from idp_connectors.saml.metadata import parse_idp_metadata

            try:
                parse_idp_metadata(self.read_metadata_file(), self, now=None)
            except ConnectorError as exc:
                raise ValueError(f"the metadata file {self.idp_metadata_file}: {exc}") from None
        return self

    def read_metadata_file(self) -> bytes:
        """The bytes of ``idp_metadata_file`` (``ValueError`` with a clear message when unreadable)."""
        assert self.idp_metadata_file is not None
        return _read(self.idp_metadata_file, "metadata file")

    def sp_key_pair(self) -> SpKeyPair | None:
        """The SP key pair, read again (the files were vetted when the configuration was loaded)."""
        if self.sp_key_file is None or self.sp_certificate_file is None:
            return None
        return load_sp_key_pair(self.sp_key_file, self.sp_certificate_file)

    def open(self, ctx: ConnectorContext) -> SamlConnector:
        from idp_connectors.saml.connector import SamlConnector

        return SamlConnector(self, ctx)
