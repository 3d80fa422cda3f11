"""Headless Chromium signs in through a SAML 2.0 IdP and a WS-Federation STS on their own host names.

The gateway runs live at ``http://127.0.0.1:<port>``. The pysaml2 IdP (``idp.fabrikam.test``) and
the passive STS (``sts.woodgrove.test``) run over https on loopback with throwaway certificates,
and Chromium reaches them by NAME (``--host-resolver-rules``, certificate errors ignored), so
their pages and the gateway are different sites. Their auto-submitted answers are cross-site
POSTs to the gateway's ACS / wreply, on which the ``SameSite=Lax`` browser cookie is not sent:
the gateway answers with its same-origin re-POST page, whose POST carries the cookie and ends
the sign-in. The gateway's own back channel resolves neither name and needs neither: the SAML
connector reads the IdP's metadata from a file, the WS-Fed connector has the STS's issuer and
certificate inline.

Refusals: an answer taken from the browser that started the sign-in and submitted from a fresh
browser context (no cookies) is re-POSTed, then refused as "another browser" with no session
there; an answer replayed in the browser that already used it is refused (its state is spent).

An app on its own site (``portal.northwind.test``, not the gateway's same-origin ``/demo``) is
reached after the re-POST too: the re-POST page's CSP ``form-action`` allows the app's origin,
since Chromium applies it to the redirect that ends the form submission.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page, Request, Route, async_playwright
from starlette.applications import Starlette
from starlette.requests import Request as StarletteRequest
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route as StarletteRoute

from tests.browser.conftest import CHROMIUM_ARGS, TIMEOUT_MS
from tests.browser.test_demo_browser import claims_table
from tests.support.flows import pkce_pair
from tests.support.gateway_app import default_config
from tests.support.https_loopback import serve_https
from tests.support.live_server import LiveServer, free_port, live_server
from tests.support.saml_idp import IDP_ENTITY_ID, SamlTestIdP
from tests.support.wsfed_sts import PassiveSts, StsUser, certificate_pem

pytestmark = pytest.mark.browser

STS_HOST = "sts.woodgrove.test"
STS_ENTITY_ID = f"http://{STS_HOST}/adfs/services/trust"
IDP_HOST = "idp.fabrikam.test"  # tests.support.saml_idp serves at https://idp.fabrikam.test (no port)
REPLAY_HOST = "replay.attacker.test"  # a third site, where captured answers are submitted from
PORTAL_HOST = "portal.northwind.test"  # an app of the tenant on its own site (not the gateway's /demo)
PORTAL_CALLBACK = f"https://{PORTAL_HOST}/callback"
ADA = "ada@woodgrove.example"  # the STS's user
ALICE = "alice@fabrikam.example"  # the SAML IdP's user (SamlUser's default)
BROWSER_COOKIE = "gw_browser"  # gateway.signin.browser, http issuer
SESSION_COOKIE = "gw_session"  # gateway.signin.sessions, http issuer
REPOST_MARK = "_gw_repost"
WAIT_MS = 20_000


@dataclass(frozen=True)
class Upstream:
    connector_id: str
    email: str
    issuer: str  # the `idp` claim the gateway reports
    host: str  # where the browser meets it
    answer_field: str  # the field that carries the signed answer


WSFED = Upstream("woodgrove", ADA, STS_ENTITY_ID, STS_HOST, "wresult")
SAML = Upstream("fabrikam", ALICE, IDP_ENTITY_ID, IDP_HOST, "SAMLResponse")
UPSTREAMS = [pytest.param(WSFED, id="wsfed"), pytest.param(SAML, id="saml")]


class OtherSites:
    """The attacker's site and the portal app's, on one server (the browser tells them by name).

    ``GET /replay``: a form that POSTs the fields it was last given to ``action``.
    ``GET /callback``: the portal app's redirect URI, a page that merely shows it was reached.
    """

    def __init__(self) -> None:
        self.action = ""
        self.fields: dict[str, str] = {}
        self.app = Starlette(
            routes=[
                StarletteRoute("/replay", self.replay_page),
                StarletteRoute("/callback", self.portal_callback),
            ]
        )

    async def portal_callback(self, request: StarletteRequest) -> Response:
        return HTMLResponse('<!doctype html><html><body><p id="portal">Portal reached</p></body></html>')

    async def replay_page(self, request: StarletteRequest) -> Response:
        inputs = "".join(
            f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">'
            for name, value in self.fields.items()
        )
        return HTMLResponse(
            f'<!doctype html><html><body><form method="post" action="{escape(self.action)}">{inputs}'
            '<button id="replay" type="submit">Replay</button></form></body></html>'
        )


@dataclass
class Served:
    sts: PassiveSts
    idp: SamlTestIdP
    other: OtherSites
    resolver_rules: str


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    sts = PassiveSts(STS_ENTITY_ID, f"https://{STS_HOST}", user=StsUser(email=ADA), relying_parties={})
    idp, other = SamlTestIdP(), OtherSites()
    with (
        serve_https(sts.app, names=[STS_HOST]) as sts_server,
        serve_https(idp.app, names=[IDP_HOST]) as idp_server,
        serve_https(other.app, names=[REPLAY_HOST, PORTAL_HOST]) as other_server,
    ):
        # Port and all: the browser asks for https://NAME/ (port 443) and reaches HOST:PORT.
        targets = [(STS_HOST, sts_server), (IDP_HOST, idp_server)]
        targets += [(REPLAY_HOST, other_server), (PORTAL_HOST, other_server)]
        rules = ", ".join(f"MAP {name} {server.address}" for name, server in targets)
        yield Served(sts, idp, other, rules)


def overrides(served: Served, idp_metadata_file: Path, base: str) -> dict[str, Any]:
    demo = next(app for app in default_config()["applications"] if app["id"] == "demo")
    demo["oidc"]["redirect_uris"] = [f"{base}/demo/callback"]
    demo["oidc"]["post_logout_redirect_uris"] = [f"{base}/demo"]
    portal = {
        "id": "portal",
        "name": "Northwind portal",
        "oidc": {"client_id": "portal", "client_secret": None, "redirect_uris": [PORTAL_CALLBACK]},
        "user_flow": "default",
    }
    return {
        "applications": [demo, portal],
        "connectors": [
            {"id": "email", "type": "email_otp"},
            {
                "id": WSFED.connector_id,
                "type": "wsfed",
                "display_name": "Woodgrove",
                "domains": ["woodgrove.example"],
                "passive_sign_in_url": f"https://{STS_HOST}/adfs/ls/",
                "issuer": STS_ENTITY_ID,
                "signing_certificates": [certificate_pem(served.sts.signer[1])],
            },
            {
                "id": SAML.connector_id,
                "type": "saml",
                "display_name": "Fabrikam",
                "domains": ["fabrikam.example"],
                "idp_metadata_file": str(idp_metadata_file),
            },
        ],
        "user_flows": [
            {"id": "default", "identity_providers": ["email", WSFED.connector_id, SAML.connector_id]}
        ],
    }


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, served: Served) -> Iterator[LiveServer]:
    workdir = tmp_path_factory.mktemp("saml-wsfed-browser")
    metadata_file = workdir / "fabrikam-idp-metadata.xml"
    metadata_file.write_bytes(served.idp.metadata_xml())
    port = free_port()  # chosen first: the portal app's entry replaces the list the demo's URIs are in
    config = overrides(served, metadata_file, f"http://127.0.0.1:{port}")
    with live_server(workdir / "server", overrides=config, port=port) as server:
        base = server.base_url
        # The upstreams learn about the gateway once its port is known: the STS its realm and
        # wreply, the IdP the SP metadata (ACS URL) the gateway publishes.
        wreply = f"{base}/callback/{WSFED.connector_id}"
        served.sts.relying_parties[f"{wreply}/metadata"] = wreply
        sp_metadata = httpx.get(f"{base}/callback/{SAML.connector_id}/metadata", timeout=10)
        sp_metadata.raise_for_status()
        served.idp.trust_sp(sp_metadata.content)
        yield server
    print(f"server log ({server.log_path}):\n{server.log()[-6000:]}")  # shown when a test failed


@pytest.fixture(scope="module")
async def browser(chromium_path: str, served: Served) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=chromium_path,
            headless=True,
            args=[
                *CHROMIUM_ARGS,
                f"--host-resolver-rules={served.resolver_rules}",
                "--ignore-certificate-errors",
            ],
        )
        try:
            yield launched
        finally:
            await launched.close()


async def new_page(browser: Browser) -> tuple[BrowserContext, Page]:
    context = await browser.new_context(ignore_https_errors=True)
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.set_default_navigation_timeout(WAIT_MS)
    return context, page


@pytest.fixture
async def first(browser: Browser) -> AsyncIterator[tuple[BrowserContext, Page]]:
    context, page = await new_page(browser)
    yield context, page
    await context.close()


@pytest.fixture
async def second(browser: Browser) -> AsyncIterator[tuple[BrowserContext, Page]]:
    context, page = await new_page(browser)
    yield context, page
    await context.close()


# -- what the browser sent ----------------------------------------------------------------------


@dataclass(frozen=True)
class Post:
    """One POST to the callback, as the browser sent it and as the gateway answered."""

    fields: dict[str, str]
    cookie: str
    fetch_site: str
    status: int
    location: str


class CallbackPosts:
    """Records the page's POSTs to ``/callback/{connector}`` (request and response events)."""

    def __init__(self, page: Page, url: str) -> None:
        self.url = url
        self.requests: list[Request] = []
        self.all: list[str] = []
        page.on("request", self._seen)

    def _seen(self, request: Request) -> None:
        self.all.append(f"{request.method} {request.url}")
        if request.method == "POST" and request.url == self.url:
            self.requests.append(request)

    async def posts(self) -> list[Post]:
        found: list[Post] = []
        for request in self.requests:
            headers = await request.all_headers()  # `headers` leaves out the cookie
            response = await request.response()
            assert response is not None, f"no response to the POST to {request.url}"
            found.append(
                Post(
                    fields=dict(parse_qsl(request.post_data or "", keep_blank_values=True)),
                    cookie=headers.get("cookie", ""),
                    fetch_site=headers.get("sec-fetch-site", ""),
                    status=response.status,
                    location=response.headers.get("location", ""),
                )
            )
        return found


