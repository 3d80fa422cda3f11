"""A real SAML 2.0 IdP for tests, built on pysaml2's ``Server`` (signing with the ``xmlsec1`` binary).

``SamlTestIdP()`` is a Starlette app (``.app``) at ``https://idp.fabrikam.test``: ``/metadata``
(its IdP metadata, every published signing certificate) and ``/sso`` (HTTP-Redirect binding:
pysaml2 parses and, when ``knobs.want_authn_requests_signed``, verifies the AuthnRequest
against the SP metadata it was given with ``trust_sp``; it answers with an auto-submitting
HTTP-POST form carrying a signed ``SAMLResponse`` and the ``RelayState``). Keys are RSA-2048,
generated once per test session (``key_pair(name)``), with certificates from ``cryptography``.

Responses are made the way pysaml2's IdP makes them (``create_authn_response`` for the content,
``pre_signature_part`` + ``SecurityContext.sign_statement`` for signatures, ``pre_encryption_part``
+ ``encrypt_assertion`` for encryption), with signatures and encryption applied after the
content knobs, so a misbehaving response is still genuinely signed. ``idp.knobs`` (``Knobs``)
makes it misbehave: unsigned, response-only signing, wrong audience / recipient / destination /
issuer / InResponseTo, another NameID format, a failed status, SHA-1, an attacker's key (its
certificate in ``KeyInfo``), another encryption algorithm. ``publish``/``sign_with`` model a
certificate rollover. XSW and other structural attacks are made by tests on the lxml tree of a
genuine response (``response_xml``).

Use it in-process (``idp.mount(respx_router)``, ``idp.browse(url)`` plays the browser) or on
loopback (``serve_on_loopback()``: uvicorn in a thread, for browser tests; ``SamlTestIdP(base)``
puts it at another address). ``ServiceProvider(respx_router)`` is the unit-test harness: the
``saml`` connector wired to such an IdP, sharing a ``ManualClock`` that starts at the real time
(pysaml2 stamps real times).
"""

from __future__ import annotations

import base64
import datetime
import functools
import html
import re
import secrets
import ssl
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import respx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from saml2 import BINDING_HTTP_REDIRECT, saml, samlp
from saml2.config import IdPConfig
from saml2.metadata import entity_descriptor
from saml2.saml import NAME_FORMAT_URI, NAMEID_FORMAT_PERSISTENT
from saml2.server import Server
from saml2.sigver import pre_encrypt_assertion, pre_encryption_part, pre_signature_part
from saml2.xmldsig import DIGEST_SHA1, DIGEST_SHA256, SIG_RSA_SHA1, SIG_RSA_SHA256
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from idp_connectors.base import BeginRequest, Callback, ConnectorContext, Redirect, UpstreamIdentity
from idp_connectors.saml.config import SamlConfig
from idp_connectors.saml.connector import SamlConnector
from tests.support.memory_state import ManualClock, MemoryState
from tests.support.oidc_idp import free_port, serve_in_thread

IDP_BASE = "https://idp.fabrikam.test"
IDP_ENTITY_ID = f"{IDP_BASE}/metadata"
METADATA_URL = f"{IDP_BASE}/metadata"
SSO_URL = f"{IDP_BASE}/sso"
CALLBACK = "https://gateway.test/callback/fabrikam"
SP_ENTITY_ID = f"{CALLBACK}/metadata"
EMAIL = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress"
GIVEN_NAME = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname"
SURNAME = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname"
DISPLAY_NAME = "http://schemas.microsoft.com/identity/claims/displayname"
PASSWORD = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
AES256_GCM = "http://www.w3.org/2009/xmlenc11#aes256-gcm"
AES128_CBC = "http://www.w3.org/2001/04/xmlenc#aes128-cbc"
TRIPLE_DES = "http://www.w3.org/2001/04/xmlenc#tripledes-cbc"
RSA_OAEP_MGF1P = "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"
RSA_1_5 = "http://www.w3.org/2001/04/xmlenc#rsa-1_5"
SESSION_KEYS = {AES256_GCM: "aes-256", AES128_CBC: "aes-128", TRIPLE_DES: "des-192"}

REMOVE = object()
"""A knob value that removes the element or attribute."""

