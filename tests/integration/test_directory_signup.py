"""The minimal directory: self-service sign-up creates the guest; without sign-up, known and unknown
addresses get the same answer and only known ones may finish."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import idp_connectors.email_otp.connector as otp
from gateway.directory.users import guest_upn, sign_up
from gateway.policy.signup import self_service_sign_up
from gateway.settings.models import Settings
from idp_connectors.base import MailMessage, UpstreamIdentity
from tests.support import flows
from tests.support.assertions import assert_error_page
from tests.support.gateway_app import default_config, make_settings, running_app
from tests.support.inspect_store import identities, snapshot, users
from tests.support.smtp_server import SmtpServer, extract_passcode

EMAIL = "guest@fabrikam.example"
KNOWN, UNKNOWN = "known@fabrikam.example", "stranger@fabrikam.example"
PORTAL_REDIRECT = "http://127.0.0.1:8000/portal/callback"
CLOSED_PORTAL = {  # an app without a user flow: nobody new signs up through it
    "id": "portal", "name": "Partner portal",
    "oidc": {"client_id": "portal", "client_secret": None, "redirect_uris": [PORTAL_REDIRECT]},
}


def unthrottled(tmp_path: Path, smtp: SmtpServer, **overrides: Any) -> Settings:
    """Settings without the 60 s resend gap, so one address may start several sign-ins in a test."""
    return make_settings(tmp_path, smtp, passcode={"resend_interval_seconds": 0}, **overrides)


def browser(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=app.state.demo_transport, base_url="http://127.0.0.1:8000")


async def test_first_sign_in_creates_the_guest_user(
    app: Any, client: httpx.AsyncClient, smtp_server: SmtpServer
) -> None:
    assert snapshot(app).user_count == 0
    req, query = await flows.sign_in(client, smtp_server, EMAIL)
    [user] = users(app)
    assert uuid.UUID(user["id"]).version == 4 and str(uuid.UUID(user["id"])) == user["id"]
    assert user["userType"] == "Guest"
    assert user["creationType"] == "SelfServiceSignUp"
    assert user["mail"] == EMAIL
    assert user["userPrincipalName"] == "guest_fabrikam.example#EXT#@contoso.example"
    assert user["identities"] == [{"signInType": "federated", "issuer": "mail", "issuerAssignedId": EMAIL}]
    assert user["accountEnabled"] is True and user["externalUserState"] is None
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", user["createdDateTime"])
    assert identities(app) == [("mail", EMAIL, user["id"])]
    tokens = await flows.exchange(client, req, query["code"])
    claims = app.state.runtime.keys.verify(tokens.json()["id_token"])
    assert claims["oid"] == user["id"]


async def test_later_sign_ins_find_the_same_user(tmp_path: Path, smtp_server: SmtpServer) -> None:
    async with running_app(unthrottled(tmp_path, smtp_server)) as (app, client), browser(app) as other:
        await flows.sign_in(client, smtp_server, EMAIL)
        [first] = users(app)
        req, query = await flows.sign_in(other, smtp_server, "GUEST@fabrikam.example", None)
        tokens = await flows.exchange(other, req, query["code"])
        claims = app.state.runtime.keys.verify(tokens.json()["id_token"])
        assert users(app) == [first]
        assert claims["oid"] == first["id"]


async def test_concurrent_first_sign_ins_create_one_user(tmp_path: Path, smtp_server: SmtpServer) -> None:
    async with running_app(unthrottled(tmp_path, smtp_server)) as (app, client), browser(app) as other:
        forms = []
        for who in (client, other):
            path = await flows.start(who, flows.AuthRequest())
            await flows.submit_email(who, path, EMAIL)
            code = extract_passcode(await smtp_server.wait_for(to=EMAIL, timeout=10))
            csrf = flows.csrf_of(await who.get(f"{path}/passcode"))
            forms.append((who, path, {"csrf": csrf, "passcode": code}))
        done = await asyncio.gather(*(who.post(f"{path}/passcode", data=data) for who, path, data in forms))
        assert [r.status_code for r in done] == [303, 303]
        assert snapshot(app).user_count == 1 and len(identities(app)) == 1


def test_guest_upn_follows_the_ext_form() -> None:
    upn = guest_upn("user@contoso.com", "fabrikam.onmicrosoft.com")
    assert upn == "user_contoso.com#EXT#@fabrikam.onmicrosoft.com"


@pytest.mark.parametrize(
    "tenant_switch, flow, providers, allowed, reason",
    [
        (False, "default", ["email"], False, "signup_disabled_for_tenant"),
        (True, None, ["email"], False, "app_has_no_user_flow"),
        (True, "default", ["email"], True, "user_flow_allows_signup"),
    ],
)
def test_self_service_sign_up_decision(
    tmp_path: Path, tenant_switch: bool, flow: str | None, providers: list[str], allowed: bool, reason: str
) -> None:
    demo = {**default_config()["applications"][0], "user_flow": flow}
    settings = make_settings(
        tmp_path, applications=[demo], user_flows=[{"id": "default", "identity_providers": providers}],
        external_collaboration={"self_service_sign_up": tenant_switch},
    )
    app = settings.application("demo")
    assert app is not None
    decision = self_service_sign_up(settings, app, "email")
    assert (decision.allowed, decision.reason) == (allowed, reason)
    other = self_service_sign_up(settings, app, "google")  # a connector the flow does not offer
    assert not other.allowed


# -- sign-up not allowed: same answer for known and unknown addresses ---------------------------------


def closed_settings(tmp_path: Path, smtp: SmtpServer, variant: str) -> Settings:
    if variant == "tenant_switch_off":
        return unthrottled(tmp_path, smtp, external_collaboration={"self_service_sign_up": False})
    return unthrottled(tmp_path, smtp, applications=[*default_config()["applications"], CLOSED_PORTAL])


async def make_known_user(app: Any, client: httpx.AsyncClient, smtp: SmtpServer, variant: str) -> None:
    if variant == "tenant_switch_off":  # created by other means (e.g. an admin); sign-up is off
        identity = UpstreamIdentity(connector_id="email", issuer="mail", subject=KNOWN, email=KNOWN)
        await sign_up(app.state.runtime.store, identity, "mail", "contoso.example", int(time.time()))
    else:  # signed up through the demo app, whose user flow allows it
        await flows.sign_in(client, smtp, KNOWN)
    smtp.clear()


@pytest.fixture
def mailed_codes(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Every passcode the connector makes, by address, whether or not it was mailed."""
    codes: dict[str, str] = {}
    real = otp.passcode_message

    def recording(*, to: str, code: str, **rest: Any) -> MailMessage:
        codes[to] = code
        return real(to=to, code=code, **rest)

    monkeypatch.setattr(otp, "passcode_message", recording)
    return codes


