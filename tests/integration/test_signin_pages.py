"""The sign-in journey's happy path over ASGI: pages, headers, the passcode mail, cookies, SSO reuse."""

from __future__ import annotations

import re
import time
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import flows
from tests.support.assertions import Clock as OpClock
from tests.support.assertions import Op, verify_id_token
from tests.support.gateway_app import default_config, make_settings, running_app
from tests.support.inspect_store import snapshot
from tests.support.smtp_server import SmtpServer, extract_passcode

EMAIL = "guest@fabrikam.example"
PORTAL_REDIRECT = "http://127.0.0.1:8000/portal/callback"
PORTAL = {
    "id": "portal", "name": "Partner portal", "user_flow": "default",
    "oidc": {"client_id": "portal", "client_secret": None, "redirect_uris": [PORTAL_REDIRECT]},
}


class Clock:
    """A settable clock for the runtime (the SQLite store keeps the wall clock)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def two_apps() -> list[dict[str, Any]]:
    return [*default_config()["applications"], PORTAL]


def set_cookies(response: httpx.Response) -> dict[str, SimpleCookie]:
    """Each Set-Cookie header parsed on its own, by cookie name."""
    parsed: dict[str, SimpleCookie] = {}
    for header in response.headers.get_list("set-cookie"):
        cookie: SimpleCookie = SimpleCookie()
        cookie.load(header)
        for name in cookie:
            parsed[name] = cookie
    return parsed


def assert_page_headers(response: httpx.Response) -> None:
    csp = response.headers["content-security-policy"]
    directives = {d.strip().split(" ", 1)[0]: d.strip() for d in csp.split(";") if d.strip()}
    assert directives["frame-ancestors"] == "frame-ancestors 'none'"
    assert "script-src" not in directives and directives["default-src"] == "default-src 'none'"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["content-type"].startswith("text/html")


async def id_token_claims(
    app: Any, client: httpx.AsyncClient, req: flows.AuthRequest, code: str
) -> dict[str, Any]:
    """Redeem ``code`` and verify the ID token independently (joserfc against the JWKS)."""
    response = await flows.exchange(client, req, code)
    assert response.status_code == 200, response.text
    op = Op(app, client, OpClock(), smtp=None)  # type: ignore[arg-type]  # verify_id_token needs no mail
    return await verify_id_token(op, response.json()["id_token"], client_id=req.client_id, nonce=req.nonce)


async def test_authorize_answers_with_the_email_page_bound_to_the_new_browser(
    client: httpx.AsyncClient, smtp_server: SmtpServer
) -> None:
    started = await client.get(f"/oauth2/authorize?{flows.AuthRequest().query()}")
    path = flows.signin_path_of(started)  # the page itself: no redirect to /signin/{id} first
    assert_page_headers(started)
    assert "form-action 'self' http://127.0.0.1:8000;" in started.headers["content-security-policy"]
    assert "gw_browser" in set_cookies(started)  # the cookie is set on this very response
    # Its CSRF token is for the browser id set only now: the form posts without another page load.
    sent = await client.post(f"{path}/email", data={"csrf": flows.csrf_of(started), "email": EMAIL})
    assert sent.status_code == 200 and 'autocomplete="one-time-code"' in sent.text, sent.text
    await smtp_server.wait_for(to=EMAIL, timeout=10)


async def test_email_page_has_an_email_input_and_safe_headers(client: httpx.AsyncClient) -> None:
    path = await flows.start(client, flows.AuthRequest())
    page = await client.get(path)
    assert page.status_code == 200
    assert_page_headers(page)
    assert re.search(r'<input id="email" name="email" type="email"', page.text)
    assert f'action="{path}/email"' in page.text and 'method="post"' in page.text
    assert "<script" not in page.text  # works without JavaScript
    assert "Demo app" in page.text  # names the application the guest is signing in to


async def test_login_hint_prefills_the_email_page(client: httpx.AsyncClient) -> None:
    path = await flows.start(client, flows.AuthRequest(extra={"login_hint": EMAIL}))
    page = await client.get(path)
    assert f'value="{EMAIL}"' in page.text


async def test_passcode_page_asks_for_a_one_time_code(
    client: httpx.AsyncClient, smtp_server: SmtpServer
) -> None:
    path = await flows.start(client, flows.AuthRequest())
    sent = await flows.submit_email(client, path, EMAIL)
    assert sent.status_code == 200  # the passcode page answers the POST (no redirect)
    assert_page_headers(sent)
    page = await client.get(f"{path}/passcode")  # and GET shows it again (the back button, a link)
    assert page.status_code == 200
    assert_page_headers(page)
    field = re.search(r'<input id="passcode"[^>]*>', page.text, re.S)
    assert field is not None
    assert 'autocomplete="one-time-code"' in field.group(0) and 'inputmode="numeric"' in field.group(0)
    assert EMAIL in page.text and "8 digits" in page.text and "30 minutes" in page.text


async def test_passcode_mail_arrives_through_smtp_with_eight_digits(
    client: httpx.AsyncClient, smtp_server: SmtpServer
) -> None:
    path = await flows.start(client, flows.AuthRequest())
    await flows.submit_email(client, path, "Guest@Fabrikam.Example ")
    message = await smtp_server.wait_for(to=EMAIL, timeout=10)
    assert message["To"] == EMAIL  # normalised: trimmed, lower-cased
    assert "no-reply@contoso.example" in message["From"]
    assert message["Subject"] == "Your Contoso sign-in code"
    code = extract_passcode(message)
    assert re.fullmatch(r"[0-9]{8}", code)
    assert len(smtp_server.messages) == 1


async def test_sign_in_returns_code_state_and_iss(
    app: Any, client: httpx.AsyncClient, smtp_server: SmtpServer
) -> None:
    req, query = await flows.sign_in(client, smtp_server, EMAIL)
    assert query["state"] == req.state and query["iss"] == "http://127.0.0.1:8000"
    claims = await id_token_claims(app, client, req, query["code"])
    assert claims["email"] == EMAIL and claims["amr"] == ["otp"] and claims["idp"] == "mail"
    assert claims["nonce"] == req.nonce and claims["acct"] == 1


async def test_session_cookie_is_httponly_lax_and_not_secure_on_http(
    client: httpx.AsyncClient, smtp_server: SmtpServer
) -> None:
    req = flows.AuthRequest()
    started = await client.get(f"/oauth2/authorize?{req.query()}")
    browser = set_cookies(started)["gw_browser"]["gw_browser"]
    assert browser["httponly"] and browser["samesite"] == "lax" and browser["path"] == "/"
    assert not browser["secure"]
    path = flows.signin_path_of(started)
    await flows.submit_email(client, path, EMAIL)
    code = extract_passcode(await smtp_server.wait_for(to=EMAIL, timeout=10))
    done = await flows.submit_passcode(client, path, code)
    assert done.status_code == 303
    session = set_cookies(done)["gw_session"]["gw_session"]
    assert session["httponly"] and session["samesite"] == "lax" and not session["secure"]
    assert session["path"] == "/" and not session["domain"]
    assert session["max-age"] == "86400"  # 24 h for a passcode sign-in
    assert 40 <= len(session.value) <= 64  # opaque random value


async def test_session_cookie_is_secure_with_host_prefix_on_https(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    settings = make_settings(tmp_path, smtp_server, issuer="https://login.contoso.example")
    async with running_app(settings) as (_, client):
        assert str(client.base_url) == "https://login.contoso.example"
        req = flows.AuthRequest()
        started = await client.get(f"/oauth2/authorize?{req.query()}")
        browser = set_cookies(started)["__Host-gw_browser"]["__Host-gw_browser"]
        assert browser["secure"] and browser["httponly"] and browser["path"] == "/" and not browser["domain"]
        path = flows.signin_path_of(started)
        await flows.submit_email(client, path, EMAIL)
        code = extract_passcode(await smtp_server.wait_for(to=EMAIL, timeout=10))
        done = await flows.submit_passcode(client, path, code)
        assert done.status_code == 303, done.text
        assert flows.query_of(done.headers["location"])["iss"] == "https://login.contoso.example"
        cookies = set_cookies(done)
        assert "gw_session" not in cookies
        session = cookies["__Host-gw_session"]["__Host-gw_session"]
        assert session["secure"] and session["httponly"] and session["samesite"] == "lax"
        assert session["path"] == "/" and not session["domain"]


async def test_second_sign_in_reuses_the_session_without_a_new_passcode(
    app: Any, client: httpx.AsyncClient, smtp_server: SmtpServer
) -> None:
    first, query = await flows.sign_in(client, smtp_server, EMAIL)
    first_claims = await id_token_claims(app, client, first, query["code"])
    again = flows.AuthRequest()
    response = await client.get(f"/oauth2/authorize?{again.query()}")
    assert response.status_code == 303
    assert response.headers["location"].startswith(flows.DEMO_REDIRECT + "?")
    params = flows.query_of(response.headers["location"])
    assert params["state"] == again.state
    claims = await id_token_claims(app, client, again, params["code"])
    assert claims["sub"] == first_claims["sub"] and claims["auth_time"] == first_claims["auth_time"]
    assert claims["nonce"] == again.nonce
    assert len(smtp_server.messages) == 1
    assert snapshot(app).count("session") == 1


async def test_a_second_app_reuses_the_session(tmp_path: Path, smtp_server: SmtpServer) -> None:
    settings = make_settings(tmp_path, smtp_server, applications=two_apps())
    async with running_app(settings) as (app, client):
        first, query = await flows.sign_in(client, smtp_server, EMAIL)
        demo_claims = await id_token_claims(app, client, first, query["code"])
        portal = flows.AuthRequest(client_id="portal", redirect_uri=PORTAL_REDIRECT)
        response = await client.get(f"/oauth2/authorize?{portal.query()}")
        assert response.status_code == 303 and response.headers["location"].startswith(PORTAL_REDIRECT + "?")
        code = flows.query_of(response.headers["location"])["code"]
        claims = await id_token_claims(app, client, portal, code)
        assert claims["aud"] == "portal" and claims["oid"] == demo_claims["oid"]
        assert claims["sub"] != demo_claims["sub"]  # pairwise per application
        assert len(smtp_server.messages) == 1


async def test_prompt_login_asks_for_a_new_passcode(
    app: Any, client: httpx.AsyncClient, smtp_server: SmtpServer
) -> None:
    await flows.sign_in(client, smtp_server, EMAIL)
    response = await client.get(f"/oauth2/authorize?{flows.AuthRequest(extra={'prompt': 'login'}).query()}")
    flows.signin_path_of(response)  # the email page, not a code
    assert snapshot(app).count("code") == 1  # only the first sign-in's


async def test_the_session_ends_after_24_hours(tmp_path: Path, smtp_server: SmtpServer) -> None:
    clock = Clock()
    async with running_app(make_settings(tmp_path, smtp_server), clock=clock) as (app, client):
        await flows.sign_in(client, smtp_server, EMAIL)
        clock.now += 86400 - 5
        early = await client.get(f"/oauth2/authorize?{flows.AuthRequest().query()}")
        assert early.headers["location"].startswith(flows.DEMO_REDIRECT)
        clock.now += 10
        late = await client.get(f"/oauth2/authorize?{flows.AuthRequest().query()}")
        flows.signin_path_of(late)  # the email page, not a code
        assert snapshot(app).count("code") == 2


async def test_id_token_name_falls_back_to_the_address_until_one_is_given(
    app: Any, client: httpx.AsyncClient, smtp_server: SmtpServer
) -> None:
    req, query = await flows.sign_in(client, smtp_server, EMAIL)
    claims = await id_token_claims(app, client, req, query["code"])
    assert claims["name"] == EMAIL
    store = app.state.runtime.store
    user = await store.get_user(claims["oid"])
    user["displayName"] = "Gwen Guest"
    await store.update_user(user)
    again = flows.AuthRequest()
    response = await client.get(f"/oauth2/authorize?{again.query()}")
    renamed = await id_token_claims(app, client, again, flows.query_of(response.headers["location"])["code"])
    assert renamed["name"] == "Gwen Guest"


@pytest.mark.parametrize("path", ["/signin/unknown-id", "/signin/unknown-id/passcode"])
async def test_error_pages_carry_the_same_safe_headers(client: httpx.AsyncClient, path: str) -> None:
    await flows.start(client, flows.AuthRequest())  # a browser cookie, so only the id is wrong
    page = await client.get(path)
    assert page.status_code == 400
    assert_page_headers(page)
    assert "expired or is unknown" in page.text
