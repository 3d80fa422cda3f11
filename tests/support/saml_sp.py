"""A real SAML 2.0 service provider for tests: pysaml2's ``Saml2Client`` on the in-process crypto backend.

``SamlTestSP(base, idp_metadata_url=...)`` is a small Starlette app (``.app``) whose entityID is
``{base}/metadata`` and whose ACS is ``{base}/acs`` (HTTP-POST):

- ``GET /login``: ``prepare_for_authenticate`` toward the gateway (HTTP-Redirect, signed when
  ``knobs.sign_requests``); query flags ``force_authn=1``, ``mfa=1`` (a ``RequestedAuthnContext``
  naming REFEDS MFA), ``relay_state=...``; answers the 303 to the gateway's ``/saml2/sso``.
- ``POST /acs``: ``parse_authn_request_response`` against the outstanding requests, with the
  gateway's IdP metadata fetched from ``idp_metadata_url`` (``/saml2/metadata``) on first use;
  shows the NameID, its format, the AuthnContextClassRef and every attribute (names as sent) as
  a page, and records a ``Received`` in ``sp.received``. A response pysaml2 refuses is a 400 page
  (``#refused``) and lands in ``sp.refused``. An answered request id is no longer outstanding,
  so a replayed response is refused.
- ``GET /metadata``: its SP metadata (signing and encryption certificate: ``key_pair("sp")``).

pysaml2 checks what an SP must: the signatures it wants (``knobs.want_assertions_signed`` /
``want_response_signed``) with the certificates of the IdP metadata only, Destination /
Recipient = the ACS, Audience = its entityID, InResponseTo = an outstanding request (unless
``knobs.allow_unsolicited``), the time window, and the SAML schema; it decrypts an encrypted
assertion with its key.

Use it in-process (``httpx.ASGITransport(app=sp.app)``, with ``http=`` an httpx client that reaches
the gateway app) or on loopback (``serve_on_loopback()``: uvicorn in a thread, for browser tests;
``name`` serves it over https under a name mapped with Chromium's ``--host-resolver-rules``).
``authn_request_url`` / ``consume`` are the same steps without HTTP; ``authn_request_xml`` and
``redirect_url`` craft Redirect-binding URLs by hand (any parameter order, any ``SigAlg``, signed
with any key) for the bad-input tests; ``post_form_of(html)`` reads an auto-POST page.
"""

from __future__ import annotations

import base64
import copy
import html
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote_plus

import httpx
import lxml.html
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from lxml import etree
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.client import Saml2Client
from saml2.config import SPConfig
from saml2.metadata import entity_descriptor
from saml2.pack import deflate_and_base64_encode
from saml2.saml import NAMESPACE as SAML_ASSERTION
from saml2.saml import AuthnContextClassRef
from saml2.samlp import RequestedAuthnContext
from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from idp_connectors.xmlsecurity.pysaml2_backend import PYSAML2_CONFIG, use_in_process_crypto
from tests.support.https_loopback import serve_https
from tests.support.oidc_idp import free_port, serve_in_thread
from tests.support.saml_idp import KeyPair, key_pair

SP_BASE = "https://sp.northwind.test"
REFEDS_MFA = "https://refeds.org/profile/mfa"
REFEDS_SFA = "https://refeds.org/profile/sfa"
SIGNATURE_HASHES: dict[str, hashes.HashAlgorithm] = {
    SIG_RSA_SHA256: hashes.SHA256(),
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512": hashes.SHA512(),
    "http://www.w3.org/2000/09/xmldsig#rsa-sha1": hashes.SHA1(),  # only to be refused
}
REDIRECT_ORDER = ("SAMLRequest", "RelayState", "SigAlg")
"""The order the Redirect binding signs its parameters in (Bindings 3.4.4.1)."""


@dataclass(frozen=True)
class SpKnobs:
    """How the SP is configured; the defaults are a plain SP that wants signed assertions."""

    sign_requests: bool = False
    want_assertions_signed: bool = True
    want_response_signed: bool = False
    allow_unsolicited: bool = False
    """Accept an IdP-initiated (unsolicited) response."""


@dataclass(frozen=True)
class Received:
    """What one accepted response told the SP."""

    name_id: str
    name_id_format: str
    attributes: dict[str, list[str]]
    attribute_formats: dict[str, str]
    authn_context: str
    session_index: str | None
    in_response_to: str | None
    relay_state: str | None
    issuer: str
    assertion_signed: bool
    response_signed: bool
    encrypted: bool
    """The Response as sent held an EncryptedAssertion (which the SP decrypted)."""
    xml: str
    """The Response as sent."""


@dataclass(frozen=True)
class AuthnRequestOut:
    request_id: str
    url: str


