"""``/myapps``: the applications list, the profile, and a guest leaving the organisation (b2b §10).

Each test signs in over the ASGI app with an emailed passcode (the client keeps the SSO session
cookie), then drives the pages as a browser would; "nothing changed" is checked in the store, on
the page and at the token endpoint.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.requests import Request

from gateway.myapps.routes import csrf_purpose
from gateway.runtime import Runtime
from tests.support import flows
from tests.support.assertions import assert_oauth_error
from tests.support.gateway_app import default_config, make_settings, running_app
from tests.support.smtp_server import SmtpServer

GUEST = "ada.guest@fabrikam.example"
MEMBER = "admin@contoso.example"
CRM = {
    "id": "crm",
    "name": "Contoso CRM",
    "oidc": {"client_id": "crm", "redirect_uris": ["https://crm.contoso.example/signin/callback"]},
}
OFFLINE = "openid profile email offline_access"

Running = tuple[Runtime, httpx.AsyncClient]
Factory = Callable[..., AbstractAsyncContextManager[Running]]


@pytest.fixture
def gateway_with(tmp_path: Path, smtp_server: SmtpServer) -> Factory:
    @asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[Running]:
        overrides.setdefault("applications", [*default_config()["applications"], CRM])
        async with running_app(make_settings(tmp_path, smtp_server, **overrides)) as (app, client):
            yield app.state.runtime, client

    return start


async def signed_in(
    client: httpx.AsyncClient, smtp: SmtpServer, email: str = GUEST
) -> tuple[dict[str, Any], str]:
    """Sign in (the client keeps the SSO session cookie); returns the tokens and the user's id."""
    _, tokens = await flows.signed_in_tokens(client, smtp, email, flows.AuthRequest(scope=OFFLINE))
    payload = tokens["id_token"].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return tokens, str(claims["oid"])


async def valid_csrf(rt: Runtime, client: httpx.AsyncClient) -> str:
    """The token a /myapps form would carry, for pages that show no form (refused, member)."""
    cookie = f"{rt.sessions.cookie_name}={client.cookies[rt.sessions.cookie_name]}"
    session = await rt.sessions.current(
        Request({"type": "http", "headers": [(b"cookie", cookie.encode())]}), rt.now()
    )
    assert session is not None
    return rt.browser.csrf_token(csrf_purpose(session), client.cookies[rt.browser.cookie_name])


async def refresh(client: httpx.AsyncClient, tokens: dict[str, Any]) -> httpx.Response:
    return await client.post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": "demo"},
    )


async def assert_unchanged(
    rt: Runtime, client: httpx.AsyncClient, user_id: str, tokens: dict[str, Any]
) -> None:
    """The user is live and never revoked, still signed in here, and their refresh token works."""
    user = await rt.store.get_user(user_id)
    assert user is not None and "signInSessionsValidFromDateTime" not in user
    assert 'id="profile"' in (await client.get("/myapps")).text
    assert (await refresh(client, tokens)).status_code == 200