_KEYS_DIR = tempfile.TemporaryDirectory(prefix="saml-test-keys-")


@dataclass(frozen=True)
class KeyPair:
    """An RSA key and its self-signed certificate, also as PEM files (pysaml2 and the config want paths)."""

    name: str
    key: rsa.RSAPrivateKey
    certificate: x509.Certificate
    key_file: str
    cert_file: str

    @property
    def cert_body(self) -> str:
        """The base64 DER, as in a metadata ``ds:X509Certificate``."""
        der = self.certificate.public_bytes(serialization.Encoding.DER)
        return base64.b64encode(der).decode("ascii")


@functools.cache
def key_pair(name: str, bits: int = 2048) -> KeyPair:
    """A key pair made once per session under ``name`` (``idp``, ``idp-next``, ``sp``, ``attacker``...)."""
    key = rsa.generate_private_key(65537, bits)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name}.test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    directory = Path(_KEYS_DIR.name)
    key_file, cert_file = directory / f"{name}-{bits}.key.pem", directory / f"{name}-{bits}.cert.pem"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return KeyPair(name, key, certificate, str(key_file), str(cert_file))


@dataclass
class SamlUser:
    name_id: str = "7f3c9a2e-5b1d-4e8f-a6c0-fabrikam-0001"
    attributes: dict[str, list[str]] = field(
        default_factory=lambda: {
            EMAIL: ["alice@fabrikam.example"],
            GIVEN_NAME: ["Alice"],
            SURNAME: ["Example"],
            DISPLAY_NAME: ["Alice Example"],
        }
    )


@dataclass
class Knobs:
    """Misbehaviour switches; the defaults are a well-behaved IdP."""

    sign_assertion: bool = True
    sign_response: bool = True
    encrypt: bool = False
    data_encryption: str = AES256_GCM
    key_transport: str = RSA_OAEP_MGF1P
    sha1: bool = False
    attacker_key: bool = False
    """Sign with a key the metadata does not list; its certificate goes into ``KeyInfo``."""
    want_authn_requests_signed: bool = False
    name_id_format: str = NAMEID_FORMAT_PERSISTENT
    authn_context: str = PASSWORD
    status: str | None = None
    """A second-level StatusCode (e.g. ``samlp.STATUS_AUTHN_FAILED``): a Responder error Response."""
    audience: Any = None
    recipient: Any = None
    destination: Any = None
    issuer: Any = None
    in_response_to: Any = None
    """The Response's ``InResponseTo`` (``REMOVE``: unsolicited)."""
    confirmation_in_response_to: Any = None
    """The ``SubjectConfirmationData``'s ``InResponseTo``."""
    attributes: dict[str, Any] = field(default_factory=dict)
    """Attribute overrides (``REMOVE`` deletes one)."""
    edit_assertion: Callable[[saml.Assertion], None] | None = None
    """Changes the pysaml2 assertion object before it is signed (anything the knobs above miss)."""


@dataclass
class PostForm:
    action: str
    fields: dict[str, str]


_FORM = re.compile(r'<form method="post" action="([^"]*)">')
_INPUT = re.compile(r'<input type="hidden" name="([^"]*)" value="([^"]*)"/>')


