"""The ``wsfed`` connector's good paths against the test STS: wsignin1.0 out, SAML 1.1 / 2.0 back."""

from __future__ import annotations

import httpx
import pytest
from lxml import etree

from idp_connectors.base import BeginRequest, Callback, ConnectorContext
from idp_connectors.wsfed.config import EMAIL, IMMUTABLE_ID, WsFedConfig
from idp_connectors.wsfed.connector import REPLAY_KIND
from idp_connectors.xmlsecurity.gate import parse_inbound
from tests.support.memory_state import MemoryState
from tests.support.oidc_idp import NoMail
from tests.support.wsfed_sts import (
    CALLBACK,
    ENTITY_ID,
    NOW,
    PASSIVE_URL,
    PASSWORD_11,
    PASSWORD_20,
    REALM,
    REMOVE,
    WsFedRelyingParty,
    certificate_pem,
    parse_form,
    query_of,
    serve_on_loopback,
)

MFA = "http://schemas.microsoft.com/claims/multipleauthn"
AMR = "http://schemas.microsoft.com/claims/authnmethodsreferences"
COMPLIANT = "http://schemas.microsoft.com/2012/01/devicecontext/claims/iscompliant"
TENANT = "http://schemas.microsoft.com/identity/claims/tenantid"


@pytest.mark.parametrize(("version", "method"), [("1.1", PASSWORD_11), ("2.0", PASSWORD_20)])
async def test_a_signed_token_signs_the_user_in(rp: WsFedRelyingParty, version: str, method: str) -> None:
    rp.sts.knobs.saml_version = version  # type: ignore[assignment]
    identity = await rp.sign_in()
    assert identity.connector_id == "fabrikam"
    assert identity.issuer == ENTITY_ID
    assert identity.subject == rp.sts.user.immutable_id
    assert identity.email == "ada@fabrikam.test"
    assert (identity.name, identity.given_name, identity.family_name) == ("Ada Lovelace", "Ada", "Lovelace")
    assert identity.acr == method
    assert identity.auth_time == int(NOW)
    assert identity.amr == () and identity.device == {} and identity.home_tenant_id is None
    assert identity.raw_claims[IMMUTABLE_ID] == rp.sts.user.immutable_id
    assert identity.raw_claims[EMAIL] == "ada@fabrikam.test"
    # The only thing written: the replay marker of this assertion, kept until NotOnOrAfter + skew.
    issued = rp.sts.issued[-1]
    key = f"{REPLAY_KIND}:{ENTITY_ID}\n{issued.assertion_id}"
    assert rp.replay_markers() == {key: {"connector_id": "fabrikam"}}
    assert list(rp.state.entries) == [(REPLAY_KIND, key)]
    assert await rp.state.ttl(REPLAY_KIND, key) == 3600 + 120


async def test_a_ws_trust_13_collection_is_accepted(rp: WsFedRelyingParty) -> None:
    rp.sts.knobs.wstrust13 = True
    assert (await rp.sign_in()).subject == rp.sts.user.immutable_id


async def test_an_rstr_without_applies_to_is_accepted(rp: WsFedRelyingParty) -> None:
    rp.sts.knobs.applies_to = REMOVE
    assert (await rp.sign_in()).email == "ada@fabrikam.test"


async def test_begin_builds_a_wsignin_request(rp: WsFedRelyingParty) -> None:
    redirect = await rp.begin(state="wctx-123")
    assert redirect.url.startswith(PASSIVE_URL + "?")
    assert query_of(redirect.url) == {
        "wa": "wsignin1.0",
        "wtrealm": REALM,
        "wctx": "wctx-123",
        "wreply": CALLBACK,
        "wct": "2023-11-14T22:13:20Z",
    }
    assert redirect.state == {
        "realm": REALM,
        "issued_at": int(NOW),
        "wreply": CALLBACK,
        "wctx": "wctx-123",
        "max_age": None,
    }
    rp.assert_nothing_persisted()


async def test_begin_keeps_the_query_of_the_passive_url_and_a_configured_realm(rp: WsFedRelyingParty) -> None:
    rp.configure(passive_sign_in_url=PASSIVE_URL + "?tenant=fabrikam", realm="urn:contoso:gateway")
    params = query_of((await rp.begin()).url)
    assert params["tenant"] == "fabrikam"
    assert params["wtrealm"] == "urn:contoso:gateway"


@pytest.mark.parametrize(
    ("request_", "wfresh", "max_age"),
    [
        ({"prompt": "login"}, "0", 0),
        ({"prompt": "login", "max_age": 3600}, "0", 0),
        ({"max_age": 600}, "10", 600),
        ({"max_age": 59}, "0", 59),
    ],
)
async def test_freshness_is_asked_with_wfresh(
    rp: WsFedRelyingParty, request_: dict[str, object], wfresh: str, max_age: int
) -> None:
    redirect = await rp.begin(**request_)
    assert query_of(redirect.url)["wfresh"] == wfresh
    assert redirect.state["max_age"] == max_age


async def test_prompt_login_gets_a_fresh_sign_in(rp: WsFedRelyingParty) -> None:
    rp.sts.knobs.auth_age = 7200  # the user's STS session is two hours old
    identity = await rp.sign_in(prompt="login")
    assert rp.sts.requests[-1]["wfresh"] == "0"
    assert identity.auth_time == int(NOW)


async def test_an_old_enough_sign_in_meets_max_age(rp: WsFedRelyingParty) -> None:
    rp.sts.knobs.auth_age = 500
    identity = await rp.sign_in(max_age=600)
    assert identity.auth_time == int(NOW) - 500