@dataclass(frozen=True)
class PostForm:
    """An auto-POST form: where it goes and its hidden fields."""

    action: str
    fields: dict[str, str]


class SamlTestSP:
    """pysaml2 as the SP at ``base`` (see the module docstring)."""

    def __init__(
        self,
        base: str = SP_BASE,
        *,
        idp_metadata_url: str = "",
        http: httpx.AsyncClient | None = None,
        keys: KeyPair | None = None,
        knobs: SpKnobs | None = None,
    ) -> None:
        self.base = base
        self.entity_id = f"{base}/metadata"
        self.acs_url = f"{base}/acs"
        self.login_url = f"{base}/login"
        self.idp_metadata_url = idp_metadata_url
        self.http = http
        self.keys = keys or key_pair("sp")
        self.knobs = knobs or SpKnobs()
        self.idp_metadata: str | None = None
        self.outstanding: dict[str, str] = {}
        self.received: list[Received] = []
        self.refused: list[str] = []
        self.address = ""
        """``HOST:PORT`` it is served at, once ``serve_on_loopback`` serves it."""
        self._client: Saml2Client | None = None
        self._lock = threading.Lock()
        self.app = Starlette(
            routes=[
                Route("/login", self.login),
                Route("/acs", self.acs, methods=["POST"]),
                Route("/metadata", self.metadata),
            ]
        )

    # -- configuration -------------------------------------------------------------------------

    def configure(self, **changes: Any) -> None:
        """Change knobs (``SpKnobs`` fields); the next message uses a fresh client."""
        self.knobs = replace(self.knobs, **changes)
        self._client = None

    def _settings(self) -> dict[str, Any]:
        knobs = self.knobs
        settings: dict[str, Any] = {
            "entityid": self.entity_id,
            "key_file": self.keys.key_file,
            "cert_file": self.keys.cert_file,
            "encryption_keypairs": [{"key_file": self.keys.key_file, "cert_file": self.keys.cert_file}],
            "accepted_time_diff": 60,
            "allow_unknown_attributes": True,
            "service": {
                "sp": {
                    "signing_algorithm": SIG_RSA_SHA256,
                    "digest_algorithm": DIGEST_SHA256,
                    "endpoints": {"assertion_consumer_service": [(self.acs_url, BINDING_HTTP_POST)]},
                    "allow_unsolicited": knobs.allow_unsolicited,
                    "want_assertions_signed": knobs.want_assertions_signed,
                    "want_response_signed": knobs.want_response_signed,
                    "authn_requests_signed": knobs.sign_requests,
                }
            },
            **PYSAML2_CONFIG,
        }
        if self.idp_metadata is not None:
            settings["metadata"] = {"inline": [self.idp_metadata]}
        return settings

    def _config(self) -> SPConfig:
        config = SPConfig()
        config.load(copy.deepcopy(self._settings()))
        return config

    def metadata_xml(self) -> bytes:
        return str(entity_descriptor(self._config())).encode("utf-8")

    async def load_idp_metadata(self, *, refresh: bool = False) -> str:
        """The gateway's IdP metadata, fetched from ``idp_metadata_url`` once (or again with ``refresh``)."""
        if self.idp_metadata is None or refresh:
            if not self.idp_metadata_url:
                raise RuntimeError("the SP has no idp_metadata_url")
            if self.http is not None:
                answer = await self.http.get(self.idp_metadata_url)
            else:
                async with httpx.AsyncClient(timeout=10) as http:
                    answer = await http.get(self.idp_metadata_url)
            answer.raise_for_status()
            self.idp_metadata = answer.text
            self._client = None
        return self.idp_metadata

    @property
    def client(self) -> Saml2Client:
        if self.idp_metadata is None:
            raise RuntimeError("load_idp_metadata() first")
        if self._client is None:
            client = Saml2Client(config=self._config())
            use_in_process_crypto(client)
            self._client = client
        return self._client

    @property
    def idp_entity_id(self) -> str:
        [entity_id] = list(self.client.metadata.identity_providers())
        return str(entity_id)

    @property
    def sso_url(self) -> str:
        """The gateway's HTTP-Redirect SingleSignOnService, from its metadata."""
        [service] = self.client.metadata.single_sign_on_service(self.idp_entity_id, BINDING_HTTP_REDIRECT)
        return str(service["location"])

    # -- messages --------------------------------------------------------------------------------

    def _request_options(self, *, force_authn: bool, mfa: bool) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if force_authn:
            options["force_authn"] = "true"
        if mfa:
            options["requested_authn_context"] = RequestedAuthnContext(
                authn_context_class_ref=[AuthnContextClassRef(text=REFEDS_MFA)], comparison="exact"
            )
        return options

    async def authn_request_url(
        self, *, relay_state: str = "", force_authn: bool = False, mfa: bool = False
    ) -> AuthnRequestOut:
        """A fresh AuthnRequest as the HTTP-Redirect URL to the gateway (signed per the knobs)."""
        await self.load_idp_metadata()
        sign = self.knobs.sign_requests
        with self._lock:
            request_id, info = self.client.prepare_for_authenticate(
                entityid=self.idp_entity_id,
                relay_state=relay_state,
                binding=BINDING_HTTP_REDIRECT,
                sign=sign,
                sigalg=SIG_RSA_SHA256 if sign else None,
                digest_alg=DIGEST_SHA256 if sign else None,
                **self._request_options(force_authn=force_authn, mfa=mfa),
            )
            self.outstanding[str(request_id)] = relay_state or "/"
        location = dict(info["headers"])["Location"]
        return AuthnRequestOut(str(request_id), str(location))

    async def authn_request_xml(
        self, *, force_authn: bool = False, mfa: bool = False, **attributes: Any
    ) -> tuple[str, str]:
        """An unsigned AuthnRequest as XML (``attributes``: pysaml2 keywords such as
        ``assertion_consumer_service_url``), registered as outstanding: ``(request_id, xml)``."""
        await self.load_idp_metadata()
        with self._lock:
            request_id, message = self.client.create_authn_request(
                self.sso_url,
                sign=False,
                **self._request_options(force_authn=force_authn, mfa=mfa),
                **attributes,
            )
            self.outstanding[str(request_id)] = "/"
        return str(request_id), str(message)

    def redirect_url(
        self,
        xml: str,
        *,
        relay_state: str | None = None,
        sign: bool = False,
        sig_alg: str = SIG_RSA_SHA256,
        declared_sig_alg: str | None = None,
        signed_order: Sequence[str] = REDIRECT_ORDER,
        url_order: Sequence[str] | None = None,
        key: rsa.RSAPrivateKey | None = None,
        destination: str | None = None,
    ) -> str:
        """An HTTP-Redirect URL for ``xml`` built by hand.

        The signature (``sign``) is made with ``sig_alg`` and ``key`` (default: the SP's key) over
        the parameters in ``signed_order``; the URL states ``declared_sig_alg`` (default:
        ``sig_alg``) and lists its parameters in ``url_order`` (default: ``signed_order`` then
        ``Signature``). Values are encoded as pysaml2 encodes them (``quote_plus``).
        """
        encoded = {"SAMLRequest": quote_plus(deflate_and_base64_encode(xml))}
        if relay_state is not None:
            encoded["RelayState"] = quote_plus(relay_state)
        if sign:
            encoded["SigAlg"] = quote_plus(sig_alg)
            octets = "&".join(f"{name}={encoded[name]}" for name in signed_order if name in encoded)
            signer = key or self.keys.key
            signature = signer.sign(octets.encode("ascii"), padding.PKCS1v15(), SIGNATURE_HASHES[sig_alg])
            encoded["SigAlg"] = quote_plus(declared_sig_alg or sig_alg)
            encoded["Signature"] = quote_plus(base64.b64encode(signature).decode("ascii"))
        order = list(url_order or [*signed_order, "Signature"])
        order += [name for name in encoded if name not in order]
        query = "&".join(f"{name}={encoded[name]}" for name in order if name in encoded)
        return f"{destination or self.sso_url}?{query}"

    def consume(self, fields: dict[str, str]) -> Received:
        """Check a POSTed SAMLResponse as pysaml2 does; raises what pysaml2 raises (or ``ValueError``)."""
        saml_response = fields.get("SAMLResponse")
        if not saml_response:
            raise ValueError("no SAMLResponse")
        with self._lock:
            outstanding = dict(self.outstanding)
            parsed = self.client.parse_authn_request_response(
                saml_response, BINDING_HTTP_POST, outstanding=outstanding
            )
            if parsed is None:
                raise ValueError("pysaml2 could not read the response")
            received = _received(parsed, base64.b64decode(saml_response), fields.get("RelayState"))
            if received.in_response_to is not None:
                self.outstanding.pop(received.in_response_to, None)
        self.received.append(received)
        return received

    # -- endpoints ------------------------------------------------------------------------------

    async def login(self, request: Request) -> Response:
        flags = request.query_params
        out = await self.authn_request_url(
            relay_state=flags.get("relay_state", ""),
            force_authn=flags.get("force_authn") == "1",
            mfa=flags.get("mfa") == "1",
        )
        return RedirectResponse(out.url, status_code=303)

    async def acs(self, request: Request) -> Response:
        form = await request.form()
        fields = {name: value for name, value in form.items() if isinstance(value, str)}
        try:
            await self.load_idp_metadata()
            received = self.consume(fields)
        except Exception as exc:  # the page shows what pysaml2 refused; the test reads sp.refused
            reason = f"{type(exc).__name__}: {exc}"
            self.refused.append(reason)
            return HTMLResponse(
                _page("Refused", f'<p id="refused">{html.escape(reason)}</p>'), status_code=400
            )
        return HTMLResponse(_page("Signed in", _result(received)))

    async def metadata(self, request: Request) -> Response:
        return Response(self.metadata_xml(), media_type="application/samlmetadata+xml")