async def cookie_jar(context: BrowserContext, url: str | None = None) -> dict[str, str]:
    """The context's cookies (for ``url``, or all of them) by name."""
    cookies = await (context.cookies(url) if url else context.cookies())
    return {c.get("name", ""): c.get("value", "") for c in cookies}


async def browser_cookie(context: BrowserContext, base: str) -> str:
    cookies = await cookie_jar(context, base)
    value = cookies.get(BROWSER_COOKIE)
    assert value, f"the gateway set no {BROWSER_COOKIE} cookie: {sorted(cookies)}"
    return value


async def to_upstream(page: Page, base: str, upstream: Upstream) -> None:
    """/demo -> the email page -> the guest's address: the browser is on its way to the upstream."""
    await page.goto(f"{base}/demo")
    await page.click("#signin")
    await page.wait_for_url(re.compile(re.escape(base) + r"/oauth2/authorize\?.+"))
    await page.fill("input#email", upstream.email)
    await page.click("form[action$='/email'] button[type=submit]")


def assert_reposted(cross_site: Post, reposted: Post, answer: dict[str, str]) -> None:
    """The cookie-less cross-site POST got the re-POST page, which sent the same fields back."""
    assert cross_site.fetch_site == "cross-site", cross_site
    assert f"{BROWSER_COOKIE}=" not in cross_site.cookie, cross_site.cookie
    assert cross_site.status == 200 and not cross_site.location
    assert cross_site.fields == answer
    assert reposted.fetch_site == "same-origin", reposted
    assert reposted.fields == {**answer, REPOST_MARK: "1"}


