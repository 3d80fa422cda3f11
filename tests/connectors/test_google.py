"""The ``google`` preset against the test IdP playing accounts.google.com (through respx).

The IdP is mounted at the real issuer ``https://accounts.google.com`` (no network: respx
answers), so the default configuration is what is tested. Each refusal also checks that the
connector persisted nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import respx
from pydantic import ValidationError

from idp_connectors.base import BeginRequest, Callback, ConnectorContext, ConnectorError, UpstreamIdentity
from idp_connectors.google.config import GOOGLE_ISSUER, GoogleConfig
from idp_connectors.google.connector import GoogleConnector
from idp_connectors.oidc.connector import OidcConnector
from tests.support.memory_state import ManualClock, MemoryState
from tests.support.oidc_idp import NOW, REMOVE, IdpClient, IdpUser, NoMail, OidcTestIdP, authorize

CLIENT_ID = "1234567890-abcdef.apps.googleusercontent.com"
SECRET = "GOCSPX-test-secret"
CALLBACK = "https://gateway.test/callback/google"
SUB = "104729365721364985111"
LOOPBACK = "http://127.0.0.1:8765"


class GoogleHarness:
    """A ``GoogleConnector`` wired to an ``OidcTestIdP`` that issues Google-like tokens."""

    def __init__(self, router: respx.MockRouter, issuer: str = GOOGLE_ISSUER) -> None:
        self.clock = ManualClock(NOW)
        client = IdpClient(
            client_id=CLIENT_ID,
            client_secret=SECRET,
            redirect_uris=[CALLBACK],
            auth_method="client_secret_post",
        )
        user = IdpUser(sub=SUB, email="alice@gmail.com", extra={})
        self.idp = OidcTestIdP(issuer, clients=[client], user=user, clock=self.clock)
        self.routes = self.idp.mount(router)
        self.state = MemoryState(self.clock)
        self.http = httpx.AsyncClient()
        self.configure()

    def configure(self, **overrides: Any) -> GoogleConnector:
        settings: dict[str, Any] = {
            "id": "google",
            "type": "google",
            "client_id": CLIENT_ID,
            "client_secret": SECRET,
        }
        if self.idp.issuer != GOOGLE_ISSUER:
            settings["issuer"] = self.idp.issuer
        settings.update(overrides)
        self.config = GoogleConfig.model_validate(settings)
        ctx = ConnectorContext(
            state=self.state,
            mail=NoMail(),
            keyed_hash=lambda purpose, value: f"{purpose}:{value}",
            tenant_name="Contoso",
            http=self.http,
            clock=self.clock,
        )
        self.connector = self.config.open(ctx)
        return self.connector

    async def begin_url(self) -> str:
        return (await self.connector.begin(BeginRequest(state="st-1", callback_url=CALLBACK))).url

    async def sign_in(self) -> UpstreamIdentity:
        redirect = await self.connector.begin(BeginRequest(state="st-1", callback_url=CALLBACK))
        target, params = await authorize(self.idp, redirect.url)
        return await self.connector.complete(
            Callback(params=params, state=redirect.state, callback_url=target)
        )

    async def refused(self, code: str) -> ConnectorError:
        with pytest.raises(ConnectorError) as caught:
            await self.sign_in()
        assert caught.value.code == code, str(caught.value)
        assert self.state.entries == {} and self.state.counters == {}
        return caught.value


@pytest.fixture
async def router() -> AsyncIterator[respx.MockRouter]:
    async with respx.mock(assert_all_called=False) as mock:
        yield mock


@pytest.fixture
async def google(router: respx.MockRouter) -> AsyncIterator[GoogleHarness]:
    harness = GoogleHarness(router)
    yield harness
    await harness.http.aclose()


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


# -- happy path ----------------------------------------------------------------------------------


async def test_sign_in_reports_the_google_identity(google: GoogleHarness) -> None:
    identity = await google.sign_in()
    assert isinstance(google.connector, OidcConnector)
    assert identity.connector_id == "google"
    assert identity.issuer == "https://accounts.google.com"
    assert identity.subject == SUB
    assert identity.email == "alice@gmail.com"
    assert identity.email_verified is True
    assert (identity.name, identity.given_name, identity.family_name) == ("Alice Example", "Alice", "Example")
    assert identity.home_tenant_id is None
    assert identity.raw_claims["aud"] == CLIENT_ID
    assert google.routes["discovery"].call_count == 1
    assert google.routes["userinfo"].call_count == 0  # everything Google says is in the ID token
    assert google.state.entries == {}


async def test_authorization_request_and_token_exchange_use_the_pinned_settings(
    google: GoogleHarness,
) -> None:
    params = query(await google.begin_url())
    assert params["scope"] == "openid email profile"
    assert params["client_id"] == CLIENT_ID
    assert params["code_challenge_method"] == "S256"
    assert "hd" not in params
    await google.sign_in()
    request = google.routes["token"].calls.last.request
    form = parse_qs(request.content.decode())
    assert form["client_secret"] == [SECRET]  # client_secret_post, as Google documents
    assert "authorization" not in request.headers


def test_the_internal_oidc_configuration_is_pinned() -> None:
    config = GoogleConfig.model_validate(
        {"id": "google", "type": "google", "client_id": CLIENT_ID, "client_secret": SECRET}
    ).oidc_config()
    assert config.issuer == "https://accounts.google.com"
    assert config.discovery_document_url == "https://accounts.google.com/.well-known/openid-configuration"
    assert config.allowed_algorithms == ["RS256"]
    assert config.scopes == ["openid", "email", "profile"]
    assert config.use_userinfo is False
    assert config.trust_email_for_linking is False


async def test_only_rs256_is_accepted(google: GoogleHarness) -> None:
    google.idp.knobs.signing_alg = "ES256"
    await google.refused("alg_not_allowed")


# -- issuer --------------------------------------------------------------------------------------


async def test_legacy_issuer_without_https_is_accepted(google: GoogleHarness) -> None:
    google.idp.knobs.id_token_claims = {"iss": "accounts.google.com"}
    identity = await google.sign_in()
    assert identity.issuer == "https://accounts.google.com"  # always the https spelling
    assert identity.raw_claims["iss"] == "accounts.google.com"


@pytest.mark.parametrize(
    "iss",
    [
        "https://accounts.google.com/",
        "http://accounts.google.com",
        "https://accounts.google.com.evil.example",
        "accounts.google.com.evil.example",
        "https://evil.example",
        "ACCOUNTS.GOOGLE.COM",
        123,
        REMOVE,
    ],
)
async def test_any_other_issuer_is_refused(google: GoogleHarness, iss: object) -> None:
    google.idp.knobs.id_token_claims = {"iss": iss}
    await google.refused("invalid_iss")


async def test_loopback_issuer_override_signs_in_and_has_no_legacy_spelling(router: respx.MockRouter) -> None:
    harness = GoogleHarness(router, issuer=LOOPBACK)
    try:
        identity = await harness.sign_in()
        assert identity.issuer == LOOPBACK
        assert harness.routes["discovery"].call_count == 1
        harness.idp.knobs.id_token_claims = {"iss": "accounts.google.com"}
        await harness.refused("invalid_iss")
    finally:
        await harness.http.aclose()


# -- hosted domains ------------------------------------------------------------------------------


async def test_hosted_domain_in_the_list_is_accepted_and_hinted(google: GoogleHarness) -> None:
    google.configure(hosted_domains=["contoso.example"])
    google.idp.user.extra = {"hd": "contoso.example"}
    assert query(await google.begin_url())["hd"] == "contoso.example"
    identity = await google.sign_in()
    assert identity.raw_claims["hd"] == "contoso.example"
    assert identity.home_tenant_id is None


async def test_several_hosted_domains_hint_any_workspace_account(google: GoogleHarness) -> None:
    google.configure(hosted_domains=["contoso.example", "fabrikam.example"])
    google.idp.user.extra = {"hd": "fabrikam.example"}
    assert query(await google.begin_url())["hd"] == "*"
    assert (await google.sign_in()).subject == SUB


@pytest.mark.parametrize("hd", ["other.example", "contoso.example.evil.example", "", 7, REMOVE])
async def test_hosted_domain_outside_the_list_is_refused(google: GoogleHarness, hd: object) -> None:
    google.configure(hosted_domains=["contoso.example"])
    google.idp.knobs.id_token_claims = {"hd": hd}  # REMOVE: a consumer (gmail.com) account
    error = await google.refused("hosted_domain_not_allowed")
    assert "Workspace" in str(error)


async def test_without_hosted_domains_any_account_is_accepted(google: GoogleHarness) -> None:
    google.idp.user.extra = {"hd": "anything.example"}
    assert (await google.sign_in()).raw_claims["hd"] == "anything.example"


# -- verified email ------------------------------------------------------------------------------


@pytest.mark.parametrize("verified", [False, "false", 1, REMOVE])
async def test_unverified_email_is_refused_by_default(google: GoogleHarness, verified: object) -> None:
    google.idp.knobs.id_token_claims = {"email_verified": verified}
    error = await google.refused("email_not_verified")
    assert "verified" in str(error)


async def test_missing_email_is_refused_by_default(google: GoogleHarness) -> None:
    google.idp.knobs.id_token_claims = {"email": REMOVE}
    await google.refused("email_not_verified")


async def test_string_true_counts_as_verified(google: GoogleHarness) -> None:
    google.idp.knobs.id_token_claims = {"email_verified": "true"}  # older Google tokens
    assert (await google.sign_in()).email_verified is True


async def test_unverified_email_is_reported_when_not_required(google: GoogleHarness) -> None:
    google.configure(require_verified_email=False)
    google.idp.knobs.id_token_claims = {"email_verified": False}
    identity = await google.sign_in()
    assert identity.email == "alice@gmail.com"
    assert identity.email_verified is False


# -- configuration errors --------------------------------------------------------------------------


def config_error(**overrides: Any) -> str:
    settings: dict[str, Any] = {
        "id": "google",
        "type": "google",
        "client_id": CLIENT_ID,
        "client_secret": SECRET,
    }
    settings.update(overrides)
    for name in [k for k, v in settings.items() if v is REMOVE]:
        del settings[name]
    with pytest.raises(ValidationError) as caught:
        GoogleConfig.model_validate(settings)
    return str(caught.value)


@pytest.mark.parametrize(
    "issuer",
    [
        "https://evil.example",
        "accounts.google.com",
        "https://accounts.google.com/",
        "http://idp.example",
        "https://127.0.0.1:8765",
        "http://127.0.0.1:8765/?x=1",
        "http://user@127.0.0.1:8765",
    ],
)
def test_issuer_can_only_be_google_or_loopback_http(issuer: str) -> None:
    assert "only a loopback http URL" in config_error(issuer=issuer)


def test_loopback_issuer_is_allowed() -> None:
    for issuer in (LOOPBACK, "http://localhost:9000/google", "http://[::1]:9000"):
        config = GoogleConfig.model_validate(
            {"id": "g", "type": "google", "client_id": CLIENT_ID, "client_secret": SECRET, "issuer": issuer}
        )
        assert config.accepted_issuers == {issuer}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"hosted_domains": ["Contoso.example"]}, "not a lower-case domain name"),
        ({"hosted_domains": ["contoso.example", "contoso.example"]}, "listed twice"),
        ({"client_secret": ""}, "must not be empty"),
        ({"client_secret": REMOVE}, "client_secret"),
        ({"client_id": ""}, "client_id"),
        ({"scopes": ["openid"]}, "Extra inputs are not permitted"),
        ({"allowed_algorithms": ["HS256"]}, "Extra inputs are not permitted"),
    ],
)
def test_bad_configuration_is_refused_clearly(overrides: dict[str, Any], message: str) -> None:
    assert message in config_error(**overrides)
