"""The example approval service's API connector endpoints: the approval pattern end to end, its
authentication, its messages and its refusals of malformed gateway requests (nothing filed for them)."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.examples.approval import (
    ADMIN_AUTH,
    ATTRIBUTES,
    DENIED_EN,
    EXTENSION,
    FEDERATION,
    GATEWAY_AUTH,
    PENDING_EN,
    rows,
    signup,
)


async def call(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> httpx.Response:
    return await client.post(path, json=body, auth=GATEWAY_AUTH)


async def decide(client: httpx.AsyncClient, request_id: int, decision: str) -> None:
    reply = await client.post(f"/admin/api/requests/{request_id}/{decision}", json={}, auth=ADMIN_AUTH)
    assert reply.status_code == 200, reply.text


def assert_blocked(reply: httpx.Response, message: str) -> None:
    assert reply.status_code == 200
    body = reply.json()
    assert body["version"] == "1.0.0" and body["action"] == "ShowBlockPage"
    assert body["userMessage"].startswith(message), body
    assert set(body) == {"version", "action", "userMessage"}


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        basic("gateway", "wrong-password-1"),
        basic("someone", "connector-password-1"),
        basic("admin", "admin-password-123"),  # the admin's credentials open the admin pages only
        "Basic !!!not-base64",
        "Basic " + base64.b64encode(b"gateway-without-colon").decode(),
        "Bearer connector-password-1",
    ],
)
@pytest.mark.parametrize("path", [FEDERATION, ATTRIBUTES])
async def test_connector_refuses_missing_or_wrong_credentials(
    client: httpx.AsyncClient, database: Path, path: str, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    reply = await client.post(path, json=signup(), headers=headers)
    assert reply.status_code == 401
    assert reply.headers["www-authenticate"].startswith('Basic realm="approval service API connector"')
    assert reply.headers["content-type"] == "application/problem+json"
    assert rows(database) == []


async def test_first_post_federation_for_a_new_identity_continues(
    client: httpx.AsyncClient, database: Path
) -> None:
    reply = await call(client, FEDERATION, signup(displayName="Ann"))
    assert reply.status_code == 200
    assert reply.json() == {"version": "1.0.0", "action": "Continue"}
    assert reply.headers["cache-control"] == "no-store"
    assert rows(database) == []


async def test_post_attribute_collection_files_a_pending_request_and_blocks(
    client: httpx.AsyncClient, database: Path
) -> None:
    body = signup(
        "Ann@Partner.example", issuer="google.com", subject="1234567890", displayName="Ann Lee",
        givenName="Ann", surname="Lee", ui_locales="en-US", **{EXTENSION: "L-42"},
        extension_6ba7b8119dad11d180b400c04fd430c8_newsletter=True,
    )  # fmt: skip
    assert_blocked(await call(client, ATTRIBUTES, body), PENDING_EN)
    [stored] = rows(database)
    assert stored["status"] == "pending"
    assert (stored["email"], stored["issuer"], stored["issuer_assigned_id"]) == (
        "Ann@Partner.example", "google.com", "1234567890",
    )  # fmt: skip
    assert stored["display_name"] == "Ann Lee" and stored["ui_locales"] == "en-US"
    assert stored["attributes"] == {
        EXTENSION: "L-42", "extension_6ba7b8119dad11d180b400c04fd430c8_newsletter": True,
    }  # fmt: skip
    assert stored["created_at"].endswith("Z") and stored["decided_at"] is None
    listed = (await client.get("/admin/api/requests", auth=ADMIN_AUTH)).json()["value"]
    assert listed[0]["identity"] == {"issuer": "google.com", "issuerAssignedId": "1234567890"}
    assert listed[0]["status"] == "pending" and listed[0]["displayName"] == "Ann Lee"


async def test_a_second_attribute_collection_files_nothing_new(
    client: httpx.AsyncClient, database: Path
) -> None:
    assert_blocked(await call(client, ATTRIBUTES, signup(displayName="Ann")), PENDING_EN)
    assert_blocked(await call(client, ATTRIBUTES, signup(displayName="Someone else")), PENDING_EN)
    assert [r["display_name"] for r in rows(database)] == ["Ann"]


async def test_concurrent_sign_ups_of_one_identity_file_one_request(
    client: httpx.AsyncClient, database: Path
) -> None:
    replies = await asyncio.gather(*(call(client, ATTRIBUTES, signup()) for _ in range(8)))
    for reply in replies:
        assert_blocked(reply, PENDING_EN)
    assert len(rows(database)) == 1


async def test_the_approval_pattern_pending_then_approved_then_continue(
    client: httpx.AsyncClient, database: Path
) -> None:
    assert (await call(client, FEDERATION, signup())).json()["action"] == "Continue"
    assert_blocked(await call(client, ATTRIBUTES, signup(displayName="Ann Lee")), PENDING_EN)
    assert_blocked(await call(client, FEDERATION, signup()), PENDING_EN)  # the next sign-up, still pending
    await decide(client, rows(database)[0]["id"], "approve")
    reply = await call(client, FEDERATION, signup())
    assert reply.json() == {"version": "1.0.0", "action": "Continue", "displayName": "Ann Lee"}
    reply = await call(client, ATTRIBUTES, signup(displayName="Ann B. Lee"))
    assert reply.json() == {"version": "1.0.0", "action": "Continue"}  # what the user typed stands
    assert [r["status"] for r in rows(database)] == ["approved"]


async def test_a_denied_request_blocks_both_steps(client: httpx.AsyncClient, database: Path) -> None:
    assert_blocked(await call(client, ATTRIBUTES, signup()), PENDING_EN)
    await decide(client, rows(database)[0]["id"], "deny")
    assert_blocked(await call(client, FEDERATION, signup()), DENIED_EN)
    assert_blocked(await call(client, ATTRIBUTES, signup()), DENIED_EN)
    assert [r["status"] for r in rows(database)] == ["denied"]
    assert rows(database)[0]["decided_at"].endswith("Z")


@pytest.mark.parametrize("path", [FEDERATION, ATTRIBUTES])
async def test_without_identities_nothing_is_filed_and_the_sign_up_is_blocked(
    client: httpx.AsyncClient, database: Path, path: str
) -> None:
    """The reference's check: identities[0].issuer must exist (an address alone never keys a request)."""
    reply = await call(client, path, signup("Bob@Fabrikam.example", issuer=None))
    assert_blocked(reply, "Access requests cannot be processed for this identity provider.")
    assert rows(database) == []


