"""The example approval service's admin side: the HTML page (escaping, no script, CSRF-guarded forms) and
the JSON API for scripts; refused changes leave the request as it was."""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.examples.approval import (
    ADMIN_AUTH,
    ADMIN_PASSWORD,
    ATTRIBUTES,
    FEDERATION,
    GATEWAY_AUTH,
    form_token,
    rows,
    signup,
)


async def file_request(client: httpx.AsyncClient, **claims: Any) -> int:
    reply = await client.post(ATTRIBUTES, json=signup(**claims), auth=GATEWAY_AUTH)
    assert reply.json()["action"] == "ShowBlockPage"
    listed = (await client.get("/admin/api/requests", auth=ADMIN_AUTH)).json()["value"]
    return int(listed[0]["id"])


async def admin_page(client: httpx.AsyncClient) -> str:
    reply = await client.get("/admin", auth=ADMIN_AUTH)
    assert reply.status_code == 200
    return reply.text


def old_token(seconds_ago: float) -> str:
    """A well-signed token issued ``seconds_ago`` (the service's own signer, as loaded by the fixture)."""
    tokens = sys.modules["approval_admin"].CsrfTokens(ADMIN_PASSWORD)
    token: str = tokens.issue(now=time.time() - seconds_ago)
    return token


@pytest.mark.parametrize(
    "auth", [None, ("admin", "wrong-password-12"), GATEWAY_AUTH, ("root", ADMIN_PASSWORD)]
)
async def test_admin_page_and_api_need_the_admin_credentials(
    client: httpx.AsyncClient, auth: tuple[str, str] | None
) -> None:
    page = await client.get("/admin", auth=auth)
    assert page.status_code == 401
    assert page.headers["www-authenticate"].startswith('Basic realm="approval service admin"')
    api = await client.get("/admin/api/requests", auth=auth)
    assert api.status_code == 401 and api.headers["content-type"] == "application/problem+json"


async def test_admin_approves_on_the_page_with_its_form_token(
    client: httpx.AsyncClient, database: Path
) -> None:
    request_id = await file_request(client, displayName="Ann Lee")
    page = await admin_page(client)
    assert "Ann Lee" in page and "pending" in page
    action = f"/admin/requests/{request_id}/approve"
    assert f'action="{action}"' in page
    reply = await client.post(action, data={"csrf_token": form_token(page)}, auth=ADMIN_AUTH)
    assert reply.status_code == 303 and reply.headers["location"] == "/admin"
    assert rows(database)[0]["status"] == "approved"
    after = await admin_page(client)
    assert f'action="/admin/requests/{request_id}/deny"' in after
    assert f'action="/admin/requests/{request_id}/approve"' not in after
    assert (await client.post(FEDERATION, json=signup(), auth=GATEWAY_AUTH)).json()["action"] == "Continue"


@pytest.mark.parametrize(
    ("data", "headers", "status"),
    [
        ({"unrelated": "field"}, {}, 403),
        ({"csrf_token": "forged"}, {}, 403),
        ({"csrf_token": "1700000000.AAAA"}, {}, 403),
        ("expired", {}, 403),
        ("valid-twice", {}, 403),
        ("valid", {"Sec-Fetch-Site": "cross-site"}, 403),
    ],
)
async def test_an_admin_form_without_a_valid_token_changes_nothing(
    client: httpx.AsyncClient,
    database: Path,
    data: dict[str, str] | str,
    headers: dict[str, str],
    status: int,
) -> None:
    request_id = await file_request(client)
    token = form_token(await admin_page(client))
    content: str | dict[str, str | list[str]]
    if data == "expired":
        content = {"csrf_token": old_token(9 * 3600)}
    elif data == "valid-twice":
        content = {"csrf_token": [token, token]}
    elif data == "valid":
        content = {"csrf_token": token}
    else:
        assert isinstance(data, dict)
        content = dict(data)
    reply = await client.post(
        f"/admin/requests/{request_id}/approve", data=content, headers=headers, auth=ADMIN_AUTH
    )
    assert reply.status_code == status
    assert rows(database)[0]["status"] == "pending"
    still = await client.post(FEDERATION, json=signup(), auth=GATEWAY_AUTH)
    assert still.json()["action"] == "ShowBlockPage"


async def test_a_token_from_an_hour_ago_still_works(client: httpx.AsyncClient, database: Path) -> None:
    request_id = await file_request(client)
    reply = await client.post(
        f"/admin/requests/{request_id}/deny", data={"csrf_token": old_token(3600)}, auth=ADMIN_AUTH
    )
    assert reply.status_code == 303
    assert rows(database)[0]["status"] == "denied"


@pytest.mark.parametrize(
    ("path", "status"),
    [("/admin/requests/{id}/maybe", 404), ("/admin/requests/999/approve", 404)],
)
async def test_an_unknown_decision_or_request_on_the_page_is_404(
    client: httpx.AsyncClient, database: Path, path: str, status: int
) -> None:
    request_id = await file_request(client)
    token = form_token(await admin_page(client))
    reply = await client.post(path.format(id=request_id), data={"csrf_token": token}, auth=ADMIN_AUTH)
    assert reply.status_code == status
    assert rows(database)[0]["status"] == "pending"


