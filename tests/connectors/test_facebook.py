"""The ``facebook`` connector against a respx-mocked Facebook (no network)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import respx
from pydantic import TypeAdapter, ValidationError

from idp_connectors.base import (
    BeginRequest,
    Callback,
    ConnectorConfigBase,
    ConnectorContext,
    ConnectorError,
    MailMessage,
    Redirect,
)
from idp_connectors.facebook.config import FacebookConfig
from idp_connectors.facebook.connector import MAX_RESPONSE_BYTES, FacebookConnector, appsecret_proof
from tests.support.memory_state import MemoryState

APP_ID = "1234567890123"
APP_SECRET = "0123456789abcdef0123456789abcdef"
CODE = "AQD-upstream-authorization-code_xyz"
TOKEN = "EAAB-user-access-token-ZZZ"
CALLBACK = "https://gw.contoso.example/callback/facebook"
TOKEN_URL = "https://graph.facebook.com/v19.0/oauth/access_token"
ME_URL = "https://graph.facebook.com/v19.0/me"
PROFILE = {
    "id": "10158123456789012",
    "name": "Ada Lovelace",
    "email": "ada@example.com",
    "first_name": "Ada",
    "last_name": "Lovelace",
}


class NoMail:
    def send(self, message: MailMessage) -> None:
        raise AssertionError("the facebook connector sends no mail")


def config(**overrides: Any) -> FacebookConfig:
    raw: dict[str, Any] = {
        "id": "facebook",
        "type": "facebook",
        "client_id": APP_ID,
        "client_secret": APP_SECRET,
    }
    raw.update(overrides)
    return FacebookConfig.model_validate(raw)


def context(http: httpx.AsyncClient | None, state: MemoryState) -> ConnectorContext:
    return ConnectorContext(
        state=state, mail=NoMail(), keyed_hash=lambda purpose, value: value, tenant_name="Contoso", http=http
    )


class Harness:
    def __init__(self, connector: FacebookConnector, state: MemoryState, router: respx.MockRouter) -> None:
        self.connector = connector
        self.state = state
        self.router = router
        self.token = router.post(TOKEN_URL)
        self.me = router.get(ME_URL)

    async def begin(self) -> Redirect:
        return await self.connector.begin(BeginRequest(state="gw-state-123", callback_url=CALLBACK))

    async def complete(self, params: dict[str, str] | None = None, callback_url: str = CALLBACK) -> Any:
        redirect = await self.begin()
        callback = Callback(
            params={"code": CODE, "state": "gw-state-123"} if params is None else params,
            state=redirect.state,
            callback_url=callback_url,
        )
        return await self.connector.complete(callback)

    async def refused(self, code: str, params: dict[str, str] | None = None, **kw: str) -> ConnectorError:
        with pytest.raises(ConnectorError) as info:
            await self.complete(params, **kw)
        error = info.value
        assert error.code == code, str(error)
        text = str(error)
        for secret in (APP_SECRET, TOKEN, CODE):
            assert secret not in text
        assert error.__cause__ is None and error.__context__ is None
        assert self.state.entries == {} and self.state.counters == {}
        return error


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as mock:
        yield mock


@pytest.fixture
async def harness(router: respx.MockRouter) -> AsyncIterator[Harness]:
    state = MemoryState()
    async with httpx.AsyncClient() as http:
        connector = config(http_timeout_seconds=0.5).open(context(http, state))
        assert isinstance(connector, FacebookConnector)
        yield Harness(connector, state, router)


def query(url: str) -> dict[str, str]:
    parsed = parse_qs(urlsplit(url).query, keep_blank_values=True, strict_parsing=True)
    assert all(len(values) == 1 for values in parsed.values())
    return {name: values[0] for name, values in parsed.items()}


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


# --- begin -------------------------------------------------------------------------------------


async def test_begin_builds_the_login_dialog_url_with_pkce(harness: Harness) -> None:
    redirect = await harness.begin()
    parts = urlsplit(redirect.url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "www.facebook.com", "/v19.0/dialog/oauth")
    params = query(redirect.url)
    verifier = redirect.state["code_verifier"]
    assert params == {
        "client_id": APP_ID,
        "redirect_uri": CALLBACK,
        "state": "gw-state-123",
        "response_type": "code",
        "scope": "email,public_profile",
        "code_challenge": s256(verifier),
        "code_challenge_method": "S256",
    }
    assert 43 <= len(verifier) <= 128
    assert verifier not in redirect.url
    assert APP_SECRET not in redirect.url
    again = await harness.begin()
    assert again.state["code_verifier"] != verifier


# --- complete: the happy path ------------------------------------------------------------------


async def test_complete_exchanges_the_code_and_reads_me_with_appsecret_proof(harness: Harness) -> None:
    harness.token.respond(200, json={"access_token": TOKEN, "token_type": "bearer", "expires_in": 5183944})
    harness.me.respond(200, json=PROFILE)
    redirect = await harness.begin()
    challenge = query(redirect.url)["code_challenge"]

    identity = await harness.connector.complete(
        Callback(params={"code": CODE, "state": "gw-state-123"}, state=redirect.state, callback_url=CALLBACK)
    )

    exchange = harness.token.calls.last.request
    form = {name: values[0] for name, values in parse_qs(exchange.content.decode()).items()}
    assert form == {
        "client_id": APP_ID,
        "client_secret": APP_SECRET,
        "redirect_uri": CALLBACK,
        "code": CODE,
        "code_verifier": redirect.state["code_verifier"],
    }
    assert s256(form["code_verifier"]) == challenge
    assert APP_SECRET not in str(exchange.url)

    me = harness.me.calls.last.request
    expected_proof = hmac.new(APP_SECRET.encode(), TOKEN.encode(), hashlib.sha256).hexdigest()
    assert query(str(me.url)) == {
        "fields": "id,name,email,first_name,last_name",
        "appsecret_proof": expected_proof,
    }
    assert appsecret_proof(APP_SECRET, TOKEN) == expected_proof
    assert me.headers["authorization"] == f"Bearer {TOKEN}"
    assert TOKEN not in str(me.url)

    assert identity.connector_id == "facebook"
    assert identity.issuer == "facebook.com"
    assert identity.subject == PROFILE["id"]
    assert identity.email == "ada@example.com" and identity.email_verified is True
    assert (identity.name, identity.given_name, identity.family_name) == ("Ada Lovelace", "Ada", "Lovelace")
    assert identity.amr == () and identity.acr is None and identity.auth_time is None
    assert identity.home_tenant_id is None
    assert dict(identity.raw_claims) == PROFILE
    assert harness.state.entries == {}


async def test_profile_without_email_gives_no_email_and_unverified(harness: Harness) -> None:
    harness.token.respond(200, json={"access_token": TOKEN, "token_type": "bearer"})
    harness.me.respond(200, json={"id": "42", "name": "No Mail"})
    identity = await harness.complete()
    assert identity.subject == "42"
    assert identity.email is None and identity.email_verified is False
    assert identity.given_name is None and identity.family_name is None


async def test_custom_version_scopes_and_fields_reach_facebook(router: respx.MockRouter) -> None:
    cfg = config(graph_version="v21.0", scopes=["public_profile"], fields=["id", "name"])
    token = router.post("https://graph.facebook.com/v21.0/oauth/access_token").respond(
        200, json={"access_token": TOKEN}
    )
    me = router.get("https://graph.facebook.com/v21.0/me").respond(200, json={"id": "7", "name": "N"})
    async with httpx.AsyncClient() as http:
        connector = cfg.open(context(http, MemoryState()))
        redirect = await connector.begin(BeginRequest(state="s", callback_url=CALLBACK))
        assert urlsplit(redirect.url).path == "/v21.0/dialog/oauth"
        assert query(redirect.url)["scope"] == "public_profile"
        identity = await connector.complete(Callback({"code": CODE}, redirect.state, CALLBACK))
    assert token.called and query(str(me.calls.last.request.url))["fields"] == "id,name"
    assert identity.subject == "7"


# --- complete: refusals ------------------------------------------------------------------------


async def test_user_denied_is_upstream_denied_without_any_call(harness: Harness) -> None:
    error = await harness.refused(
        "upstream_denied",
        {
            "error": "access_denied",
            "error_reason": "user_denied",
            "error_description": "Permissions error.",
            "state": "gw-state-123",
        },
    )
    assert "user_denied" in str(error) and "Permissions error." in str(error)
    assert not harness.token.called and not harness.me.called


async def test_error_with_a_code_is_still_denied(harness: Harness) -> None:
    await harness.refused("upstream_denied", {"error": "access_denied", "code": CODE})
    assert not harness.token.called


async def test_missing_code_is_invalid_callback(harness: Harness) -> None:
    error = await harness.refused("invalid_callback", {"state": "gw-state-123"})
    assert "no authorization code" in str(error)
    assert not harness.token.called


async def test_malformed_code_is_invalid_callback(harness: Harness) -> None:
    await harness.refused("invalid_callback", {"code": "has space"})
    await harness.refused("invalid_callback", {"code": "x" * 5000})
    assert not harness.token.called


async def test_callback_at_another_redirect_uri_is_refused(harness: Harness) -> None:
    error = await harness.refused(
        "invalid_callback", callback_url="https://gw.contoso.example/callback/other"
    )
    assert "redirect URI" in str(error)
    assert not harness.token.called


async def test_state_without_verifier_is_refused(harness: Harness) -> None:
    with pytest.raises(ConnectorError) as info:
        await harness.connector.complete(Callback({"code": CODE}, {"redirect_uri": CALLBACK}, CALLBACK))
    assert info.value.code == "invalid_callback"
    assert not harness.token.called


async def test_token_endpoint_400_is_token_error_with_graph_reason(harness: Harness) -> None:
    harness.token.respond(
        400,
        json={
            "error": {
                "message": "This authorization code has been used.",
                "type": "OAuthException",
                "code": 100,
                "fbtrace_id": "AbC",
            }
        },
    )
    error = await harness.refused("token_error")
    assert "HTTP 400" in str(error)
    assert "OAuthException 100" in str(error) and "has been used" in str(error)
    assert not harness.me.called


async def test_token_endpoint_500_is_upstream_unavailable(harness: Harness) -> None:
    harness.token.respond(500, text="oops")
    error = await harness.refused("upstream_unavailable")
    assert "HTTP 500" in str(error)
    assert not harness.me.called


async def test_token_endpoint_timeout_is_upstream_unavailable(harness: Harness) -> None:
    harness.token.side_effect = httpx.ReadTimeout("timed out")
    error = await harness.refused("upstream_unavailable")
    assert "did not answer within 0.5 seconds" in str(error)


async def test_token_endpoint_slower_than_the_deadline_is_cut_off(harness: Harness) -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200, json={"access_token": TOKEN})

    harness.token.side_effect = slow
    loop = asyncio.get_running_loop()
    started = loop.time()
    await harness.refused("upstream_unavailable")
    assert loop.time() - started < 2


async def test_unreachable_token_endpoint_is_upstream_unavailable(harness: Harness) -> None:
    harness.token.side_effect = httpx.ConnectError("connection refused")
    error = await harness.refused("upstream_unavailable")
    assert "ConnectError" in str(error)


async def test_token_endpoint_non_json_is_token_error(harness: Harness) -> None:
    harness.token.respond(200, text="<html>not json</html>")
    error = await harness.refused("token_error")
    assert "not a JSON object" in str(error)
    assert not harness.me.called


@pytest.mark.parametrize(
    "answer",
    [
        {"token_type": "bearer"},
        {"access_token": 12345},
        {"access_token": ""},
        {"access_token": TOKEN, "token_type": "mac"},
    ],
)
async def test_token_response_without_a_bearer_token_is_token_error(
    harness: Harness, answer: dict[str, Any]
) -> None:
    harness.token.respond(200, json=answer)
    await harness.refused("token_error")
    assert not harness.me.called


async def test_oversized_token_response_is_refused(harness: Harness) -> None:
    harness.token.respond(200, content=b'{"access_token": "' + b"a" * MAX_RESPONSE_BYTES + b'"}')
    error = await harness.refused("token_error")
    assert "larger than" in str(error)


async def test_token_endpoint_redirect_is_not_followed(harness: Harness) -> None:
    harness.token.respond(302, headers={"location": "https://elsewhere.example/"})
    error = await harness.refused("token_error")
    assert "redirect" in str(error)
    assert len(harness.router.calls) == 1


async def test_me_401_is_token_error(harness: Harness) -> None:
    harness.token.respond(200, json={"access_token": TOKEN, "token_type": "bearer"})
    harness.me.respond(
        401,
        json={"error": {"message": "Invalid OAuth access token.", "type": "OAuthException", "code": 190}},
    )
    error = await harness.refused("token_error")
    assert "/me" in str(error) and "HTTP 401" in str(error) and "OAuthException 190" in str(error)


async def test_me_500_is_upstream_unavailable(harness: Harness) -> None:
    harness.token.respond(200, json={"access_token": TOKEN})
    harness.me.respond(503)
    await harness.refused("upstream_unavailable")


@pytest.mark.parametrize(
    "profile",
    [
        {"name": "No Id", "email": "a@example.com"},
        {"id": 10158123456789012},
        {"id": ""},
        {"id": "not-a-number"},
    ],
)
async def test_me_without_an_app_scoped_id_is_token_error(harness: Harness, profile: dict[str, Any]) -> None:
    harness.token.respond(200, json={"access_token": TOKEN})
    harness.me.respond(200, json=profile)
    error = await harness.refused("token_error")
    assert "no app-scoped user id" in str(error)


async def test_me_non_json_is_token_error(harness: Harness) -> None:
    harness.token.respond(200, json={"access_token": TOKEN})
    harness.me.respond(200, text="[1, 2")
    await harness.refused("token_error")
    harness.me.respond(200, text=json.dumps([PROFILE]))
    await harness.refused("token_error")
    harness.me.respond(200, text='{"id": "1", "x": NaN}')
    await harness.refused("token_error")


# --- opening and configuration -----------------------------------------------------------------


def test_open_without_the_shared_http_client_fails() -> None:
    with pytest.raises(ValueError, match="shared HTTP client"):
        config().open(context(None, MemoryState()))


def test_signup_only_is_true() -> None:
    assert FacebookConfig.signup_only is True
    assert config().signup_only is True
    assert ConnectorConfigBase.signup_only is False


def test_defaults_and_endpoints() -> None:
    cfg = config()
    assert cfg.graph_version == "v19.0"
    assert cfg.scopes == ["email", "public_profile"]
    assert cfg.fields == ["id", "name", "email", "first_name", "last_name"]
    assert cfg.authorization_endpoint == "https://www.facebook.com/v19.0/dialog/oauth"
    assert cfg.token_endpoint == TOKEN_URL
    assert cfg.me_endpoint == ME_URL
    assert APP_SECRET not in repr(cfg) and APP_SECRET not in str(cfg.model_dump())


def test_overridden_endpoints_on_loopback_http() -> None:
    cfg = config(authorize_url="http://127.0.0.1:9000/dialog", graph_base_url="http://localhost:9000/graph/")
    assert cfg.authorization_endpoint == "http://127.0.0.1:9000/dialog"
    assert cfg.token_endpoint == "http://localhost:9000/graph/v19.0/oauth/access_token"
    assert config(graph_base_url="http://[::1]:9000").me_endpoint == "http://[::1]:9000/v19.0/me"


def test_unknown_keys_are_rejected() -> None:
    with pytest.raises(ValidationError) as info:
        config(app_secret_proof=False)
    assert info.value.errors()[0]["type"] == "extra_forbidden"
    assert info.value.errors()[0]["loc"] == ("app_secret_proof",)


@pytest.mark.parametrize(
    ("key", "url", "message"),
    [
        ("graph_base_url", "http://graph.facebook.com", "http is allowed only for a loopback host"),
        ("authorize_url", "http://www.facebook.com/v19.0/dialog/oauth", "loopback host"),
        ("graph_base_url", "http://127.0.0.1.evil.example", "loopback host"),
        ("graph_base_url", "ftp://graph.facebook.com", "absolute https URL"),
        ("graph_base_url", "https://user@graph.facebook.com", "user information"),
        ("authorize_url", "https://www.facebook.com/dialog?x=1", "query"),
        ("authorize_url", "https://www.facebook.com/dialog#f", "fragment"),
        ("graph_base_url", "https://graph.facebook.com:99999", "not a valid URL"),
    ],
)
def test_bad_endpoint_urls_are_rejected(key: str, url: str, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        config(**{key: url})
    assert info.value.errors()[0]["loc"] == (key,)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("overrides", "loc"),
    [
        ({"graph_version": "19.0"}, "graph_version"),
        ({"graph_version": "v19"}, "graph_version"),
        ({"client_id": "my-app"}, "client_id"),
        ({"client_secret": ""}, "client_secret"),
        ({"client_secret": "has space"}, "client_secret"),
        ({"scopes": []}, "scopes"),
        ({"scopes": ["email", "email"]}, "scopes"),
        ({"scopes": ["email,public_profile"]}, "scopes"),
        ({"fields": ["name", "email"]}, "fields"),
        ({"fields": ["id", "picture{url}"]}, "fields"),
        ({"http_timeout_seconds": 0}, "http_timeout_seconds"),
        ({"type": "oidc"}, "type"),
    ],
)
def test_bad_values_are_rejected(overrides: dict[str, Any], loc: str) -> None:
    with pytest.raises(ValidationError) as info:
        config(**overrides)
    assert info.value.errors()[0]["loc"][0] == loc


def test_secret_missing_is_rejected() -> None:
    with pytest.raises(ValidationError) as info:
        TypeAdapter(FacebookConfig).validate_python({"id": "fb", "type": "facebook", "client_id": APP_ID})
    assert info.value.errors()[0]["loc"] == ("client_secret",)
