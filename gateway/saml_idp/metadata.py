"""The gateway's SAML 2.0 IdP metadata (``/saml2/metadata``) and the endpoint names it publishes.

One ``md:EntityDescriptor`` whose ``entityID`` is ``{issuer}/saml2/metadata``, with an
``IDPSSODescriptor``: a ``KeyDescriptor use="signing"`` for every published RS256 key (an
upcoming key is listed from the moment ``gateway keys rotate`` creates it, so SPs learn it before
it signs), ``SingleLogoutService`` (HTTP-Redirect) at ``/saml2/slo``, the NameID formats we
produce, and ``SingleSignOnService`` (HTTP-Redirect and HTTP-POST) at ``/saml2/sso``.
``WantAuthnRequestsSigned`` is false: signed requests are demanded per SP
(``require_signed_requests``). Built with lxml, cached per set of keys, valid for an hour.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

from gateway.saml_idp.certificates import published_certificates
from gateway.settings.saml_app import NAME_ID_FORMATS
from idp_connectors.xmlsecurity.gate import DS, SAML2P

if TYPE_CHECKING:
    from gateway.runtime import Runtime
    from gateway.settings.models import Settings

MD = "urn:oasis:names:tc:SAML:2.0:metadata"
BINDING_REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
BINDING_POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
CACHE_SECONDS = 3600
MEDIA_TYPE = "application/samlmetadata+xml"

_cache: dict[tuple[str, tuple[bytes, ...]], bytes] = {}


def entity_id(settings: Settings) -> str:
    """The gateway's IdP entityID (the Issuer of every assertion and message it sends)."""
    return f"{settings.issuer}/saml2/metadata"


def sso_url(settings: Settings) -> str:
    """Where AuthnRequests arrive: their ``Destination`` when present."""
    return f"{settings.issuer}/saml2/sso"


def slo_url(settings: Settings) -> str:
    """Where LogoutRequests and LogoutResponses arrive."""
    return f"{settings.issuer}/saml2/slo"


def _md(parent: etree._Element, name: str, **attributes: str) -> etree._Element:
    return etree.SubElement(parent, f"{{{MD}}}{name}", attributes)


def metadata_xml(rt: Runtime) -> bytes:
    """The metadata document (UTF-8, with an XML declaration)."""
    ders = tuple(certificate.public_bytes(Encoding.DER) for certificate in published_certificates(rt))
    cache_key = (rt.settings.issuer, ders)
    found = _cache.get(cache_key)
    if found is not None:
        return found
    settings = rt.settings
    root = etree.Element(
        f"{{{MD}}}EntityDescriptor",
        {"entityID": entity_id(settings), "cacheDuration": f"PT{CACHE_SECONDS}S"},
        nsmap={"md": MD, "ds": DS},
    )
    idp = _md(root, "IDPSSODescriptor", protocolSupportEnumeration=SAML2P, WantAuthnRequestsSigned="false")
    for der in ders:
        descriptor = _md(idp, "KeyDescriptor", use="signing")
        key_info = etree.SubElement(descriptor, f"{{{DS}}}KeyInfo")
        x509_data = etree.SubElement(key_info, f"{{{DS}}}X509Data")
        etree.SubElement(x509_data, f"{{{DS}}}X509Certificate").text = base64.b64encode(der).decode("ascii")
    _md(idp, "SingleLogoutService", Binding=BINDING_REDIRECT, Location=slo_url(settings))
    for name_id_format in dict.fromkeys(NAME_ID_FORMATS.values()):
        _md(idp, "NameIDFormat").text = name_id_format
    for binding in (BINDING_REDIRECT, BINDING_POST):
        _md(idp, "SingleSignOnService", Binding=binding, Location=sso_url(settings))
    document = bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
    if len(_cache) > 16:
        _cache.clear()
    _cache[cache_key] = document
    return document
