"""The authorization endpoint (OIDC Core 3.1.2, RFC 6749 4.1, RFC 7636, RFC 9207).

Test names carry the conformance module they stand for (checklist sections 1.1 and 3.5).
Every refusal is checked twice: the response (an error page that never redirects, or an
error redirected to the registered URI with ``state`` and ``iss``) and the store (no
sign-in transaction, code, token, session or user appeared). Refusals run with a live SSO
session, so a request wrongly let through would get a code at once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest

from tests.support.assertions import (
    PORTAL_REDIRECT,
    STRICT_REDIRECT,
    Op,
    assert_authorization_error,
    assert_code_response,
    assert_error_page,
    assert_nothing_minted,
    auth_query,
    authorize,
    complete_sign_in,
    no_pkce,
    redeem,
    running_op,
    sign_in,
    snapshot,
    verify_id_token,
)
from tests.support.flows import DEMO_REDIRECT, AuthRequest, signin_path_of
from tests.support.smtp_server import SmtpServer

EMAIL = "guest@fabrikam.example"


@pytest.fixture
async def op(tmp_path: Path, smtp_server: SmtpServer) -> AsyncIterator[Op]:
    async with running_op(tmp_path, smtp_server) as running:
        yield running


async def id_claims(op: Op, req: AuthRequest, code: str) -> dict[str, Any]:
    response = await redeem(op, req, code)
    assert response.status_code == 200, response.text
    token = response.json()["id_token"]
    return await verify_id_token(op, token, client_id=req.client_id, nonce=req.nonce or None)


async def signed_in(op: Op) -> dict[str, Any]:
    """Sign in once (an SSO session now exists); the ID token's claims."""
    req, code = await sign_in(op, EMAIL)
    return await id_claims(op, req, code)


def assert_sent_to_sign_in(response: httpx.Response) -> str:
    """The authorization response is the email page (no code); its sign-in path."""
    return signin_path_of(response)


# -- the happy flow ------------------------------------------------------------------------------


async def test_oidcc_server_code_flow_returns_code_state_iss_and_valid_id_token(op: Op) -> None:
    claims = await signed_in(op)
    assert claims["aud"] == "demo"
    assert claims["amr"] == ["otp"]


async def test_oidcc_ensure_request_without_nonce_succeeds_for_code_flow(op: Op) -> None:
    req = AuthRequest()
    req, code = await sign_in(op, EMAIL, req, nonce=None)
    response = await redeem(op, req, code)
    assert response.status_code == 200, response.text
    await verify_id_token(op, response.json()["id_token"], client_id="demo", nonce=None)


async def test_oidcc_ensure_post_request_succeeds(op: Op) -> None:
    req = AuthRequest()
    started = await op.client.post("/oauth2/authorize", data=dict(parse_qsl(auth_query(req))))
    done = await complete_sign_in(op, assert_sent_to_sign_in(started), EMAIL)
    await id_claims(op, req, assert_code_response(done, req))


async def test_oidcc_alternate_happy_flow_reordered_parameters_and_reversed_scopes(op: Op) -> None:
    await signed_in(op)
    req = AuthRequest(scope="email profile openid")
    reordered = urlencode(list(reversed(parse_qsl(auth_query(req)))))
    response = await op.client.get(f"/oauth2/authorize?{reordered}")
    claims = await id_claims(op, req, assert_code_response(response, req))
    assert claims["email"] == EMAIL and claims["name"] == EMAIL


TOLERATED = {
    "oidcc-ensure-request-with-unknown-parameter-succeeds": {"extra_param": "ignored", "x-custom": "1"},
    "oidcc-display-page": {"display": "page"},
    "oidcc-display-popup": {"display": "popup"},
    "oidcc-login-hint": {"login_hint": EMAIL},
    "oidcc-ui-locales": {"ui_locales": "se fr-CA en"},
    "oidcc-claims-locales": {"claims_locales": "se"},
    "oidcc-ensure-request-with-acr-values-succeeds": {"acr_values": "https://refeds.org/profile/sfa"},
    "oidcc-claims-essential": {"claims": '{"userinfo":{"name":{"essential":true}}}'},
}


@pytest.mark.parametrize("extra", TOLERATED.values(), ids=TOLERATED.keys())
async def test_tolerated_parameters_still_issue_a_code(op: Op, extra: dict[str, str]) -> None:
    before = await signed_in(op)
    req = AuthRequest()
    claims = await id_claims(op, req, assert_code_response(await authorize(op, req, **extra), req))
    assert claims["sub"] == before["sub"]


async def test_oidcc_login_hint_prefills_the_email_page(op: Op) -> None:
    started = await authorize(op, AuthRequest(), login_hint=EMAIL)
    assert_sent_to_sign_in(started)
    assert f'value="{EMAIL}"' in started.text
    assert 'type="email"' in started.text


