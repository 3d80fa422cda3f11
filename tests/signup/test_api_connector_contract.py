"""The API connector contract (b2b-concepts §7) against a respx-mocked API: the request, each reply shape,
every malformed reply as a Failure, timeouts and retries, and the lenient JSON reader."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pydantic
import pytest
import respx

from gateway.settings.signup import ApiConnector
from gateway.signup.api_connector import (
    MAX_BODY_BYTES,
    ApiConnectorClient,
    Continue,
    Failure,
    Reply,
    ShowBlockPage,
    Step,
    ValidationError,
    loads_lenient,
    new_reference,
    open_api_connectors,
)
from tests.support.gateway_app import make_settings

TARGET = "https://api.fabrikam.test/signup?code=query-key"
FIRST: Step = "post_federation_signup"
SECOND: Step = "post_attribute_collection"
PAYLOAD: dict[str, Any] = {
    "email": "ana@fabrikam.example",
    "identities": [{"signInType": "federated", "issuer": "google.com", "issuerAssignedId": "0123"}],
    "displayName": "Ana Pérez, Jr.",
    "extension_0b1c_loyaltyNumber": "AB-7",
    "ui_locales": "es-ES en",
}
JSON = {"Content-Type": "application/json"}


def connector(**overrides: Any) -> ApiConnector:
    data: dict[str, Any] = {
        "id": "approvals",
        "target_url": TARGET,
        "authentication": {"basic": {"username": "gateway", "password": "s3cret"}},
        "timeout_seconds": 2,
    }
    return ApiConnector.model_validate({**data, **overrides})


@pytest.fixture
def router() -> respx.MockRouter:
    return respx.MockRouter(assert_all_called=False)


async def call(
    router: respx.MockRouter, step: Step = SECOND, payload: dict[str, Any] = PAYLOAD, **overrides: Any
) -> Reply:
    client = ApiConnectorClient.open(
        connector(**overrides), transport=httpx.MockTransport(router.async_handler)
    )
    try:
        return await client.call(step, payload)
    finally:
        await client.aclose()


def reply(status: int, body: str, content_type: str = "application/json") -> httpx.Response:
    return httpx.Response(status, content=body.encode(), headers={"Content-Type": content_type})


def failed(result: Reply, reason: str) -> Failure:
    assert isinstance(result, Failure), result
    assert result.reason == reason, result
    assert re.fullmatch(r"[A-Z2-7]{10}", result.reference)
    return result


# --- the request -----------------------------------------------------------------------------------


async def test_request_is_a_compact_json_post_with_basic_authentication(router: respx.MockRouter) -> None:
    route = router.post(TARGET).mock(return_value=reply(200, '{"version": "1.0.0", "action": "Continue"}'))
    assert await call(router) == Continue({})
    request = route.calls.last.request
    assert request.method == "POST"
    assert str(request.url) == TARGET
    assert json.loads(request.content) == PAYLOAD
    assert request.content == json.dumps(PAYLOAD, separators=(",", ":"), ensure_ascii=False).encode()
    assert b", " not in request.content.replace(b"Ana P\xc3\xa9rez, Jr.", b"")
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Accept"] == "application/json"
    assert request.headers["Authorization"] == "Basic Z2F0ZXdheTpzM2NyZXQ="  # gateway:s3cret


async def test_basic_credentials_are_utf8(router: respx.MockRouter) -> None:
    route = router.post(TARGET).mock(return_value=reply(200, '{"version": "1.0.0", "action": "Continue"}'))
    basic = {"basic": {"username": "jürgen", "password": "pässwörd€"}}
    await call(router, authentication=basic)
    assert route.calls.last.request.headers["Authorization"] == "Basic asO8cmdlbjpww6Rzc3fDtnJk4oKs"


@pytest.mark.parametrize(
    ("basic", "message"),
    [
        ({"username": "a:b", "password": "p"}, "cannot contain ':'"),
        ({"username": "a\nb", "password": "p"}, "username cannot contain control characters"),
        ({"username": "a", "password": "p\x00"}, "password cannot contain control characters"),
    ],
)
def test_basic_credentials_that_rfc7617_cannot_carry_are_config_errors(
    basic: dict[str, str], message: str
) -> None:
    with pytest.raises(pydantic.ValidationError, match=message):
        connector(authentication={"basic": basic})


async def test_an_unknown_step_is_a_programming_error(router: respx.MockRouter) -> None:
    route = router.post(TARGET).mock(return_value=reply(200, '{"version": "1.0.0", "action": "Continue"}'))
    with pytest.raises(ValueError, match="unknown API connector step 'postFederationSignup'"):
        await call(router, "postFederationSignup")  # type: ignore[arg-type]
    assert route.call_count == 0


# --- the three replies -----------------------------------------------------------------------------


async def test_continue_passes_every_claim_through_but_version_and_action(router: respx.MockRouter) -> None:
    body = (
        '{"version": "1.0.0", "action": "Continue", "postalCode": "12349", "givenName": "Ana",'
        ' "extension_0b1c_loyaltyNumber": "AB-8", "extension_loyaltyTier": 3, "flags": [true, null]}'
    )
    router.post(TARGET).mock(return_value=reply(200, body))
    assert await call(router, FIRST) == Continue(
        {
            "postalCode": "12349",
            "givenName": "Ana",
            "extension_0b1c_loyaltyNumber": "AB-8",
            "extension_loyaltyTier": 3,
            "flags": [True, None],
        }
    )


async def test_show_block_page(router: respx.MockRouter) -> None:
    body = '{"version": "1.0.0", "action": "ShowBlockPage", "userMessage": "Your request is pending."}'
    router.post(TARGET).mock(return_value=reply(200, body))
    assert await call(router, FIRST) == ShowBlockPage("Your request is pending.")


@pytest.mark.parametrize("status", [400, "400"])
async def test_validation_error_with_status_number_or_string(router: respx.MockRouter, status: Any) -> None:
    body = json.dumps(
        {"version": "1.0.0", "status": status, "action": "ValidationError", "userMessage": "Fix the code."}
    )
    router.post(TARGET).mock(return_value=reply(400, body))
    assert await call(router, SECOND) == ValidationError("Fix the code.")


async def test_the_documentations_trailing_commas_are_accepted(router: respx.MockRouter) -> None:
    body = (
        '{\n  "version": "1.0.0",\n  "action": "Continue",\n  "tags": ["a,]", "b",\n  ],\n'
        '  "note": "x,} y",\n}\n'
    )
    router.post(TARGET).mock(return_value=reply(200, body, "application/json; charset=utf-8"))
    assert await call(router) == Continue({"tags": ["a,]", "b"], "note": "x,} y"})


async def test_validation_error_is_not_a_reply_at_post_federation_signup(router: respx.MockRouter) -> None:
    body = '{"version": "1.0.0", "status": 400, "action": "ValidationError", "userMessage": "Fix it."}'
    router.post(TARGET).mock(return_value=reply(400, body))
    result = failed(await call(router, FIRST), "api_connector_reply_not_allowed")
    assert "post_federation_signup" in result.detail


# --- everything else is a Failure ------------------------------------------------------------------

MALFORMED: list[tuple[str, int, str, str]] = [
    ("non-JSON", 200, "version 1.0.0, Continue", "api_connector_invalid_json"),
    ("JSON array", 200, '[{"version": "1.0.0", "action": "Continue"}]', "api_connector_invalid_json"),
    ("JSON string", 200, '"Continue"', "api_connector_invalid_json"),
    (
        "duplicate keys",
        200,
        '{"version": "1.0.0", "action": "ShowBlockPage", "action": "Continue"}',
        "api_connector_invalid_json",
    ),
    ("NaN", 200, '{"version": "1.0.0", "action": "Continue", "n": NaN}', "api_connector_invalid_json"),
    ("leading comma", 200, '{, "version": "1.0.0", "action": "Continue"}', "api_connector_invalid_json"),
    ("empty body", 200, "", "api_connector_invalid_json"),
    ("missing version", 200, '{"action": "Continue"}', "api_connector_bad_version"),
    ("version 1.0", 200, '{"version": "1.0", "action": "Continue"}', "api_connector_bad_version"),
    ("version 2.0.0", 200, '{"version": "2.0.0", "action": "Continue"}', "api_connector_bad_version"),
    ("version as a list", 200, '{"version": ["1.0.0"], "action": "Continue"}', "api_connector_bad_version"),
    ("missing action", 200, '{"version": "1.0.0"}', "api_connector_invalid_reply"),
    ("unknown action", 200, '{"version": "1.0.0", "action": "Allow"}', "api_connector_invalid_reply"),
    (
        "action in other case",
        200,
        '{"version": "1.0.0", "action": "continue"}',
        "api_connector_invalid_reply",
    ),
    ("Continue with 400", 400, '{"version": "1.0.0", "action": "Continue"}', "api_connector_invalid_reply"),
    (
        "ShowBlockPage with 400",
        400,
        '{"version": "1.0.0", "action": "ShowBlockPage", "userMessage": "No."}',
        "api_connector_invalid_reply",
    ),
    (
        "ShowBlockPage without userMessage",
        200,
        '{"version": "1.0.0", "action": "ShowBlockPage"}',
        "api_connector_invalid_reply",
    ),
    (
        "ShowBlockPage with empty userMessage",
        200,
        '{"version": "1.0.0", "action": "ShowBlockPage", "userMessage": "  "}',
        "api_connector_invalid_reply",
    ),
    (
        "ShowBlockPage with numeric userMessage",
        200,
        '{"version": "1.0.0", "action": "ShowBlockPage", "userMessage": 7}',
        "api_connector_invalid_reply",
    ),
    (
        "ValidationError with 200",
        200,
        '{"version": "1.0.0", "status": 400, "action": "ValidationError", "userMessage": "Fix."}',
        "api_connector_invalid_reply",
    ),
    (
        "ValidationError without status",
        400,
        '{"version": "1.0.0", "action": "ValidationError", "userMessage": "Fix."}',
        "api_connector_invalid_reply",
    ),
    (
        "ValidationError with status 200",
        400,
        '{"version": "1.0.0", "status": 200, "action": "ValidationError", "userMessage": "Fix."}',
        "api_connector_invalid_reply",
    ),
    (
        "ValidationError with status 400.0",
        400,
        '{"version": "1.0.0", "status": 400.0, "action": "ValidationError", "userMessage": "Fix."}',
        "api_connector_invalid_reply",
    ),
    (
        "ValidationError with status true",
        400,
        '{"version": "1.0.0", "status": true, "action": "ValidationError", "userMessage": "Fix."}',
        "api_connector_invalid_reply",
    ),
    (
        "ValidationError without userMessage",
        400,
        '{"version": "1.0.0", "status": 400, "action": "ValidationError"}',
        "api_connector_invalid_reply",
    ),
]


@pytest.mark.parametrize(
    ("status", "body", "reason"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED]
)
async def test_a_malformed_reply_is_a_failure(
    router: respx.MockRouter, status: int, body: str, reason: str
) -> None:
    route = router.post(TARGET).mock(return_value=reply(status, body))
    failed(await call(router, SECOND), reason)
    assert route.call_count == 1


@pytest.mark.parametrize("status", [401, 403])
async def test_401_and_403_point_at_the_authentication(router: respx.MockRouter, status: int) -> None:
    route = router.post(TARGET).mock(return_value=reply(status, '{"error": "unauthorized"}'))
    result = failed(await call(router), "api_connector_unauthorized")
    assert f"HTTP {status}" in result.detail and "authentication" in result.detail
    assert route.call_count == 1


@pytest.mark.parametrize("status", [500, 502, 503, 404, 201, 204])
async def test_other_statuses_are_failures_and_never_retried(router: respx.MockRouter, status: int) -> None:
    route = router.post(TARGET).mock(return_value=reply(status, '{"version": "1.0.0", "action": "Continue"}'))
    result = failed(await call(router), "api_connector_http_status")
    assert f"HTTP {status}" in result.detail
    assert route.call_count == 1


async def test_a_redirect_is_not_followed(router: respx.MockRouter) -> None:
    elsewhere = router.post("https://elsewhere.test/").mock(
        return_value=reply(200, '{"version": "1.0.0", "action": "Continue"}')
    )
    route = router.post(TARGET).mock(
        return_value=httpx.Response(307, headers={"Location": "https://elsewhere.test/"})
    )
    failed(await call(router), "api_connector_redirected")
    assert route.call_count == 1 and elsewhere.call_count == 0


@pytest.mark.parametrize("content_type", ["text/html; charset=utf-8", "text/plain", "application/jsonp", ""])
async def test_a_reply_that_is_not_application_json_is_a_failure(
    router: respx.MockRouter, content_type: str
) -> None:
    body = '{"version": "1.0.0", "action": "Continue"}'
    router.post(TARGET).mock(
        return_value=httpx.Response(200, content=body.encode(), headers={"Content-Type": content_type})
    )
    failed(await call(router), "api_connector_not_json")


async def test_html_error_page_is_a_failure(router: respx.MockRouter) -> None:
    router.post(TARGET).mock(return_value=reply(200, "<html><body>Bad gateway</body></html>", "text/html"))
    failed(await call(router), "api_connector_not_json")


async def test_an_oversized_reply_is_a_failure(router: respx.MockRouter) -> None:
    padding = "x" * MAX_BODY_BYTES
    router.post(TARGET).mock(
        return_value=reply(200, f'{{"version": "1.0.0", "action": "Continue", "p": "{padding}"}}')
    )
    result = failed(await call(router), "api_connector_reply_too_large")
    assert str(MAX_BODY_BYTES) in result.detail


async def test_an_oversized_reply_without_content_length_is_cut_off(router: respx.MockRouter) -> None:
    sent: list[int] = []

    async def endless() -> AsyncIterator[bytes]:
        yield b'{"version": "1.0.0", "action": "Continue", "p": "'
        for _ in range(1000):
            sent.append(1)
            yield b"x" * 1024

    router.post(TARGET).mock(return_value=httpx.Response(200, content=endless(), headers=JSON))
    failed(await call(router), "api_connector_reply_too_large")
    assert len(sent) < 100  # reading stopped at the cap


async def test_a_reply_of_exactly_the_cap_is_read(router: respx.MockRouter) -> None:
    head = '{"version": "1.0.0", "action": "Continue", "p": "'
    body = head + "x" * (MAX_BODY_BYTES - len(head) - 2) + '"}'
    assert len(body) == MAX_BODY_BYTES
    router.post(TARGET).mock(return_value=reply(200, body))
    result = await call(router)
    assert isinstance(result, Continue) and len(result.claims["p"]) == MAX_BODY_BYTES - len(head) - 2


async def test_a_failure_is_logged_once_without_the_body_or_secrets(
    router: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    body = '{"version": "9", "action": "Continue", "secret": "body-secret-value"}'
    router.post(TARGET).mock(return_value=reply(200, body))
    with caplog.at_level(logging.INFO, logger="gateway.signup"):
        result = failed(await call(router, FIRST), "api_connector_bad_version")
    records = [r for r in caplog.records if r.name == "gateway.signup"]
    assert len(records) == 1 and records[0].levelno == logging.WARNING
    message = records[0].getMessage()
    for part in ("approvals", FIRST, result.reason, result.detail, result.reference):
        assert part in message
    assert records[0].__dict__["reference"] == result.reference
    assert "body-secret-value" not in message + result.detail and "s3cret" not in message


async def test_each_failure_has_a_fresh_reference(router: respx.MockRouter) -> None:
    router.post(TARGET).mock(return_value=reply(500, ""))
    references = {failed(await call(router), "api_connector_http_status").reference for _ in range(5)}
    assert len(references) == 5
    assert all(re.fullmatch(r"[A-Z2-7]{10}", new_reference()) for _ in range(20))


# --- no answer: timeouts and retries ---------------------------------------------------------------

CONTINUE = reply(200, '{"version": "1.0.0", "action": "Continue", "city": "Lyon"}')


async def test_a_timeout_is_retried_exactly_once_then_fails(router: respx.MockRouter) -> None:
    route = router.post(TARGET).mock(side_effect=httpx.ReadTimeout("slow"))
    result = failed(await call(router), "api_connector_timeout")
    assert route.call_count == 2
    assert "tried 2 times" in result.detail


async def test_the_deadline_covers_the_whole_attempt(router: respx.MockRouter) -> None:
    attempts: list[httpx.Request] = []

    async def never(request: httpx.Request) -> httpx.Response:
        attempts.append(request)  # respx counts a call only once its side effect returns
        await asyncio.sleep(30)
        raise AssertionError("the deadline did not cut the attempt")

    router.post(TARGET).mock(side_effect=never)
    started = asyncio.get_running_loop().time()
    failed(await call(router, timeout_seconds=0.2), "api_connector_timeout")
    assert len(attempts) == 2
    assert asyncio.get_running_loop().time() - started < 2


async def test_a_connect_error_then_an_answer_continues(router: respx.MockRouter) -> None:
    route = router.post(TARGET).mock(side_effect=[httpx.ConnectError("refused"), CONTINUE])
    assert await call(router) == Continue({"city": "Lyon"})
    assert route.call_count == 2


async def test_a_connection_reset_before_the_answer_is_retried(router: respx.MockRouter) -> None:
    route = router.post(TARGET).mock(side_effect=[httpx.RemoteProtocolError("Server disconnected"), CONTINUE])
    assert await call(router) == Continue({"city": "Lyon"})
    assert route.call_count == 2


async def test_no_retry_when_retries_is_zero(router: respx.MockRouter) -> None:
    route = router.post(TARGET).mock(side_effect=[httpx.ConnectError("refused"), CONTINUE])
    result = failed(await call(router, retries=0), "api_connector_unreachable")
    assert route.call_count == 1 and "tried once" in result.detail


async def test_retries_are_bounded_by_the_setting(router: respx.MockRouter) -> None:
    route = router.post(TARGET).mock(side_effect=httpx.ConnectError("refused"))
    failed(await call(router, retries=3), "api_connector_unreachable")
    assert route.call_count == 4


async def test_a_reply_that_breaks_off_is_not_retried(router: respx.MockRouter) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield b'{"version": "1.0.0", '
        raise httpx.ReadError("connection reset")

    route = router.post(TARGET).mock(
        side_effect=[httpx.Response(200, content=broken(), headers=JSON), CONTINUE]
    )
    failed(await call(router), "api_connector_read_failed")
    assert route.call_count == 1


async def test_a_body_slower_than_the_deadline_is_not_retried(router: respx.MockRouter) -> None:
    async def slow() -> AsyncIterator[bytes]:
        yield b'{"version": "1.0.0", '
        await asyncio.sleep(30)
        yield b"}"

    route = router.post(TARGET).mock(
        side_effect=[httpx.Response(200, content=slow(), headers=JSON), CONTINUE]
    )
    failed(await call(router, timeout_seconds=0.2), "api_connector_timeout")
    assert route.call_count == 1


# --- the lenient JSON reader -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('{"a": 1,}', {"a": 1}),
        ("[1,2,]", [1, 2]),
        ('{"a": [1, {"b": 2,},\n],\r\n\t}', {"a": [1, {"b": 2}]}),
        ('["a,]", "b\\",}",]', ["a,]", 'b",}']),
        ('{"a": "\\\\",}', {"a": "\\"}),
        ('{"a": 1}', {"a": 1}),
    ],
)
def test_lenient_json_drops_only_trailing_commas(text: str, value: Any) -> None:
    assert loads_lenient(text) == value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[,]", "Expecting value"),
        ("{,}", "Expecting property name"),
        ("[1,,]", "Expecting value"),
        ("[1, ,]", "Expecting value"),
        ('{"a": 1,,}', "Expecting property name"),
        ('{"a": 1, "a": 2}', "duplicate member 'a'"),
        ('{"a": Infinity}', "Infinity is not JSON"),
        ('{"a": -Infinity,}', "-Infinity is not JSON"),
    ],
)
def test_lenient_json_still_refuses_what_is_not_json(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        loads_lenient(text)


# --- one client per configured connector -----------------------------------------------------------


async def test_open_api_connectors_keys_clients_by_id(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        api_connectors=[
            {
                "id": "approvals",
                "target_url": TARGET,
                "authentication": {"basic": {"username": "u", "password": "p"}},
            },
            {
                "id": "crm",
                "target_url": "http://127.0.0.1:9/crm",
                "timeout_seconds": 5,
                "retries": 0,
                "authentication": {"basic": {"username": "u", "password": "p"}},
            },
        ],
    )
    clients = open_api_connectors(settings)
    try:
        assert sorted(clients) == ["approvals", "crm"]
        assert clients["crm"].config.retries == 0 and clients["approvals"].config.timeout_seconds == 20
    finally:
        for client in clients.values():
            await client.aclose()
