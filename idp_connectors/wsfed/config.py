"""Configuration of the ``wsfed`` connector: one WS-Federation passive STS, the gateway as its RP.

``{id: fabrikam, type: wsfed, passive_sign_in_url: https://sts.fabrikam.example/adfs/ls/,
issuer: http://sts.fabrikam.example/adfs/services/trust, signing_certificates: [adfs.pem]}``.

Everything the connector accepts is pinned here, never taken from a token: the STS entity id
(the assertion's Issuer, compared exactly), the certificates that may sign (given inline as PEM
or Base64 DER, as files, and/or read from the STS's federation metadata over https), the realm
our tokens must be issued for, the clock skew, and which claim feeds which identity field.

``realm`` (``wtrealm``, the Audience and AppliesTo every token must name) defaults to
``{callback_url}/metadata``, i.e. ``{issuer}/callback/{id}/metadata``: the URL where the
gateway publishes this connector's RP metadata, so one value identifies us and locates our
metadata (the SAML connector's SP entity id follows the same rule).
"""

from __future__ import annotations

import base64
import binascii
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from idp_connectors.base import ConnectorConfigBase, ConnectorContext
from idp_connectors.urls import url_problem
from idp_connectors.xmlsecurity.signature import load_certificates

if TYPE_CHECKING:
    from idp_connectors.wsfed.connector import WsFedConnector

IMMUTABLE_ID = "http://schemas.microsoft.com/LiveID/Federation/2008/05/ImmutableID"
EMAIL = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress"
GIVEN_NAME = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname"
FAMILY_NAME = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname"
DISPLAY_NAME = "http://schemas.microsoft.com/identity/claims/displayname"
AUTHN_METHODS = "http://schemas.microsoft.com/claims/authnmethodsreferences"

_URI = re.compile(r"[^\x00-\x20\x7f]{1,1024}")
_CLAIM = re.compile(r"[^\x00-\x1f\x7f]{1,1024}")
_BASE64_DER = re.compile(r"[A-Za-z0-9+/=\s]{64,}")
MAX_CERTIFICATES = 10


def _claim_name(value: str | None, what: str) -> str | None:
    if value is not None and not _CLAIM.fullmatch(value):
        raise ValueError(f"{what} must be a claim URI of 1 to 1024 printable characters")
    return value


