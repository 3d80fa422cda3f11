"""A gateway in-process with a SAML 2.0 IdP and a WS-Federation STS behind it, and the browser between them.

``xml_gateway(tmp_path, smtp, **overrides)`` runs the gateway (a ``Clock`` it shares with the STS)
with two upstream connectors: ``fabrikam`` (``type: saml``, domain ``fabrikam.example``, IdP
metadata read over https from the pysaml2 IdP of ``tests/support/saml_idp.py``, mounted with
respx) and ``woodgrove`` (``type: wsfed``, domain ``woodgrove.example``, the STS of
``tests/support/wsfed_sts.py`` with its certificate inline). The IdP trusts the SP metadata the
gateway publishes at ``/callback/fabrikam/metadata``; the STS knows the gateway's realm and wreply.
``overrides`` replace keys of the settings (``connectors(saml={...}, wsfed={...})`` builds the
connector list with changed fields). pysaml2 stamps the wall clock: moving the ``Clock`` forward
makes a SAML answer arrive late.

``XmlGateway`` plays the browser: ``to_upstream`` goes from the app's authorization request
through the email page (home-realm discovery) to the upstream URL; ``saml_answer`` /
``wsfed_answer`` are the upstream's auto-submitted form; ``post`` delivers it at the callback
(the httpx client carries the gateway's cookies, so no same-origin re-POST is needed);
``id_claims`` redeems the code and verifies the ID token.

Response surgery for attacks on a genuine signed SAML answer: ``wrapped`` (XML signature
wrapping: a forged unsigned assertion beside the signed one) and ``with_doctype`` (a DOCTYPE with
an external entity used in the NameID). ``XmlGateway.assert_only_state_consumed(before)`` is the
"nothing created" check of a refused answer: every stored row as before, but for the upstream
state the callback consumed (``store_state`` reads the SQLite file read-only).
"""

from __future__ import annotations

import base64
import copy
import re
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import respx
from joserfc import jwt
from joserfc.jwk import KeySet
from lxml import etree

from gateway.runtime import Runtime
from gateway.signin.repost import UPSTREAM_STATE
from tests.support import flows
from tests.support.assertions import Clock
from tests.support.gateway_app import ISSUER, default_config, make_settings, running_app
from tests.support.inspect_store import Snapshot, snapshot, store_file, users
from tests.support.saml_idp import METADATA_URL, SamlTestIdP, key_pair
from tests.support.smtp_server import SmtpServer
from tests.support.wsfed_sts import PassiveSts, StsUser, certificate_pem, parse_form, shared_signer

SAML_ID = "fabrikam"
WSFED_ID = "woodgrove"
SAML_CALLBACK = f"{ISSUER}/callback/{SAML_ID}"
SP_ENTITY_ID = f"{SAML_CALLBACK}/metadata"
WSFED_CALLBACK = f"{ISSUER}/callback/{WSFED_ID}"
WSFED_REALM = f"{WSFED_CALLBACK}/metadata"
STS_ENTITY_ID = "http://sts.woodgrove.test/adfs/services/trust"
STS_BASE = "https://sts.woodgrove.test"
ALICE = "alice@fabrikam.example"
"""The SAML IdP's user (``saml_idp.SamlUser``)."""
ALICE_NAME_ID = "7f3c9a2e-5b1d-4e8f-a6c0-fabrikam-0001"
ADA = "ada@woodgrove.example"
"""The STS's user."""
ADA_IMMUTABLE_ID = "uHMx4pQ0Bk6dZ1v3bT5w1g=="
COMPLIANT = "http://schemas.microsoft.com/ws/2012/01/devicecontext/claims/iscompliant"
"""The device attribute the connectors map to their ``compliant`` device claim."""
SAML_MFA = "https://refeds.org/profile/mfa"
SAML_MULTIPLE_AUTHN = "http://schemas.microsoft.com/claims/multipleauthn"
SESSION_COOKIE = "gw_session"
CONTINUE = re.compile(r'id="continue" href="([^"]+)"')