class SamlTestIdP:
    """pysaml2 as the IdP at ``base``: entityID and metadata at ``{base}/metadata``, SSO at ``{base}/sso``."""

    def __init__(self, base: str = IDP_BASE) -> None:
        self.base = base
        self.entity_id = f"{base}/metadata"
        self.metadata_url = f"{base}/metadata"
        self.sso_url = f"{base}/sso"
        self.knobs = Knobs()
        self.user = SamlUser()
        self.published: list[KeyPair] = [key_pair("idp")]
        self.signer: KeyPair = key_pair("idp")
        self.sp_metadata: str | None = None
        self.requests: list[samlp.AuthnRequest] = []
        self.sp_entity_id = SP_ENTITY_ID
        """The audience: the last AuthnRequest's Issuer."""
        self._server: Server | None = None
        self.app = Starlette(routes=[Route("/metadata", self.metadata), Route("/sso", self.sso)])

    # -- configuration -------------------------------------------------------------------------

    def _config(self) -> IdPConfig:
        settings: dict[str, Any] = {
            "entityid": self.entity_id,
            "cert_file": self.published[0].cert_file,
            "additional_cert_files": [pair.cert_file for pair in self.published[1:]],
            "xmlsec_binary": "/usr/bin/xmlsec1",
            "accepted_time_diff": 120,
            "service": {
                "idp": {
                    "endpoints": {"single_sign_on_service": [(self.sso_url, BINDING_HTTP_REDIRECT)]},
                    "name_id_format": [NAMEID_FORMAT_PERSISTENT],
                    "want_authn_requests_signed": self.knobs.want_authn_requests_signed,
                    "policy": {"default": {"lifetime": {"minutes": 5}, "name_form": NAME_FORMAT_URI}},
                }
            },
        }
        if self.knobs.want_authn_requests_signed:
            # pysaml2 builds its HTTP-Redirect signature checker from key_file (loading an RSA key
            # costs ~50 ms, so only when needed; signatures name the signer's key file anyway).
            settings["key_file"] = self.signer.key_file
        if self.sp_metadata is not None:
            settings["metadata"] = {"inline": [self.sp_metadata]}
        config = IdPConfig()
        config.load(settings)
        return config

    @property
    def server(self) -> Server:
        if self._server is None:
            self._server = Server(config=self._config())
        return self._server

    def trust_sp(self, sp_metadata: bytes) -> None:
        """Load the SP's metadata (pysaml2 reads the ACS and the request-signing key from it)."""
        self.sp_metadata = sp_metadata.decode("utf-8")
        self._server = None

    def publish(self, *pairs: str | KeyPair) -> None:
        """Publish these key pairs' certificates (by name or pair) as the signing certificates."""
        self.published = [pair if isinstance(pair, KeyPair) else key_pair(pair) for pair in pairs]
        self._server = None

    def sign_with(self, name: str) -> None:
        self.signer = key_pair(name)
        self._server = None

    def require_signed_requests(self) -> None:
        self.knobs.want_authn_requests_signed = True
        self._server = None

    def metadata_xml(self) -> bytes:
        return str(entity_descriptor(self._config())).encode("utf-8")

    # -- endpoints ------------------------------------------------------------------------------

    async def metadata(self, request: Request) -> Response:
        return Response(self.metadata_xml(), media_type="application/samlmetadata+xml")

    async def sso(self, request: Request) -> Response:
        query = request.query_params
        try:
            parsed = self.server.parse_authn_request(
                query["SAMLRequest"],
                BINDING_HTTP_REDIRECT,
                relay_state=query.get("RelayState"),
                sigalg=query.get("SigAlg"),
                signature=query.get("Signature"),
            )
        except Exception as exc:  # the test sees pysaml2's refusal
            return PlainTextResponse(f"refused: {type(exc).__name__}: {exc}", status_code=400)
        if parsed is None:
            return PlainTextResponse("refused: the request did not verify", status_code=400)
        message: samlp.AuthnRequest = parsed.message
        self.requests.append(message)
        self.sp_entity_id = message.issuer.text
        xml = self.response_xml(message.id, message.assertion_consumer_service_url)
        return HTMLResponse(post_form(message.assertion_consumer_service_url, xml, query.get("RelayState")))

    # -- responses ------------------------------------------------------------------------------

    def _identity(self) -> dict[str, list[str]]:
        identity = {name: list(values) for name, values in self.user.attributes.items()}
        for name, value in self.knobs.attributes.items():
            if value is REMOVE:
                identity.pop(name, None)
            else:
                identity[name] = value if isinstance(value, list) else [value]
        return identity

    def _content(self, request_id: str | None, acs: str) -> samlp.Response:
        knobs, server = self.knobs, self.server
        if knobs.status is not None:
            return server.create_error_response(
                request_id, acs, (knobs.status, "refused in a test"), sign=False
            )
        response = server.create_authn_response(
            self._identity(),
            in_response_to=request_id,
            destination=acs,
            sp_entity_id=self.sp_entity_id,
            name_id=saml.NameID(format=knobs.name_id_format, text=self.user.name_id),
            authn={"class_ref": knobs.authn_context, "authn_instant": int(time.time())},
            sign_response=False,
            sign_assertion=False,
            encrypt_assertion=False,
        )
        assert isinstance(response, samlp.Response)
        assertion = response.assertion
        data = assertion.subject.subject_confirmation[0].subject_confirmation_data
        _set(data, "recipient", knobs.recipient)
        _set(data, "in_response_to", knobs.confirmation_in_response_to)
        _set(assertion.conditions.audience_restriction[0].audience[0], "text", knobs.audience)
        if knobs.issuer is not None:
            assertion.issuer.text = knobs.issuer
        if knobs.edit_assertion is not None:
            knobs.edit_assertion(assertion)
        return response

    def response_xml(self, request_id: str | None, acs: str) -> str:
        """A complete answer to request ``request_id``: content, then signatures and encryption."""
        knobs = self.knobs
        response = self._content(request_id, acs)
        _set(response, "destination", knobs.destination)
        _set(response, "in_response_to", knobs.in_response_to)
        if knobs.issuer is not None:
            response.issuer.text = knobs.issuer
        signer = key_pair("attacker") if knobs.attacker_key else self.signer
        sign_alg, digest_alg = (SIG_RSA_SHA1, DIGEST_SHA1) if knobs.sha1 else (SIG_RSA_SHA256, DIGEST_SHA256)
        assertion: Any = response.assertion or None  # an error Response has an empty list
        sign_assertion = knobs.sign_assertion and assertion is not None
        if sign_assertion:
            assertion.signature = pre_signature_part(assertion.id, signer.cert_body, 1, digest_alg, sign_alg)
        if knobs.sign_response:
            response.signature = pre_signature_part(response.id, signer.cert_body, 2, digest_alg, sign_alg)
        if knobs.encrypt and assertion is not None:
            tag = assertion._to_element_tree().tag
            xml = pre_encrypt_assertion(
                response
            ).get_xml_string_with_self_contained_assertion_within_encrypted_assertion(tag)
        else:
            xml = response.to_string().decode("utf-8")
        sec = self.server.sec
        if sign_assertion:
            xml = sec.sign_statement(
                xml, _class(saml.Assertion), key_file=signer.key_file, node_id=assertion.id
            )
        if knobs.encrypt and assertion is not None:
            sp = key_pair("sp")
            template = pre_encryption_part(
                msg_enc=knobs.data_encryption, key_enc=knobs.key_transport, encrypt_cert=sp.cert_body
            )
            xml = sec.encrypt_assertion(xml, sp.cert_file, str(template), SESSION_KEYS[knobs.data_encryption])
        if knobs.sign_response:
            xml = sec.sign_statement(
                xml, _class(samlp.Response), key_file=signer.key_file, node_id=response.id
            )
        return xml if isinstance(xml, str) else xml.decode("utf-8")

    # -- test plumbing --------------------------------------------------------------------------

    def mount(self, router: respx.MockRouter) -> dict[str, respx.Route]:
        """Route the IdP's URLs on ``router`` to the app; the routes by name (to count calls)."""
        handler = respx.ASGIHandler(self.app)
        return {
            "metadata": router.route(url=self.metadata_url).mock(side_effect=handler),
            "sso": router.route(url__startswith=self.sso_url).mock(side_effect=handler),
        }

    async def browse(self, url: str) -> PostForm:
        """Play the browser at the SSO ``url``: the form the IdP's page would auto-submit."""
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app)) as browser:
            response = await browser.get(url)
        if response.status_code != 200:
            raise AssertionError(f"the IdP refused: {response.status_code} {response.text[:300]}")
        action = _FORM.search(response.text)
        assert action is not None, response.text[:300]
        fields = {html.unescape(name): html.unescape(value) for name, value in _INPUT.findall(response.text)}
        return PostForm(html.unescape(action.group(1)), fields)


