"""The SMTP server is down (nothing listens) or refuses mail for a while.

Mail leaves off the request path (``gateway.mail.outbox``), so the guest gets the same "we emailed
a code" page as always, whether the address exists or not and whether the mail went out or not;
the outbox tries a bounded number of times with backoff and logs, on ``gateway.mail``, that the
mail was not delivered (masked address, attempts, reason). The guest asks for a new code once mail
flows again. An invitation made while mail is refused is created all the same: the response
carries ``inviteRedeemUrl`` for the admin to hand over, the failure is logged, ``GET`` of the user
shows the pending invitation, and the link works.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest

from gateway.mail import delivery
from tests.admin.conftest import ApiFactory, api_with  # noqa: F401 (the fixture)
from tests.admin.helpers import REDIRECT, bearer, body
from tests.admin.test_redemption import consent, open_link, passcode_to_consent
from tests.support import flows
from tests.support.gateway_app import make_settings, running_app
from tests.support.oidc_idp import free_port
from tests.support.smtp_server import SmtpServer, extract_passcode

GUEST = "guest@fabrikam.example"
ATTEMPTS = 3
REFUSAL = "421 4.3.2 Service not available, try again later"


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(delivery, "RETRY_DELAYS_SECONDS", (0.05, 0.1))
    yield


@pytest.fixture
def mail_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="gateway.mail")
    return caplog


async def not_delivered(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The ``not delivered`` errors of the outbox, once there is one."""
    deadline = asyncio.get_running_loop().time() + 10.0
    while asyncio.get_running_loop().time() < deadline:
        found = [
            r.getMessage()
            for r in caplog.records
            if r.name == "gateway.mail" and r.levelno == logging.ERROR and "not delivered" in r.getMessage()
        ]
        if found:
            return found
        await asyncio.sleep(0.02)
    raise AssertionError("the outbox logged no failed delivery")


async def test_smtp_unreachable_the_guest_sees_the_usual_page_and_the_failure_is_logged(
    tmp_path: Path, mail_log: pytest.LogCaptureFixture
) -> None:
    nowhere = SimpleNamespace(host="127.0.0.1", port=free_port())  # connection refused
    settings = make_settings(tmp_path, nowhere)
    async with running_app(settings) as (_, client):
        path = await flows.start(client, flows.AuthRequest())
        sent = await flows.submit_email(client, path, GUEST)
        assert sent.status_code == 200, sent.text  # answered at once: mail is off the request path
        assert "We emailed a code" in sent.text
        [failure] = await not_delivered(mail_log)
        assert f"after {ATTEMPTS} attempt(s)" in failure
        assert "g***@fabrikam.example" in failure and GUEST not in failure  # masked in logs
        warnings = [r for r in mail_log.records if r.name == "gateway.mail" and r.levelno == logging.WARNING]
        assert len(warnings) == ATTEMPTS - 1  # bounded: two retries, then it gives up


async def test_after_a_refusal_the_guest_asks_for_a_new_code_and_signs_in(
    tmp_path: Path, smtp_server: SmtpServer, mail_log: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(tmp_path, smtp_server, passcode={"resend_interval_seconds": 0})
    async with running_app(settings) as (_, client):
        smtp_server.refuse_next(ATTEMPTS, REFUSAL)
        req = flows.AuthRequest()
        path = await flows.start(client, req)
        sent = await flows.submit_email(client, path, GUEST)
        assert sent.status_code == 200, sent.text  # the passcode page
        await not_delivered(mail_log)
        assert smtp_server.messages == []
        assert smtp_server.data_commands == ATTEMPTS

        resent = await client.post(f"{path}/resend", data={"csrf": flows.csrf_of(sent)})
        assert resent.status_code == 200 and "We sent you a new passcode." in resent.text, resent.text
        code = extract_passcode(await smtp_server.wait_for(to=GUEST, timeout=10))
        done = await flows.submit_passcode(client, path, code)
        assert done.status_code == 303, done.text
        assert flows.query_of(done.headers["location"])["state"] == req.state


async def test_an_invitation_made_while_mail_is_refused_stays_retrievable_and_redeemable(
    api_with: ApiFactory,  # noqa: F811
    mail_log: pytest.LogCaptureFixture,
) -> None:
    guest = "guest@partner.example"
    async with api_with() as api:
        api.smtp.refuse_next(ATTEMPTS, REFUSAL)
        token = await api.app_token()
        created = await api.invite(token, body(guest, sendInvitationMessage=True))
        assert created.status_code == 201, created.text
        invitation = created.json()
        assert invitation["inviteRedeemUrl"].startswith("http://127.0.0.1:8000/")
        assert invitation["status"] == "PendingAcceptance"
        [failure] = await not_delivered(mail_log)
        assert "g***@partner.example" in failure

        admin = await api.app_token("admin-app")
        user_id = invitation["invitedUser"]["id"]
        fetched = await api.client.get(f"/v1.0/users/{user_id}", headers=bearer(admin))
        assert fetched.status_code == 200, fetched.text
        assert fetched.json()["externalUserState"] == "PendingAcceptance"
        assert fetched.json()["mail"] == guest

        parts = urlsplit(invitation["inviteRedeemUrl"])  # handed over by the admin, mail is back
        signin = await open_link(api, f"{parts.path}?{parts.query}")
        await passcode_to_consent(api, signin, guest)
        accepted = await consent(api, signin, "accept")
        assert accepted.status_code == 303 and accepted.headers["location"] == REDIRECT
        again = await api.client.get(f"/v1.0/users/{user_id}", headers=bearer(admin))
        assert again.json()["externalUserState"] == "Accepted"