async def replay(page: Page, site: OtherSites, action: str, fields: dict[str, str]) -> None:
    """Submit ``fields`` to ``action`` from a page of another site (what an attacker would do)."""
    site.action, site.fields = action, fields
    await page.goto(f"https://{REPLAY_HOST}/replay")
    await page.click("#replay")


def last_signin_record(server: LiveServer) -> dict[str, Any]:
    """The gateway's latest sign-in audit record (one JSON line each in its log)."""
    records = [
        line for line in server.log().splitlines() if line.startswith('{"') and '"event":"signin"' in line
    ]
    assert records, "no sign-in audit record"
    record: dict[str, Any] = json.loads(records[-1])
    return record


async def wait_for_posts(posts: CallbackPosts, count: int, page: Page) -> list[Post]:
    """The callback POSTs once ``count`` of them were answered (the page is on the last answer)."""
    await page.wait_for_load_state("load")
    found = await posts.posts()
    assert len(found) == count, (found, posts.all)
    return found


# -- the tests ----------------------------------------------------------------------------------


@pytest.mark.parametrize("upstream", UPSTREAMS)
async def test_guest_signs_in_through_the_upstream_across_the_cross_site_post(
    upstream: Upstream,
    gateway: LiveServer,
    first: tuple[BrowserContext, Page],
    served: Served,
    tmp_path: Path,
) -> None:
    context, page = first
    base = gateway.base_url
    callback = f"{base}/callback/{upstream.connector_id}"
    posts = CallbackPosts(page, callback)

    await to_upstream(page, base, upstream)
    await page.wait_for_url(f"{base}/demo", timeout=WAIT_MS)
    await page.locator("#claims").wait_for()
    shot = tmp_path / f"{upstream.connector_id}-claims.png"
    await page.screenshot(path=shot, full_page=True)
    print(f"screenshot: {shot}")

    claims = await claims_table(page)
    assert claims["idp"] == upstream.issuer
    assert claims["email"] == upstream.email
    assert ast.literal_eval(claims["amr"]) == ["fed"]
    assert claims["iss"] == base and claims["aud"] == "demo"

    # The browser really met the upstream by its name, over https.
    assert any(entry.startswith(f"GET https://{upstream.host}/") for entry in posts.all), posts.all
    cross_site, reposted = await wait_for_posts(posts, 2, page)
    answer = cross_site.fields
    assert answer[upstream.answer_field]
    assert_reposted(cross_site, reposted, answer)
    assert f"{BROWSER_COOKIE}={await browser_cookie(context, base)}" in reposted.cookie
    assert reposted.status == 303
    assert reposted.location.startswith(f"{base}/demo/callback?") and "code=" in reposted.location


