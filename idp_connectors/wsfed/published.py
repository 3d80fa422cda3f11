"""Our relying-party metadata for the STS administrator (WS-Federation 1.2 section 3.1).

One ``md:EntityDescriptor`` whose ``entityID`` is the realm, with one ``RoleDescriptor`` of
type ``fed:ApplicationServiceType``: the claims we require (``fed:ClaimTypesRequested``), the
realm as ``fed:TargetScopes`` and the callback as ``fed:PassiveRequestorEndpoint`` (the
``wreply`` we always send). AD FS and Shibboleth import it as a relying party trust. It is
unsigned and carries no key: we sign nothing and accept no encrypted tokens.
"""

from __future__ import annotations

from collections.abc import Sequence

from lxml import etree
from lxml.etree import _Element

MD = "urn:oasis:names:tc:SAML:2.0:metadata"
FED = "http://docs.oasis-open.org/wsfed/federation/200706"
AUTH = "http://docs.oasis-open.org/wsfed/authorization/200706"
WSA = "http://www.w3.org/2005/08/addressing"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
NSMAP = {"md": MD, "fed": FED, "auth": AUTH, "wsa": WSA, "xsi": XSI}


def _endpoint(parent: _Element, tag: str, address: str) -> None:
    holder = etree.SubElement(parent, f"{{{FED}}}{tag}")
    reference = etree.SubElement(holder, f"{{{WSA}}}EndpointReference")
    etree.SubElement(reference, f"{{{WSA}}}Address").text = address


def rp_metadata(realm: str, callback_url: str, required_claims: Sequence[str]) -> bytes:
    """The document (UTF-8 XML) naming ``realm``, the passive requestor endpoint and the claims."""
    root = etree.Element(f"{{{MD}}}EntityDescriptor", nsmap=NSMAP)
    root.set("entityID", realm)
    role = etree.SubElement(root, f"{{{MD}}}RoleDescriptor")
    role.set(f"{{{XSI}}}type", "fed:ApplicationServiceType")
    role.set("protocolSupportEnumeration", FED)
    if required_claims:
        requested = etree.SubElement(role, f"{{{FED}}}ClaimTypesRequested")
        for uri in dict.fromkeys(required_claims):
            claim = etree.SubElement(requested, f"{{{AUTH}}}ClaimType")
            claim.set("Uri", uri)
            claim.set("Optional", "false")
    _endpoint(role, "TargetScopes", realm)
    _endpoint(role, "PassiveRequestorEndpoint", callback_url)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
