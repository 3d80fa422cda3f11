"""``/owner``: a signed-in app or group owner adds guests (existing or newly invited) to what they
own, over the ASGI app with the session cookie a real passcode sign-in leaves; non-owners, foreign
objects, bad or missing CSRF tokens and refused invitations change nothing in the store."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.admin.models import DEFAULT_ACCESS_ROLE_ID
from gateway.runtime import Runtime
from tests.support import flows
from tests.support.gateway_app import default_config, make_settings, running_app
from tests.support.smtp_server import SmtpServer

OWNER = "owner@contoso.example"
ROLE_ID = "6a1b2c3d-0000-4000-8000-00000000beef"
CRM: dict[str, Any] = {
    "id": "crm",
    "name": "Contoso CRM",
    "oidc": {"client_id": "crm", "redirect_uris": ["https://crm.contoso.example/cb"]},
    "app_roles": [{"id": ROLE_ID, "value": "Reader", "display_name": "CRM reader"}],
    "assignment_required": True,
}
WIKI = {**CRM, "id": "wiki", "name": "Wiki", "oidc": {**CRM["oidc"], "client_id": "wiki"}}

Running = tuple[Runtime, httpx.AsyncClient, str]
Factory = Callable[..., AbstractAsyncContextManager[Running]]


@pytest.fixture
def owner_with(tmp_path: Path, smtp_server: SmtpServer) -> Factory:
    """A gateway whose client is signed in as OWNER; yields the runtime, the client and OWNER's id."""

    @asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[Running]:
        overrides.setdefault("applications", [*default_config()["applications"], CRM, WIKI])
        async with running_app(make_settings(tmp_path, smtp_server, **overrides)) as (app, client):
            rt: Runtime = app.state.runtime
            await flows.sign_in(client, smtp_server, OWNER)
            [user] = await rt.store.find_users_by_mail(OWNER)
            smtp_server.messages.clear()
            yield rt, client, str(user["id"])

    return start


@pytest.fixture
async def owner(owner_with: Factory) -> AsyncIterator[Running]:
    async with owner_with() as running:
        yield running


async def page_csrf(client: httpx.AsyncClient) -> str:
    page = await client.get("/owner")
    assert page.status_code == 200, page.text
    return flows.csrf_of(page)


async def new_group(rt: Runtime, name: str = "Partners") -> str:
    group_id = str(uuid.uuid4())
    await rt.store.create_group({"id": group_id, "displayName": name})
    return group_id


async def existing_guest(rt: Runtime, email: str = "ada@fabrikam.example") -> str:
    user_id = str(uuid.uuid4())
    user = {"id": user_id, "userType": "Guest", "accountEnabled": True, "displayName": "Ada", "mail": email,
            "otherMails": [], "identities": [], "createdDateTime": "2026-01-01T00:00:00Z"}  # fmt: skip
    assert await rt.store.create_user(user, [("mail", email)])
    return user_id


async def test_a_non_owner_owns_nothing_and_cannot_post_to_others_objects(owner: Running) -> None:
    rt, client, _ = owner
    page = await client.get("/owner")
    assert page.status_code == 200 and 'id="owns-nothing"' in page.text
    assert 'name="csrf"' not in page.text  # no form at all
    someone = await existing_guest(rt, "someone@contoso.example")
    await rt.store.add_app_owner("crm", someone)
    group_id = await new_group(rt)
    await rt.store.add_group_owner(group_id, someone)
    guest = await existing_guest(rt)
    await rt.store.add_app_owner("wiki", (await rt.store.find_users_by_mail(OWNER))[0]["id"])
    csrf = await page_csrf(client)  # a valid token, from the owner's page of their own app
    for path in ("/owner/apps/crm/guests", f"/owner/groups/{group_id}/guests", "/owner/apps/nope/guests"):
        response = await client.post(path, data={"csrf": csrf, "email": "ada@fabrikam.example"})
        assert response.status_code == 403, response.text
    assert await rt.store.list_app_role_assignments(principal_id=guest) == []
    assert await rt.store.list_group_members(group_id) == []


async def test_an_app_owner_assigns_an_existing_guest_a_role(owner: Running) -> None:
    rt, client, owner_id = owner
    await rt.store.add_app_owner("crm", owner_id)
    guest = await existing_guest(rt)
    page = await client.get("/owner")
    assert 'id="app-crm"' in page.text and "CRM reader" in page.text and 'id="app-wiki"' not in page.text
    response = await client.post(
        "/owner/apps/crm/guests",
        data={"csrf": flows.csrf_of(page), "email": "ada@fabrikam.example", "role": ROLE_ID},
    )
    assert response.status_code == 200, response.text
    assert "now has access to Contoso CRM (CRM reader)" in response.text
    [assignment] = await rt.store.list_app_role_assignments(principal_id=guest)
    assert (assignment["resourceId"], assignment["appRoleId"]) == ("crm", ROLE_ID)
    again = await client.post(
        "/owner/apps/crm/guests",
        data={"csrf": flows.csrf_of(page), "email": "ada@fabrikam.example", "role": ROLE_ID},
    )
    assert again.status_code == 409
    assert len(await rt.store.list_app_role_assignments(principal_id=guest)) == 1


