"""``/admin``: an administrator lists, invites, resets and removes guests through HTML forms.

Each test signs in over the ASGI app with an emailed passcode as the bootstrap administrator of
``directory.administrators`` (the client keeps the SSO session cookie) and drives the pages as a
browser would; "nothing changed" is checked in the store.
"""

from __future__ import annotations

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

from gateway.adminpages.access import csrf_purpose
from gateway.directory.users import guest_upn, iso
from gateway.runtime import Runtime
from tests.support import flows
from tests.support.gateway_app import make_settings, running_app
from tests.support.smtp_server import SmtpServer

ADMIN = "admin@contoso.example"
INVITER = "inviter@contoso.example"
GUEST = "ada.guest@fabrikam.example"
ROLES = {
    "administrators": [
        {"email": ADMIN, "roles": ["Global Administrator"]},
        {"email": INVITER, "roles": ["Guest Inviter"]},
    ]
}
REDIRECT = "https://app.contoso.example/welcome"

Running = tuple[Runtime, httpx.AsyncClient]
Factory = Callable[..., AbstractAsyncContextManager[Running]]


@pytest.fixture
def gateway_with(tmp_path: Path, smtp_server: SmtpServer) -> Factory:
    @asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[Running]:
        overrides.setdefault("directory", ROLES)
        async with running_app(make_settings(tmp_path, smtp_server, **overrides)) as (app, client):
            yield app.state.runtime, client

    return start


async def sign_in(client: httpx.AsyncClient, smtp: SmtpServer, email: str) -> None:
    client.cookies.clear()
    await flows.sign_in(client, smtp, email)


async def add_guest(rt: Runtime, email: str, state: str = "PendingAcceptance", n: int = 0) -> str:
    """A guest object straight in the store (as an invitation makes it); returns its id."""
    upn = guest_upn(email, rt.settings.tenant.domain)
    user_id = f"00000000-0000-4000-8000-{n:012d}"
    user = {
        "id": user_id, "userType": "Guest", "creationType": "Invitation", "accountEnabled": True,
        "displayName": email.partition("@")[0], "mail": email, "otherMails": [], "userPrincipalName": upn,
        "identities": [], "externalUserState": state, "createdDateTime": iso(rt.now()),
    }  # fmt: skip
    assert await rt.store.create_user(user, [(rt.settings.tenant.domain, upn)])
    return user_id