@pytest.mark.parametrize("upstream", UPSTREAMS)
async def test_an_answer_submitted_from_another_browser_is_refused_after_the_repost(
    upstream: Upstream,
    gateway: LiveServer,
    first: tuple[BrowserContext, Page],
    second: tuple[BrowserContext, Page],
    served: Served,
) -> None:
    base = gateway.base_url
    callback = f"{base}/callback/{upstream.connector_id}"

    # The first browser's answer is held back: it never reaches the gateway from there.
    context, page = first
    held: list[str] = []

    async def hold(route: Route) -> None:
        held.append(route.request.post_data or "")
        await route.fulfill(status=200, content_type="text/html", body="<p id='held'>held</p>")

    await page.route(callback, hold)
    await to_upstream(page, base, upstream)
    await page.locator("#held").wait_for(timeout=WAIT_MS)
    assert len(held) == 1
    answer = dict(parse_qsl(held[0], keep_blank_values=True))
    assert answer[upstream.answer_field]
    await browser_cookie(context, base)  # the sign-in is bound to this browser

    # A fresh context (no cookies at all) submits it from another site.
    other_context, other = second
    assert await cookie_jar(other_context) == {}
    posts = CallbackPosts(other, callback)
    await replay(other, served.other, callback, answer)
    await other.get_by_text("another browser").wait_for(timeout=WAIT_MS)

    cross_site, reposted = await wait_for_posts(posts, 2, other)
    assert_reposted(cross_site, reposted, answer)
    assert f"{BROWSER_COOKIE}=" not in reposted.cookie
    assert reposted.status == 403
    assert "Wrong browser" in await other.inner_text("body")
    record = last_signin_record(gateway)
    assert (record["result"], record["reason"], record["connector"]) == (
        "failure", "browser_mismatch", upstream.connector_id
    )  # fmt: skip

    # No session there: no session cookie, and the app still asks to sign in.
    assert SESSION_COOKIE not in await cookie_jar(other_context)
    await other.goto(f"{base}/demo")
    await other.locator("#signin").wait_for()
    assert await other.locator("#claims").count() == 0