@contextmanager
def serve_on_loopback(host: str = "127.0.0.1", hostname: str | None = None) -> Iterator[SamlTestIdP]:
    """A ``SamlTestIdP`` served by uvicorn in a thread at ``http://{hostname or host}:PORT`` (for
    browser tests; give ``hostname`` to keep the IdP on another site than the gateway, with
    Chromium's ``--host-resolver-rules``). Call ``trust_sp`` with the gateway's SP metadata."""
    port = free_port(host)
    idp = SamlTestIdP(f"http://{hostname or host}:{port}")
    with serve_in_thread(idp.app, host, port, "saml-idp"):
        yield idp


def _class(cls: Any) -> str:
    return f"{cls.c_namespace}:{cls.c_tag}"


def _set(instance: Any, name: str, value: Any) -> None:
    if value is REMOVE:
        setattr(instance, name, None)
    elif value is not None:
        setattr(instance, name, value)


def post_form(action: str, xml: str, relay_state: str | None) -> str:
    """The HTTP-POST binding page (Bindings 3.5.4): a form that submits itself."""
    fields = {"SAMLResponse": base64.b64encode(xml.encode("utf-8")).decode("ascii")}
    if relay_state is not None:
        fields["RelayState"] = relay_state
    inputs = "".join(
        f'<input type="hidden" name="{html.escape(name)}" value="{html.escape(value)}"/>'
        for name, value in fields.items()
    )
    return (
        '<!doctype html><html><body onload="document.forms[0].submit()">'
        f'<form method="post" action="{html.escape(action)}">{inputs}'
        '<noscript><button type="submit">Continue</button></noscript></form></body></html>'
    )


