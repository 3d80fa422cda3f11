"""``gateway.invitations`` without HTTP, on both store backends: tickets, ``check_ticket``, invite, reset."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from gateway.invitations import check_ticket
from gateway.invitations.invite import Context, InvitationRefused, InvitationRequest, Inviter, invite
from gateway.invitations.tickets import CURRENT_KIND, KIND, Invitation, digest, issue_ticket
from gateway.policy.collaboration import Caller
from gateway.settings.models import Settings
from gateway.store.base import Store
from gateway.store.redis import RedisStore
from gateway.store.sqlite import SQLiteStore
from idp_connectors.base import MailMessage
from tests.support.gateway_app import make_settings

TENANT = "4f5c2b0e-6a71-4c3e-9a8e-2f1d7c9b1a00"
OTHER_TENANT = "00000000-0000-4000-8000-000000000000"
USER = "0d6f3a53-1f0e-4a51-9d0c-2f3e4a5b6c7d"
APP = Inviter(Caller(kind="app", app_permissions=frozenset({"User.ReadWrite.All"})), app_id="automation")


class RecordingOutbox:
    def __init__(self) -> None:
        self.sent: list[MailMessage] = []

    def send(self, message: MailMessage) -> None:
        self.sent.append(message)


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    opened: Store
    if request.param == "sqlite":
        opened = SQLiteStore(tmp_path / "store.db")
    else:
        opened = RedisStore.from_url(request.getfixturevalue("fresh_redis_url"))
    await opened.migrate()
    yield opened
    await opened.close()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


def invitation(now: int, **changes: str | int) -> Invitation:
    base = Invitation(
        id="b0b6b9d4-4d53-4b0a-9b0e-1c2d3e4f5a6b", tenant_id=TENANT, user_id=USER,
        email="guest@partner.example", redirect_url="https://app.example", invited_by="app:automation",
        created_at=now, expires_at=now + 3600,
    )  # fmt: skip
    return replace(base, **changes)  # type: ignore[arg-type]


async def test_a_ticket_is_checked_bound_and_current(store: Store) -> None:
    now = int(time.time())
    ticket = await issue_ticket(store, invitation(now))
    assert await check_ticket(store, TENANT, USER, ticket) == invitation(now)
    assert await store.get(KIND, digest(ticket)) is not None
    assert await check_ticket(store, TENANT, USER, ticket) is not None  # not consumed: retries work
    tampered = ticket[:-1] + ("A" if ticket[-1] != "A" else "B")
    assert await check_ticket(store, TENANT, USER, tampered) is None
    assert await check_ticket(store, OTHER_TENANT, USER, ticket) is None
    assert await check_ticket(store, TENANT, "1d6f3a53-1f0e-4a51-9d0c-2f3e4a5b6c7d", ticket) is None
    assert await check_ticket(store, TENANT, USER, ticket, now=now + 3600) is None  # expired
    for malformed in ("", ticket + "x", ticket[:-1] + "!", None, 42):
        assert await check_ticket(store, TENANT, USER, malformed) is None  # type: ignore[arg-type]
    assert await check_ticket(store, TENANT, "../" + USER, ticket) is None


async def test_a_new_ticket_replaces_every_older_one(store: Store) -> None:
    now = int(time.time())
    first = await issue_ticket(store, invitation(now))
    second = await issue_ticket(store, invitation(now, id="c0b6b9d4-4d53-4b0a-9b0e-1c2d3e4f5a6b"))
    assert await check_ticket(store, TENANT, USER, first) is None
    assert await store.get(KIND, digest(first)) is None
    found = await check_ticket(store, TENANT, USER, second)
    assert found is not None and found.id == "c0b6b9d4-4d53-4b0a-9b0e-1c2d3e4f5a6b"


async def test_a_stored_ticket_of_another_purpose_or_not_current_is_refused(store: Store) -> None:
    now = int(time.time())
    ticket = await issue_ticket(store, invitation(now))
    record = await store.get(KIND, digest(ticket))
    assert record is not None
    await store.put(KIND, digest(ticket), {**record, "purpose": "something-else"}, 3600)
    assert await check_ticket(store, TENANT, USER, ticket) is None
    await store.put(KIND, digest(ticket), record, 3600)
    assert await check_ticket(store, TENANT, USER, ticket) is not None
    await store.delete(CURRENT_KIND, USER)
    assert await check_ticket(store, TENANT, USER, ticket) is None


async def test_invite_then_reset_on_this_backend(store: Store, settings: Settings) -> None:
    outbox = RecordingOutbox()
    ctx = Context(settings, store, outbox, int(time.time()))
    request = InvitationRequest(
        email="Guest@partner.example", redirect_url="https://app.example", send_message=True
    )
    created = await invite(ctx, APP, request)
    assert created.created and created.redeem_url and [m.to for m in outbox.sent] == ["Guest@partner.example"]
    user_id = created.user["id"]
    assert await store.get_user(user_id) == created.user
    upn = "guest_partner.example#EXT#@contoso.example"
    assert (await store.find_user_by_identity("contoso.example", upn) or {}).get("id") == user_id
    again = await invite(ctx, APP, replace(request, email="guest@PARTNER.example"))
    assert not again.created and again.user["id"] == user_id and again.redeem_url is None
    assert len(outbox.sent) == 1

    reset = await invite(
        ctx, APP, replace(request, email="new@partner.example", reset=True, reset_user_id=user_id)
    )
    assert reset.reset and reset.user["id"] == user_id
    stored = await store.get_user(user_id)
    assert stored is not None and stored["otherMails"] == ["new@partner.example"]
    assert [u["id"] for u in await store.find_users_by_mail("NEW@partner.example")] == [user_id]
    first_ticket = created.redeem_url.rsplit("ticket=", 1)[1]
    assert await check_ticket(store, settings.tenant.id, user_id, first_ticket) is None
    assert reset.redeem_url is not None
    assert await check_ticket(store, settings.tenant.id, user_id, reset.redeem_url.rsplit("ticket=", 1)[1])


async def test_refusals_write_nothing(store: Store, settings: Settings) -> None:
    outbox = RecordingOutbox()
    ctx = Context(settings, store, outbox, int(time.time()))
    request = InvitationRequest(
        email="guest@partner.example", redirect_url="https://app.example", send_message=True
    )
    inviter_only = Inviter(Caller(kind="app", app_permissions=frozenset({"User.Invite.All"})), app_id="jobs")
    with pytest.raises(InvitationRefused) as refused:
        await invite(ctx, inviter_only, replace(request, user_type="Member"))
    assert refused.value.reason == "member_type_needs_admin" and refused.value.kind == "forbidden"
    with pytest.raises(InvitationRefused) as refused:
        await invite(ctx, APP, replace(request, reset=True, reset_user_id=USER))
    assert (refused.value.reason, refused.value.kind) == ("user_not_found", "not_found")
    assert await store.find_users_by_mail("guest@partner.example") == []
    assert outbox.sent == []