def _text(element: Any) -> str:
    return str(getattr(element, "text", "") or "").strip()


def _encrypted(xml: bytes) -> bool:
    """Whether the Response as sent holds an EncryptedAssertion (pysaml2 replaces it once decrypted)."""
    root = etree.fromstring(xml, etree.XMLParser(resolve_entities=False, no_network=True))
    return any(child.tag == f"{{{SAML_ASSERTION}}}EncryptedAssertion" for child in root)


def _received(parsed: Any, xml: bytes, relay_state: str | None) -> Received:
    assertion = parsed.assertion
    attributes: dict[str, list[str]] = {}
    formats: dict[str, str] = {}
    for statement in assertion.attribute_statement:
        for attribute in statement.attribute:
            attributes[attribute.name] = [_text(value) for value in attribute.attribute_value]
            formats[attribute.name] = attribute.name_format or ""
    [(authn_context, _, _)] = parsed.authn_info()
    session_index = None
    for statement in assertion.authn_statement:
        session_index = statement.session_index
    name_id = parsed.name_id
    return Received(
        name_id=_text(name_id),
        name_id_format=str(name_id.format or ""),
        attributes=attributes,
        attribute_formats=formats,
        authn_context=str(authn_context),
        session_index=session_index,
        in_response_to=parsed.in_response_to,
        relay_state=relay_state,
        issuer=_text(parsed.response.issuer),
        assertion_signed=assertion.signature is not None,
        response_signed=parsed.response.signature is not None,
        encrypted=_encrypted(xml),
        xml=xml.decode("utf-8"),
    )


