"""The attribute form is taken once and keeps the sign-in's state straight: a double submission calls the
connector and creates the guest once; a ValidationError joins the audit record; a sign-up left behind
when the sign-in moved on to another (existing) user cannot finish; the page's errors speak its language."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import respx

from gateway.directory import users as directory_users
from idp_connectors.base import UpstreamIdentity
from tests.signup.test_signup_flow import (
    ATTRIBUTES,
    SECOND,
    audit_records,
    continue_,
    form,
    settings_for,
    to_attribute_page,
    validation_error,
)
from tests.support import flows
from tests.support.gateway_app import make_settings, running_app
from tests.support.inspect_store import snapshot, users
from tests.support.smtp_server import SmtpServer, extract_passcode

OTHER = "grace@fabrikam.example"
MFA_FOR_ALL = {
    "id": "mfa-for-all",
    "display_name": "MFA for all",
    "state": "enabled",
    "conditions": {"users": {"include_users": ["All"]}, "applications": {"include_applications": ["All"]}},
    "grant_controls": {"operator": "AND", "built_in_controls": ["mfa"]},
}


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router:
        yield router


async def test_a_double_submission_calls_the_connector_and_signs_in_once(
    tmp_path: Path, smtp_server: SmtpServer, mock: respx.MockRouter
) -> None:
    settings = settings_for(
        tmp_path, smtp_server, attributes=ATTRIBUTES, api_connectors={"post_attribute_collection": "second"}
    )

    async def slow_continue(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.3)  # the second POST arrives while the first waits on the connector
        return continue_()

    route = mock.post(SECOND).mock(side_effect=slow_continue)
    async with running_app(settings) as (app, client):
        path, page = await to_attribute_page(client, smtp_server)
        data = form(page, displayName="Ada", loyaltyNumber="1")
        first, second = await asyncio.gather(client.post(path, data=data), client.post(path, data=data))
        statuses = sorted([first.status_code, second.status_code])
        assert statuses == [303, 409], (first.text, second.text)
        busy = first if first.status_code == 409 else second
        assert "Sign-up in progress" in busy.text
        assert route.call_count == 1
        assert len(users(app)) == 1
        assert snapshot(app).minted()["code"] == 1 and snapshot(app).count("session") == 1


async def test_after_a_validation_error_the_form_can_be_sent_again_and_the_audit_record_keeps_it(
    tmp_path: Path, smtp_server: SmtpServer, mock: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.audit")
    settings = settings_for(
        tmp_path, smtp_server, attributes=ATTRIBUTES, api_connectors={"post_attribute_collection": "second"}
    )
    mock.post(SECOND).mock(side_effect=[validation_error("Not one of ours."), continue_()])
    async with running_app(settings) as (app, client):
        path, page = await to_attribute_page(client, smtp_server)
        again = await client.post(path, data=form(page, displayName="Ada", loyaltyNumber="13"))
        assert again.status_code == 400 and "Not one of ours." in again.text
        done = await client.post(path, data=form(again, displayName="Ada", loyaltyNumber="14"))
        assert done.status_code == 303 and len(users(app)) == 1
    [record] = [r for r in audit_records(caplog) if r.get("result") == "success"]
    reasons = [d["reason"] for d in record["decisions"]]
    assert "post_attribute_collection_validation_error" in reasons
    assert reasons.index("post_attribute_collection_validation_error") < reasons.index(
        "post_attribute_collection_continue"
    )


async def test_a_sign_up_left_behind_cannot_finish_once_the_sign_in_moved_to_another_user(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    settings = make_settings(
        tmp_path,
        smtp_server,
        passcode={"resend_interval_seconds": 0, "max_sends_per_address_per_hour": 100},
        user_flows=[{"id": "default", "identity_providers": ["email"], "attributes": ATTRIBUTES}],
        conditional_access=[MFA_FOR_ALL],
    )
    async with running_app(settings) as (app, client):
        rt = app.state.runtime
        existing = UpstreamIdentity(connector_id="email", issuer="mail", subject=OTHER, email=OTHER)
        await directory_users.sign_up(rt.store, existing, "mail", rt.settings.tenant.domain, rt.now())
        path, page = await to_attribute_page(client, smtp_server)  # EMAIL is unknown: sign-up
        start = path.removesuffix("/signup")
        # Back on the email page, the user signs in as the existing user instead: MFA is asked of them.
        smtp_server.clear()
        assert (await flows.submit_email(client, start, OTHER)).status_code == 200
        code = extract_passcode(await smtp_server.wait_for(to=OTHER, timeout=10))
        moved = await flows.submit_passcode(client, start, code)
        assert moved.status_code == 303 and moved.headers["location"] == f"{start}/mfa", moved.text
        left_behind = await client.post(path, data=form(page, displayName="Ada", loyaltyNumber="1"))
        assert left_behind.status_code == 400 and "expired" in left_behind.text
        assert [u["mail"] for u in users(app)] == [OTHER]  # no guest for EMAIL
        assert (await client.get(path)).status_code == 400


async def test_the_attribute_pages_errors_speak_the_sign_ins_language(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    settings = settings_for(tmp_path, smtp_server, attributes=ATTRIBUTES)
    async with running_app(settings) as (app, client):
        path, _ = await to_attribute_page(client, smtp_server, ui_locales="fr")
        forged = await client.post(path, data={"attr-displayName": "Ada", "attr-loyaltyNumber": "1"})
        assert forged.status_code == 403 and "Formulaire expiré" in forged.text
        async with httpx.AsyncClient(
            transport=app.state.demo_transport, base_url=str(client.base_url)
        ) as other:
            elsewhere = await other.get(path)
        assert elsewhere.status_code == 403 and "Autre navigateur" in elsewhere.text
        assert "Wrong browser" not in elsewhere.text and snapshot(app).user_count == 0


async def test_a_submission_that_fails_half_way_may_be_sent_again(
    tmp_path: Path, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store fails while the guest is written: the form is not stuck behind its marker, and the
    retry creates the guest once."""
    settings = settings_for(tmp_path, smtp_server, attributes=ATTRIBUTES)
    real = directory_users.sign_up
    failures = [RuntimeError("the store went away")]

    async def flaky(*args: object, **kwargs: object) -> object:
        if failures:
            raise failures.pop()
        return await real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(directory_users, "sign_up", flaky)
    async with running_app(settings) as (app, client):
        path, page = await to_attribute_page(client, smtp_server)
        data = form(page, displayName="Ada", loyaltyNumber="1")
        with pytest.raises(RuntimeError):
            await client.post(path, data=data)
        assert snapshot(app).user_count == 0
        retry = await client.post(path, data=data)
        assert retry.status_code == 303, retry.text
        assert len(users(app)) == 1
