"""``/v1.0/users/{id}/authentication/softwareOathMethods``: listing a user's TOTP methods (never
their secrets) and deleting one — the reset path that makes the next MFA sign-in register again.
Every refusal shows the Graph-shaped error, an audit record for deletes, and that nothing changed."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.mfa import methods, totp
from tests.admin.conftest import ApiFactory
from tests.admin.helpers import (
    ADMIN,
    INVITER,
    MEMBER,
    SECRET,
    USER_ADMIN,
    Api,
    applications,
    assert_error,
    bearer,
)
from tests.support import flows
from tests.support.smtp_server import extract_passcode

GUEST = "guest@fabrikam.example"
MFA_POLICY = {
    "id": "guests-mfa",
    "display_name": "Everyone needs MFA",
    "state": "enabled",
    "conditions": {"users": {"include_users": ["All"]}, "applications": {"include_applications": ["All"]}},
    "grant_controls": {"operator": "OR", "built_in_controls": ["mfa"]},
}


def app_with(client_id: str, permissions: list[str]) -> dict[str, Any]:
    return {
        "id": client_id,
        "name": client_id.title(),
        "oidc": {
            "client_id": client_id,
            "client_secret": SECRET,
            "redirect_uris": [f"https://{client_id}.example/cb"],
        },
        "api_permissions": permissions,
    }


APPS = [
    *applications(),
    app_with("methods-admin", ["UserAuthenticationMethod.ReadWrite.All"]),
    app_with("methods-reader", ["UserAuthenticationMethod.Read.All"]),
]


@pytest.fixture
async def api(api_with: ApiFactory) -> AsyncIterator[Api]:
    async with api_with(
        applications=APPS,
        conditional_access=[MFA_POLICY],
        passcode={"resend_interval_seconds": 0, "max_sends_per_address_per_hour": 100},
    ) as running:
        yield running


@pytest.fixture
def audit_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="gateway.audit")
    return caplog


def deletes(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    records = [json.loads(r.getMessage()) for r in caplog.records if r.name == "gateway.audit"]
    return [r for r in records if r.get("event") == "admin" and r["action"] == "deleteSoftwareOathMethod"]


async def guest_with_method(api: Api) -> tuple[dict[str, Any], dict[str, str]]:
    """A guest with one TOTP method registered (through ``methods.register``); the stored user and
    the method as stored."""
    guest = await api.add_user(GUEST, "Guest", externalUserState="Accepted")
    store, box, now = api.rt.store, api.rt.box, api.rt.now()
    secret = await methods.enrolment_secret(store, box, "seed-signin", guest["id"], 600)
    code = totp.code_at(secret, totp.time_step(now))
    result = await methods.register(
        store, box, user_id=guest["id"], signin_id="seed-signin", code=code, now=now
    )
    assert result.outcome == "accepted"
    stored = await store.get_user(guest["id"])
    assert stored is not None
    return stored, stored[methods.METHODS_KEY][0]


def path(user_id: str, method_id: str | None = None) -> str:
    base = f"/v1.0/users/{user_id}/authentication/softwareOathMethods"
    return base if method_id is None else f"{base}/{method_id}"


# -- listing -------------------------------------------------------------------------------------


async def test_the_list_shows_ids_and_dates_never_the_secret(api: Api) -> None:
    guest, method = await guest_with_method(api)
    admin = await api.add_user(ADMIN)
    for token in (
        await api.app_token("methods-admin"),
        await api.app_token("methods-reader"),
        await api.user_token(admin),
        await api.user_token(guest),  # one's own methods
    ):
        response = await api.client.get(path(guest["id"]), headers=bearer(token))
        assert response.status_code == 200, response.text
        assert response.headers["cache-control"] == "no-store"
        body = response.json()
        assert body["value"] == [{"id": method["id"], "createdDateTime": method["createdDateTime"]}]
        assert body["@odata.context"].endswith(f"users('{guest['id']}')/authentication/softwareOathMethods")
        assert method["secret"] not in response.text and "secret" not in response.text


async def test_a_user_without_methods_has_an_empty_list(api: Api) -> None:
    guest = await api.add_user(GUEST, "Guest")
    response = await api.client.get(path(guest["id"]), headers=bearer(await api.app_token("methods-reader")))
    assert response.status_code == 200 and response.json()["value"] == []


async def test_the_user_view_never_shows_the_methods(api: Api) -> None:
    guest, _ = await guest_with_method(api)
    token = await api.user_token(await api.add_user(ADMIN))
    shown = await api.client.get(f"/v1.0/users/{guest['id']}", headers=bearer(token))
    assert shown.status_code == 200 and methods.METHODS_KEY not in shown.json()


async def test_who_may_not_list(api: Api) -> None:
    guest, _ = await guest_with_method(api)
    for token in (
        await api.app_token("admin-app"),  # User.ReadWrite.All is not an authentication-method permission
        await api.user_token(await api.add_user(INVITER)),
        await api.user_token(await api.add_user(MEMBER)),
        await api.user_token(await api.add_user("other@fabrikam.example", "Guest")),
    ):
        response = await api.client.get(path(guest["id"]), headers=bearer(token))
        assert_error(response, 403, "accessDenied", "insufficient_privileges")
    assert_error(await api.client.get(path(guest["id"])), 401, "unauthenticated", "missing_token")


async def test_an_unknown_user_is_404(api: Api) -> None:
    token = await api.app_token("methods-admin")
    for user_id in ("0b6c1e8e-2c0a-4a39-9d0e-6d3a8c1f0e55", "x" * 65):
        assert_error(
            await api.client.get(path(user_id), headers=bearer(token)), 404, "itemNotFound", "user_not_found"
        )


async def test_other_methods_are_not_allowed(api: Api) -> None:
    guest, method = await guest_with_method(api)
    token = bearer(await api.app_token("methods-admin"))
    refused = await api.client.post(path(guest["id"]), headers=token, json={"secretKey": "x"})
    assert_error(refused, 405, "methodNotAllowed", "method_not_allowed")
    assert refused.headers["allow"] == "GET, HEAD"
    refused = await api.client.get(path(guest["id"], method["id"]), headers=token)
    assert_error(refused, 405, "methodNotAllowed", "method_not_allowed")
    assert await api.rt.store.get_user(guest["id"]) == guest


# -- deleting ------------------------------------------------------------------------------------


@pytest.mark.parametrize("caller", ["methods-admin", ADMIN, USER_ADMIN])
async def test_deleting_a_method_removes_it_and_is_audited(
    api: Api, audit_log: pytest.LogCaptureFixture, caller: str
) -> None:
    guest, method = await guest_with_method(api)
    token = (
        await api.app_token(caller) if "@" not in caller else await api.user_token(await api.add_user(caller))
    )
    audit_log.clear()
    response = await api.client.delete(path(guest["id"], method["id"]), headers=bearer(token))
    assert response.status_code == 204, response.text
    after = await api.rt.store.get_user(guest["id"])
    assert after is not None and methods.stored_methods(after) == []
    listed = await api.client.get(path(guest["id"]), headers=bearer(await api.app_token("methods-reader")))
    assert listed.json()["value"] == []
    [record] = deletes(audit_log)
    assert (record["result"], record["target"], record["reasons"]) == (
        "success", guest["id"], ["authentication_method_deleted"],
    )  # fmt: skip


@pytest.mark.parametrize(
    ("who", "status", "code", "reason"),
    [
        ("methods-reader", 403, "accessDenied", "insufficient_privileges"),
        ("admin-app", 403, "accessDenied", "insufficient_privileges"),
        ("self", 403, "accessDenied", "insufficient_privileges"),
        (INVITER, 403, "accessDenied", "insufficient_privileges"),
        ("unknown-method", 404, "itemNotFound", "authentication_method_not_found"),
        ("long-method", 404, "itemNotFound", "authentication_method_not_found"),
        ("unknown-user", 404, "itemNotFound", "user_not_found"),
    ],
)
async def test_refused_deletes_change_nothing_and_are_audited(
    api: Api, audit_log: pytest.LogCaptureFixture, who: str, status: int, code: str, reason: str
) -> None:
    guest, method = await guest_with_method(api)
    user_id, method_id = guest["id"], method["id"]
    if who == "self":
        token = await api.user_token(guest)
    elif "@" in who:
        token = await api.user_token(await api.add_user(who))
    else:
        token = await api.app_token(who if who in ("methods-reader", "admin-app") else "methods-admin")
    if who == "unknown-method":
        method_id = "0b6c1e8e-2c0a-4a39-9d0e-6d3a8c1f0e55"
    elif who == "long-method":
        method_id = "m" * 65
    elif who == "unknown-user":
        user_id = "0b6c1e8e-2c0a-4a39-9d0e-6d3a8c1f0e55"
    audit_log.clear()
    response = await api.client.delete(path(user_id, method_id), headers=bearer(token))
    assert_error(response, status, code, reason)
    assert await api.rt.store.get_user(guest["id"]) == guest
    [record] = deletes(audit_log)
    assert (record["result"], record["reasons"]) == ("failure", [reason])


async def test_after_a_reset_the_next_sign_in_registers_again(api: Api) -> None:
    guest, method = await guest_with_method(api)

    async def mfa_page() -> str:
        req = flows.AuthRequest()
        signin = await flows.start(api.client, req)
        assert (await flows.submit_email(api.client, signin, GUEST)).status_code == 200
        code = extract_passcode(await api.smtp.wait_for(to=GUEST, timeout=10))
        done = await flows.submit_passcode(api.client, signin, code)
        assert done.status_code == 303 and done.headers["location"] == f"{signin}/mfa", done.text
        page = await api.client.get(f"{signin}/mfa")
        assert page.status_code == 200
        return page.text

    before = await mfa_page()
    assert "Enter your code" in before and "<svg" not in before
    token = await api.app_token("methods-admin")
    assert (
        await api.client.delete(path(guest["id"], method["id"]), headers=bearer(token))
    ).status_code == 204
    after = await mfa_page()
    assert "Set up your authenticator app" in after and "<svg" in after and 'id="secret"' in after