def leave_records(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    records = [json.loads(r.getMessage()) for r in caplog.records if r.name == "gateway.audit"]
    return [r for r in records if r.get("action") == "leave"]


async def test_lists_apps_and_profile_with_a_leave_section_for_guests(
    gateway_with: Factory, smtp_server: SmtpServer
) -> None:
    async with gateway_with() as (rt, client):
        await signed_in(client, smtp_server)
        page = await client.get("/myapps")
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store" and page.headers["x-frame-options"] == "DENY"
    links = dict(re.findall(r'<a href="([^"]+)" data-app="[^"]+"[^>]*>([^<]+)</a>', page.text))
    assert links == {"http://127.0.0.1:8000": "Demo app", "https://crm.contoso.example": "Contoso CRM"}
    assert 'id="email">ada.guest@fabrikam.example<' in page.text
    assert 'id="user-type">Guest<' in page.text
    assert 'id="leave-start"' in page.text and 'action="/myapps/leave"' in page.text
    assert f'name="tenant" value="{rt.settings.tenant.id}"' in page.text


async def test_a_guest_leaves_in_two_steps(
    gateway_with: Factory, smtp_server: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.audit")
    async with gateway_with() as (rt, client):
        tokens, user_id = await signed_in(client, smtp_server)
        form = {"csrf": flows.csrf_of(await client.get("/myapps")), "tenant": rt.settings.tenant.id}
        confirm = await client.post("/myapps/leave", data=form)
        assert confirm.status_code == 200
        assert "Leave Contoso?" in confirm.text and "deleted for good after 30 days" in confirm.text
        assert 'name="confirm" value="yes"' in confirm.text
        assert leave_records(caplog) == []
        await assert_unchanged(rt, client, user_id, tokens)  # the first step changes nothing

        left = await client.post("/myapps/leave", data={**form, "confirm": "yes"})
        assert left.status_code == 200 and "You left Contoso" in left.text
        assert re.search(rf'{rt.sessions.cookie_name}="?"?;.*Max-Age=0', left.headers["set-cookie"])
        assert await rt.store.get_user(user_id) is None
        deleted = await rt.store.get_deleted_user(user_id)
        assert deleted is not None and deleted["deletedDateTime"] and deleted["accountEnabled"] is False
        assert_oauth_error(await refresh(client, tokens), "invalid_grant")
        silent = await client.get(f"/oauth2/authorize?{flows.AuthRequest(extra={'prompt': 'none'}).query()}")
        assert flows.query_of(silent.headers["location"])["error"] == "login_required"
        assert 'id="signed-out"' in (await client.get("/myapps")).text
    [record] = leave_records(caplog)
    assert record["result"] == "success" and record["actor"] == {"kind": "user", "id": user_id}
    assert record["target"] == user_id and record["reasons"] == ["guest_left"]


async def test_leaving_disabled_is_refused_and_changes_nothing(
    gateway_with: Factory, smtp_server: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.audit")
    async with gateway_with(
        external_collaboration={"allow_guests_to_leave": False},
        invitations={"privacy_statement_url": "https://contoso.example/privacy"},
    ) as (rt, client):
        tokens, user_id = await signed_in(client, smtp_server)
        page = await client.get("/myapps")
        assert 'id="leave-refused"' in page.text and 'id="leave-start"' not in page.text
        form = {"csrf": await valid_csrf(rt, client), "tenant": rt.settings.tenant.id}
        for extra in ({}, {"confirm": "yes"}):
            refused = await client.post("/myapps/leave", data={**form, **extra})
            assert refused.status_code == 403
            assert "does not let guests leave" in refused.text and "contact the administrator" in refused.text
            assert 'href="https://contoso.example/privacy"' in refused.text
        await assert_unchanged(rt, client, user_id, tokens)
    assert [(r["result"], r["reasons"]) for r in leave_records(caplog)] == [
        ("failure", ["leaving_disabled"])
    ] * 2


async def test_a_member_cannot_leave(gateway_with: Factory, smtp_server: SmtpServer) -> None:
    async with gateway_with(
        directory={"administrators": [{"email": MEMBER, "roles": ["Global Administrator"]}]}
    ) as (rt, client):
        tokens, user_id = await signed_in(client, smtp_server, MEMBER)
        page = await client.get("/myapps")
        assert 'id="user-type">Member<' in page.text and 'id="leave"' not in page.text
        form = {"csrf": await valid_csrf(rt, client), "tenant": rt.settings.tenant.id, "confirm": "yes"}
        refused = await client.post("/myapps/leave", data=form)
        assert refused.status_code == 403 and "belongs to this organisation" in refused.text
        await assert_unchanged(rt, client, user_id, tokens)


@pytest.mark.parametrize(
    "csrf",
    [None, "", "forged-" + "A" * 40, "x" * 200],
    ids=["missing", "empty", "forged", "huge"],
)
async def test_missing_or_forged_csrf_is_403_and_changes_nothing(
    gateway_with: Factory, smtp_server: SmtpServer, csrf: str | None
) -> None:
    async with gateway_with() as (rt, client):
        tokens, user_id = await signed_in(client, smtp_server)
        form = {"tenant": rt.settings.tenant.id, "confirm": "yes", **({} if csrf is None else {"csrf": csrf})}
        response = await client.post("/myapps/leave", data=form)
        assert response.status_code == 403 and "This form has expired" in response.text
        await assert_unchanged(rt, client, user_id, tokens)


async def test_a_token_from_another_session_or_browser_is_refused(
    gateway_with: Factory, smtp_server: SmtpServer
) -> None:
    async with gateway_with() as (rt, client):
        tokens, user_id = await signed_in(client, smtp_server)
        old = flows.csrf_of(await client.get("/myapps"))
        other_browser = {"tenant": rt.settings.tenant.id, "confirm": "yes", "csrf": old}
        client.cookies.set(rt.browser.cookie_name, "b" * 43)
        assert (await client.post("/myapps/leave", data=other_browser)).status_code == 403
        await assert_unchanged(rt, client, user_id, tokens)


async def test_bad_tenant_and_bad_body_are_refused(gateway_with: Factory, smtp_server: SmtpServer) -> None:
    async with gateway_with() as (rt, client):
        tokens, user_id = await signed_in(client, smtp_server)
        csrf = flows.csrf_of(await client.get("/myapps"))
        foreign = await client.post(
            "/myapps/leave",
            data={"csrf": csrf, "tenant": "00000000-0000-4000-8000-000000000000", "confirm": "yes"},
        )
        assert foreign.status_code == 400 and "another organisation" in foreign.text
        as_json = await client.post("/myapps/leave", json={"csrf": csrf, "confirm": "yes"})
        assert as_json.status_code == 400 and "x-www-form-urlencoded" in as_json.text
        await assert_unchanged(rt, client, user_id, tokens)


async def test_not_signed_in_shows_a_sign_in_pointer(gateway_with: Factory) -> None:
    async with gateway_with() as (rt, client):
        page = await client.get("/myapps")
        assert page.status_code == 200 and "location" not in page.headers
        assert 'id="signed-out"' in page.text and '<a id="signin" href="/demo">' in page.text
        post = await client.post(
            "/myapps/leave", data={"csrf": "x" * 43, "tenant": rt.settings.tenant.id, "confirm": "yes"}
        )
        assert post.status_code == 401 and 'id="signed-out"' in post.text


async def test_not_signed_in_without_the_demo_explains(gateway_with: Factory) -> None:
    async with gateway_with(demo={"enabled": False}) as (_, client):
        page = await client.get("/myapps")
    assert page.status_code == 200 and 'id="signin-hint"' in page.text and "/demo" not in page.text


async def test_a_disabled_account_cannot_leave(gateway_with: Factory, smtp_server: SmtpServer) -> None:
    async with gateway_with() as (rt, client):
        _, user_id = await signed_in(client, smtp_server)
        user = await rt.store.get_user(user_id)
        assert user is not None
        await rt.store.update_user({**user, "accountEnabled": False})
        form = {"csrf": await valid_csrf(rt, client), "tenant": rt.settings.tenant.id, "confirm": "yes"}
        refused = await client.post("/myapps/leave", data=form)
        assert refused.status_code == 403 and "account here is disabled" in refused.text
        still = await rt.store.get_user(user_id)
        assert still is not None and "signInSessionsValidFromDateTime" not in still