SAML_NS = "urn:oasis:names:tc:SAML:2.0:assertion"
DS_NS = "http://www.w3.org/2000/09/xmldsig#"


def saml_connector(**fields: Any) -> dict[str, Any]:
    """The ``fabrikam`` SAML connector entry; ``fields`` add or replace keys."""
    sp = key_pair("sp")
    return {
        "id": SAML_ID,
        "type": "saml",
        "display_name": "Fabrikam",
        "domains": ["fabrikam.example"],
        "idp_metadata_url": METADATA_URL,
        "sp_key_file": sp.key_file,
        "sp_certificate_file": sp.cert_file,
        **fields,
    }


def wsfed_connector(**fields: Any) -> dict[str, Any]:
    """The ``woodgrove`` WS-Federation connector entry; ``fields`` add or replace keys."""
    return {
        "id": WSFED_ID,
        "type": "wsfed",
        "display_name": "Woodgrove",
        "domains": ["woodgrove.example"],
        "passive_sign_in_url": f"{STS_BASE}/adfs/ls/",
        "issuer": STS_ENTITY_ID,
        "signing_certificates": [certificate_pem(shared_signer("sts")[1])],
        **fields,
    }


def connectors(
    *, saml: dict[str, Any] | None = None, wsfed: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """The passcode, SAML and WS-Fed connector entries; ``saml`` / ``wsfed`` change fields of theirs."""
    return [
        {"id": "email", "type": "email_otp"},
        saml_connector(**saml or {}),
        wsfed_connector(**wsfed or {}),
    ]


def settings_data(**overrides: Any) -> dict[str, Any]:
    """The settings overrides: both connectors, sign-up through them for the demo app, then ``overrides``."""
    data: dict[str, Any] = {
        "connectors": connectors(),
        "applications": [a for a in default_config()["applications"] if a["id"] == "demo"],
        "user_flows": [{"id": "default", "identity_providers": ["email", SAML_ID, WSFED_ID]}],
    }
    data.update(overrides)
    return data


def saml_xml(fields: dict[str, str]) -> bytes:
    """The Response document a SAML answer's form carries."""
    return base64.b64decode(fields["SAMLResponse"])


def with_saml_xml(fields: dict[str, str], xml: bytes) -> dict[str, str]:
    """The answer's form fields carrying another Response document."""
    return {**fields, "SAMLResponse": base64.b64encode(xml).decode("ascii")}


def wrapped(
    xml: bytes, *, name_id: str = "victim-admin-0001", email: str = "admin@fabrikam.example"
) -> bytes:
    """XML signature wrapping (XSW3): a forged, unsigned copy of the signed assertion, naming someone
    else, placed before it, so a parser that reads "the first assertion" reads the forgery."""
    root = etree.fromstring(xml)
    signed = root.find(f"{{{SAML_NS}}}Assertion")
    assert signed is not None, "the answer holds no plain assertion"
    forged = copy.deepcopy(signed)
    signature = forged.find(f"{{{DS_NS}}}Signature")
    assert signature is not None, "the assertion is not signed"
    forged.remove(signature)
    forged.set("ID", "_forged_assertion")
    for element in forged.iter(f"{{{SAML_NS}}}NameID"):
        element.text = name_id
    for element in forged.iter(f"{{{SAML_NS}}}AttributeValue"):
        if element.text == ALICE:
            element.text = email
    signed.addprevious(forged)
    return bytes(etree.tostring(root))


def with_doctype(xml: bytes) -> bytes:
    """The document with a DOCTYPE declaring an external entity (XXE), used as the NameID's text."""
    text = re.sub(rb"^<\?xml[^>]*\?>\s*", b"", xml)
    text, count = re.subn(rb"(<(?:\w+:)?NameID[^>]*>)[^<]*(<)", rb"\1&xxe;\2", text, count=1)
    assert count == 1, "the answer holds no NameID"
    doctype = b'<!DOCTYPE Response [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + doctype + b"\n" + text


Rows = dict[tuple[str, str], tuple[str, int, float]]


def artefact_rows(source: Any) -> Rows:
    """Every live artefact, ``(kind, id) -> (payload, uses, expires_at)``, read straight from the file."""
    with closing(sqlite3.connect(f"file:{store_file(source)}?mode=ro", uri=True)) as conn:
        rows = conn.execute(
            "SELECT kind, id, payload, uses, expires_at FROM artefacts WHERE expires_at > ?", (time.time(),)
        ).fetchall()
    return {
        (str(kind), str(id_)): (str(payload), int(uses), float(at)) for kind, id_, payload, uses, at in rows
    }


def pending_state(rows: Rows) -> str:
    """The id of the one unused upstream state among ``rows``."""
    [state] = [id_ for (kind, id_), (_, uses, _) in rows.items() if kind == UPSTREAM_STATE and uses == 0]
    return state


@dataclass(frozen=True)
class StoreState:
    """What the store holds at one moment: every live artefact row, and the counts of ``snapshot``."""

    rows: Rows
    counts: Snapshot


def sets_session(response: httpx.Response) -> bool:
    """Whether the response sets the SSO session cookie."""
    return any(value.startswith(f"{SESSION_COOKIE}=") for value in response.headers.get_list("set-cookie"))


@dataclass
class XmlGateway:
    app: Any
    client: httpx.AsyncClient
    clock: Clock
    idp: SamlTestIdP
    sts: PassiveSts
    metadata_route: respx.Route

    @property
    def rt(self) -> Runtime:
        runtime: Runtime = self.app.state.runtime
        return runtime

    @asynccontextmanager
    async def browser(self) -> AsyncIterator[httpx.AsyncClient]:
        """Another browser: none of ``client``'s cookies."""
        async with httpx.AsyncClient(
            transport=self.app.state.demo_transport, base_url=self.rt.settings.issuer
        ) as other:
            yield other

    async def to_upstream(
        self, req: flows.AuthRequest, email: str = ALICE, client: httpx.AsyncClient | None = None
    ) -> str:
        """The app's authorization request, the email page (home-realm discovery), the continuation
        page: returns the upstream URL the browser is sent to."""
        browser = client or self.client
        path = await flows.start(browser, req)
        sent = await flows.submit_email(browser, path, email)
        assert sent.status_code == 303, sent.text
        assert sent.headers["location"] == f"{path}/upstream"
        return await self.continuation(sent.headers["location"], browser)

    async def continuation(self, path: str, client: httpx.AsyncClient | None = None) -> str:
        """The page that moves on to the upstream by itself: its link."""
        page = await (client or self.client).get(path)
        assert page.status_code == 200, page.text
        match = CONTINUE.search(page.text)
        assert match, page.text[:500]
        return match.group(1).replace("&amp;", "&")

    async def saml_answer(self, url: str) -> dict[str, str]:
        """The browser at the IdP's SSO URL: the fields of the form it auto-submits to our ACS."""
        assert url.startswith(f"{self.idp.sso_url}?"), url
        form = await self.idp.browse(url)
        assert form.action == SAML_CALLBACK, form.action
        return form.fields

    async def wsfed_answer(self, url: str) -> dict[str, str]:
        """The browser at the STS's passive endpoint: the fields it auto-submits to our wreply."""
        assert url.startswith(f"{self.sts.passive_url}?"), url
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=self.sts.app)) as browser:
            page = await browser.get(url)
        assert page.status_code == 200, page.text
        assert f'action="{WSFED_CALLBACK}"' in page.text, page.text[:500]
        return parse_form(page.text)

    async def post(
        self, connector_id: str, fields: dict[str, str], client: httpx.AsyncClient | None = None
    ) -> httpx.Response:
        """The answer POSTed at the connector's callback by the browser that has the gateway's cookies."""
        return await (client or self.client).post(f"/callback/{connector_id}", data=fields)

    async def saml_sign_in(
        self, req: flows.AuthRequest | None = None, client: httpx.AsyncClient | None = None
    ) -> tuple[flows.AuthRequest, httpx.Response]:
        """A whole sign-in through the SAML IdP; the request and the callback's response."""
        req = req or flows.AuthRequest()
        fields = await self.saml_answer(await self.to_upstream(req, ALICE, client))
        return req, await self.post(SAML_ID, fields, client)

    async def wsfed_sign_in(
        self, req: flows.AuthRequest | None = None, client: httpx.AsyncClient | None = None
    ) -> tuple[flows.AuthRequest, httpx.Response]:
        """A whole sign-in through the STS; the request and the callback's response."""
        req = req or flows.AuthRequest()
        fields = await self.wsfed_answer(await self.to_upstream(req, ADA, client))
        return req, await self.post(WSFED_ID, fields, client)

    async def id_claims(
        self, req: flows.AuthRequest, response: httpx.Response, client: httpx.AsyncClient | None = None
    ) -> dict[str, Any]:
        """``response`` carries a code to the app: redeem it, verify the ID token, return its claims."""
        assert response.status_code == 303, response.text
        location = response.headers["location"]
        assert location.startswith(req.redirect_uri + "?"), location
        query = flows.query_of(location)
        assert query["state"] == req.state and query["iss"] == ISSUER
        tokens = await flows.exchange(client or self.client, req, query["code"])
        assert tokens.status_code == 200, tokens.text
        jwks = KeySet.import_key_set((await self.client.get("/oauth2/jwks")).json())
        claims: dict[str, Any] = jwt.decode(tokens.json()["id_token"], jwks, algorithms=["ES256"]).claims
        assert claims["iss"] == ISSUER and claims["aud"] == req.client_id and claims["nonce"] == req.nonce
        return claims

    def snapshot(self) -> Snapshot:
        return snapshot(self.app)  # the SQLite store's clock is the wall clock

    def store_state(self) -> StoreState:
        return StoreState(artefact_rows(self.app), self.snapshot())

    def assert_only_state_consumed(self, before: StoreState, state: str | None = None) -> None:
        """Nothing was created or changed since ``before``: every artefact as it was but for the upstream
        ``state`` (default: the one pending), now used once more (the callback consumed it); no code,
        session, token or replay-cache entry appeared; the same counters and users."""
        after = self.store_state()
        state = state or pending_state(before.rows)
        payload, uses, expires_at = before.rows[(UPSTREAM_STATE, state)]
        assert after.rows == {**before.rows, (UPSTREAM_STATE, state): (payload, uses + 1, expires_at)}
        assert after.counts.counters == before.counts.counters
        assert after.counts.user_count == before.counts.user_count

    def users(self) -> list[dict[str, Any]]:
        return users(self.app)


@asynccontextmanager
async def xml_gateway(tmp_path: Path, smtp: SmtpServer, **overrides: Any) -> AsyncIterator[XmlGateway]:
    """The gateway with both upstreams (module docstring); ``overrides`` replace settings keys."""
    clock = Clock()
    idp = SamlTestIdP()
    sts = PassiveSts(
        STS_ENTITY_ID,
        STS_BASE,
        clock=clock,
        user=StsUser(email=ADA, immutable_id=ADA_IMMUTABLE_ID, name_identifier=ADA_IMMUTABLE_ID),
        relying_parties={WSFED_REALM: WSFED_CALLBACK},
    )
    settings = make_settings(tmp_path, smtp, **settings_data(**overrides))
    with respx.mock(assert_all_called=False) as router:
        routes = idp.mount(router)
        async with running_app(settings, clock=clock) as (app, client):
            published = await client.get(f"/callback/{SAML_ID}/metadata")
            assert published.status_code == 200, published.text
            idp.trust_sp(published.content)
            yield XmlGateway(app, client, clock, idp, sts, routes["metadata"])
