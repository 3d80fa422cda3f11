"""``applications[].saml``: one SAML 2.0 service provider the gateway answers as identity provider.

Everything that decides where an assertion may go and what it says is pinned here, never taken
from the AuthnRequest: the SP's entity id (the request's Issuer and our Audience), its ACS URLs
(matched exactly or by index, the first is the default), the NameID format, the attribute
release (name, value source, NameFormat), what is signed, whether the assertion is encrypted,
the SP certificate (read and vetted at load time, PEM text or a file), whether requests must be
signed, its SingleLogoutService (which needs the certificate: logout messages must be signed)
and IdP-initiated sign-on with a fixed target. ``saml_problems`` adds the rule that needs every
application: an entity id names one application.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from idp_connectors.xmlsecurity.keys import CertificateRejected, load_certificates

if TYPE_CHECKING:
    from gateway.settings.models import Settings

Problems = list[tuple[tuple[str | int, ...], str]]

MAX_CERTIFICATE_FILE_BYTES = 1 << 20
MAX_RELAY_STATE_BYTES = 80
"""SAML Bindings 3.4.3 and 3.5.3: RelayState MUST NOT exceed 80 bytes."""

NAME_FORMATS = {
    "uri": "urn:oasis:names:tc:SAML:2.0:attrname-format:uri",
    "basic": "urn:oasis:names:tc:SAML:2.0:attrname-format:basic",
    "unspecified": "urn:oasis:names:tc:SAML:2.0:attrname-format:unspecified",
}
NAME_ID_FORMATS = {
    "persistent": "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
    "email": "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
    "upn": "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified",
}
"""The NameID ``Format`` each ``name_id_format`` produces (a UPN has no format of its own)."""

_ENTITY_ID = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[^\s\x00-\x1f\x7f]{1,1000}")
"""An absolute URI (SAML Core 8.3.6: at most 1024 characters), no white space or controls."""
_URI_NAME = _ENTITY_ID
_BASIC_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,255}")
"""``xs:Name`` without colons, which the basic NameFormat requires (SAML Core 8.2.2)."""
_ANY_NAME = re.compile(r"[^\x00-\x1f\x7f]{1,256}")

AttributeSource = Literal[
    "mail",
    "displayName",
    "givenName",
    "surname",
    "userPrincipalName",
    "id",
    "tenantId",
    "userType",
    "groups",
    "roles",
    "amr",
    "mfa_source",
    "device_compliant",
    "device_hybrid_joined",
]
"""Directory properties (``id`` is the object id, ``tenantId`` the organisation's), the app's
``groups`` and ``roles`` (as the OIDC claims), and what the sign-in established: ``amr`` and,
only when satisfied or trusted, ``mfa_source``, ``device_compliant``, ``device_hybrid_joined``."""


def _check_absolute_url(url: str) -> str:
    from gateway.settings.models import check_absolute_url  # late: models imports this module

    return check_absolute_url(url)


Url = Annotated[str, AfterValidator(_check_absolute_url)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReleasedAttribute(_Strict):
    """One ``saml:Attribute``: its ``Name``, where its values come from, and its ``NameFormat``."""

    name: str = Field(description="The attribute Name, e.g. a claim URI or `displayName`.")
    source: AttributeSource
    name_format: Literal["uri", "basic", "unspecified"] | None = Field(
        None, description="Left out: `uri` when the name is an absolute URI, `basic` otherwise."
    )

    @model_validator(mode="after")
    def _name_fits_format(self) -> ReleasedAttribute:
        if not _ANY_NAME.fullmatch(self.name):
            raise ValueError("an attribute name has 1 to 256 characters and no control characters")
        if self.resolved_format == "uri" and not _URI_NAME.fullmatch(self.name):
            raise ValueError(f"name_format uri needs an absolute URI as name, not {self.name!r}")
        if self.resolved_format == "basic" and not _BASIC_NAME.fullmatch(self.name):
            raise ValueError(
                f"name_format basic needs a name of letters, digits, '_', '.' and '-', not {self.name!r}"
            )
        return self

    @property
    def resolved_format(self) -> str:
        if self.name_format is not None:
            return self.name_format
        return "uri" if _URI_NAME.fullmatch(self.name) else "basic"

    @property
    def name_format_uri(self) -> str:
        return NAME_FORMATS[self.resolved_format]


class IdpInitiated(_Strict):
    enabled: bool = Field(False, description="Allow sign-on started at the gateway (/saml2/sso?app=<id>).")
    target: Url | None = Field(
        None,
        description="The fixed RelayState sent with an IdP-initiated response (the app's landing page); "
        "never taken from a request.",
    )

    @model_validator(mode="after")
    def _target(self) -> IdpInitiated:
        if self.enabled and self.target is None:
            raise ValueError("enabled needs a target")
        if self.target is not None and len(self.target.encode()) > MAX_RELAY_STATE_BYTES:
            raise ValueError(f"the target is sent as RelayState: at most {MAX_RELAY_STATE_BYTES} bytes")
        return self


def _read_certificate(value: str) -> str:
    """PEM text as given, or the contents of the file it names."""
    if "-----BEGIN" in value:
        return value
    file = Path(value)
    try:
        if file.stat().st_size > MAX_CERTIFICATE_FILE_BYTES:
            raise ValueError(
                f"the certificate file {value} is larger than {MAX_CERTIFICATE_FILE_BYTES} bytes"
            )
        return file.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ValueError(f"the certificate file {value} cannot be read ({reason})") from None


@functools.lru_cache(maxsize=64)
def parse_certificate(pem: str) -> x509.Certificate:
    """Exactly one certificate (RSA ≥ 2048 bits or EC P-256/384/521); ``ValueError`` otherwise."""
    try:
        certificates = load_certificates([pem])
    except CertificateRejected as exc:
        raise ValueError(str(exc)) from None
    if len(certificates) != 1:
        raise ValueError(f"exactly one certificate is needed, not {len(certificates)}")
    return certificates[0]


class SamlApplication(_Strict):
    """A SAML 2.0 SP (``applications[].saml``); the gateway is its IdP."""

    entity_id: str = Field(description="The SP's entityID: the AuthnRequest's Issuer and our Audience.")
    acs_urls: list[Url] = Field(
        min_length=1,
        description="AssertionConsumerService URLs (HTTP-POST). A request's ACS must be one of them exactly, "
        "or name one by index; the first is the default.",
    )
    name_id_format: Literal["persistent", "email", "upn"] = Field(
        "persistent",
        description="persistent: the app's pairwise subject; email: the user's mail; upn: userPrincipalName.",
    )
    attributes: list[ReleasedAttribute] = Field([], description="The attributes released to this SP.")
    sign: Literal["assertion", "response", "both"] = Field(
        "assertion", description="What carries the RSA-SHA256 signature."
    )
    encrypt_assertion: bool = Field(False, description="Encrypt the assertion for sp_certificate.")
    sp_certificate: str | None = Field(
        None,
        description="The SP's certificate, PEM text or a file: checks signed requests, encrypts assertions.",
    )
    require_signed_requests: bool = Field(
        False, description="Refuse AuthnRequests without a valid signature."
    )
    slo_url: Url | None = Field(
        None,
        description="The SP's SingleLogoutService (HTTP-Redirect binding); needs sp_certificate, which "
        "checks the signature every logout message from the SP must carry.",
    )
    idp_initiated: IdpInitiated = Field(default_factory=lambda: IdpInitiated())

    @field_validator("entity_id")
    @classmethod
    def _entity_id(cls, value: str) -> str:
        if not _ENTITY_ID.fullmatch(value):
            raise ValueError(
                "an entity id is an absolute URI of at most 1024 characters, without white space"
            )
        return value

    @field_validator("acs_urls")
    @classmethod
    def _unique_acs(cls, urls: list[str]) -> list[str]:
        if len(set(urls)) != len(urls):
            raise ValueError("each ACS URL is listed once")
        return urls

    @field_validator("attributes")
    @classmethod
    def _unique_names(cls, attributes: list[ReleasedAttribute]) -> list[ReleasedAttribute]:
        names = [(a.name, a.resolved_format) for a in attributes]
        if len(set(names)) != len(names):
            raise ValueError("each attribute name is released once")
        return attributes

    @field_validator("sp_certificate")
    @classmethod
    def _certificate(cls, value: str | None) -> str | None:
        if value is None:
            return None
        pem = _read_certificate(value)
        parse_certificate(pem)
        return pem

    @field_validator("slo_url")
    @classmethod
    def _slo_needs_certificate(cls, value: str | None, info: ValidationInfo) -> str | None:
        # sp_certificate is validated first: absent from ``info.data`` only when it was refused itself
        if value is not None and "sp_certificate" in info.data and info.data["sp_certificate"] is None:
            raise ValueError(
                "slo_url needs sp_certificate: single logout messages must be signed (SAML Profiles 4.4.4)"
            )
        return value

    @model_validator(mode="after")
    def _needs_certificate(self) -> SamlApplication:
        if self.require_signed_requests and self.sp_certificate is None:
            raise ValueError("require_signed_requests needs sp_certificate")
        if self.encrypt_assertion:
            if self.sp_certificate is None:
                raise ValueError("encrypt_assertion needs sp_certificate")
            if not isinstance(parse_certificate(self.sp_certificate).public_key(), rsa.RSAPublicKey):
                raise ValueError("encrypt_assertion needs an RSA sp_certificate (RSA-OAEP key transport)")
        return self

    def certificate(self) -> x509.Certificate | None:
        """The SP certificate (vetted when the configuration was loaded)."""
        return None if self.sp_certificate is None else parse_certificate(self.sp_certificate)

    @property
    def name_id_format_uri(self) -> str:
        return NAME_ID_FORMATS[self.name_id_format]


def saml_problems(settings: Settings) -> Problems:
    """An entity id names one application."""
    problems: Problems = []
    seen: dict[str, str] = {}
    for index, app in enumerate(settings.applications):
        if app.saml is None:
            continue
        owner = seen.get(app.saml.entity_id)
        if owner is not None:
            problems.append(
                (("applications", index, "saml", "entity_id"),
                 f"entity id {app.saml.entity_id!r} is already used by application {owner!r}")
            )  # fmt: skip
        else:
            seen[app.saml.entity_id] = app.id
    return problems
