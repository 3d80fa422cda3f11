"""RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0) at ``end_session_endpoint``.

Conformance modules (checklist 1.3) are in the test names. A redirect happens only to a
``post_logout_redirect_uri`` registered, exactly, by the client a valid ``id_token_hint``
(or ``client_id``) names; every refusal is an error page that neither redirects nor logs
out, and stores nothing.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey

from tests.support.assertions import (
    Op,
    assert_error_page,
    assert_nothing_minted,
    authorize,
    redeem,
    running_op,
    sign_in,
    snapshot,
)
from tests.support.flows import AuthRequest, query_of
from tests.support.smtp_server import SmtpServer

EMAIL = "guest@fabrikam.example"
DEMO_POST_LOGOUT = "http://127.0.0.1:8000/demo"
PORTAL_POST_LOGOUT = "https://portal.example/signed-out"


@pytest.fixture
async def op(tmp_path: Path, smtp_server: SmtpServer) -> AsyncIterator[Op]:
    async with running_op(tmp_path, smtp_server) as running:
        yield running


async def signed_in_hint(op: Op) -> str:
    """Sign in to ``demo`` (an SSO session now exists); its ID token, the usual id_token_hint."""
    req, code = await sign_in(op, EMAIL)
    response = await redeem(op, req, code)
    assert response.status_code == 200, response.text
    hint: str = response.json()["id_token"]
    return hint


async def logout(op: Op, **params: str | None) -> httpx.Response:
    return await op.client.get("/oauth2/logout", params={k: v for k, v in params.items() if v is not None})


async def session_is_alive(op: Op) -> bool:
    """prompt=none answers with a code while the browser has a session, login_required once it has none."""
    req = AuthRequest()
    query = query_of((await authorize(op, req, prompt="none")).headers["location"])
    assert ("code" in query) != (query.get("error") == "login_required"), query
    return "code" in query


def assert_logged_out(op: Op, response: httpx.Response) -> None:
    cookies = response.headers.get_list("set-cookie")
    assert any(c.startswith("gw_session=") and "Max-Age=0" in c for c in cookies), cookies
    assert snapshot(op).count("session") == 0


def assert_logged_out_page(op: Op, response: httpx.Response) -> None:
    assert response.status_code == 200, response.text
    assert "location" not in response.headers
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-store"
    assert "signed out" in response.text.lower()
    assert_logged_out(op, response)


async def assert_refused_and_still_signed_in(op: Op, response: httpx.Response, before: Any) -> None:
    assert_error_page(response)
    assert not any(c.startswith("gw_session=") for c in response.headers.get_list("set-cookie"))
    assert_nothing_minted(op, before)
    assert snapshot(op).count("session") == before.count("session") == 1
    assert await session_is_alive(op)


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def unb64(part: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return value


def claims_and_header(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    header, payload, _ = token.split(".")
    return unb64(payload), unb64(header)


# -- logging out -------------------------------------------------------------------------------------------


async def test_oidcc_rp_initiated_logout_redirects_with_state_and_ends_the_session(op: Op) -> None:
    hint = await signed_in_hint(op)
    response = await logout(op, id_token_hint=hint, post_logout_redirect_uri=DEMO_POST_LOGOUT, state="st-123")
    assert response.status_code == 303, response.text
    assert response.headers["location"] == f"{DEMO_POST_LOGOUT}?state=st-123"
    assert_logged_out(op, response)
    assert not await session_is_alive(op)


async def test_oidcc_rp_initiated_logout_no_state_redirects_without_a_query(op: Op) -> None:
    hint = await signed_in_hint(op)
    response = await logout(op, id_token_hint=hint, post_logout_redirect_uri=DEMO_POST_LOGOUT)
    assert response.status_code == 303, response.text
    assert response.headers["location"] == DEMO_POST_LOGOUT
    assert_logged_out(op, response)
    assert not await session_is_alive(op)


async def test_logout_by_post_form(op: Op) -> None:
    hint = await signed_in_hint(op)
    response = await op.client.post("/oauth2/logout", data={
        "id_token_hint": hint, "post_logout_redirect_uri": DEMO_POST_LOGOUT, "state": "s"})
    assert response.status_code == 303, response.text
    assert response.headers["location"] == f"{DEMO_POST_LOGOUT}?state=s"
    assert not await session_is_alive(op)


async def test_client_id_without_hint_may_name_the_client_of_a_registered_uri(op: Op) -> None:
    await signed_in_hint(op)
    response = await logout(op, client_id="demo", post_logout_redirect_uri=DEMO_POST_LOGOUT, state="s")
    assert response.headers["location"] == f"{DEMO_POST_LOGOUT}?state=s"
    assert not await session_is_alive(op)


async def test_an_expired_id_token_hint_is_still_accepted(op: Op) -> None:
    hint = await signed_in_hint(op)
    op.clock.advance(2 * 3600)
    response = await logout(op, id_token_hint=hint, post_logout_redirect_uri=DEMO_POST_LOGOUT)
    assert response.headers["location"] == DEMO_POST_LOGOUT


@pytest.mark.parametrize("params", [
    {},
    {"state": "only-state"},
    {"id_token_hint": "HINT"},
    {"id_token_hint": "HINT", "state": "s"},
], ids=["oidcc-rp-initiated-logout-no-params", "oidcc-rp-initiated-logout-only-state",
        "oidcc-rp-initiated-logout-no-post-logout-redirect-uri", "hint_and_state_without_uri"])
async def test_without_a_post_logout_uri_the_user_is_logged_out_on_our_page(
    op: Op, params: dict[str, str]
) -> None:
    hint = await signed_in_hint(op)
    sent = {k: hint if v == "HINT" else v for k, v in params.items()}
    response = await logout(op, **sent)
    assert_logged_out_page(op, response)
    assert "only-state" not in response.text
    assert not await session_is_alive(op)


# -- refused: an error page, no redirect, no logout ---------------------------------------------------------

BAD_URIS = {
    "oidcc-rp-initiated-logout-bad-post-logout-redirect-uri": "https://evil.example/bye",
    "oidcc-rp-initiated-logout-query-added-to-post-logout-redirect-uri": DEMO_POST_LOGOUT + "?foo=bar",
    "trailing_slash": DEMO_POST_LOGOUT + "/",
    "other_case": DEMO_POST_LOGOUT.replace("/demo", "/Demo"),
    "another_apps_uri": PORTAL_POST_LOGOUT,
    "redirect_uri_not_post_logout_uri": "http://127.0.0.1:8000/demo/callback",
}


@pytest.mark.parametrize("uri", BAD_URIS.values(), ids=BAD_URIS.keys())
async def test_unregistered_post_logout_redirect_uri_is_refused(op: Op, uri: str) -> None:
    hint = await signed_in_hint(op)
    before = snapshot(op)
    response = await logout(op, id_token_hint=hint, post_logout_redirect_uri=uri, state="s")
    await assert_refused_and_still_signed_in(op, response, before)


async def test_oidcc_rp_initiated_logout_no_id_token_hint_does_not_redirect(op: Op) -> None:
    await signed_in_hint(op)
    before = snapshot(op)
    response = await logout(op, post_logout_redirect_uri=DEMO_POST_LOGOUT, state="s")
    await assert_refused_and_still_signed_in(op, response, before)


def alg_none(hint: str) -> str:
    claims, header = claims_and_header(hint)
    return f"{b64({**header, 'alg': 'none'})}.{b64(claims)}."


def foreign_key_keeping_our_kid(hint: str) -> str:
    claims, header = claims_and_header(hint)
    key = ECKey.generate_key("P-256", private=True)
    return jwt.encode({"alg": "ES256", "kid": header["kid"], "typ": "JWT"}, claims, key)


def foreign_key(hint: str) -> str:
    claims, _ = claims_and_header(hint)
    key = ECKey.generate_key("P-256", private=True)
    return jwt.encode({"alg": "ES256", "kid": key.thumbprint(), "typ": "JWT"}, claims, key)


def payload_altered(hint: str) -> str:
    header, _, signature = hint.split(".")
    claims, _ = claims_and_header(hint)
    return f"{header}.{b64({**claims, 'aud': 'portal'})}.{signature}"


def hs256_with_public_key(hint: str) -> str:
    claims, header = claims_and_header(hint)
    unsigned = f"{b64({**header, 'alg': 'HS256'})}.{b64(claims)}"
    return f"{unsigned}.{b64({'not': 'a signature'})}"


HINTS = {
    "oidcc-rp-initiated-logout-modified-id-token-hint": alg_none,
    "oidcc-rp-initiated-logout-bad-id-token-hint": foreign_key,
    "foreign_key_with_our_kid": foreign_key_keeping_our_kid,
    "payload_altered": payload_altered,
    "hs256": hs256_with_public_key,
    "garbage": lambda hint: "not.a.jwt",
}


@pytest.mark.parametrize("forge", HINTS.values(), ids=HINTS.keys())
@pytest.mark.parametrize("with_uri", [True, False], ids=["with_uri", "without_uri"])
async def test_invalid_id_token_hint_is_refused_without_logout(op: Op, forge: Any, with_uri: bool) -> None:
    hint = await signed_in_hint(op)
    before = snapshot(op)
    uri = DEMO_POST_LOGOUT if with_uri else None
    response = await logout(op, id_token_hint=forge(hint), post_logout_redirect_uri=uri, state="s")
    await assert_refused_and_still_signed_in(op, response, before)


async def test_client_id_that_contradicts_the_hint_is_refused(op: Op) -> None:
    hint = await signed_in_hint(op)
    before = snapshot(op)
    response = await logout(op, id_token_hint=hint, client_id="portal",
                            post_logout_redirect_uri=PORTAL_POST_LOGOUT)
    await assert_refused_and_still_signed_in(op, response, before)


async def test_repeated_parameter_is_refused(op: Op) -> None:
    hint = await signed_in_hint(op)
    before = snapshot(op)
    response = await op.client.get("/oauth2/logout", params=[
        ("id_token_hint", hint), ("post_logout_redirect_uri", DEMO_POST_LOGOUT),
        ("post_logout_redirect_uri", "https://evil.example/")])
    await assert_refused_and_still_signed_in(op, response, before)


async def test_oidcc_rp_initiated_logout_discovery_endpoint_verification(op: Op) -> None:
    document = (await op.client.get("/.well-known/openid-configuration")).json()
    assert document["end_session_endpoint"] == f"{document['issuer']}/oauth2/logout"