@functools.cache
def _tls_context() -> ssl.SSLContext:
    return ssl.create_default_context()


class NoMail:
    def send(self, message: object) -> None:
        raise AssertionError("the saml connector sends no mail")


class ServiceProvider:
    """Unit-test harness: a ``SamlConnector`` wired to a ``SamlTestIdP`` through a respx router
    (or, with ``router=None``, to an ``idp`` served on loopback).

    The connector's clock is a ``ManualClock`` starting at the real time; its state is a
    ``MemoryState`` whose only entries may be the replay cache's.
    """

    def __init__(
        self, router: respx.MockRouter | None, *, idp: SamlTestIdP | None = None, **overrides: Any
    ) -> None:
        self.clock = ManualClock(time.time())
        self.idp = idp or SamlTestIdP()
        self.routes = self.idp.mount(router) if router is not None else {}
        self.state = MemoryState(self.clock)
        self.http = httpx.AsyncClient(verify=_tls_context())  # respx answers; the context is reused
        self.configure(**overrides)

    def configure(self, **overrides: Any) -> SamlConnector:
        """A new connector (empty caches) with the default test config plus ``overrides``."""
        sp = key_pair("sp")
        settings: dict[str, Any] = {
            "id": "fabrikam",
            "type": "saml",
            "domains": ["fabrikam.example"],
            "idp_metadata_url": self.idp.metadata_url,
            "sp_key_file": sp.key_file,
            "sp_certificate_file": sp.cert_file,
        }
        settings.update(overrides)
        self.config = SamlConfig.model_validate({k: v for k, v in settings.items() if v is not REMOVE})
        ctx = ConnectorContext(
            state=self.state,
            mail=NoMail(),
            keyed_hash=lambda purpose, value: f"{purpose}:{value}",
            tenant_name="Contoso",
            http=self.http,
            clock=self.clock,
        )
        self.connector = self.config.open(ctx)
        self.idp.trust_sp(self.connector.metadata(CALLBACK)[0])
        return self.connector

    async def begin(self, **request: Any) -> Redirect:
        request.setdefault("state", secrets.token_urlsafe(32))
        request.setdefault("callback_url", CALLBACK)
        return await self.connector.begin(BeginRequest(**request))

    async def callback(self, **request: Any) -> Callback:
        """``begin``, then the browser at the IdP: the callback ``complete`` would get."""
        redirect = await self.begin(**request)
        form = await self.idp.browse(redirect.url)
        return Callback(params=form.fields, state=redirect.state, callback_url=form.action)

    async def sign_in(self, **request: Any) -> UpstreamIdentity:
        return await self.connector.complete(await self.callback(**request))

    def calls(self, name: str) -> int:
        return int(self.routes[name].call_count)

    def replay_cache(self) -> dict[str, Any]:
        return self.state.live("saml-assertion")

    def assert_nothing_persisted(self) -> None:
        assert self.state.entries == {} and self.state.counters == {}