class ClaimMapping(BaseModel):
    """Which token attribute feeds each ``UpstreamIdentity`` field (``null``: never set).

    A SAML 1.1 attribute is named ``{AttributeNamespace}/{AttributeName}``, a SAML 2.0 one by
    its ``Name``. ``immutable_id`` is the subject (required in every token); set it to
    ``null`` only for an STS that carries a persistent id in the subject's NameIdentifier
    (SAML 1.1) or NameID (SAML 2.0) instead: that value then is the subject, and a transient
    or email-address format is refused. ``email`` is required in every token.
    ``device`` maps a device field name of ours to the attribute that carries it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    immutable_id: str | None = IMMUTABLE_ID
    email: str = EMAIL
    name: str | None = DISPLAY_NAME
    given_name: str | None = GIVEN_NAME
    family_name: str | None = FAMILY_NAME
    home_tenant_id: str | None = None
    amr: str | None = Field(
        AUTHN_METHODS, description="An attribute whose values are reported as `amr` (AD FS's default)."
    )
    device: dict[str, str] = Field(default_factory=dict)

    @field_validator("immutable_id", "email", "name", "given_name", "family_name", "home_tenant_id", "amr")
    @classmethod
    def _names(cls, value: str | None) -> str | None:
        return _claim_name(value, "the claim")

    @field_validator("device")
    @classmethod
    def _device(cls, device: dict[str, str]) -> dict[str, str]:
        for ours, theirs in device.items():
            if not _CLAIM.fullmatch(ours) or not _CLAIM.fullmatch(theirs):
                raise ValueError(f"{ours!r}: {theirs!r} is not a claim name")
        return device


def _is_file(text: str) -> bool:
    try:
        return Path(text).is_file()
    except (OSError, ValueError):  # a name too long for a path, a NUL byte
        return False


def _certificate_pem(entry: str, index: int) -> str:
    """One ``signing_certificates`` entry (PEM text, Base64 DER or a file path) as PEM text."""
    where = f"signing_certificates[{index}]"
    text = entry.strip()
    data: bytes
    if text.startswith("-----BEGIN"):
        data = text.encode("ascii", "replace")
    elif _BASE64_DER.fullmatch(text) and not _is_file(text):
        try:
            data = base64.b64decode("".join(text.split()), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"{where} is not valid Base64") from exc
    else:
        try:
            data = Path(text).read_bytes()
        except OSError as exc:
            raise ValueError(
                f"{where}: cannot read the certificate file {text!r} ({exc.strerror or exc}); give a file "
                "path, PEM text or the Base64 certificate from the STS metadata"
            ) from exc
    try:
        certificates = load_certificates([data])
    except ValueError as exc:  # CertificateRejected: unparsable, RSA under 2048 bits, a disallowed key
        raise ValueError(f"{where} is not a usable X.509 certificate: {exc}") from exc
    if len(certificates) != 1:
        raise ValueError(f"{where} must hold exactly one certificate (found {len(certificates)})")
    return certificates[0].public_bytes(Encoding.PEM).decode("ascii")


class WsFedConfig(ConnectorConfigBase):
    """A connector entry ``{id: fabrikam, type: wsfed, passive_sign_in_url: ..., issuer: ..., ...}``."""

    type: Literal["wsfed"]
    passive_sign_in_url: str = Field(description="The STS's passive requestor endpoint (https).")
    issuer: str = Field(
        description="The STS entity id; every token's Issuer must equal it exactly (e.g. AD FS's "
        "`http://sts.example/adfs/services/trust`)."
    )
    signing_certificates: list[str] = Field(
        [],
        max_length=MAX_CERTIFICATES,
        description="Certificates whose keys may sign tokens: PEM text, Base64 DER or a PEM/DER file path.",
    )
    federation_metadata_url: str | None = Field(
        None, description="The STS's federation metadata (https); its signing certificates are accepted too."
    )
    metadata_refresh_seconds: Annotated[int, Field(ge=300, le=7 * 86400)] = Field(
        86400, description="How often the federation metadata is read again (certificate rollover)."
    )
    realm: str | None = Field(
        None,
        description="The wtrealm (our Audience). Default: `{callback_url}/metadata`, "
        "i.e. `{issuer}/callback/{id}/metadata`.",
    )
    allow_sha1: bool = Field(
        False, description="Accept RSA-SHA1 signatures and SHA-1 digests from this STS (a logged exception)."
    )
    clock_skew_seconds: Annotated[int, Field(ge=0, le=180)] = 120
    http_timeout_seconds: Annotated[float, Field(gt=0, le=60)] = Field(
        10.0, description="Total time allowed for one federation metadata fetch."
    )
    claims: ClaimMapping = Field(default_factory=ClaimMapping)
    trust_email_for_linking: bool = Field(
        False,
        description="The gateway may link a first sign-in to an existing user by this STS's email claim.",
    )

    _certificates: tuple[x509.Certificate, ...] = PrivateAttr(default=())

    @field_validator("passive_sign_in_url")
    @classmethod
    def _passive_url(cls, url: str) -> str:
        if problem := url_problem(url):
            raise ValueError(f"the passive sign-in URL {problem}")
        return url

    @field_validator("federation_metadata_url")
    @classmethod
    def _metadata_url(cls, url: str | None) -> str | None:
        if url is not None and (problem := url_problem(url)):
            raise ValueError(f"the federation metadata URL {problem}")
        return url

    @field_validator("issuer", "realm")
    @classmethod
    def _uri(cls, value: str | None) -> str | None:
        if value is not None and not _URI.fullmatch(value):
            raise ValueError("must be a URI of 1 to 1024 characters without white space")
        return value

    @field_validator("signing_certificates")
    @classmethod
    def _certificates_pem(cls, entries: list[str]) -> list[str]:
        pems = [_certificate_pem(entry, index) for index, entry in enumerate(entries)]
        if len(set(pems)) != len(pems):
            raise ValueError("a certificate is listed twice")
        return pems

    @model_validator(mode="after")
    def _some_keys(self) -> WsFedConfig:
        if not self.signing_certificates and self.federation_metadata_url is None:
            raise ValueError(
                "give signing_certificates, federation_metadata_url or both: tokens are verified "
                "only with keys configured here, never with a key carried in the token"
            )
        return self

    def model_post_init(self, context: Any, /) -> None:
        self._certificates = tuple(
            load_certificates([pem.encode("ascii") for pem in self.signing_certificates])
        )

    @property
    def certificates(self) -> tuple[x509.Certificate, ...]:
        """The configured signing certificates, parsed (metadata adds its own at run time)."""
        return self._certificates

    def realm_for(self, callback_url: str) -> str:
        """The wtrealm: the configured one, else ``{callback_url}/metadata``."""
        return self.realm or callback_url + "/metadata"

    def open(self, ctx: ConnectorContext) -> WsFedConnector:
        from idp_connectors.wsfed.connector import WsFedConnector

        return WsFedConnector(self, ctx)