@pytest.fixture(params=["tenant_switch_off", "app_without_user_flow"])
async def closed(
    request: pytest.FixtureRequest, tmp_path: Path, smtp_server: SmtpServer
) -> AsyncIterator[tuple[Any, httpx.AsyncClient, flows.AuthRequest, str]]:
    """A gateway where the target app allows no sign-up, with KNOWN already in the directory."""
    variant = request.param
    async with running_app(closed_settings(tmp_path, smtp_server, variant)) as (app, client):
        await make_known_user(app, client, smtp_server, variant)
        if variant == "tenant_switch_off":
            target, reason = flows.AuthRequest(), "signup_disabled_for_tenant"
        else:
            target = flows.AuthRequest(client_id="portal", redirect_uri=PORTAL_REDIRECT)
            reason = "app_has_no_user_flow"
        yield app, client, target, reason


def like(req: flows.AuthRequest) -> flows.AuthRequest:
    """A new request (own state, nonce, PKCE) to the same client."""
    return flows.AuthRequest(client_id=req.client_id, redirect_uri=req.redirect_uri)


def shape(response: httpx.Response, path: str, address: str) -> tuple[int, list[str], str]:
    """A response with everything per-sign-in (ids, CSRF, the address) blanked out."""
    text = response.text.replace(path, "/signin/ID").replace(address, "ADDRESS")
    text = flows.CSRF.sub('name="csrf" value="CSRF"', text)
    location = response.headers.get("location", "").replace(path, "/signin/ID")
    names = sorted(k for k in response.headers if k not in ("content-length", "set-cookie"))
    return response.status_code, names, location + text


async def email_step(app: Any, req: flows.AuthRequest, address: str) -> tuple[Any, ...]:
    async with browser(app) as fresh:
        path = await flows.start(fresh, like(req))
        sent = await flows.submit_email(fresh, path, address)
        page = await fresh.get(f"{path}/passcode")
        return shape(sent, path, address), shape(page, path, address)