@pytest.mark.parametrize("version", ["1.1", "2.0"])
async def test_the_first_acr_value_is_sent_as_wauth(rp: WsFedRelyingParty, version: str) -> None:
    rp.sts.knobs.saml_version = version  # type: ignore[assignment]
    identity = await rp.sign_in(acr_values=(MFA, "urn:other"))
    assert rp.sts.requests[-1]["wauth"] == MFA
    assert identity.acr == MFA


async def test_claim_mapping_amr_device_and_home_tenant(rp: WsFedRelyingParty) -> None:
    rp.sts.user.extra = {
        AMR: ["http://schemas.microsoft.com/ws/2008/06/identity/authenticationmethod/password", MFA],
        COMPLIANT: "true",
        TENANT: "tid-42",
    }
    rp.configure(claims={"device": {"compliant": COMPLIANT, "managed": "not-sent"}, "home_tenant_id": TENANT})
    identity = await rp.sign_in()
    assert identity.amr == (
        "http://schemas.microsoft.com/ws/2008/06/identity/authenticationmethod/password",
        MFA,
    )
    assert identity.device == {"compliant": "true"}
    assert identity.home_tenant_id == "tid-42"
    assert identity.raw_claims[AMR] == [
        "http://schemas.microsoft.com/ws/2008/06/identity/authenticationmethod/password",
        MFA,
    ]


async def test_names_left_unset_when_unmapped_or_ambiguous(rp: WsFedRelyingParty) -> None:
    rp.sts.knobs.claims = {"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname": ["A", "B"]}
    rp.configure(claims={"name": None})
    identity = await rp.sign_in()
    assert identity.name is None and identity.given_name is None and identity.family_name == "Lovelace"


@pytest.mark.parametrize(("email", "verified"), [("ada@fabrikam.test", True), ("ada@elsewhere.test", False)])
async def test_email_verified_only_in_the_connectors_own_domains(
    rp: WsFedRelyingParty, email: str, verified: bool
) -> None:
    rp.sts.user.email = email
    assert (await rp.sign_in()).email_verified is verified


@pytest.mark.parametrize("version", ["1.1", "2.0"])
async def test_the_name_identifier_as_subject_when_configured(rp: WsFedRelyingParty, version: str) -> None:
    rp.sts.knobs.saml_version = version  # type: ignore[assignment]
    rp.sts.knobs.claims = {IMMUTABLE_ID: REMOVE}
    rp.sts.user.name_identifier = "persistent-77"
    rp.configure(claims={"immutable_id": None})
    assert (await rp.sign_in()).subject == "persistent-77"


async def test_sha1_is_accepted_only_as_the_configured_exception(rp: WsFedRelyingParty) -> None:
    rp.sts.knobs.sha1 = True
    rp.configure(allow_sha1=True)
    assert (await rp.sign_in()).subject == rp.sts.user.immutable_id


async def test_the_published_rp_metadata(rp: WsFedRelyingParty) -> None:
    document, media_type = rp.connector.metadata(CALLBACK)
    assert media_type == "application/samlmetadata+xml"
    root = parse_inbound(document)
    ns = {
        "md": "urn:oasis:names:tc:SAML:2.0:metadata",
        "fed": "http://docs.oasis-open.org/wsfed/federation/200706",
        "auth": "http://docs.oasis-open.org/wsfed/authorization/200706",
        "wsa": "http://www.w3.org/2005/08/addressing",
    }
    assert root.get("entityID") == REALM
    (role,) = root.findall("md:RoleDescriptor", ns)
    assert role.get("{http://www.w3.org/2001/XMLSchema-instance}type") == "fed:ApplicationServiceType"
    assert role.get("protocolSupportEnumeration") == ns["fed"]
    assert [c.get("Uri") for c in role.iterfind("fed:ClaimTypesRequested/auth:ClaimType", ns)] == [
        IMMUTABLE_ID,
        EMAIL,
    ]
    assert role.findtext("fed:TargetScopes/wsa:EndpointReference/wsa:Address", namespaces=ns) == REALM
    endpoint = role.findtext("fed:PassiveRequestorEndpoint/wsa:EndpointReference/wsa:Address", namespaces=ns)
    assert endpoint == CALLBACK
    tags = [etree.QName(child).localname for child in role]
    assert tags == ["ClaimTypesRequested", "TargetScopes", "PassiveRequestorEndpoint"]  # schema order


async def test_a_sign_in_against_the_sts_on_loopback() -> None:
    """The same STS over real HTTP (what browser tests use), wsignin1.0 to the auto-POST form."""
    with serve_on_loopback() as sts:
        config = WsFedConfig.model_validate(
            {
                "id": "fabrikam",
                "type": "wsfed",
                "passive_sign_in_url": sts.passive_url,
                "issuer": sts.entity_id,
                "signing_certificates": [certificate_pem(sts.signer[1])],
            }
        )
        state = MemoryState()
        ctx = ConnectorContext(state=state, mail=NoMail(), keyed_hash=lambda p, v: v, tenant_name="Contoso")
        connector = config.open(ctx)
        redirect = await connector.begin(BeginRequest(state="wctx-loopback", callback_url=CALLBACK))
        async with httpx.AsyncClient() as browser:
            page = await browser.get(redirect.url)
        assert page.status_code == 200
        assert f'action="{CALLBACK}"' in page.text
        form = parse_form(page.text)
        identity = await connector.complete(
            Callback(params=form, state=redirect.state, callback_url=CALLBACK)
        )
    assert identity.subject == sts.user.immutable_id
    assert list(state.live(REPLAY_KIND)) != []