async def test_a_form_post_that_is_not_a_form_is_refused(client: httpx.AsyncClient, database: Path) -> None:
    request_id = await file_request(client)
    token = form_token(await admin_page(client))
    reply = await client.post(
        f"/admin/requests/{request_id}/approve", json={"csrf_token": token}, auth=ADMIN_AUTH
    )
    assert reply.status_code == 415
    assert rows(database)[0]["status"] == "pending"


async def test_the_page_escapes_what_applicants_typed_and_runs_no_script(client: httpx.AsyncClient) -> None:
    await file_request(
        client, displayName="<script>alert(1)</script>",
        **{"extension_abc_note": '"><img src=x onerror=alert(2)>'},
    )  # fmt: skip
    reply = await client.get("/admin", auth=ADMIN_AUTH)
    page = reply.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script" not in page and "<img" not in page
    assert "&quot;&gt;&lt;img src=x onerror=alert(2)&gt;" in page
    policy = reply.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src" not in policy
    assert re.search(r"style-src 'sha256-[A-Za-z0-9+/=]+'", policy)
    assert "frame-ancestors 'none'" in policy and "form-action 'self'" in policy
    assert reply.headers["cache-control"] == "no-store"


async def test_an_empty_page_says_so(client: httpx.AsyncClient) -> None:
    assert "No access requests yet." in await admin_page(client)


async def test_the_json_api_lists_gets_and_decides(client: httpx.AsyncClient, database: Path) -> None:
    first = await file_request(client, email="ann@partner.example")
    second = await file_request(client, email="bob@partner.example")
    reply = await client.post(f"/admin/api/requests/{first}/deny", json={}, auth=ADMIN_AUTH)
    assert reply.status_code == 200
    assert reply.json()["status"] == "denied" and reply.json()["decidedDateTime"].endswith("Z")
    no_body = await client.post(
        f"/admin/api/requests/{second}/approve", headers={"Content-Type": "application/json"}, auth=ADMIN_AUTH
    )
    assert no_body.status_code == 200 and no_body.json()["status"] == "approved"
    pending = await client.get("/admin/api/requests", params={"status": "denied"}, auth=ADMIN_AUTH)
    assert [r["email"] for r in pending.json()["value"]] == ["ann@partner.example"]
    one = await client.get(f"/admin/api/requests/{second}", auth=ADMIN_AUTH)
    assert one.json()["email"] == "bob@partner.example" and one.json()["status"] == "approved"
    assert {r["status"] for r in rows(database)} == {"approved", "denied"}


@pytest.mark.parametrize(
    ("path", "kwargs", "status", "detail"),
    [
        ("/admin/api/requests/{id}/approve", {"content": b"{}"}, 415, "send Content-Type: application/json"),
        ("/admin/api/requests/{id}/approve", {"data": {"x": "1"}}, 415, "send Content-Type: application/"),
        ("/admin/api/requests/{id}/approve", {"json": [1]}, 400, "the body must be a JSON object"),
        ("/admin/api/requests/{id}/approve",
         {"content": b"nope", "headers": {"Content-Type": "application/json"}}, 400, "the body is not JSON"),
        ("/admin/api/requests/{id}/approve",
         {"json": {}, "headers": {"Sec-Fetch-Site": "cross-site"}}, 403, "cross-site requests are refused"),
        ("/admin/api/requests/{id}/maybe", {"json": {}}, 404, "the decisions are approve and deny"),
        ("/admin/api/requests/424242/approve", {"json": {}}, 404, "there is no such access request"),
        ("/admin/api/requests/99999999999999999999999/approve", {"json": {}}, 404,
         "there is no such access request"),
    ],
)  # fmt: skip
async def test_the_json_api_refuses_bad_changes_and_changes_nothing(
    client: httpx.AsyncClient,
    database: Path,
    path: str,
    kwargs: dict[str, Any],
    status: int,
    detail: str,
) -> None:
    request_id = await file_request(client)
    reply = await client.post(path.format(id=request_id), auth=ADMIN_AUTH, **kwargs)
    assert reply.status_code == status
    assert reply.headers["content-type"] == "application/problem+json"
    assert reply.json()["detail"].startswith(detail)
    assert rows(database)[0]["status"] == "pending"


async def test_the_json_api_refuses_an_unknown_status_filter_and_id(client: httpx.AsyncClient) -> None:
    bad = await client.get("/admin/api/requests", params={"status": "maybe"}, auth=ADMIN_AUTH)
    assert bad.status_code == 400
    assert bad.json()["detail"] == "status must be one of pending, approved, denied"
    missing = await client.get("/admin/api/requests/7", auth=ADMIN_AUTH)
    assert missing.status_code == 404