async def test_known_and_unknown_addresses_get_the_same_answer(
    closed: tuple[Any, httpx.AsyncClient, flows.AuthRequest, str], smtp_server: SmtpServer
) -> None:
    app, _, target, _ = closed
    before = snapshot(app)
    known = await email_step(app, target, KNOWN)
    unknown = await email_step(app, target, UNKNOWN)
    assert known == unknown
    assert known[0][0] == 200 and "We emailed a code" in known[0][2]  # the passcode page, for both
    await smtp_server.wait_for(to=KNOWN, timeout=10)
    await asyncio.sleep(0.3)
    assert [m["To"] for m in smtp_server.messages] == [KNOWN]  # nothing went to the unknown address
    after = snapshot(app)
    assert after.count("passcode") == before.count("passcode") + 2  # the same work for both
    assert after.user_count == before.user_count


async def test_mail_leaves_off_the_request_path(
    closed: tuple[Any, httpx.AsyncClient, flows.AuthRequest, str], smtp_server: SmtpServer
) -> None:
    app, _, target, _ = closed
    smtp_server.delay_seconds = 2.0
    async with browser(app) as fresh:
        path = await flows.start(fresh, like(target))
        page = await fresh.get(path)
        started = time.monotonic()
        sent = await fresh.post(f"{path}/email", data={"csrf": flows.csrf_of(page), "email": KNOWN})
        elapsed = time.monotonic() - started
    assert sent.status_code == 200 and elapsed < 1.0
    await smtp_server.wait_for(to=KNOWN, timeout=10)


async def test_an_unknown_address_is_refused_at_verification(
    closed: tuple[Any, httpx.AsyncClient, flows.AuthRequest, str], smtp_server: SmtpServer,
    mailed_codes: dict[str, str], caplog: pytest.LogCaptureFixture,
) -> None:
    app, _, target, reason = closed
    caplog.set_level("INFO", logger="gateway.audit")
    before = snapshot(app)
    async with browser(app) as fresh:
        path = await flows.start(fresh, target)
        assert (await flows.submit_email(fresh, path, UNKNOWN)).status_code == 200
        caplog.clear()
        refused = await flows.submit_passcode(fresh, path, mailed_codes[UNKNOWN])  # the code nobody was sent
        assert_error_page(refused, 403)
        assert f"{UNKNOWN} has no access to this application." in refused.text
        assert "gw_session" not in fresh.cookies
        assert_error_page(await fresh.get(path), 400)  # the sign-in is over
    after = snapshot(app)
    assert after.minted() == before.minted() and after.user_count == before.user_count
    [record] = [r for r in caplog.records if r.name == "gateway.audit"]
    assert f'"reason":"{reason}"' in record.getMessage()
    await asyncio.sleep(0.2)
    assert smtp_server.messages == []


async def test_a_known_user_can_still_sign_in(
    closed: tuple[Any, httpx.AsyncClient, flows.AuthRequest, str], smtp_server: SmtpServer
) -> None:
    app, _, target, _ = closed
    [known] = users(app)
    async with browser(app) as fresh:
        req, query = await flows.sign_in(fresh, smtp_server, KNOWN, target)
        tokens = await flows.exchange(fresh, req, query["code"])
    assert tokens.status_code == 200
    assert app.state.runtime.keys.verify(tokens.json()["id_token"])["oid"] == known["id"]
    assert users(app) == [known]


async def test_a_disabled_user_is_refused(
    tmp_path: Path, smtp_server: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_app(unthrottled(tmp_path, smtp_server)) as (app, client):
        await disabled_user_refused(app, client, smtp_server, caplog)


async def disabled_user_refused(
    app: Any, client: httpx.AsyncClient, smtp_server: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    await flows.sign_in(client, smtp_server, EMAIL)
    store = app.state.runtime.store
    [user] = users(app)
    await store.update_user({**user, "accountEnabled": False})
    caplog.set_level("INFO", logger="gateway.audit")
    async with browser(app) as fresh:
        before = snapshot(app)
        path = await flows.start(fresh, flows.AuthRequest())
        await flows.submit_email(fresh, path, EMAIL)
        code = extract_passcode(await smtp_server.wait_for(to=EMAIL, timeout=10))
        caplog.clear()
        refused = await flows.submit_passcode(fresh, path, code)
    assert_error_page(refused, 403)
    assert "disabled" in refused.text
    after = snapshot(app)
    assert after.minted() == before.minted() and after.user_count == 1
    [record] = [r.getMessage() for r in caplog.records if r.name == "gateway.audit"]
    assert '"reason":"account_disabled"' in record and f'"user":"{user["id"]}"' in record
    # Nor does the old session still work for the disabled user.
    again = await client.get(f"/oauth2/authorize?{flows.AuthRequest().query()}")
    flows.signin_path_of(again)  # the email page: sign in again