# -- untrusted client or redirect URI: an error page, never a redirect ----------------------------

BAD_REDIRECTS = {
    "unregistered": "https://evil.example/callback",
    "query_added": DEMO_REDIRECT + "?extra=1",
    "trailing_slash": DEMO_REDIRECT + "/",
    "other_case": DEMO_REDIRECT.replace("/demo/callback", "/Demo/Callback"),
    "userinfo_at_host": DEMO_REDIRECT.replace("http://", "http://attacker@"),
    "another_apps_uri": PORTAL_REDIRECT,
    "missing": None,
}


@pytest.mark.parametrize("redirect_uri", BAD_REDIRECTS.values(), ids=BAD_REDIRECTS.keys())
async def test_oidcc_ensure_registered_redirect_uri_else_error_page_and_nothing_stored(
    op: Op, redirect_uri: str | None
) -> None:
    await signed_in(op)
    before = snapshot(op)
    response = await authorize(op, AuthRequest(), redirect_uri=redirect_uri)
    assert_error_page(response)
    assert "redirect" in response.text.lower()
    assert_nothing_minted(op, before)


@pytest.mark.parametrize("client_id", ["unknown-app", "", None], ids=["unknown", "empty", "missing"])
async def test_unknown_or_missing_client_id_gets_error_page_and_nothing_stored(
    op: Op, client_id: str | None
) -> None:
    await signed_in(op)
    before = snapshot(op)
    response = await authorize(op, AuthRequest(), client_id=client_id)
    assert_error_page(response)
    assert "application" in response.text.lower()
    assert_nothing_minted(op, before)


@pytest.mark.parametrize("name", ["client_id", "redirect_uri"])
async def test_repeated_client_id_or_redirect_uri_gets_error_page(op: Op, name: str) -> None:
    req = AuthRequest()
    before = snapshot(op)
    again = urlencode({name: getattr(req, name)})
    response = await op.client.get(f"/oauth2/authorize?{auth_query(req)}&{again}")
    assert_error_page(response)
    assert_nothing_minted(op, before)


# -- trusted client: errors go back to the client -------------------------------------------------

REDIRECTED_ERRORS: dict[str, tuple[dict[str, str | None], str]] = {
    "oidcc-response-type-missing": ({"response_type": None}, "invalid_request"),
    "response_type_token": ({"response_type": "token"}, "unsupported_response_type"),
    "response_type_hybrid": ({"response_type": "code id_token"}, "unsupported_response_type"),
    "oidcc-unsigned-request-object-rejected-as-unsupported": ({"request": "eyJhbGciOiJub25lIn0.e30."},
                                                              "request_not_supported"),
    "oidcc-request-uri-rejected-as-unsupported": ({"request_uri": "https://rp.example/request.jwt"},
                                                  "request_uri_not_supported"),
    "scope_without_openid": ({"scope": "profile email"}, "invalid_scope"),
    "scope_missing": ({"scope": None}, "invalid_scope"),
    "pkce_missing_for_public_client": ({"code_challenge": None, "code_challenge_method": None},
                                       "invalid_request"),
    "pkce_plain_refused": ({"code_challenge_method": "plain"}, "invalid_request"),
    "pkce_method_missing_means_plain": ({"code_challenge_method": None}, "invalid_request"),
    "pkce_challenge_malformed": ({"code_challenge": "short"}, "invalid_request"),
    "response_mode_fragment": ({"response_mode": "fragment"}, "invalid_request"),
    "prompt_none_with_login": ({"prompt": "none login"}, "invalid_request"),
    "prompt_unknown": ({"prompt": "bogus\r\nSet-Cookie:\tx"}, "invalid_request"),
    "max_age_negative": ({"max_age": "-1"}, "invalid_request"),
    "max_age_not_a_number": ({"max_age": "1\r\n0"}, "invalid_request"),
    "id_token_hint_not_ours": ({"id_token_hint": "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."}, "invalid_request"),
    "parameter_too_long": ({"nonce": "n" * 5000}, "invalid_request"),
}


@pytest.mark.parametrize("case", REDIRECTED_ERRORS.values(), ids=REDIRECTED_ERRORS.keys())
async def test_invalid_request_is_redirected_with_error_state_iss_and_nothing_minted(
    op: Op, case: tuple[dict[str, str | None], str]
) -> None:
    changes, error = case
    await signed_in(op)
    before = snapshot(op)
    req = AuthRequest()
    assert_authorization_error(await authorize(op, req, **changes), req, error)
    assert_nothing_minted(op, before)


