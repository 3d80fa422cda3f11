"""A real pysaml2 IdP (``Server``) and SP (``Saml2Client``) that know each other from metadata,
for the backend tests and the bench. Either side can run our in-process backend or pysaml2's
``xmlsec1`` subprocess backend."""

from __future__ import annotations

import base64
import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cryptography.hazmat.primitives import serialization
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.client import Saml2Client
from saml2.config import IdPConfig, SPConfig
from saml2.metadata import entity_descriptor
from saml2.saml import NAMEID_FORMAT_PERSISTENT, NameID
from saml2.server import Server
from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

from idp_connectors.xmlsecurity.pysaml2_backend import PYSAML2_CONFIG, use_in_process_crypto
from tests.xmlsecurity.samples import KeyPair

IDP_ENTITY = "https://idp.example/saml/metadata"
SP_ENTITY = "https://gateway.example/callback/fabrikam/metadata"
ACS = "https://gateway.example/callback/fabrikam"
SSO = "https://idp.example/saml/sso"
Backend = Literal["in-process", "xmlsec1"]


def write_pair(directory: Path, name: str, pair: KeyPair) -> tuple[str, str]:
    key_file, cert_file = directory / f"{name}.key", directory / f"{name}.crt"
    key_file.write_bytes(
        pair.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    cert_file.write_bytes(pair.cert.public_bytes(serialization.Encoding.PEM))
    return str(key_file), str(cert_file)


def _backend_settings(backend: Backend) -> dict[str, Any]:
    if backend == "xmlsec1":
        return {"crypto_backend": "xmlsec1", "xmlsec_binary": "/usr/bin/xmlsec1"}
    return dict(PYSAML2_CONFIG)


def idp_settings(
    key_file: str, cert_file: str, backend: Backend, metadata: str | None = None
) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "entityid": IDP_ENTITY,
        "key_file": key_file,
        "cert_file": cert_file,
        "service": {
            "idp": {
                "signing_algorithm": SIG_RSA_SHA256,  # per service: pysaml2 reads them in context
                "digest_algorithm": DIGEST_SHA256,
                "endpoints": {"single_sign_on_service": [(SSO, BINDING_HTTP_REDIRECT)]},
                "name_id_format": [NAMEID_FORMAT_PERSISTENT],
                "policy": {"default": {"lifetime": {"minutes": 5}, "attribute_restrictions": None}},
            }
        },
        **_backend_settings(backend),
    }
    if metadata:
        settings["metadata"] = {"inline": [metadata]}
    return settings


def sp_settings(
    key_file: str, cert_file: str, backend: Backend, metadata: str | None = None, *, encryption: bool = False
) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "entityid": SP_ENTITY,
        "key_file": key_file,
        "cert_file": cert_file,
        "accepted_time_diff": 60,
        "service": {
            "sp": {
                "signing_algorithm": SIG_RSA_SHA256,
                "digest_algorithm": DIGEST_SHA256,
                "endpoints": {"assertion_consumer_service": [(ACS, BINDING_HTTP_POST)]},
                "allow_unsolicited": False,
                "want_assertions_signed": True,
                "want_response_signed": False,
                "authn_requests_signed": False,
            }
        },
        **_backend_settings(backend),
    }
    if encryption:
        settings["encryption_keypairs"] = [{"key_file": key_file, "cert_file": cert_file}]
    if metadata:
        settings["metadata"] = {"inline": [metadata]}
    return settings


def _load(cls: type[Any], settings: dict[str, Any]) -> Any:
    config = cls()
    config.load(copy.deepcopy(settings))
    return config


@dataclass
class Peers:
    idp: Server
    sp: Saml2Client
    sp_pair: KeyPair

    def authn_request_id(self) -> str:
        request_id, _ = self.sp.create_authn_request(SSO, binding=BINDING_HTTP_REDIRECT)
        return str(request_id)

    def response_xml(self, request_id: str, *, encrypt: bool = False, **kwargs: Any) -> str:
        name_id = NameID(format=NAMEID_FORMAT_PERSISTENT, text="alice-persistent-id")
        cert = base64.b64encode(self.sp_pair.cert.public_bytes(serialization.Encoding.DER)).decode()
        response = self.idp.create_authn_response(
            identity={"mail": ["alice@example.com"], "givenName": ["Alice"]},
            in_response_to=request_id,
            destination=ACS,
            sp_entity_id=SP_ENTITY,
            name_id=name_id,
            authn={"class_ref": "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"},
            sign_assertion=True,
            sign_response=kwargs.pop("sign_response", False),
            encrypt_assertion=encrypt,
            encrypt_assertion_self_contained=True,
            encrypt_cert_assertion=cert if encrypt else None,
            **kwargs,
        )
        return str(response)

    def consume(self, xml: str | bytes, request_id: str) -> Any:
        data = xml if isinstance(xml, bytes) else xml.encode("utf-8")
        return self.sp.parse_authn_request_response(
            base64.b64encode(data).decode(), BINDING_HTTP_POST, outstanding={request_id: "/"}
        )


def make_peers(
    directory: Path,
    idp_pair: KeyPair,
    sp_pair: KeyPair,
    *,
    idp_backend: Backend = "in-process",
    sp_backend: Backend = "in-process",
    encryption: bool = False,
    idp_signing_pair: KeyPair | None = None,
) -> Peers:
    """The two peers. ``idp_signing_pair`` makes the IdP sign with another key than the one its
    metadata publishes (an impostor)."""
    idp_key, idp_cert = write_pair(directory, "idp", idp_pair)
    sp_key, sp_cert = write_pair(directory, "sp", sp_pair)
    idp_metadata = str(entity_descriptor(_load(IdPConfig, idp_settings(idp_key, idp_cert, "in-process"))))
    sp_metadata = str(
        entity_descriptor(_load(SPConfig, sp_settings(sp_key, sp_cert, "in-process", encryption=encryption)))
    )
    if idp_signing_pair is not None:
        idp_key, idp_cert = write_pair(directory, "impostor", idp_signing_pair)
    idp = Server(config=_load(IdPConfig, idp_settings(idp_key, idp_cert, idp_backend, sp_metadata)))
    sp = Saml2Client(
        config=_load(SPConfig, sp_settings(sp_key, sp_cert, sp_backend, idp_metadata, encryption=encryption))
    )
    if idp_backend == "in-process":
        use_in_process_crypto(idp)
    if sp_backend == "in-process":
        use_in_process_crypto(sp)
    return Peers(idp, sp, sp_pair)