def admin_records(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    records = [json.loads(r.getMessage()) for r in caplog.records if r.name == "gateway.audit"]
    return [r for r in records if r.get("event") == "admin"]


def rows(page: httpx.Response) -> list[str]:
    return re.findall(r'<td class="mail">([^<]+)</td>', page.text)


async def user_id_of(rt: Runtime, email: str) -> str:
    users, _ = await rt.store.list_users(mail=email)
    [user] = users
    return str(user["id"])


async def test_not_signed_in_gets_a_sign_in_pointer(gateway_with: Factory) -> None:
    async with gateway_with() as (rt, client):
        page = await client.get("/admin")
        assert page.status_code == 200 and 'id="signed-out"' in page.text
        assert 'href="/demo"' in page.text and page.headers["x-frame-options"] == "DENY"
        posted = await client.post("/admin/invite", data={"email": GUEST, "redirect_url": REDIRECT})
        assert posted.status_code == 401 and 'id="signed-out"' in posted.text
        assert (await rt.store.list_users(mail=GUEST))[0] == []


async def test_a_plain_guest_gets_403(gateway_with: Factory, smtp_server: SmtpServer) -> None:
    async with gateway_with() as (rt, client):
        await sign_in(client, smtp_server, GUEST)
        page = await client.get("/admin")
        assert page.status_code == 403 and "Administrators only" in page.text
        assert 'id="guests"' not in page.text and "csrf" not in page.text
        assert page.headers["cache-control"] == "no-store"
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        session = await rt.sessions.current(
            Request(
                {
                    "type": "http",
                    "headers": [
                        (
                            b"cookie",
                            f"{rt.sessions.cookie_name}={client.cookies[rt.sessions.cookie_name]}".encode(),
                        )
                    ],
                }
            ),
            rt.now(),
        )
        assert session is not None  # a token that would be valid: the role is what is missing
        csrf = rt.browser.csrf_token(csrf_purpose(session), client.cookies[rt.browser.cookie_name])
        form = {"csrf": csrf, "email": "friend@fabrikam.example", "redirect_url": REDIRECT}
        refused = await client.post("/admin/invite", data=form)
        assert refused.status_code == 403 and "Administrators only" in refused.text
        assert (await rt.store.list_users(mail="friend@fabrikam.example"))[0] == []


async def test_lists_guests_fifty_a_page_with_a_state_filter(
    gateway_with: Factory, smtp_server: SmtpServer
) -> None:
    async with gateway_with() as (rt, client):
        for n in range(51):
            await add_guest(rt, f"guest{n:02d}@fabrikam.example", n=n)
        accepted = await add_guest(rt, "done@fabrikam.example", "Accepted", n=99)
        await sign_in(client, smtp_server, ADMIN)
        first = await client.get("/admin")
        assert first.status_code == 200 and 'id="admin-email">admin@contoso.example<' in first.text
        assert len(rows(first)) == 50 and ADMIN not in rows(first)  # members are not listed
        assert '<td class="state">PendingAcceptance</td>' in first.text
        assert f'<td class="created">{iso(rt.now())[:10]}</td>' in first.text
        next_url = re.search(r'id="next-page" href="([^"]+)"', first.text)
        assert next_url is not None
        second = await client.get(next_url.group(1).replace("&amp;", "&"))
        assert len(rows(second)) == 2 and 'id="next-page"' not in second.text
        assert set(rows(first)).isdisjoint(rows(second))

        only = await client.get("/admin?state=Accepted")
        assert rows(only) == ["done@fabrikam.example"] and f'data-user="{accepted}"' in only.text
        assert 'value="Accepted" selected' in only.text
        assert (await client.get("/admin?state=Bogus")).status_code == 400
        assert (await client.get("/admin?after=%3Cscript%3E")).status_code == 400


async def test_invites_a_guest_and_mails_them_when_the_box_is_ticked(
    gateway_with: Factory, smtp_server: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.audit")
    async with gateway_with() as (rt, client):
        await sign_in(client, smtp_server, ADMIN)
        admin_id = await user_id_of(rt, ADMIN)
        form = {"csrf": flows.csrf_of(await client.get("/admin")), "email": GUEST, "redirect_url": REDIRECT,
                "display_name": "Ada", "send_mail": "yes", "message": "Welcome <b>aboard</b>"}  # fmt: skip
        done = await client.post("/admin/invite", data=form)
        assert done.status_code == 200 and "Invited ada.guest@fabrikam.example" in done.text
        assert "The invitation mail is on its way" in done.text and 'id="redeem-url"' in done.text
        guest_id = await user_id_of(rt, GUEST)
        guest = await rt.store.get_user(guest_id)
        assert guest is not None and guest["userType"] == "Guest" and guest["displayName"] == "Ada"
        assert guest["externalUserState"] == "PendingAcceptance" and guest["sponsors"] == [admin_id]
        mail = await smtp_server.wait_for(to=GUEST, timeout=10)
        body = mail.get_body(("plain",))
        assert (
            body is not None
            and "/redeem" in body.get_content()
            and "Welcome <b>aboard</b>" in body.get_content()
        )
        assert rows(await client.get("/admin")) == [GUEST]

        quiet = {**form, "email": "bob@fabrikam.example", "send_mail": ""}
        page = await client.post("/admin/invite", data=quiet)
        assert page.status_code == 200 and "No mail was sent" in page.text
    invites = [r for r in admin_records(caplog) if r["action"] == "invite"]
    assert [(r["result"], r["actor"]) for r in invites] == [("success", {"kind": "user", "id": admin_id})] * 2
    assert invites[0]["target"] == guest_id and "invitation_mail_queued" in invites[0]["reasons"]
    assert "invitation_mail_queued" not in invites[1]["reasons"]


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [("email", "not-an-address", "Email: "), ("redirect_url", "javascript:alert(1)", "Redirect URL: ")],
)
async def test_a_bad_invite_form_is_400_and_creates_nothing(
    gateway_with: Factory, smtp_server: SmtpServer, caplog: pytest.LogCaptureFixture,
    field: str, value: str, error: str,
) -> None:  # fmt: skip
    caplog.set_level(logging.INFO, logger="gateway.audit")
    async with gateway_with() as (rt, client):
        await sign_in(client, smtp_server, ADMIN)
        form = {"csrf": flows.csrf_of(await client.get("/admin")), "email": GUEST, "redirect_url": REDIRECT}
        page = await client.post("/admin/invite", data={**form, field: value})
        assert page.status_code == 400 and 'id="form-error"' in page.text and error in page.text
        assert "<script" not in page.text.lower()
        assert (await rt.store.list_users(user_type="Guest"))[0] == []
    [record] = admin_records(caplog)
    assert record["result"] == "failure" and record["reasons"] == ["invalid_field"]


async def test_a_blocked_domain_is_refused_with_the_reason(
    gateway_with: Factory, smtp_server: SmtpServer
) -> None:
    async with gateway_with(external_collaboration={"blocked_domains": ["fabrikam.example"]}) as (rt, client):
        await sign_in(client, smtp_server, ADMIN)
        form = {"csrf": flows.csrf_of(await client.get("/admin")), "email": GUEST, "redirect_url": REDIRECT}
        page = await client.post("/admin/invite", data=form)
        assert page.status_code == 403 and "blocked by your organisation" in page.text
        assert (await rt.store.list_users(user_type="Guest"))[0] == []


async def test_resets_a_redemption_after_confirmation(
    gateway_with: Factory, smtp_server: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.audit")
    async with gateway_with() as (rt, client):
        guest_id = await add_guest(rt, GUEST, "Accepted")
        await sign_in(client, smtp_server, ADMIN)
        csrf = flows.csrf_of(await client.get("/admin"))
        confirm = await client.post(f"/admin/guests/{guest_id}/reset", data={"csrf": csrf})
        assert confirm.status_code == 200 and 'id="reset-confirm"' in confirm.text
        assert 'name="confirm" value="yes"' in confirm.text
        unchanged = await rt.store.get_user(guest_id)
        assert unchanged is not None and unchanged["externalUserState"] == "Accepted"

        new = "ada@new.example"
        form = {"csrf": csrf, "confirm": "yes", "email": new, "redirect_url": REDIRECT, "send_mail": "yes"}
        done = await client.post(f"/admin/guests/{guest_id}/reset", data=form)
        assert done.status_code == 200 and "Redemption reset for" in done.text
        guest = await rt.store.get_user(guest_id)
        assert guest is not None and guest["externalUserState"] == "PendingAcceptance"
        assert guest["otherMails"] == [new] and guest["signInSessionsValidFromDateTime"]
        await smtp_server.wait_for(to=new, timeout=10)
    [record] = [r for r in admin_records(caplog) if r["action"] == "invite"]
    assert record["result"] == "success" and record["target"] == guest_id
    assert "redemption_reset" in record["reasons"] and "sessions_revoked" in record["reasons"]


async def test_removes_a_guest_after_confirmation(
    gateway_with: Factory, smtp_server: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.audit")
    async with gateway_with() as (rt, client):
        await sign_in(client, smtp_server, GUEST)  # the guest has a live session to revoke
        guest_cookie = client.cookies[rt.sessions.cookie_name]
        guest_id = await user_id_of(rt, GUEST)
        await sign_in(client, smtp_server, ADMIN)
        admin_id = await user_id_of(rt, ADMIN)
        csrf = flows.csrf_of(await client.get("/admin"))
        confirm = await client.post(f"/admin/guests/{guest_id}/remove", data={"csrf": csrf})
        assert confirm.status_code == 200 and 'id="remove-confirm"' in confirm.text
        assert await rt.store.get_user(guest_id) is not None

        done = await client.post(f"/admin/guests/{guest_id}/remove", data={"csrf": csrf, "confirm": "yes"})
        assert done.status_code == 200 and "was removed" in done.text
        assert await rt.store.get_user(guest_id) is None
        assert await rt.store.get_deleted_user(guest_id) is not None
        client.cookies.set(rt.sessions.cookie_name, guest_cookie)
        assert 'id="signed-out"' in (await client.get("/myapps")).text  # the guest's session is gone
    [record] = [r for r in admin_records(caplog) if r["action"] == "deleteUser"]
    assert record["actor"] == {"kind": "user", "id": admin_id} and record["target"] == guest_id
    assert record["result"] == "success" and record["reasons"] == ["user_soft_deleted"]


async def test_a_guest_inviter_invites_but_cannot_reset_or_remove(
    gateway_with: Factory, smtp_server: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.audit")
    async with gateway_with() as (rt, client):
        guest_id = await add_guest(rt, "old@fabrikam.example", "Accepted")
        await sign_in(client, smtp_server, INVITER)
        page = await client.get("/admin")
        assert page.status_code == 200 and rows(page) == ["old@fabrikam.example"]
        assert "Reset redemption" not in page.text and 'class="link remove"' not in page.text
        csrf = flows.csrf_of(page)
        for action in ("reset", "remove"):
            form = {"csrf": csrf, "confirm": "yes", "email": "x@new.example", "redirect_url": REDIRECT}
            refused = await client.post(f"/admin/guests/{guest_id}/{action}", data=form)
            assert refused.status_code == 403 and "Only a Global Administrator" in refused.text
        guest = await rt.store.get_user(guest_id)
        assert guest is not None and guest["externalUserState"] == "Accepted" and guest["otherMails"] == []
        invited = await client.post(
            "/admin/invite", data={"csrf": csrf, "email": GUEST, "redirect_url": REDIRECT}
        )
        assert invited.status_code == 200 and await user_id_of(rt, GUEST)
    failures = [(r["action"], r["reasons"]) for r in admin_records(caplog) if r["result"] == "failure"]
    assert failures == [("invite", ["insufficient_privileges"]), ("deleteUser", ["insufficient_privileges"])]


@pytest.mark.parametrize("csrf", [None, "forged-" + "A" * 40], ids=["missing", "forged"])
@pytest.mark.parametrize("action", ["invite", "reset", "remove"])
async def test_a_post_without_a_valid_csrf_token_is_403_and_changes_nothing(
    gateway_with: Factory, smtp_server: SmtpServer, caplog: pytest.LogCaptureFixture,
    action: str, csrf: str | None,
) -> None:  # fmt: skip
    caplog.set_level(logging.INFO, logger="gateway.audit")
    async with gateway_with() as (rt, client):
        guest_id = await add_guest(rt, "old@fabrikam.example", "Accepted")
        await sign_in(client, smtp_server, ADMIN)
        await client.get("/admin")
        path = "/admin/invite" if action == "invite" else f"/admin/guests/{guest_id}/{action}"
        form = {
            "confirm": "yes",
            "email": GUEST,
            "redirect_url": REDIRECT,
            **({} if csrf is None else {"csrf": csrf}),
        }
        refused = await client.post(path, data=form)
        assert refused.status_code == 403 and "This form has expired" in refused.text
        guest = await rt.store.get_user(guest_id)
        assert guest is not None and guest["externalUserState"] == "Accepted" and guest["otherMails"] == []
        assert (await rt.store.list_users(mail=GUEST))[0] == []
    assert admin_records(caplog) == []