@pytest.mark.parametrize("path", [FEDERATION, ATTRIBUTES])
async def test_an_issuer_the_service_does_not_know_is_blocked_and_not_filed(
    client: httpx.AsyncClient, database: Path, path: str
) -> None:
    body = signup(issuer="https://login.partner.example", subject="abc")
    reply = await call(client, path, body)
    assert_blocked(reply, "Access requests cannot be processed for this identity provider.")
    assert rows(database) == []


@pytest.mark.parametrize("issuer", ["mail", "google.com", "facebook.com"])
async def test_the_gateways_issuer_labels_are_accepted(
    client: httpx.AsyncClient, database: Path, issuer: str
) -> None:
    assert_blocked(await call(client, ATTRIBUTES, signup(issuer=issuer, subject="s-1")), PENDING_EN)
    assert rows(database)[0]["issuer"] == issuer


async def test_messages_follow_ui_locales(client: httpx.AsyncClient, database: Path) -> None:
    french = signup(ui_locales="fr-CA en")
    reply = await call(client, ATTRIBUTES, french)
    assert_blocked(reply, "Votre demande d'accès est en attente d'approbation.")
    assert "é" in reply.content.decode("utf-8")
    assert_blocked(await call(client, FEDERATION, signup(ui_locales="de fr")), PENDING_EN)
    await decide(client, rows(database)[0]["id"], "deny")
    assert_blocked(await call(client, FEDERATION, french), "Votre demande d'accès a été refusée.")
    unknown = signup(issuer="https://idp.example", ui_locales="FR")
    provider = "Les demandes d'accès ne peuvent pas être traitées pour ce fournisseur d'identité."
    assert_blocked(await call(client, FEDERATION, unknown), provider)


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        (b"not json", "the body is not JSON"),
        (b'{"email": NaN}', "the body is not JSON"),
        (b'["ann@partner.example"]', "the body must be a JSON object"),
        (b"{}", "email must be a non-empty string"),
        (b'{"email": 42}', "email must be a non-empty string"),
        (b'{"email": "not-an-address"}', "email must be an email address"),
        (b'{"email": "a@b.example", "identities": {"issuer": "mail"}}',
         "identities must be a list of objects"),
        (b'{"email": "a@b.example", "identities": [{"issuer": "mail"}]}',
         "identities[0].issuerAssignedId must be a non-empty string"),
        (b'{"email": "a@b.example", "identities": [{"issuer": "", "issuerAssignedId": "x"}]}',
         "identities[0].issuer must be a non-empty string"),
        (b'{"email": "a@b.example", "displayName": ["Ann"]}', "displayName must be a non-empty string"),
        (b'{"email": "a@b.example", "displayName": "Ann\\u0000"}', "displayName must be a non-empty string"),
        (b'{"email": "a@b.example", "extension_abc_x": {"nested": 1}}',
         "extension_abc_x must be a string (at most 1024 characters), a boolean or an integer"),
        (b'{"email": "a@b.example", "extension_a-b": "x"}', "'extension_a-b' is not a custom attribute name"),
        (b'{"email": "a@b.example", "ui_locales": 7}', "ui_locales must be a non-empty string"),
    ],
)  # fmt: skip
@pytest.mark.parametrize("path", [FEDERATION, ATTRIBUTES])
async def test_a_malformed_gateway_request_is_a_plain_400_and_files_nothing(
    client: httpx.AsyncClient, database: Path, path: str, content: bytes, detail: str
) -> None:
    headers = {"Content-Type": "application/json"}
    reply = await client.post(path, content=content, headers=headers, auth=GATEWAY_AUTH)
    assert reply.status_code == 400
    assert reply.headers["content-type"] == "application/problem+json"
    body = reply.json()
    assert body["status"] == 400 and body["detail"].startswith(detail), body
    assert "action" not in body  # not a ValidationError: nothing here is the user's to fix
    assert rows(database) == []


async def test_a_body_that_is_not_declared_json_is_refused(client: httpx.AsyncClient, database: Path) -> None:
    reply = await client.post(
        ATTRIBUTES, content=b'{"email": "a@b.example"}', headers={"Content-Type": "text/plain"},
        auth=GATEWAY_AUTH,
    )  # fmt: skip
    assert reply.status_code == 415
    assert reply.json()["detail"] == "the body must be application/json"
    assert rows(database) == []


async def test_an_oversized_body_is_refused(client: httpx.AsyncClient, database: Path) -> None:
    body = signup(displayName="Ann", padding="x" * (64 * 1024))
    reply = await call(client, ATTRIBUTES, body)
    assert reply.status_code == 413
    assert "longer than 65536 bytes" in reply.json()["detail"]
    assert rows(database) == []


async def test_health_answers_without_credentials(client: httpx.AsyncClient) -> None:
    reply = await client.get("/healthz")
    assert reply.status_code == 200 and reply.text == "ok\n"