async def test_an_app_owner_invites_a_new_guest_with_default_access(
    owner: Running, smtp_server: SmtpServer
) -> None:
    rt, client, owner_id = owner
    await rt.store.add_app_owner("crm", owner_id)
    csrf = await page_csrf(client)
    response = await client.post(
        "/owner/apps/crm/guests",
        data={"csrf": csrf, "email": "New.Guest@Partner.example", "role": DEFAULT_ACCESS_ROLE_ID},
    )
    assert response.status_code == 200, response.text
    assert "was invited and now has access" in response.text
    [guest] = await rt.store.find_users_by_mail("New.Guest@partner.example")
    assert guest["externalUserState"] == "PendingAcceptance"
    [assignment] = await rt.store.list_app_role_assignments(principal_id=guest["id"])
    assert assignment["appRoleId"] == DEFAULT_ACCESS_ROLE_ID
    await smtp_server.wait_for(to="New.Guest@partner.example", timeout=10)


async def test_a_group_owner_adds_a_guest_as_member(owner: Running) -> None:
    rt, client, owner_id = owner
    group_id = await new_group(rt)
    await rt.store.add_group_owner(group_id, owner_id)
    guest = await existing_guest(rt)
    page = await client.get("/owner")
    assert f'id="group-{group_id}"' in page.text
    response = await client.post(
        f"/owner/groups/{group_id}/guests",
        data={"csrf": flows.csrf_of(page), "email": "ada@fabrikam.example"},
    )
    assert response.status_code == 200, response.text
    assert "is now a member of Partners" in response.text
    assert await rt.store.list_group_members(group_id) == [guest]


async def test_a_missing_or_foreign_csrf_token_is_refused(owner: Running) -> None:
    rt, client, owner_id = owner
    await rt.store.add_app_owner("crm", owner_id)
    guest = await existing_guest(rt)
    for token in ("", "forged", None):
        data = {"email": "ada@fabrikam.example"} | ({} if token is None else {"csrf": token})
        response = await client.post("/owner/apps/crm/guests", data=data)
        assert response.status_code == 403
    assert await rt.store.list_app_role_assignments(principal_id=guest) == []


async def test_signed_out_visitors_see_a_pointer_and_cannot_post(owner: Running) -> None:
    rt, client, _ = owner
    client.cookies.clear()
    page = await client.get("/owner")
    assert page.status_code == 200 and 'id="signed-out"' in page.text
    response = await client.post("/owner/apps/crm/guests", data={"csrf": "x", "email": "a@b.example"})
    assert response.status_code == 401
    assert await rt.store.list_app_role_assignments(resource_id="crm") == []


@pytest.mark.parametrize(
    ("fields", "status", "text"),
    [
        ({"email": "not-an-address"}, 400, "not valid"),
        ({"email": "ada@fabrikam.example", "role": str(uuid.uuid4())}, 400, "roles"),
        ({"email": "x@blocked.example"}, 403, "blocked"),
    ],
)
async def test_bad_input_and_blocked_domains_change_nothing(
    owner_with: Factory, fields: dict[str, str], status: int, text: str
) -> None:
    collaboration = {"blocked_domains": ["blocked.example"]}
    async with owner_with(external_collaboration=collaboration) as (rt, client, owner_id):
        await rt.store.add_app_owner("crm", owner_id)
        await existing_guest(rt)
        csrf = await page_csrf(client)
        response = await client.post("/owner/apps/crm/guests", data={"csrf": csrf, **fields})
        assert response.status_code == status, response.text
        assert text in response.text
        assert await rt.store.list_app_role_assignments(resource_id="crm") == []
        assert await rt.store.find_users_by_mail("x@blocked.example") == []


async def test_invites_disabled_refuses_a_new_guest(owner_with: Factory) -> None:
    async with owner_with(external_collaboration={"allow_invites_from": "none"}) as (rt, client, owner_id):
        group_id = await new_group(rt)
        await rt.store.add_group_owner(group_id, owner_id)
        csrf = await page_csrf(client)
        response = await client.post(
            f"/owner/groups/{group_id}/guests", data={"csrf": csrf, "email": "new@partner.example"}
        )
        assert response.status_code == 403
        assert "does not allow guest invitations" in response.text
        assert await rt.store.find_users_by_mail("new@partner.example") == []
        assert await rt.store.list_group_members(group_id) == []
