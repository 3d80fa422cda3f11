"""Discovery, the JWKS and the ID token they let a relying party verify.

Conformance modules: ``oidcc-discovery-endpoint-verification`` (checklist 1.2),
``oidcc-idtoken-signature`` and ``oidcc-idtoken-unsigned`` (1.1), and section 0 (every
ID token verifies with an independent verifier against ``jwks_uri``). Also the claim set
of issue 2, the pairwise ``sub`` and RS256 per application.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from gateway.tokens.keys import rotate
from tests.support.assertions import (
    PORTAL_REDIRECT,
    Op,
    no_pkce,
    redeem,
    running_op,
    sign_in,
    signed_in_tokens,
    snapshot,
    verify_id_token,
)
from tests.support.flows import AuthRequest
from tests.support.gateway_app import ISSUER
from tests.support.smtp_server import SmtpServer

EMAIL = "guest@fabrikam.example"
TENANT_ID = "4f5c2b0e-6a71-4c3e-9a8e-2f1d7c9b1a00"
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


@pytest.fixture
async def op(tmp_path: Path, smtp_server: SmtpServer) -> AsyncIterator[Op]:
    async with running_op(tmp_path, smtp_server) as running:
        yield running


async def discovery(op: Op) -> dict[str, Any]:
    response = await op.client.get("/.well-known/openid-configuration")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    document: dict[str, Any] = response.json()
    return document


async def jwks(op: Op) -> dict[str, Any]:
    response = await op.client.get((await discovery(op))["jwks_uri"].removeprefix(ISSUER))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    keys: dict[str, Any] = response.json()
    return keys


async def published_keys(op: Op) -> KeySet:
    return KeySet.import_key_set({"keys": (await jwks(op))["keys"]})


async def id_token_for(op: Op, req: AuthRequest, email: str = EMAIL) -> tuple[str, dict[str, Any]]:
    req, code = await sign_in(op, email, req)
    response = await redeem(op, req, code)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body["id_token"], body


# -- discovery and JWKS -------------------------------------------------------------------------------


async def test_oidcc_discovery_endpoint_verification(op: Op) -> None:
    document = await discovery(op)
    assert document["issuer"] == ISSUER
    endpoints = ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri",
                 "revocation_endpoint", "introspection_endpoint", "end_session_endpoint")
    for name in endpoints:
        assert document[name].startswith(ISSUER + "/oauth2/"), name
    assert "openid" in document["scopes_supported"]
    assert document["response_types_supported"] == ["code"]
    assert set(document["subject_types_supported"]) <= {"public", "pairwise"}
    assert document["subject_types_supported"] == ["pairwise"]
    assert {"ES256", "RS256"} <= set(document["id_token_signing_alg_values_supported"])
    assert isinstance(document["claims_parameter_supported"], bool)
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert document["authorization_response_iss_parameter_supported"] is True
    assert document["request_parameter_supported"] is False
    assert document["request_uri_parameter_supported"] is False
    grants = {"authorization_code", "refresh_token", "client_credentials"}
    assert set(document["grant_types_supported"]) == grants
    assert set(document["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic", "client_secret_post", "private_key_jwt", "none"}
    assert {"none", "login"} <= set(document["prompt_values_supported"])
    for claim in ("sub", "iss", "auth_time", "acr", "amr", "oid", "tid", "idp", "acct", "email", "name"):
        assert claim in document["claims_supported"], claim


async def test_oidcc_idtoken_unsigned_none_is_never_listed(op: Op) -> None:
    document = await discovery(op)
    for name, value in document.items():
        if name.endswith("alg_values_supported"):
            assert "none" not in value, name


async def test_jwks_publishes_distinct_public_keys_for_es256_and_rs256(op: Op) -> None:
    keys = (await jwks(op))["keys"]
    kids = [key["kid"] for key in keys]
    assert len(kids) == len(set(kids))
    assert {key["alg"] for key in keys} == {"ES256", "RS256"}
    key_set = KeySet.import_key_set({"keys": keys})
    for key, imported in zip(keys, key_set.keys, strict=True):
        assert not PRIVATE_MEMBERS & set(key), "a private key member is published"
        assert key["use"] == "sig"
        assert imported.thumbprint() == key["kid"]  # RFC 7638
        if key["alg"] == "ES256":
            assert (key["kty"], key["crv"]) == ("EC", "P-256")
        else:
            assert key["kty"] == "RSA"
            assert len(base64.urlsafe_b64decode(key["n"] + "==")) * 8 >= 2048


async def test_discovery_and_the_jwks_follow_a_rotation_and_a_retirement(op: Op) -> None:
    """Both documents are built once and served again; a new key or a retired one shows at once."""
    rt = op.app.state.runtime
    before = {key["kid"] for key in (await jwks(op))["keys"]}
    for path in ("/.well-known/openid-configuration", "/oauth2/jwks"):  # one response, sent twice
        first, second = await op.client.get(path), await op.client.get(path)
        assert first.content == second.content
        ids = [r.headers.get_list("x-request-id") for r in (first, second)]
        assert len(ids[0]) == len(ids[1]) == 1 and ids[0] != ids[1]  # each its own id, once
        assert first.headers["cache-control"] == second.headers["cache-control"] == "public, max-age=300"
    new = await rotate(rt.store, rt.box, "RS256", op.now(), overlap_seconds=0, retire_after_seconds=60)
    assert await rt.keys.refresh(rt.store)
    after = {key["kid"] for key in (await jwks(op))["keys"]}
    assert after == before | {new}
    op.clock.advance(61)  # the old RS256 key retires
    rs256 = {key["kid"] for key in (await jwks(op))["keys"] if key["alg"] == "RS256"}
    assert rs256 == {new}
    assert set((await discovery(op))["id_token_signing_alg_values_supported"]) == {"ES256", "RS256"}


# -- the ID token ---------------------------------------------------------------------------------------


async def test_id_token_carries_the_claims_of_issue_2(op: Op) -> None:
    req = AuthRequest()
    token, body = await id_token_for(op, req)
    claims = await verify_id_token(op, token, client_id="demo", nonce=req.nonce)
    expected = {"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "amr", "acr", "oid", "tid", "idp",
                "email", "email_verified", "name", "acct"}
    assert expected <= set(claims)
    assert claims["amr"] == ["otp"]
    assert claims["idp"] == "mail"
    assert claims["acct"] == 1
    assert claims["tid"] == TENANT_ID
    assert (claims["email"], claims["email_verified"], claims["name"]) == (EMAIL, True, EMAIL)
    assert [claims["oid"]] == list(snapshot(op).users)
    assert claims["acr"] in (await discovery(op))["acr_values_supported"]
    assert claims["sub"] != claims["oid"]
    digest = hashlib.sha256(body["access_token"].encode()).digest()
    assert claims["at_hash"] == base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()
    header = jwt.decode(token, await published_keys(op), algorithms=["ES256"]).header
    assert header["typ"] == "JWT"


async def test_oidcc_idtoken_signature_es256_by_default_rs256_per_app(op: Op) -> None:
    key_set = await published_keys(op)
    rsa_kid = next(key.kid for key in key_set.keys if key.as_dict()["alg"] == "RS256")
    demo_token, _ = await id_token_for(op, AuthRequest())
    portal_req = no_pkce("portal", PORTAL_REDIRECT)
    portal_token, _ = await id_token_for(op, portal_req)
    await verify_id_token(op, portal_token, client_id="portal", nonce=portal_req.nonce, alg="RS256")
    assert jwt.decode(portal_token, key_set, algorithms=["RS256"]).header["kid"] == rsa_kid
    with pytest.raises(JoseError):
        jwt.decode(portal_token, key_set, algorithms=["ES256"])
    assert jwt.decode(demo_token, key_set, algorithms=["ES256"]).header["kid"] != rsa_kid
    with pytest.raises(JoseError):
        jwt.decode(demo_token, key_set, algorithms=["RS256"])


async def test_keys_algorithm_rs256_signs_every_app_with_rs256(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    async with running_op(tmp_path, smtp_server, keys={"algorithm": "RS256"}) as op:
        req, tokens = await signed_in_tokens(op, EMAIL)
        await verify_id_token(op, tokens["id_token"], client_id="demo", nonce=req.nonce, alg="RS256")
        assert "none" not in (await discovery(op))["id_token_signing_alg_values_supported"]


async def fresh_demo_claims(op: Op, email: str) -> dict[str, Any]:
    req, code = await sign_in(op, email, AuthRequest(), prompt="login")
    token = (await redeem(op, req, code)).json()["id_token"]
    return await verify_id_token(op, token, client_id="demo", nonce=req.nonce)


async def test_pairwise_sub_differs_between_apps_and_is_stable_across_sign_ins(op: Op) -> None:
    demo_req = AuthRequest()
    demo_claims = await verify_id_token(op, (await id_token_for(op, demo_req))[0], client_id="demo",
                                        nonce=demo_req.nonce)
    portal_req = no_pkce("portal", PORTAL_REDIRECT)
    portal_claims = await verify_id_token(op, (await id_token_for(op, portal_req))[0], client_id="portal",
                                          nonce=portal_req.nonce, alg="RS256")
    assert portal_claims["oid"] == demo_claims["oid"]
    assert portal_claims["sub"] != demo_claims["sub"]

    out = await op.client.get("/oauth2/logout")
    assert out.status_code == 200
    again_claims = await fresh_demo_claims(op, EMAIL)
    assert (again_claims["sub"], again_claims["oid"]) == (demo_claims["sub"], demo_claims["oid"])

    other_claims = await fresh_demo_claims(op, "another.guest@fabrikam.example")
    assert other_claims["sub"] != demo_claims["sub"]
    assert len(snapshot(op).users) == 2


async def test_pairwise_sub_survives_a_restart_on_the_same_store(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    subs = []
    for _ in range(2):
        async with running_op(tmp_path, smtp_server) as op:
            req, tokens = await signed_in_tokens(op, EMAIL)
            claims = await verify_id_token(op, tokens["id_token"], client_id="demo", nonce=req.nonce)
            subs.append(claims["sub"])
    assert subs[0] == subs[1]