def _page(title: str, body: str) -> str:
    return (
        f"<!doctype html><html><head><title>{html.escape(title)}</title></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )


def _result(received: Received) -> str:
    rows = "".join(
        f'<tr><th scope="row">{html.escape(name)}</th><td>{html.escape(" | ".join(values))}</td></tr>'
        for name, values in received.attributes.items()
    )
    return (
        "<dl>"
        f'<dt>NameID</dt><dd id="name-id">{html.escape(received.name_id)}</dd>'
        f'<dt>Format</dt><dd id="name-id-format">{html.escape(received.name_id_format)}</dd>'
        f'<dt>AuthnContextClassRef</dt><dd id="authn-context">{html.escape(received.authn_context)}</dd>'
        f'<dt>RelayState</dt><dd id="relay-state">{html.escape(received.relay_state or "")}</dd>'
        "</dl>"
        f'<table id="attributes"><tbody>{rows}</tbody></table>'
    )


def post_form_of(page: str) -> PostForm | None:
    """The first ``method=post`` form of a page with its hidden fields, or None when there is none."""
    if not page.strip():
        return None
    document = lxml.html.fromstring(page)
    for form in document.iter("form"):
        if (form.get("method") or "get").lower() == "post":
            fields = {
                str(field.get("name")): str(field.get("value") or "")
                for field in form.iter("input")
                if field.get("name") and (field.get("type") or "").lower() == "hidden"
            }
            return PostForm(str(form.get("action") or ""), fields)
    return None


@contextmanager
def serve_on_loopback(
    host: str = "127.0.0.1", name: str | None = None, **kwargs: Any
) -> Iterator[SamlTestSP]:
    """A ``SamlTestSP`` served by uvicorn in a thread (browser tests): at ``http://HOST:PORT``, or,
    with ``name``, at ``https://NAME`` over TLS with a throwaway certificate (another site than the
    gateway; map it with Chromium's ``--host-resolver-rules=MAP NAME {sp.address}`` and ignore
    certificate errors). Set ``sp.idp_metadata_url`` to the gateway's ``/saml2/metadata`` first."""
    if name is not None:
        sp = SamlTestSP(f"https://{name}", **kwargs)
        with serve_https(sp.app, names=[name], host=host) as served:
            sp.address = served.address
            yield sp
        return
    port = free_port(host)
    sp = SamlTestSP(f"http://{host}:{port}", **kwargs)
    sp.address = f"{host}:{port}"
    with serve_in_thread(sp.app, host, port, "saml-sp"):
        yield sp
