"""The ``microsoft`` preset against the test IdP playing Entra ID's v2.0 endpoints (through respx).

The IdP is mounted where the connector discovers it (``https://{host}/{organizations|
consumers|common}/v2.0``), names the ``{tenantid}`` issuer template in discovery as Entra
does, and issues Entra-like ID tokens (``tid``, ``oid``, a pairwise ``sub``, per-tenant
``iss``) through its ``id_token_claims`` knob. Each refusal also checks that the connector
persisted nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx
from pydantic import ValidationError

from idp_connectors.base import BeginRequest, Callback, ConnectorContext, ConnectorError, UpstreamIdentity
from idp_connectors.microsoft.config import CONSUMER_TENANT_ID, TENANT_SEGMENTS, MicrosoftConfig
from idp_connectors.microsoft.connector import MicrosoftConnector
from tests.support.memory_state import ManualClock, MemoryState
from tests.support.oidc_idp import NOW, REMOVE, IdpClient, IdpUser, NoMail, OidcTestIdP, authorize

CLIENT_ID = "6731de76-14a6-49ae-97bc-6eba6914391e"
SECRET = "Xy8Q~test.secret_value-1"
CALLBACK = "https://gateway.test/callback/microsoft"
GLOBAL = "https://login.microsoftonline.com"
TENANT_A = "72f988bf-86f1-41af-91ab-2d7cd011db47"
TENANT_B = "f8cdef31-a31e-4b4a-93e4-5f571e91255a"
TENANT_C = "0d2a4e6b-1c3f-4a5b-9c7d-8e9f0a1b2c3d"  # allowed nowhere
OID = "3b6f1c2a-5d4e-4f70-8a9b-0c1d2e3f4a5b"
MSA_OID = "00000000-0000-0000-66f3-3332eca7ea81"
PAIRWISE_SUB = "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ"


class EntraHarness:
    """A ``MicrosoftConnector`` wired to an ``OidcTestIdP`` that issues Entra-like tokens."""

    def __init__(
        self, router: respx.MockRouter, *, accounts: str = "work", authority: str = GLOBAL, **config: Any
    ) -> None:
        self.clock = ManualClock(NOW)
        self.authority = authority
        client = IdpClient(
            client_id=CLIENT_ID,
            client_secret=SECRET,
            redirect_uris=[CALLBACK],
            auth_method="client_secret_post",
        )
        user = IdpUser(sub=PAIRWISE_SUB, email="alice@fabrikam.example", extra={})
        segment = TENANT_SEGMENTS[accounts]
        self.idp = OidcTestIdP(f"{authority}/{segment}/v2.0", clients=[client], user=user, clock=self.clock)
        tenant = CONSUMER_TENANT_ID if accounts == "personal" else "{tenantid}"
        self.idp.knobs.discovery_issuer = f"{authority}/{tenant}/v2.0"
        self.routes = self.idp.mount(router)
        self.state = MemoryState(self.clock)
        self.http = httpx.AsyncClient()
        settings: dict[str, Any] = {
            "id": "microsoft",
            "type": "microsoft",
            "client_id": CLIENT_ID,
            "client_secret": SECRET,
            "accounts": accounts,
        }
        if accounts != "personal":
            settings["allowed_tenants"] = [TENANT_A, TENANT_B]
        if authority != GLOBAL:
            settings["authority_host"] = authority.removeprefix("https://")
        settings.update(config)
        self.config = MicrosoftConfig.model_validate(settings)
        ctx = ConnectorContext(
            state=self.state,
            mail=NoMail(),
            keyed_hash=lambda purpose, value: f"{purpose}:{value}",
            tenant_name="Contoso",
            http=self.http,
            clock=self.clock,
        )
        self.connector = self.config.open(ctx)
        self.token_from(TENANT_A)

    def token_from(self, tid: object, *, iss_tenant: str | None = None, **claims: Any) -> None:
        """The next ID tokens: tenant ``tid``, issuer of ``iss_tenant`` (default: the same tenant)."""
        tenant = iss_tenant or (tid if isinstance(tid, str) else TENANT_A)
        self.idp.knobs.id_token_claims = {
            "iss": f"{self.authority}/{tenant}/v2.0",
            "tid": tid,
            "oid": MSA_OID if tid == CONSUMER_TENANT_ID else OID,
            "email_verified": REMOVE,  # Entra sends no email_verified
            **claims,
        }

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
async def entra(router: respx.MockRouter) -> AsyncIterator[EntraHarness]:
    harness = EntraHarness(router)
    yield harness
    await harness.http.aclose()


@pytest.fixture
async def harnesses() -> AsyncIterator[list[EntraHarness]]:
    made: list[EntraHarness] = []
    yield made
    for harness in made:
        await harness.http.aclose()


# -- work accounts -------------------------------------------------------------------------------


async def test_work_account_of_an_allowed_tenant_signs_in(entra: EntraHarness) -> None:
    identity = await entra.sign_in()
    assert isinstance(entra.connector, MicrosoftConnector)
    assert identity.connector_id == "microsoft"
    assert identity.issuer == f"https://login.microsoftonline.com/{TENANT_A}/v2.0"
    assert identity.subject == OID  # the home object id, not the pairwise sub
    assert identity.raw_claims["sub"] == PAIRWISE_SUB
    assert identity.home_tenant_id == TENANT_A
    assert identity.email == "alice@fabrikam.example"
    assert identity.email_verified is False  # Entra's email is not verified without xms_edov
    assert identity.name == "Alice Example"
    assert entra.routes["discovery"].call_count == 1  # .../organizations/v2.0/.well-known/...
    assert entra.state.entries == {}


async def test_second_allowed_tenant_gets_its_own_issuer(entra: EntraHarness) -> None:
    entra.token_from(TENANT_B)
    identity = await entra.sign_in()
    assert identity.issuer == f"https://login.microsoftonline.com/{TENANT_B}/v2.0"
    assert identity.home_tenant_id == TENANT_B


async def test_requests_use_the_pinned_settings(entra: EntraHarness) -> None:
    await entra.sign_in()
    assert str(entra.routes["token"].calls.last.request.url) == f"{GLOBAL}/organizations/v2.0/token"
    form = parse_qs(entra.routes["token"].calls.last.request.content.decode())
    assert form["client_secret"] == [SECRET] and form["client_id"] == [CLIENT_ID]
    config = entra.connector.config
    assert config.scopes == ["openid", "profile", "email"]
    assert config.allowed_algorithms == ["RS256"]
    assert config.discovery_document_url == f"{GLOBAL}/organizations/v2.0/.well-known/openid-configuration"


@pytest.mark.parametrize(("said", "verified"), [(True, True), ("true", True), (False, False), ("1", False)])
async def test_email_is_verified_only_by_xms_edov(entra: EntraHarness, said: object, verified: bool) -> None:
    entra.token_from(TENANT_A, xms_edov=said, email_verified=True)  # email_verified is not Entra's word
    assert (await entra.sign_in()).email_verified is verified


async def test_amr_and_acr_are_kept_as_sent(entra: EntraHarness) -> None:
    entra.token_from(TENANT_A, amr=["pwd", "mfa"], acr="1")
    identity = await entra.sign_in()
    assert identity.amr == ("pwd", "mfa")
    assert identity.acr == "1"


async def test_tenant_not_allowed_is_refused(entra: EntraHarness) -> None:
    entra.token_from(TENANT_C)
    await entra.refused("tenant_not_allowed")


async def test_tid_and_iss_naming_different_tenants_is_refused(entra: EntraHarness) -> None:
    entra.token_from(TENANT_A, iss_tenant=TENANT_B)  # both allowed, but not the same tenant
    await entra.refused("invalid_iss")


@pytest.mark.parametrize(
    "iss",
    [
        "https://login.microsoftonline.com/{tenantid}/v2.0",
        f"https://login.microsoftonline.com/{TENANT_A}/v2.0/",
        f"https://login.microsoftonline.com/{TENANT_A}",
        f"https://sts.windows.net/{TENANT_A}/",
        f"https://login.windows.net/{TENANT_A}/v2.0",
    ],
)
async def test_other_spellings_of_the_issuer_are_refused(entra: EntraHarness, iss: str) -> None:
    entra.token_from(TENANT_A, iss=iss)
    await entra.refused("invalid_iss")


@pytest.mark.parametrize("tid", [REMOVE, "", "not-a-guid", TENANT_A.upper(), 42])
async def test_missing_or_malformed_tid_is_refused(entra: EntraHarness, tid: object) -> None:
    entra.token_from(tid)
    await entra.refused("tid_missing")


@pytest.mark.parametrize("oid", [REMOVE, "", "alice", 7])
async def test_missing_oid_is_refused(entra: EntraHarness, oid: object) -> None:
    entra.token_from(TENANT_A, oid=oid)
    error = await entra.refused("oid_missing")
    assert "`oid`" in str(error)


async def test_wrong_audience_is_still_refused(entra: EntraHarness) -> None:
    entra.token_from(TENANT_A, aud="00000000-1111-2222-3333-444444444444")
    await entra.refused("invalid_aud")


# -- RFC 9207 iss on the callback ------------------------------------------------------------------


async def test_callback_iss_of_an_allowed_tenant_is_accepted(entra: EntraHarness) -> None:
    entra.idp.knobs.send_iss = True
    entra.idp.knobs.response_iss = f"{GLOBAL}/{TENANT_A}/v2.0"
    assert (await entra.sign_in()).home_tenant_id == TENANT_A


@pytest.mark.parametrize(
    "iss",
    [
        f"{GLOBAL}/{TENANT_C}/v2.0",
        f"{GLOBAL}/{{tenantid}}/v2.0",
        f"{GLOBAL}/{CONSUMER_TENANT_ID}/v2.0",
        GLOBAL,
    ],
)
async def test_callback_iss_of_another_tenant_is_refused_before_redeeming(
    entra: EntraHarness, iss: str
) -> None:
    entra.idp.knobs.send_iss = True
    entra.idp.knobs.response_iss = iss
    await entra.refused("iss_mismatch")
    assert entra.routes["token"].call_count == 0


# -- personal accounts -----------------------------------------------------------------------------


@pytest.mark.parametrize("accounts", ["personal", "both"])
async def test_personal_account_accepted_when_enabled(
    router: respx.MockRouter, harnesses: list[EntraHarness], accounts: str
) -> None:
    harness = EntraHarness(router, accounts=accounts)
    harnesses.append(harness)
    harness.token_from(CONSUMER_TENANT_ID)
    identity = await harness.sign_in()
    assert identity.issuer == f"{GLOBAL}/{CONSUMER_TENANT_ID}/v2.0"
    assert identity.subject == MSA_OID
    assert identity.home_tenant_id == CONSUMER_TENANT_ID
    assert identity.email_verified is False
    assert harness.routes["discovery"].call_count == 1  # consumers / common


async def test_personal_account_refused_for_work_only(entra: EntraHarness) -> None:
    entra.token_from(CONSUMER_TENANT_ID)
    await entra.refused("tenant_not_allowed")


async def test_work_account_refused_for_personal_only(
    router: respx.MockRouter, harnesses: list[EntraHarness]
) -> None:
    harness = EntraHarness(router, accounts="personal")
    harnesses.append(harness)
    harness.token_from(TENANT_A)
    await harness.refused("tenant_not_allowed")


async def test_both_still_limits_work_accounts_to_the_allowed_tenants(
    router: respx.MockRouter, harnesses: list[EntraHarness]
) -> None:
    harness = EntraHarness(router, accounts="both")
    harnesses.append(harness)
    assert (await harness.sign_in()).home_tenant_id == TENANT_A
    harness.token_from(TENANT_C)
    await harness.refused("tenant_not_allowed")


# -- national clouds and the loopback override ---------------------------------------------------


@pytest.mark.parametrize("host", ["login.microsoftonline.us", "login.partner.microsoftonline.cn"])
async def test_national_cloud_host_changes_the_issuer(
    router: respx.MockRouter, harnesses: list[EntraHarness], host: str
) -> None:
    harness = EntraHarness(router, authority=f"https://{host}")
    harnesses.append(harness)
    identity = await harness.sign_in()
    assert identity.issuer == f"https://{host}/{TENANT_A}/v2.0"
    assert harness.routes["discovery"].call_count == 1
    harness.token_from(TENANT_A, iss=f"{GLOBAL}/{TENANT_A}/v2.0")  # a global-cloud token
    await harness.refused("invalid_iss")


async def test_loopback_authority_for_tests(router: respx.MockRouter, harnesses: list[EntraHarness]) -> None:
    harness = EntraHarness(router, authority="http://127.0.0.1:9443")  # authority_host: that origin
    harnesses.append(harness)
    assert (await harness.sign_in()).issuer == f"http://127.0.0.1:9443/{TENANT_A}/v2.0"


async def test_discovery_naming_another_issuer_is_refused(entra: EntraHarness) -> None:
    entra.idp.knobs.discovery_issuer = f"{GLOBAL}/{TENANT_A}/v2.0"  # a single-tenant document
    with pytest.raises(ConnectorError) as caught:
        await entra.connector.begin(BeginRequest(state="st-1", callback_url=CALLBACK))
    assert caught.value.code == "discovery_issuer_mismatch"
    assert entra.state.entries == {}


# -- configuration ---------------------------------------------------------------------------------


def make_config(**overrides: Any) -> MicrosoftConfig:
    settings: dict[str, Any] = {
        "id": "microsoft",
        "type": "microsoft",
        "client_id": CLIENT_ID,
        "client_secret": SECRET,
        "allowed_tenants": [TENANT_A],
    }
    settings.update(overrides)
    for name in [k for k, v in settings.items() if v is REMOVE]:
        del settings[name]
    return MicrosoftConfig.model_validate(settings)


def config_error(**overrides: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        make_config(**overrides)
    return str(caught.value)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"allowed_tenants": REMOVE}, "allowed_tenants is required with `accounts: work`"),
        ({"allowed_tenants": [], "accounts": "both"}, "allowed_tenants is required with `accounts: both`"),
        ({"accounts": "personal"}, "`accounts: personal` accepts none"),
        ({"allowed_tenants": ["*"]}, "not a tenant id"),
        ({"allowed_tenants": ["common"]}, "not a tenant id"),
        ({"allowed_tenants": [TENANT_A, TENANT_A.upper()]}, "listed twice"),
        ({"allowed_tenants": [CONSUMER_TENANT_ID]}, "accounts: personal"),
        ({"accounts": "everyone"}, "accounts"),
        ({"authority_host": "login.microsoftonline.de"}, "retired"),
        ({"authority_host": "login.windows.net"}, "authority_host must be one of"),
        ({"authority_host": "https://login.microsoftonline.com"}, "authority_host must be one of"),
        ({"authority_host": "http://evil.example:80"}, "authority_host must be one of"),
        ({"authority_host": "http://127.0.0.1:9443/common"}, "authority_host must be one of"),
        (
            {"authority_host": "login.microsoftonline.us", "accounts": "both"},
            "personal Microsoft accounts sign in only at login.microsoftonline.com",
        ),
        ({"client_id": "my-app"}, "client_id must be the application (client) id"),
        ({"client_secret": ""}, "must not be empty"),
        ({"issuer": f"{GLOBAL}/common/v2.0"}, "Extra inputs are not permitted"),
    ],
)
def test_bad_configuration_is_refused_clearly(overrides: dict[str, Any], message: str) -> None:
    assert message in config_error(**overrides)


def test_configuration_is_normalised_and_picks_the_endpoints() -> None:
    work = make_config(allowed_tenants=[TENANT_A.upper()], client_id=CLIENT_ID.upper())
    assert work.allowed_tenants == [TENANT_A]
    assert work.client_id == CLIENT_ID
    assert work.discovery_url == f"{GLOBAL}/organizations/v2.0/.well-known/openid-configuration"
    assert work.discovery_issuer == f"{GLOBAL}/{{tenantid}}/v2.0"
    personal = make_config(accounts="personal", allowed_tenants=[])
    assert personal.discovery_url == f"{GLOBAL}/consumers/v2.0/.well-known/openid-configuration"
    assert personal.discovery_issuer == f"{GLOBAL}/{CONSUMER_TENANT_ID}/v2.0"
    both = make_config(accounts="both")
    assert both.discovery_url == f"{GLOBAL}/common/v2.0/.well-known/openid-configuration"
    assert both.tenant_allowed(CONSUMER_TENANT_ID) and both.tenant_allowed(TENANT_A)
    assert not both.tenant_allowed(TENANT_C)
    china = make_config(authority_host="login.partner.microsoftonline.cn")
    assert china.tenant_issuer(TENANT_A) == f"https://login.partner.microsoftonline.cn/{TENANT_A}/v2.0"
    assert china.issuer_tenant(f"https://login.partner.microsoftonline.cn/{TENANT_A}/v2.0") == TENANT_A
    assert china.issuer_tenant(f"{GLOBAL}/{TENANT_A}/v2.0") is None
