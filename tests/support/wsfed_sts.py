"""A small but real WS-Federation passive STS for tests, and the connector harness around it.

``PassiveSts(entity_id, base_url, clock=...)`` is a Starlette app (``.app``) with the passive
requestor endpoint ``/adfs/ls/`` and federation metadata at
``/FederationMetadata/2007-06/FederationMetadata.xml``. ``GET /adfs/ls/?wa=wsignin1.0&wtrealm&
wctx&wreply`` checks that the realm is a known relying party and ``wreply`` its registered
address, then answers with an auto-POST form carrying ``wa``, ``wresult`` (an RSTR whose
``RequestedSecurityToken`` holds a SAML 1.1 or SAML 2.0 assertion SIGNED with
``xmlsecurity.sign_enveloped`` by the STS's own RSA-2048 key) and ``wctx``. It honours ``wauth``
(the AuthenticationMethod it reports) and ``wfresh=0`` (a sign-in now); otherwise the user's
sign-in is ``knobs.auth_age`` seconds old. Every request's parameters are kept in ``.requests``.

``sts.knobs`` (``Knobs``) makes it misbehave: SAML version, issuer, audience, AppliesTo,
lifetime, unsigned, an attacker's key (its certificate in ``KeyInfo``), RSA-SHA1, two
assertions, claims removed or replaced, the NameIdentifier, the confirmation method, and hooks
that edit the assertion before signing, the RSTR after signing, or the final ``wresult`` text.

``WsFedRelyingParty(router)`` is the unit-test harness: a ``wsfed`` connector wired to such an
STS (metadata through the respx router), with a shared manual clock and an in-memory state in
which only replay markers may appear. ``post_back(sts, url)`` plays the browser.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from html.parser import HTMLParser
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
import respx
import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lxml import etree
from lxml.etree import _Element
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from idp_connectors.base import BeginRequest, Callback, ConnectorContext, Redirect, UpstreamIdentity
from idp_connectors.wsfed.config import EMAIL, IMMUTABLE_ID, WsFedConfig
from idp_connectors.wsfed.connector import REPLAY_KIND, WsFedConnector
from idp_connectors.xmlsecurity.signature import sign_enveloped
from tests.support.memory_state import ManualClock, MemoryState
from tests.support.oidc_idp import NoMail, free_port, serve_in_thread

SAML1 = "urn:oasis:names:tc:SAML:1.0:assertion"
SAML2 = "urn:oasis:names:tc:SAML:2.0:assertion"
TRUST = "http://schemas.xmlsoap.org/ws/2005/02/trust"
TRUST13 = "http://docs.oasis-open.org/ws-sx/ws-trust/200512"
WSP = "http://schemas.xmlsoap.org/ws/2004/09/policy"
WSA = "http://www.w3.org/2005/08/addressing"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
MD = "urn:oasis:names:tc:SAML:2.0:metadata"
FED = "http://docs.oasis-open.org/wsfed/federation/200706"
DS = "http://www.w3.org/2000/09/xmldsig#"
XSI = "http://www.w3.org/2001/XMLSchema-instance"

PASSWORD_11 = "urn:oasis:names:tc:SAML:1.0:am:password"
PASSWORD_20 = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"

ENTITY_ID = "http://sts.fabrikam.test/adfs/services/trust"
STS_URL = "https://sts.fabrikam.test"
PASSIVE_URL = STS_URL + "/adfs/ls/"
METADATA_URL = STS_URL + "/FederationMetadata/2007-06/FederationMetadata.xml"
CALLBACK = "https://gateway.test/callback/fabrikam"
REALM = CALLBACK + "/metadata"
NOW = 1_700_000_000.0

REMOVE = object()
"""A value for ``Knobs.claims`` / ``applies_to`` that leaves the claim (or element) out."""

Signer = tuple[rsa.RSAPrivateKey, x509.Certificate]


def _q(namespace: str, local: str) -> str:
    return f"{{{namespace}}}{local}"


def make_signer(common_name: str, bits: int = 2048) -> Signer:
    """A fresh RSA key and a self-signed certificate for it."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    start = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=3650 * 2))
        .sign(key, hashes.SHA256())
    )
    return key, certificate


