"""private_key_jwt client authentication (RFC 7523 2.2, OIDC Core 9) at the token, revocation and
introspection endpoints: inline ``jwks`` and ``jwks_uri`` (respx), RS256 / ES256 / PS256, and every bad
assertion answered ``invalid_client`` with nothing minted and no ``jti`` spent."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from tests.clients.keys import (
    ASSERTION_TYPE,
    assertion,
    ec_key,
    forged_hs256,
    form,
    public_jwks,
    rs256_with_header,
    rsa_key,
    unsigned,
)
from tests.support.assertions import (
    Op,
    applications,
    assert_nothing_minted,
    assert_oauth_error,
    running_op,
    sign_in,
    snapshot,
    verify_id_token,
)
from tests.support.flows import AuthRequest
from tests.support.gateway_app import ISSUER
from tests.support.smtp_server import SmtpServer

RS_KEY, OTHER_RS_KEY = rsa_key("rs1"), rsa_key("rs1")  # same kid, other key material
ES_KEY = ec_key("es1")
REMOTE_A, REMOTE_B = rsa_key("remote-a"), ec_key("remote-b")
JWKS_URI = "https://keys.remote.example/jwks"
RS_REDIRECT = "https://rs.example/cb"
EMAIL = "guest@fabrikam.example"
JTI_KIND = "client-assertion-jti"


def pkjwt_app(app_id: str, keys: dict[str, Any], **oidc: Any) -> dict[str, Any]:
    return {
        "id": app_id,
        "name": app_id,
        "user_flow": "default",
        "api_permissions": ["User.Read.All"],
        "oidc": {
            "client_id": app_id,
            "client_secret": None,
            "redirect_uris": [f"https://{app_id}.example/cb"],
            "token_endpoint_auth_method": "private_key_jwt",
            **keys,
            **oidc,
        },
    }


APPS = [
    *applications(),
    pkjwt_app("rs", {"jwks": public_jwks(RS_KEY)}),
    pkjwt_app("es", {"jwks": public_jwks(ES_KEY)}, token_endpoint_auth_signing_alg="ES256"),
    pkjwt_app("remote", {"jwks_uri": JWKS_URI}),
]


@pytest.fixture
async def op(tmp_path: Path, smtp_server: SmtpServer) -> AsyncIterator[Op]:
    async with running_op(tmp_path, smtp_server, applications=APPS) as running:
        yield running


def jti_markers(op: Op) -> int:
    with sqlite3.connect(f"file:{op.db_path}?mode=ro", uri=True) as conn:
        row = conn.execute(
            "SELECT COUNT(*) FROM artefacts WHERE kind = ? AND expires_at > ?", (JTI_KIND, time.time())
        ).fetchone()
    return int(row[0])


async def app_token(op: Op, token: str, **extra: str) -> httpx.Response:
    return await op.client.post(
        "/oauth2/token", data={"grant_type": "client_credentials", **form(token, **extra)}
    )


# -- happy paths --------------------------------------------------------------------------------


@pytest.mark.parametrize(("app_id", "key"), [("rs", RS_KEY), ("es", ES_KEY)], ids=["RS256", "ES256"])
async def test_authorization_code_with_a_signed_assertion_gets_tokens(op: Op, app_id: str, key: Any) -> None:
    req = AuthRequest(client_id=app_id, redirect_uri=f"https://{app_id}.example/cb")
    req, code = await sign_in(op, EMAIL, req)
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": req.redirect_uri,
            "code_verifier": req.verifier}  # fmt: skip
    response = await op.client.post("/oauth2/token", data={**data, **form(assertion(key, app_id))})
    assert response.status_code == 200, response.text
    await verify_id_token(op, response.json()["id_token"], client_id=app_id, nonce=req.nonce)
    assert jti_markers(op) == 1


async def test_ps256_and_an_assertion_naming_its_client_id_and_the_issuer_as_audience(op: Op) -> None:
    token = assertion(RS_KEY, "rs", alg="PS256", aud=[ISSUER, "https://elsewhere.example"])
    response = await app_token(op, token, client_id="rs")
    assert response.status_code == 200, response.text


async def test_an_assertion_without_kid_is_checked_against_the_keys_of_its_type(op: Op) -> None:
    response = await app_token(op, assertion(ES_KEY, "es", header={"kid": None}))
    assert response.status_code == 200, response.text


async def test_a_bad_assertion_leaves_the_code_redeemable(op: Op) -> None:
    req = AuthRequest(client_id="rs", redirect_uri="https://rs.example/cb")
    req, code = await sign_in(op, EMAIL, req)
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": req.redirect_uri,
            "code_verifier": req.verifier}  # fmt: skip
    before = snapshot(op)
    bad = await op.client.post("/oauth2/token", data={**data, **form(assertion(OTHER_RS_KEY, "rs"))})
    assert_oauth_error(bad, "invalid_client", 401)
    assert_nothing_minted(op, before)
    good = await op.client.post("/oauth2/token", data={**data, **form(assertion(RS_KEY, "rs"))})
    assert good.status_code == 200, good.text


async def test_revocation_and_introspection_authenticate_by_assertion(op: Op) -> None:
    issued = (await app_token(op, assertion(RS_KEY, "rs"))).json()["access_token"]
    seen = await op.client.post("/oauth2/introspect", data={"token": issued, **form(assertion(RS_KEY, "rs"))})
    assert seen.status_code == 200 and seen.json()["active"] is True and seen.json()["client_id"] == "rs"
    refused = await op.client.post("/oauth2/revoke", data={"token": issued, **form(assertion(ES_KEY, "rs"))})
    assert_oauth_error(refused, "invalid_client", 401)
    revoked = await op.client.post("/oauth2/revoke", data={"token": issued, **form(assertion(RS_KEY, "rs"))})
    assert revoked.status_code == 200
    again = await op.client.post(
        "/oauth2/introspect", data={"token": issued, **form(assertion(RS_KEY, "rs"))}
    )
    assert again.json() == {"active": False}


async def test_discovery_lists_private_key_jwt_and_its_algorithms(op: Op) -> None:
    document = (await op.client.get("/.well-known/openid-configuration")).json()
    for endpoint in ("token", "revocation", "introspection"):
        assert "private_key_jwt" in document[f"{endpoint}_endpoint_auth_methods_supported"]
        assert document[f"{endpoint}_endpoint_auth_signing_alg_values_supported"] == [
            "RS256",
            "ES256",
            "PS256",
        ]


# -- bad assertions -----------------------------------------------------------------------------


def _bad_assertions(now: int) -> dict[str, tuple[str, dict[str, str]]]:
    """Built when the test runs, so each fails for its own reason and not because it went stale."""
    return {
        "wrong iss": (assertion(RS_KEY, "rs", iss="es"), {}),
        "wrong sub": (assertion(RS_KEY, "rs", sub="es"), {}),
        "iss of an unknown client": (assertion(RS_KEY, "nobody"), {}),
        "wrong aud": (assertion(RS_KEY, "rs", aud="https://other.example/token"), {}),
        "aud of the revocation endpoint": (assertion(RS_KEY, "rs", aud=f"{ISSUER}/oauth2/revoke"), {}),
        "no aud": (assertion(RS_KEY, "rs", aud=None), {}),
        "expired": (assertion(RS_KEY, "rs", iat=now - 200, exp=now - 60), {}),
        "no exp": (assertion(RS_KEY, "rs", exp=None), {}),
        "exp far ahead": (assertion(RS_KEY, "rs", iat=None, exp=now + 3600), {}),
        "future iat": (assertion(RS_KEY, "rs", iat=now + 120, exp=now + 180), {}),
        "lives over five minutes": (assertion(RS_KEY, "rs", iat=now - 290, exp=now + 60), {}),
        "future nbf": (assertion(RS_KEY, "rs", nbf=now + 120), {}),
        "missing jti": (assertion(RS_KEY, "rs", jti=None), {}),
        "empty jti": (assertion(RS_KEY, "rs", jti=""), {}),
        "wrong key": (assertion(OTHER_RS_KEY, "rs"), {}),
        "key of another client": (assertion(ES_KEY, "rs"), {}),
        "alg none": (unsigned("rs", "rs1"), {}),
        "HS256 with the public key as secret": (forged_hs256(RS_KEY, "rs"), {}),
        "alg other than registered": (assertion(RS_KEY, "es"), {}),
        "crit header": (rs256_with_header(RS_KEY, "rs", {"crit": ["x-ext"], "x-ext": 1}), {}),
        "client_id of another client": (assertion(RS_KEY, "rs"), {"client_id": "es"}),
        "wrong assertion type": (assertion(RS_KEY, "rs"), {"client_assertion_type": "urn:example:jwt"}),
        "not a JWT": ("not-a-jwt", {}),
        "empty assertion": ("", {}),
    }


BAD_CASES = list(_bad_assertions(int(time.time())))


@pytest.mark.parametrize("case", BAD_CASES)
async def test_bad_assertion_is_invalid_client_and_nothing_is_minted(op: Op, case: str) -> None:
    token, extra = _bad_assertions(op.now())[case]
    before = snapshot(op)
    response = await app_token(op, token, **extra)
    body = assert_oauth_error(response, "invalid_client", 401)
    assert body["error_description"]
    assert response.headers["www-authenticate"].startswith("Basic")
    assert_nothing_minted(op, before)
    assert jti_markers(op) == 0


async def test_an_unknown_header_parameter_is_ignored_unless_crit_names_it(op: Op) -> None:
    assert (await app_token(op, rs256_with_header(RS_KEY, "rs", {"x-ext": 1}))).status_code == 200
    critical = rs256_with_header(RS_KEY, "rs", {"crit": ["x-ext"], "x-ext": 1})
    assert_oauth_error(await app_token(op, critical), "invalid_client", 401)


async def test_a_replayed_jti_is_refused(op: Op) -> None:
    token = assertion(RS_KEY, "rs")
    assert (await app_token(op, token)).status_code == 200
    before = snapshot(op)
    replay = await app_token(op, token)
    assert assert_oauth_error(replay, "invalid_client", 401)["error_description"].endswith("(jti)")
    assert_nothing_minted(op, before)
    other_client_same_jti = assertion(ES_KEY, "es", jti="shared-jti")
    assert (await app_token(op, assertion(RS_KEY, "rs", jti="shared-jti"))).status_code == 200
    assert (await app_token(op, other_client_same_jti)).status_code == 200  # jti is per client


@pytest.mark.parametrize(
    ("data", "error", "status"),
    [
        ({"client_secret": "portal-secret-0123456789abcdef"}, "invalid_request", 400),
        ({"client_assertion_type": ASSERTION_TYPE}, "invalid_client", 401),
    ],
    ids=["assertion and secret together", "assertion type without assertion"],
)
async def test_malformed_combinations(op: Op, data: dict[str, str], error: str, status: int) -> None:
    before = snapshot(op)
    body = {"grant_type": "client_credentials", **data}
    if "client_secret" in data:
        body.update(form(assertion(RS_KEY, "rs")))
    assert_oauth_error(await op.client.post("/oauth2/token", data=body), error, status)
    assert_nothing_minted(op, before)
    assert jti_markers(op) == 0


async def test_basic_assertion_together_is_invalid_request(op: Op) -> None:
    response = await op.client.post(
        "/oauth2/token", data={"grant_type": "client_credentials", **form(assertion(RS_KEY, "rs"))},
        auth=("portal", "portal-secret-0123456789abcdef"),
    )  # fmt: skip
    assert_oauth_error(response, "invalid_request", 400)
    assert jti_markers(op) == 0


async def test_a_private_key_jwt_client_cannot_authenticate_otherwise_nor_a_secret_client_by_assertion(
    op: Op,
) -> None:
    before = snapshot(op)
    as_public = await op.client.post(
        "/oauth2/token", data={"grant_type": "client_credentials", "client_id": "rs"}
    )
    assert_oauth_error(as_public, "invalid_client", 401)
    as_secret = await op.client.post(
        "/oauth2/token", data={"grant_type": "client_credentials"}, auth=("rs", "x" * 20)
    )
    assert_oauth_error(as_secret, "invalid_client", 401)
    portal = await app_token(op, assertion(RS_KEY, "portal"))
    assert_oauth_error(portal, "invalid_client", 401)
    assert_nothing_minted(op, before)


# -- jwks_uri -----------------------------------------------------------------------------------


async def test_jwks_uri_is_fetched_once_and_cached(op: Op) -> None:
    with respx.mock(assert_all_called=True) as mock:
        route = mock.get(JWKS_URI).mock(return_value=httpx.Response(200, json=public_jwks(REMOTE_A)))
        for _ in range(3):
            response = await app_token(op, assertion(REMOTE_A, "remote"))
            assert response.status_code == 200, response.text
        assert route.call_count == 1


async def test_an_unknown_kid_fetches_the_key_set_again_once(op: Op) -> None:
    with respx.mock() as mock:
        route = mock.get(JWKS_URI).mock(
            side_effect=[
                httpx.Response(200, json=public_jwks(REMOTE_A)),
                httpx.Response(200, json=public_jwks(REMOTE_A, REMOTE_B)),
            ]
        )
        assert (await app_token(op, assertion(REMOTE_A, "remote"))).status_code == 200
        # Just fetched: an unknown kid does not fetch again at once (no fetch per forged kid)...
        assert_oauth_error(await app_token(op, assertion(REMOTE_B, "remote")), "invalid_client", 401)
        assert route.call_count == 1
        op.clock.advance(11)
        # ...a little later it does, once, and the rotated-in key works.
        rotated = await app_token(op, assertion(REMOTE_B, "remote", now=op.now()))
        assert rotated.status_code == 200, rotated.text
        assert route.call_count == 2


async def test_the_cache_expires_and_a_key_removed_from_the_set_stops_working(op: Op) -> None:
    with respx.mock() as mock:
        route = mock.get(JWKS_URI).mock(
            side_effect=[
                httpx.Response(200, json=public_jwks(REMOTE_A)),
                httpx.Response(200, json=public_jwks(REMOTE_B)),
            ]
        )
        assert (await app_token(op, assertion(REMOTE_A, "remote"))).status_code == 200
        op.clock.advance(301)
        late = await app_token(op, assertion(REMOTE_A, "remote", now=op.now()))
        assert_oauth_error(late, "invalid_client", 401)
        assert route.call_count == 2


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(500),
        httpx.Response(200, text="not json"),
        httpx.Response(200, json={"no": "keys"}),
        httpx.Response(302, headers={"Location": "https://evil.example/jwks"}),
        httpx.Response(200, json={"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "remote-a"}]}),
    ],
    ids=["500", "not json", "not a key set", "redirect", "symmetric key"],
)
async def test_a_bad_jwks_uri_answer_is_invalid_client(op: Op, answer: httpx.Response) -> None:
    before = snapshot(op)
    with respx.mock() as mock:
        route = mock.get(JWKS_URI).mock(return_value=answer)
        assert_oauth_error(await app_token(op, assertion(REMOTE_A, "remote")), "invalid_client", 401)
        # A failed fetch is not repeated at once (no retry storm against the client's server).
        assert_oauth_error(await app_token(op, assertion(REMOTE_A, "remote")), "invalid_client", 401)
        assert route.call_count == 1
    assert_nothing_minted(op, before)
    assert jti_markers(op) == 0


async def test_an_unreachable_jwks_uri_is_invalid_client(op: Op) -> None:
    with respx.mock() as mock:
        mock.get(JWKS_URI).mock(side_effect=httpx.ConnectTimeout("timed out"))
        assert_oauth_error(await app_token(op, assertion(REMOTE_A, "remote")), "invalid_client", 401)
