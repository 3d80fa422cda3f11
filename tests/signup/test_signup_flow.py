"""Sign-up through a user flow, end to end over HTTP: the attribute page, both API connector steps and
every way they can end. The connector is mocked with respx; the passcode arrives through a real SMTP
server. Each refusal shows that no user was created and the sign-in is over."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from gateway.settings.signup import extensions_app_id
from tests.support import flows
from tests.support.gateway_app import default_config, make_settings, running_app
from tests.support.inspect_store import snapshot, users
from tests.support.smtp_server import SmtpServer, extract_passcode

EMAIL = "ada@fabrikam.example"
CONNECTOR_URL = "https://approvals.contoso.example/api"
FIRST, SECOND = f"{CONNECTOR_URL}/post-federation", f"{CONNECTOR_URL}/post-attributes"
SIGNUP_PATH = re.compile(r"^/signin/[A-Za-z0-9_-]+/signup$")
ATTRIBUTES = [
    {"name": "displayName", "required": True},
    {
        "name": "loyaltyNumber",
        "type": "Int",
        "required": True,
        "label": {"en": "Loyalty number", "fr": "N° fidélité"},
    },
    {"name": "newsletter", "type": "Boolean"},
]


def connector(id: str, url: str) -> dict[str, Any]:
    return {"id": id, "target_url": url, "authentication": {"basic": {"username": "gw", "password": "pw"}}}


def settings_for(tmp_path: Path, smtp: SmtpServer, **flow: Any) -> Any:
    user_flow = {"id": "default", "identity_providers": ["email"], **flow}
    return make_settings(
        tmp_path,
        smtp,
        passcode={"resend_interval_seconds": 0},
        user_flows=[user_flow],
        api_connectors=[connector("first", FIRST), connector("second", SECOND)],
    )


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router:
        yield router


@pytest.fixture
def audit(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="gateway.audit")
    return caplog


def audit_records(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "gateway.audit"]


def continue_(**claims: Any) -> httpx.Response:
    return httpx.Response(200, json={"version": "1.0.0", "action": "Continue", **claims})


def block(message: str) -> httpx.Response:
    return httpx.Response(200, json={"version": "1.0.0", "action": "ShowBlockPage", "userMessage": message})


def validation_error(message: str) -> httpx.Response:
    body = {"version": "1.0.0", "status": 400, "action": "ValidationError", "userMessage": message}
    return httpx.Response(400, json=body)


async def passcode_done(
    client: httpx.AsyncClient, smtp: SmtpServer, req: flows.AuthRequest | None = None
) -> httpx.Response:
    """Email and passcode; the response to the passcode POST."""
    path = await flows.start(client, req or flows.AuthRequest())
    smtp.clear()
    assert (await flows.submit_email(client, path, EMAIL)).status_code == 200
    code = extract_passcode(await smtp.wait_for(to=EMAIL, timeout=10))
    return await flows.submit_passcode(client, path, code)


async def to_attribute_page(
    client: httpx.AsyncClient, smtp: SmtpServer, **extra: str
) -> tuple[str, httpx.Response]:
    done = await passcode_done(client, smtp, flows.AuthRequest(extra=extra or None))
    assert done.status_code == 303, done.text
    location = done.headers["location"]
    assert SIGNUP_PATH.match(location), location
    page = await client.get(location)
    assert page.status_code == 200, page.text
    return location, page


def form(page: httpx.Response, **values: str) -> dict[str, str]:
    return {"csrf": flows.csrf_of(page), **{f"attr-{k}": v for k, v in values.items()}}


@pytest.fixture
async def gateway(tmp_path: Path, smtp_server: SmtpServer) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    settings = settings_for(tmp_path, smtp_server, attributes=ATTRIBUTES)
    async with running_app(settings) as running:
        yield running


async def test_the_attribute_page_collects_typed_attributes_and_creates_the_guest(
    gateway: tuple[Any, httpx.AsyncClient], smtp_server: SmtpServer
) -> None:
    app, client = gateway
    path, page = await to_attribute_page(client, smtp_server)
    assert snapshot(app).user_count == 0  # nothing written before the last step
    labels = re.findall(r'<label for="attr-(\w+)"', page.text)
    assert labels == ["displayName", "loyaltyNumber", "newsletter"]  # the configured page order
    assert "Loyalty number" in page.text
    assert 'autocomplete="name"' in page.text and 'inputmode="numeric"' in page.text
    done = await client.post(
        path, data=form(page, displayName="Ada Lovelace", loyaltyNumber="1815", newsletter="true")
    )
    assert done.status_code == 303 and done.headers["location"].startswith(flows.DEMO_REDIRECT), done.text
    [user] = users(app)
    app_id = extensions_app_id(app.state.runtime.settings)
    assert user["creationType"] == "SelfServiceSignUp" and user["userType"] == "Guest"
    assert user["displayName"] == "Ada Lovelace"
    assert user[f"extension_{app_id}_loyaltyNumber"] == 1815
    assert user[f"extension_{app_id}_newsletter"] is True
    # Attributes are collected once: the next sign-in goes straight back to the app.
    again = await passcode_done(client, smtp_server, flows.AuthRequest(extra={"prompt": "login"}))
    assert again.status_code == 303 and again.headers["location"].startswith(flows.DEMO_REDIRECT)
    assert len(users(app)) == 1


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ({"displayName": "", "loyaltyNumber": "1"}, "displayName", "Enter a value."),
        ({"displayName": "Ada", "loyaltyNumber": "twelve"}, "loyaltyNumber", "Enter a whole number."),
        ({"displayName": "Ada", "loyaltyNumber": "99999999999"}, "loyaltyNumber", "Enter a whole number."),
        ({"displayName": "Ada", "loyaltyNumber": "1", "newsletter": "yes"}, "newsletter", "Tick the box"),
        ({"displayName": "x" * 300, "loyaltyNumber": "1"}, "displayName", "Use at most 256 characters."),
    ],
)
async def test_bad_values_keep_the_page_with_a_message_and_create_nothing(
    gateway: tuple[Any, httpx.AsyncClient],
    smtp_server: SmtpServer,
    values: dict[str, str],
    field: str,
    message: str,
) -> None:
    app, client = gateway
    path, page = await to_attribute_page(client, smtp_server)
    again = await client.post(path, data=form(page, **values))
    assert again.status_code == 400
    assert f'id="attr-{field}"' in again.text and 'aria-invalid="true"' in again.text
    assert f'aria-describedby="err-attr-{field}"' in again.text
    assert message in again.text and 'role="alert"' in again.text
    assert snapshot(app).user_count == 0
    fixed = await client.post(path, data=form(again, displayName="Ada", loyaltyNumber="7"))
    assert fixed.status_code == 303 and len(users(app)) == 1  # the same sign-in goes on once fixed


async def test_the_attribute_form_needs_its_csrf_token_and_its_browser(
    gateway: tuple[Any, httpx.AsyncClient], smtp_server: SmtpServer
) -> None:
    app, client = gateway
    path, page = await to_attribute_page(client, smtp_server)
    forged = await client.post(path, data={"attr-displayName": "Ada", "attr-loyaltyNumber": "1"})
    assert forged.status_code == 403
    async with httpx.AsyncClient(transport=app.state.demo_transport, base_url=str(client.base_url)) as other:
        elsewhere = await other.post(path, data=form(page, displayName="Ada", loyaltyNumber="1"))
        assert elsewhere.status_code == 403
        assert (await other.get(path)).status_code == 403
    assert snapshot(app).user_count == 0


async def test_a_replayed_attribute_form_creates_nothing_more(
    gateway: tuple[Any, httpx.AsyncClient], smtp_server: SmtpServer
) -> None:
    app, client = gateway
    path, page = await to_attribute_page(client, smtp_server)
    data = form(page, displayName="Ada", loyaltyNumber="1")
    assert (await client.post(path, data=data)).status_code == 303
    replay = await client.post(path, data=data)
    assert replay.status_code == 400 and "expired" in replay.text
    assert len(users(app)) == 1


# -- API connectors -------------------------------------------------------------------------------------


async def test_both_connectors_prefill_then_override_and_receive_the_reference_request(
    tmp_path: Path, smtp_server: SmtpServer, mock: respx.MockRouter
) -> None:
    settings = settings_for(
        tmp_path,
        smtp_server,
        attributes=ATTRIBUTES,
        api_connectors={"post_federation_signup": "first", "post_attribute_collection": "second"},
    )
    app_id = extensions_app_id(settings)
    first = mock.post(FIRST).mock(return_value=continue_(displayName="Ada from CRM", email="evil@x.example"))
    second = mock.post(SECOND).mock(return_value=continue_(**{"extension_loyaltyNumber": 4242}))
    async with running_app(settings) as (app, client):
        path, page = await to_attribute_page(client, smtp_server, ui_locales="fr-CA fr")
        assert 'value="Ada from CRM"' in page.text  # Continue at the first step pre-fills
        sent = json.loads(first.calls.last.request.content)
        assert sent == {
            "email": EMAIL,
            "identities": [{"signInType": "federated", "issuer": "mail", "issuerAssignedId": EMAIL}],
            "ui_locales": "fr-CA fr",
        }
        request = first.calls.last.request
        assert request.headers["content-type"] == "application/json"
        assert request.headers["authorization"] == "Basic Z3c6cHc="
        done = await client.post(
            path, data=form(page, displayName="Ada", loyaltyNumber="1", newsletter="true")
        )
        assert done.status_code == 303, done.text
        assert json.loads(second.calls.last.request.content) == {
            "email": EMAIL,
            "identities": [{"signInType": "federated", "issuer": "mail", "issuerAssignedId": EMAIL}],
            "displayName": "Ada",
            f"extension_{app_id}_loyaltyNumber": 1,
            f"extension_{app_id}_newsletter": True,
            "ui_locales": "fr-CA fr",
        }
        [user] = users(app)
        assert user[f"extension_{app_id}_loyaltyNumber"] == 4242  # Continue at the second step overrides
        assert user["displayName"] == "Ada" and user["mail"] == EMAIL  # email is never taken from a reply


@pytest.mark.parametrize("step", ["post_federation_signup", "post_attribute_collection"])
async def test_show_block_page_ends_the_sign_up_with_the_connectors_message(
    tmp_path: Path,
    smtp_server: SmtpServer,
    mock: respx.MockRouter,
    audit: pytest.LogCaptureFixture,
    step: str,
) -> None:
    settings = settings_for(tmp_path, smtp_server, attributes=ATTRIBUTES, api_connectors={step: "first"})
    mock.post(FIRST).mock(return_value=block("Your request is <pending> approval."))
    async with running_app(settings) as (app, client):
        if step == "post_federation_signup":
            blocked = await passcode_done(client, smtp_server)
        else:
            path, page = await to_attribute_page(client, smtp_server)
            blocked = await client.post(path, data=form(page, displayName="Ada", loyaltyNumber="1"))
        assert blocked.status_code == 403
        assert "Your request is &lt;pending&gt; approval." in blocked.text  # escaped, shown as sent
        assert snapshot(app).user_count == 0 and snapshot(app).count("signin") == 0
        [record] = [r for r in audit_records(audit) if r.get("result") == "failure"]
        assert record["reason"] == f"{step}_block_page"


async def test_a_validation_error_keeps_the_page_with_its_message_until_fixed(
    tmp_path: Path, smtp_server: SmtpServer, mock: respx.MockRouter
) -> None:
    settings = settings_for(
        tmp_path, smtp_server, attributes=ATTRIBUTES, api_connectors={"post_attribute_collection": "second"}
    )
    route = mock.post(SECOND).mock(
        side_effect=[validation_error("That loyalty number is not one of ours."), continue_()]
    )
    async with running_app(settings) as (app, client):
        path, page = await to_attribute_page(client, smtp_server)
        again = await client.post(path, data=form(page, displayName="Ada", loyaltyNumber="13"))
        assert again.status_code == 400
        assert "That loyalty number is not one of ours." in again.text
        assert 'value="13"' in again.text  # what the user typed stays
        assert snapshot(app).user_count == 0
        done = await client.post(path, data=form(again, displayName="Ada", loyaltyNumber="14"))
        assert done.status_code == 303 and route.call_count == 2 and len(users(app)) == 1


@pytest.mark.parametrize(
    "reply",
    [
        httpx.Response(500, json={"error": "boom"}),
        httpx.Response(200, text="<html>maintenance</html>", headers={"content-type": "text/html"}),
        httpx.Response(200, json={"version": "2.0.0", "action": "Continue"}),
        httpx.Response(200, json={"version": "1.0.0", "action": "Approve"}),
        httpx.Response(200, json={"version": "1.0.0", "action": "Continue", "extension_loyaltyNumber": "12"}),
        httpx.Response(401, json={"error": "unauthorized"}),
    ],
    ids=["5xx", "not-json", "wrong-version", "unknown-action", "wrongly-typed-value", "401"],
)
async def test_any_other_reply_ends_on_a_page_with_a_reference_code_and_creates_nothing(
    tmp_path: Path,
    smtp_server: SmtpServer,
    mock: respx.MockRouter,
    audit: pytest.LogCaptureFixture,
    reply: httpx.Response,
) -> None:
    settings = settings_for(
        tmp_path, smtp_server, attributes=ATTRIBUTES, api_connectors={"post_attribute_collection": "second"}
    )
    mock.post(SECOND).mock(return_value=reply)
    async with running_app(settings) as (app, client):
        path, page = await to_attribute_page(client, smtp_server)
        failed = await client.post(path, data=form(page, displayName="Ada", loyaltyNumber="1"))
        assert failed.status_code == 502
        reference = re.search(r'id="reference"><code>([A-Z0-9]+)</code>', failed.text)
        assert reference, failed.text
        assert snapshot(app).user_count == 0 and snapshot(app).count("signin") == 0
        [record] = [r for r in audit_records(audit) if r.get("result") == "failure"]
        assert reference.group(1) in record["detail"]


async def test_a_flow_without_attributes_calls_its_connector_and_creates_the_guest_without_a_page(
    tmp_path: Path, smtp_server: SmtpServer, mock: respx.MockRouter
) -> None:
    settings = settings_for(tmp_path, smtp_server, api_connectors={"post_attribute_collection": "second"})
    route = mock.post(SECOND).mock(return_value=continue_(displayName="Ignored: not collected"))
    async with running_app(settings) as (app, client):
        done = await passcode_done(client, smtp_server)
        assert done.status_code == 303 and done.headers["location"].startswith(flows.DEMO_REDIRECT)
        assert route.call_count == 1
        [user] = users(app)
        assert user["creationType"] == "SelfServiceSignUp" and user["displayName"] is None  # not collected


async def test_connectors_run_at_sign_up_only_never_at_sign_in(
    tmp_path: Path, smtp_server: SmtpServer, mock: respx.MockRouter
) -> None:
    settings = settings_for(
        tmp_path,
        smtp_server,
        attributes=ATTRIBUTES,
        api_connectors={"post_federation_signup": "first", "post_attribute_collection": "second"},
    )
    first, second = (
        mock.post(FIRST).mock(return_value=continue_()),
        mock.post(SECOND).mock(return_value=continue_()),
    )
    async with running_app(settings) as (_, client):
        path, page = await to_attribute_page(client, smtp_server)
        assert (
            await client.post(path, data=form(page, displayName="Ada", loyaltyNumber="1"))
        ).status_code == 303
        login = flows.AuthRequest(extra={"prompt": "login"})  # a full sign-in, not the SSO session
        assert (await passcode_done(client, smtp_server, login)).status_code == 303
        assert (first.call_count, second.call_count) == (1, 1)


async def test_the_attribute_page_speaks_the_apps_ui_locales(
    gateway: tuple[Any, httpx.AsyncClient], smtp_server: SmtpServer
) -> None:
    _, client = gateway
    _, page = await to_attribute_page(client, smtp_server, ui_locales="fr")
    assert '<html lang="fr"' in page.text
    assert (
        "Parlez-nous de vous" in page.text
        and "Nom d\u2019affichage" in page.text
        and "N° fidélité" in page.text
    )
    assert "Continuer" in page.text


def test_the_default_configuration_still_signs_up_without_pages() -> None:
    [flow] = default_config()["user_flows"]
    assert set(flow) == {"id", "identity_providers"}