@cache
def shared_signer(role: str) -> Signer:
    """Keys shared by the STSs of one test run (RSA generation is slow): ``sts``, ``attacker``, ..."""
    return make_signer(f"{role}.fabrikam.test")


def certificate_pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")


def instant(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class StsUser:
    immutable_id: str = "uHMx4pQ0Bk6dZ1v3bT5w1g=="
    email: str = "ada@fabrikam.test"
    given_name: str = "Ada"
    surname: str = "Lovelace"
    display_name: str = "Ada Lovelace"
    name_identifier: str = "uHMx4pQ0Bk6dZ1v3bT5w1g=="
    extra: dict[str, str | list[str]] = field(default_factory=dict)

    def claims(self) -> dict[str, str | list[str]]:
        ws = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims"
        return {
            IMMUTABLE_ID: self.immutable_id,
            EMAIL: self.email,
            f"{ws}/givenname": self.given_name,
            f"{ws}/surname": self.surname,
            "http://schemas.microsoft.com/identity/claims/displayname": self.display_name,
            **self.extra,
        }


@dataclass
class Knobs:
    """Misbehaviour switches; the defaults are a well-behaved STS."""

    saml_version: Literal["1.1", "2.0"] = "1.1"
    issuer: str | None = None  # the assertion's Issuer (default: the entity id)
    audience: str | None = None  # default: the wtrealm
    applies_to: Any = None  # None: the wtrealm; REMOVE: no AppliesTo; a string: that address
    not_before_offset: int = -5
    lifetime: int = 3600  # NotOnOrAfter = now + lifetime
    auth_age: int = 0  # the user signed in this long ago (unless wfresh=0)
    ignore_wfresh: bool = False  # reuse the old sign-in even when asked for a fresh one
    unsigned: bool = False
    signer: Literal["sts", "attacker"] = "sts"
    sha1: bool = False
    two_assertions: bool = False
    wstrust13: bool = False  # a WS-Trust 1.3 RequestSecurityTokenResponseCollection
    claims: dict[str, Any] = field(default_factory=dict)  # overrides; REMOVE deletes
    name_identifier: Any = None  # None: the user's; REMOVE: no NameIdentifier / NameID
    name_format: str = PERSISTENT
    confirmation_method: str | None = None  # default: bearer of the SAML version
    recipient: str | None = None  # SAML 2.0 SubjectConfirmationData Recipient (default: wreply)
    authn_method: str | None = None  # default: wauth, else password
    authn_statement: bool = True
    before_signing: Callable[[_Element], None] | None = None  # edits the assertion before signing
    after_signing: Callable[[_Element], None] | None = None  # edits the RSTR root after signing
    mangle: Callable[[str], str] | None = None  # edits the final wresult text


@dataclass
class Issued:
    """One assertion the STS made (to build attacks from its genuine output)."""

    wresult: str
    assertion_id: str


class PassiveSts:
    """One WS-Federation passive STS; ``.app`` is its ASGI app."""

    def __init__(
        self,
        entity_id: str = ENTITY_ID,
        base_url: str = STS_URL,
        *,
        clock: Callable[[], float] = time.time,
        user: StsUser | None = None,
        relying_parties: dict[str, str] | None = None,
    ) -> None:
        self.entity_id = entity_id
        self.base_url = base_url.rstrip("/")
        self.clock = clock
        self.user = user or StsUser()
        self.relying_parties = dict(relying_parties or {REALM: CALLBACK})
        self.knobs = Knobs()
        self.signer: Signer = shared_signer("sts")
        self.published: list[x509.Certificate] = [self.signer[1]]
        """The certificates the metadata lists (a rollover publishes two)."""
        self.requests: list[dict[str, str]] = []
        self.issued: list[Issued] = []
        self.metadata_status = 200
        self.app = Starlette(
            routes=[
                Route("/adfs/ls/", self.sign_in),
                Route("/FederationMetadata/2007-06/FederationMetadata.xml", self.metadata),
            ]
        )

    @property
    def passive_url(self) -> str:
        return self.base_url + "/adfs/ls/"

    @property
    def metadata_url(self) -> str:
        return self.base_url + "/FederationMetadata/2007-06/FederationMetadata.xml"

    def rotate(self, *, keep_old: bool = True) -> Signer:
        """Sign with a new key from now on; the metadata lists it (and the old one with ``keep_old``)."""
        self.signer = make_signer("rolled.fabrikam.test")
        self.published = [*self.published, self.signer[1]] if keep_old else [self.signer[1]]
        return self.signer

    # -- endpoints ------------------------------------------------------------------------------

    async def sign_in(self, request: Request) -> Response:
        params = dict(request.query_params)
        self.requests.append(params)
        realm, wreply = params.get("wtrealm", ""), params.get("wreply", "")
        if params.get("wa") != "wsignin1.0":
            return HTMLResponse("<h1>Unsupported wa</h1>", status_code=400)
        if self.relying_parties.get(realm) != wreply:
            return HTMLResponse("<h1>Unknown relying party or wreply</h1>", status_code=400)
        wresult = self.wresult(
            realm,
            wreply,
            wauth=params.get("wauth"),
            fresh=params.get("wfresh") == "0" and not self.knobs.ignore_wfresh,
        )
        fields = {"wa": "wsignin1.0", "wresult": wresult, "wctx": params.get("wctx")}
        hidden = "".join(
            f'<input type="hidden" name="{name}" value="{html.escape(value, quote=True)}">'
            for name, value in fields.items()
            if value is not None
        )
        return HTMLResponse(
            "<!doctype html><html><head><title>Working...</title></head><body>"
            f'<form method="POST" name="hiddenform" action="{html.escape(wreply, quote=True)}">{hidden}'
            '<noscript><button type="submit">Continue</button></noscript></form>'
            "<script>document.forms[0].submit()</script></body></html>"
        )

    async def metadata(self, request: Request) -> Response:
        if self.metadata_status != 200:
            return Response(b"unavailable", status_code=self.metadata_status)
        return Response(self.metadata_document(), media_type="application/samlmetadata+xml")

    def metadata_document(self) -> bytes:
        root = etree.Element(_q(MD, "EntityDescriptor"), nsmap={None: MD, "fed": FED, "xsi": XSI})
        root.set("ID", "_" + secrets.token_hex(16))
        root.set("entityID", self.entity_id)
        role = etree.SubElement(root, _q(MD, "RoleDescriptor"))
        role.set(_q(XSI, "type"), "fed:SecurityTokenServiceType")
        role.set("protocolSupportEnumeration", FED)
        for certificate in self.published:
            descriptor = etree.SubElement(role, _q(MD, "KeyDescriptor"), use="signing")
            x509_data = etree.SubElement(etree.SubElement(descriptor, _q(DS, "KeyInfo")), _q(DS, "X509Data"))
            der = certificate.public_bytes(serialization.Encoding.DER)
            etree.SubElement(x509_data, _q(DS, "X509Certificate")).text = base64.b64encode(der).decode()
        endpoint = etree.SubElement(role, _q(FED, "PassiveRequestorEndpoint"))
        reference = etree.SubElement(endpoint, _q(WSA, "EndpointReference"), nsmap={"wsa": WSA})
        etree.SubElement(reference, _q(WSA, "Address")).text = self.passive_url
        return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))

    # -- tokens ---------------------------------------------------------------------------------

    def _claims(self) -> dict[str, list[str]]:
        claims: dict[str, Any] = {**self.user.claims(), **self.knobs.claims}
        return {
            name: value if isinstance(value, list) else [value]
            for name, value in claims.items()
            if value is not REMOVE
        }

    def _subject(self, parent: _Element, ns: str, wreply: str, not_on_or_after: float) -> None:
        knobs = self.knobs
        name_identifier = (
            self.user.name_identifier if knobs.name_identifier is None else knobs.name_identifier
        )
        if ns == SAML1:
            subject = etree.SubElement(parent, _q(ns, "Subject"))
            if name_identifier is not REMOVE:
                etree.SubElement(
                    subject, _q(ns, "NameIdentifier"), Format=knobs.name_format
                ).text = name_identifier
            confirmation = etree.SubElement(subject, _q(ns, "SubjectConfirmation"))
            etree.SubElement(confirmation, _q(ns, "ConfirmationMethod")).text = (
                knobs.confirmation_method or "urn:oasis:names:tc:SAML:1.0:cm:bearer"
            )
            return
        subject = etree.SubElement(parent, _q(ns, "Subject"))
        if name_identifier is not REMOVE:
            etree.SubElement(subject, _q(ns, "NameID"), Format=knobs.name_format).text = name_identifier
        confirmation = etree.SubElement(
            subject,
            _q(ns, "SubjectConfirmation"),
            Method=knobs.confirmation_method or "urn:oasis:names:tc:SAML:2.0:cm:bearer",
        )
        etree.SubElement(
            confirmation,
            _q(ns, "SubjectConfirmationData"),
            NotOnOrAfter=instant(not_on_or_after),
            Recipient=knobs.recipient or wreply,
        )

    def assertion(self, realm: str, wreply: str, *, wauth: str | None, fresh: bool) -> _Element:
        """A new, unsigned assertion as the knobs say."""
        knobs = self.knobs
        now = self.clock()
        assertion_id = "_" + secrets.token_hex(16)
        issuer = knobs.issuer or self.entity_id
        audience = knobs.audience or realm
        not_before, not_on_or_after = now + knobs.not_before_offset, now + knobs.lifetime
        auth_instant = instant(now if fresh else now - knobs.auth_age)
        claims = self._claims()
        if knobs.saml_version == "1.1":
            ns = SAML1
            root = etree.Element(_q(ns, "Assertion"), nsmap={"saml": ns})
            for name, value in (
                ("MajorVersion", "1"),
                ("MinorVersion", "1"),
                ("AssertionID", assertion_id),
                ("Issuer", issuer),
                ("IssueInstant", instant(now)),
            ):
                root.set(name, value)
            conditions = etree.SubElement(
                root,
                _q(ns, "Conditions"),
                NotBefore=instant(not_before),
                NotOnOrAfter=instant(not_on_or_after),
            )
            restriction = etree.SubElement(conditions, _q(ns, "AudienceRestrictionCondition"))
            etree.SubElement(restriction, _q(ns, "Audience")).text = audience
            statement = etree.SubElement(root, _q(ns, "AttributeStatement"))
            self._subject(statement, ns, wreply, not_on_or_after)
            for name, values in claims.items():
                namespace, _, local = name.rpartition("/")
                attribute = etree.SubElement(
                    statement, _q(ns, "Attribute"), AttributeName=local, AttributeNamespace=namespace
                )
                for value in values:
                    etree.SubElement(attribute, _q(ns, "AttributeValue")).text = value
            if knobs.authn_statement:
                authn = etree.SubElement(
                    root,
                    _q(ns, "AuthenticationStatement"),
                    AuthenticationMethod=knobs.authn_method or wauth or PASSWORD_11,
                    AuthenticationInstant=auth_instant,
                )
                self._subject(authn, ns, wreply, not_on_or_after)
            return root
        ns = SAML2
        root = etree.Element(_q(ns, "Assertion"), nsmap={None: ns})
        root.set("ID", assertion_id)
        root.set("IssueInstant", instant(now))
        root.set("Version", "2.0")
        etree.SubElement(root, _q(ns, "Issuer")).text = issuer
        self._subject(root, ns, wreply, not_on_or_after)
        conditions = etree.SubElement(
            root, _q(ns, "Conditions"), NotBefore=instant(not_before), NotOnOrAfter=instant(not_on_or_after)
        )
        restriction = etree.SubElement(conditions, _q(ns, "AudienceRestriction"))
        etree.SubElement(restriction, _q(ns, "Audience")).text = audience
        statement = etree.SubElement(root, _q(ns, "AttributeStatement"))
        for name, values in claims.items():
            attribute = etree.SubElement(statement, _q(ns, "Attribute"), Name=name)
            for value in values:
                etree.SubElement(attribute, _q(ns, "AttributeValue")).text = value
        if knobs.authn_statement:
            authn = etree.SubElement(root, _q(ns, "AuthnStatement"), AuthnInstant=auth_instant)
            context = etree.SubElement(authn, _q(ns, "AuthnContext"))
            etree.SubElement(context, _q(ns, "AuthnContextClassRef")).text = (
                knobs.authn_method or wauth or PASSWORD_20
            )
        return root

    def sign(self, assertion: _Element) -> None:
        """Sign in place as the knobs say (the STS key, the attacker's, or RSA-SHA1)."""
        knobs = self.knobs
        key, certificate = shared_signer("attacker") if knobs.signer == "attacker" else self.signer
        saml11 = assertion.tag == _q(SAML1, "Assertion")
        id_attribute = "AssertionID" if saml11 else "ID"
        # SAML 1.1 puts the Signature last, SAML 2.0 right after the Issuer.
        after = assertion[-1].tag if saml11 else _q(SAML2, "Issuer")
        if not knobs.sha1:
            sign_enveloped(assertion, key, certificate, id_attribute=id_attribute, insert_after=after)
            return
        constants = xmlsec.constants
        signature = xmlsec.template.create(
            assertion, constants.TransformExclC14N, constants.TransformRsaSha1, ns="ds"
        )
        assertion.find(after).addnext(signature)
        reference = xmlsec.template.add_reference(
            signature, constants.TransformSha1, uri="#" + assertion.get(id_attribute)
        )
        xmlsec.template.add_transform(reference, constants.TransformEnveloped)
        xmlsec.template.add_transform(reference, constants.TransformExclC14N)
        xmlsec.template.x509_data_add_certificate(
            xmlsec.template.add_x509_data(xmlsec.template.ensure_key_info(signature))
        )
        context = xmlsec.SignatureContext()
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        context.key = xmlsec.Key.from_memory(pem, constants.KeyDataFormatPem)
        context.key.load_cert_from_memory(certificate_pem(certificate), constants.KeyDataFormatCertPem)
        context.register_id(assertion, id_attribute)
        context.sign(signature)

    def envelope(self, assertions: list[_Element], realm: str) -> _Element:
        """The RSTR (or a WS-Trust 1.3 collection of one) holding ``assertions``."""
        knobs = self.knobs
        trust = TRUST13 if knobs.wstrust13 else TRUST
        now = self.clock()
        rstr = etree.Element(_q(trust, "RequestSecurityTokenResponse"), nsmap={"t": trust})
        lifetime = etree.SubElement(rstr, _q(trust, "Lifetime"))
        etree.SubElement(lifetime, _q(WSU, "Created"), nsmap={"wsu": WSU}).text = instant(now)
        etree.SubElement(lifetime, _q(WSU, "Expires"), nsmap={"wsu": WSU}).text = instant(
            now + knobs.lifetime
        )
        if knobs.applies_to is not REMOVE:
            applies = etree.SubElement(rstr, _q(WSP, "AppliesTo"), nsmap={"wsp": WSP})
            reference = etree.SubElement(applies, _q(WSA, "EndpointReference"), nsmap={"wsa": WSA})
            etree.SubElement(reference, _q(WSA, "Address")).text = knobs.applies_to or realm
        holder = etree.SubElement(rstr, _q(trust, "RequestedSecurityToken"))
        for assertion in assertions:
            holder.append(assertion)
        token_type = SAML1 if knobs.saml_version == "1.1" else "urn:oasis:names:tc:SAML:2.0:assertion"
        etree.SubElement(rstr, _q(trust, "TokenType")).text = token_type
        etree.SubElement(rstr, _q(trust, "RequestType")).text = f"{TRUST}/Issue"
        etree.SubElement(
            rstr, _q(trust, "KeyType")
        ).text = "http://schemas.xmlsoap.org/ws/2005/05/identity/NoProofKey"
        if not knobs.wstrust13:
            return rstr
        collection = etree.Element(_q(trust, "RequestSecurityTokenResponseCollection"), nsmap={"t": trust})
        collection.append(rstr)
        return collection

    def wresult(self, realm: str, wreply: str, *, wauth: str | None = None, fresh: bool = False) -> str:
        """A complete ``wresult`` value as the knobs say."""
        knobs = self.knobs
        count = 2 if knobs.two_assertions else 1
        assertions = [self.assertion(realm, wreply, wauth=wauth, fresh=fresh) for _ in range(count)]
        for assertion in assertions:
            if knobs.before_signing is not None:
                knobs.before_signing(assertion)
        root = self.envelope(assertions, realm)
        if not knobs.unsigned:
            for assertion in assertions:
                self.sign(assertion)
        if knobs.after_signing is not None:
            knobs.after_signing(root)
        text = str(etree.tostring(root, encoding="unicode"))
        if knobs.mangle is not None:
            text = knobs.mangle(text)
        first = assertions[0]
        self.issued.append(Issued(text, str(first.get("AssertionID") or first.get("ID"))))
        return text


