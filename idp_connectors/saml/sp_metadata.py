"""Our SP metadata for the partner IdP, generated with pysaml2 (``saml2.metadata.entity_descriptor``).

An ``EntityDescriptor`` (entityID = the connector's SP entity id) with one ``SPSSODescriptor``:
``AuthnRequestsSigned`` and ``WantAssertionsSigned`` as configured, the HTTP-POST
``AssertionConsumerService`` at the callback URL, ``NameIDFormat`` persistent and, when an SP
key pair is configured, its certificate as the signing and the encryption ``KeyDescriptor``.
The encryption key lists the algorithms we decrypt (``md:EncryptionMethod``: AES-GCM, AES-CBC
only when allowed, RSA-OAEP) and the entity the signature algorithms we verify (the SAML
metadata algorithm-support profile), so a well-behaved IdP picks what we accept.
"""

from __future__ import annotations

from saml2 import BINDING_HTTP_POST, md
from saml2.config import SPConfig
from saml2.extension import algsupport
from saml2.metadata import entity_descriptor

from idp_connectors.saml.assertion import PERSISTENT_FORMAT
from idp_connectors.saml.config import SamlConfig
from idp_connectors.xmlsecurity import gate

MEDIA_TYPE = "application/samlmetadata+xml"
AES_GCM = ("http://www.w3.org/2009/xmlenc11#aes256-gcm", "http://www.w3.org/2009/xmlenc11#aes128-gcm")
AES_CBC = ("http://www.w3.org/2001/04/xmlenc#aes256-cbc", "http://www.w3.org/2001/04/xmlenc#aes128-cbc")
KEY_TRANSPORT = (
    "http://www.w3.org/2009/xmlenc11#rsa-oaep",
    "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p",
)


def _algorithm_support(config: SamlConfig) -> list[algsupport.DigestMethod | algsupport.SigningMethod]:
    digests = [gate.SHA256, gate.SHA384, gate.SHA512] + ([gate.SHA1] if config.allow_sha1 else [])
    methods = [gate.RSA_SHA256, gate.RSA_SHA384, gate.RSA_SHA512, gate.ECDSA_SHA256, gate.ECDSA_SHA384]
    methods += [gate.ECDSA_SHA512] + ([gate.RSA_SHA1] if config.allow_sha1 else [])
    return [algsupport.DigestMethod(algorithm=a) for a in digests] + [
        algsupport.SigningMethod(algorithm=a) for a in methods
    ]


def sp_metadata_xml(config: SamlConfig, sp_entity_id: str, acs_url: str) -> bytes:
    """The SP metadata document (UTF-8)."""
    service: dict[str, object] = {
        "endpoints": {"assertion_consumer_service": [(acs_url, BINDING_HTTP_POST)]},
        "authn_requests_signed": config.sign_authn_requests,
        "want_assertions_signed": config.want_assertions_signed,
        "name_id_format": [PERSISTENT_FORMAT],
    }
    settings: dict[str, object] = {"entityid": sp_entity_id, "service": {"sp": service}}
    if config.sp_key_file is not None and config.sp_certificate_file is not None:
        settings["cert_file"] = config.sp_certificate_file
        settings["encryption_keypairs"] = [
            {"key_file": config.sp_key_file, "cert_file": config.sp_certificate_file}
        ]
    sp_config = SPConfig()
    sp_config.load(settings)
    descriptor = entity_descriptor(sp_config)
    descriptor.extensions = md.Extensions(extension_elements=[])
    for element in _algorithm_support(config):
        descriptor.extensions.add_extension_element(element)
    encryption = AES_GCM + (AES_CBC if config.allow_cbc else ()) + KEY_TRANSPORT
    for key_descriptor in descriptor.spsso_descriptor.key_descriptor:
        if key_descriptor.use == "encryption":
            key_descriptor.encryption_method = [md.EncryptionMethod(algorithm=a) for a in encryption]
    xml = descriptor.to_string()
    return xml if isinstance(xml, bytes) else str(xml).encode("utf-8")