@pytest.mark.parametrize("upstream", UPSTREAMS)
async def test_an_answer_replayed_in_the_same_browser_after_success_is_refused(
    upstream: Upstream,
    gateway: LiveServer,
    first: tuple[BrowserContext, Page],
    served: Served,
) -> None:
    context, page = first
    base = gateway.base_url
    callback = f"{base}/callback/{upstream.connector_id}"
    posts = CallbackPosts(page, callback)
    await to_upstream(page, base, upstream)
    await page.wait_for_url(f"{base}/demo", timeout=WAIT_MS)
    await page.locator("#claims").wait_for()
    cross_site, signed_in = await wait_for_posts(posts, 2, page)
    assert signed_in.status == 303
    answer = cross_site.fields
    session_before = (await cookie_jar(context, base)).get(SESSION_COOKIE)
    assert session_before

    # The same answer again, from another site, in the browser that used it.
    await replay(page, served.other, callback, answer)
    await page.get_by_text("Sign-in not recognised").wait_for(timeout=WAIT_MS)

    _, _, replayed_cross_site, replayed = await wait_for_posts(posts, 4, page)
    assert_reposted(replayed_cross_site, replayed, answer)
    assert f"{BROWSER_COOKIE}={await browser_cookie(context, base)}" in replayed.cookie
    assert replayed.status == 400 and not replayed.location
    record = last_signin_record(gateway)
    assert (record["result"], record["reason"], record["connector"]) == (
        "failure", "invalid_state", upstream.connector_id
    )  # fmt: skip
    # Nothing new: the session is the one the first use made.
    after = (await cookie_jar(context, base)).get(SESSION_COOKIE)
    assert after == session_before


@pytest.mark.parametrize("upstream", UPSTREAMS)
async def test_guest_reaches_an_app_on_another_site_after_the_repost(
    upstream: Upstream, gateway: LiveServer, first: tuple[BrowserContext, Page]
) -> None:
    _, page = first
    base = gateway.base_url
    callback = f"{base}/callback/{upstream.connector_id}"
    _, challenge = pkce_pair()
    query = {
        "client_id": "portal", "redirect_uri": PORTAL_CALLBACK, "response_type": "code",
        "scope": "openid email", "state": "portal-state", "nonce": "portal-nonce",
        "code_challenge": challenge, "code_challenge_method": "S256",
    }  # fmt: skip
    await page.goto(f"{base}/oauth2/authorize?{urlencode(query)}")
    await page.fill("input#email", upstream.email)

    def is_repost(request: Request) -> bool:
        return (
            request.method == "POST" and request.url == callback and REPOST_MARK in (request.post_data or "")
        )

    async with page.expect_request(is_repost, timeout=WAIT_MS) as reposted:
        await page.click("form[action$='/email'] button[type=submit]")
    answer = await (await reposted.value).response()
    assert answer is not None, "the browser dropped the answer to the re-POST (its redirect was blocked)"
    assert answer.status == 303 and answer.headers["location"].startswith(f"{PORTAL_CALLBACK}?code=")
    await page.locator("#portal").wait_for(timeout=WAIT_MS)
    reached = dict(parse_qsl(urlsplit(page.url).query))
    assert reached["state"] == "portal-state" and reached["iss"] == base and reached["code"]