class _Form(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "form":
            self.action = values.get("action")
        elif tag == "input" and values.get("name"):
            self.fields[str(values["name"])] = values.get("value") or ""


def parse_form(page: str) -> dict[str, str]:
    """The fields of the STS's auto-POST form."""
    return _form(page)[1]


def _form(page: str) -> tuple[str, dict[str, str]]:
    form = _Form()
    form.feed(page)
    if form.action is None:
        raise AssertionError("the STS answered without a form")
    return form.action, form.fields


async def post_back(sts: PassiveSts, url: str) -> tuple[str, dict[str, str]]:
    """Play the browser at ``url``: the auto-POST form's target and its fields."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sts.app)) as browser:
        response = await browser.get(url)
    if response.status_code != 200:
        raise AssertionError(f"the STS refused: {response.status_code} {response.text[:200]}")
    return _form(response.text)


@contextmanager
def serve_on_loopback(host: str = "127.0.0.1", **kwargs: Any) -> Iterator[PassiveSts]:
    """A ``PassiveSts`` at ``http://HOST:PORT`` served by uvicorn in a thread (for browser tests)."""
    port = free_port(host)
    sts = PassiveSts(base_url=f"http://{host}:{port}", **kwargs)
    with serve_in_thread(sts.app, host, port, "wsfed-sts"):
        yield sts


class WsFedRelyingParty:
    """Unit-test harness: a ``WsFedConnector`` wired to a ``PassiveSts``.

    The STS and the connector share a ``ManualClock``; the connector's state is a
    ``MemoryState`` in which only replay markers (``wsfed-assertion``) may ever appear.
    """

    def __init__(self, router: respx.MockRouter, **sts_kwargs: Any) -> None:
        self.clock = ManualClock(NOW)
        self.sts = PassiveSts(clock=self.clock, **sts_kwargs)
        self.router = router
        self.metadata_route = router.route(url=self.sts.metadata_url).mock(
            side_effect=respx.ASGIHandler(self.sts.app)
        )
        self.state = MemoryState(self.clock)
        self.http = httpx.AsyncClient()
        self.configure()

    def configure(self, **overrides: Any) -> WsFedConnector:
        """A new connector with the default test config (the STS certificate inline) plus ``overrides``."""
        settings: dict[str, Any] = {
            "id": "fabrikam",
            "type": "wsfed",
            "domains": ["fabrikam.test"],
            "passive_sign_in_url": self.sts.passive_url,
            "issuer": self.sts.entity_id,
            "signing_certificates": [certificate_pem(self.sts.signer[1])],
        }
        settings.update(overrides)
        self.config = WsFedConfig.model_validate({k: v for k, v in settings.items() if v is not None})
        ctx = ConnectorContext(
            state=self.state,
            mail=NoMail(),
            keyed_hash=lambda purpose, value: f"{purpose}:{value}",
            tenant_name="Contoso",
            http=self.http,
            clock=self.clock,
        )
        self.connector = self.config.open(ctx)
        return self.connector

    async def begin(self, **request: Any) -> Redirect:
        request.setdefault("state", secrets.token_urlsafe(32))
        request.setdefault("callback_url", CALLBACK)
        return await self.connector.begin(BeginRequest(**request))

    async def callback(self, **request: Any) -> Callback:
        """``begin``, then the browser at the STS: the callback ``complete`` would get."""
        redirect = await self.begin(**request)
        target, params = await post_back(self.sts, redirect.url)
        return Callback(params=params, state=redirect.state, callback_url=target)

    async def sign_in(self, **request: Any) -> UpstreamIdentity:
        return await self.connector.complete(await self.callback(**request))

    def replay_markers(self) -> dict[str, Any]:
        return self.state.live(REPLAY_KIND)

    def assert_nothing_persisted(self) -> None:
        assert self.state.entries == {} and self.state.counters == {}


def query_of(url: str) -> dict[str, str]:
    return dict(httpx.QueryParams(urlsplit(url).query))