@pytest.mark.parametrize("first", [True, False], ids=["before_client_id", "after_client_id"])
async def test_repeated_parameter_is_invalid_request_wherever_it_appears(op: Op, first: bool) -> None:
    await signed_in(op)
    before = snapshot(op)
    req = AuthRequest()
    repeated = urlencode({"scope": "openid"})
    query = f"{repeated}&{auth_query(req)}" if first else f"{auth_query(req)}&{repeated}"
    response = await op.client.get(f"/oauth2/authorize?{query}")
    assert "scope" in assert_authorization_error(response, req, "invalid_request")["error_description"]
    assert_nothing_minted(op, before)


async def test_strict_confidential_client_with_require_pkce_must_send_a_challenge(op: Op) -> None:
    await signed_in(op)
    before = snapshot(op)
    req = no_pkce("strict", STRICT_REDIRECT)
    assert_authorization_error(await authorize(op, req), req, "invalid_request")
    assert_nothing_minted(op, before)


async def test_confidential_client_without_require_pkce_may_omit_the_challenge(op: Op) -> None:
    req = no_pkce("portal", PORTAL_REDIRECT)
    req, code = await sign_in(op, EMAIL, req)
    response = await redeem(op, req, code)
    assert response.status_code == 200, response.text
    await verify_id_token(op, response.json()["id_token"], client_id="portal", nonce=req.nonce, alg="RS256")


# -- the SSO session: prompt, max_age, id_token_hint ------------------------------------------------


async def test_oidcc_prompt_none_not_logged_in_is_login_required_with_state_and_iss(op: Op) -> None:
    before = snapshot(op)
    req = AuthRequest()
    assert_authorization_error(await authorize(op, req, prompt="none"), req, "login_required")
    assert_nothing_minted(op, before)


async def test_oidcc_prompt_none_logged_in_returns_silently_with_same_sub_and_auth_time(op: Op) -> None:
    first = await signed_in(op)
    op.clock.advance(5)
    req = AuthRequest()
    claims = await id_claims(op, req, assert_code_response(await authorize(op, req, prompt="none"), req))
    assert (claims["sub"], claims["auth_time"]) == (first["sub"], first["auth_time"])


async def test_oidcc_prompt_login_asks_again_and_issues_a_later_auth_time(op: Op) -> None:
    first = await signed_in(op)
    op.clock.advance(5)
    req = AuthRequest()
    path = assert_sent_to_sign_in(await authorize(op, req, prompt="login"))
    claims = await id_claims(op, req, assert_code_response(await complete_sign_in(op, path, EMAIL), req))
    assert claims["sub"] == first["sub"]
    assert claims["auth_time"] >= first["auth_time"] + 5


@pytest.mark.parametrize(("max_age", "wait"), [("0", 0), ("1", 2)], ids=["max_age_0", "oidcc-max-age-1"])
async def test_max_age_exceeded_forces_a_fresh_sign_in(op: Op, max_age: str, wait: int) -> None:
    first = await signed_in(op)
    op.clock.advance(wait)
    before = snapshot(op)
    req = AuthRequest()
    silent = await authorize(op, req, max_age=max_age, prompt="none")
    assert_authorization_error(silent, req, "login_required")
    assert_nothing_minted(op, before)
    op.clock.advance(1)
    path = assert_sent_to_sign_in(await authorize(op, req, max_age=max_age))
    claims = await id_claims(op, req, assert_code_response(await complete_sign_in(op, path, EMAIL), req))
    assert claims["auth_time"] > first["auth_time"]
    assert claims["sub"] == first["sub"]


async def test_oidcc_max_age_10000_reuses_the_session(op: Op) -> None:
    first = await signed_in(op)
    op.clock.advance(30)
    req = AuthRequest()
    claims = await id_claims(op, req, assert_code_response(await authorize(op, req, max_age="10000"), req))
    assert (claims["sub"], claims["auth_time"]) == (first["sub"], first["auth_time"])


async def test_oidcc_id_token_hint_with_prompt_none_returns_at_once_for_the_same_sub(op: Op) -> None:
    req, code = await sign_in(op, EMAIL)
    response = await redeem(op, req, code)
    hint = response.json()["id_token"]
    first = await verify_id_token(op, hint, client_id="demo", nonce=req.nonce)
    again = AuthRequest()
    claims = await id_claims(op, again, assert_code_response(
        await authorize(op, again, prompt="none", id_token_hint=hint), again))
    assert claims["sub"] == first["sub"]


async def test_id_token_hint_for_another_user_with_prompt_none_is_login_required(op: Op) -> None:
    other, code = await sign_in(op, "someone.else@fabrikam.example")
    other_hint = (await redeem(op, other, code)).json()["id_token"]
    await sign_in(op, EMAIL, prompt="login")  # the browser's session is now EMAIL's
    before = snapshot(op)
    req = AuthRequest()
    response = await authorize(op, req, prompt="none", id_token_hint=other_hint)
    assert_authorization_error(response, req, "login_required")
    assert_nothing_minted(op, before)
