"""Revoking a user's sign-in sessions: SSO sessions gone, refresh tokens refused, relying parties told.

The relying party's back-channel endpoint is captured with respx; its logout tokens are verified
against the gateway's JWKS (OIDC Back-Channel Logout 1.0, section 2.4 / 2.6).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx
from joserfc import jwt
from joserfc.jwk import KeySet

from gateway.oidc.backchannel import EVENT
from gateway.oidc.claims import pairwise_sub
from tests.admin.conftest import ApiFactory
from tests.admin.helpers import Api, applications, bearer
from tests.support import flows
from tests.support.assertions import assert_oauth_error

BACKCHANNEL = "https://rp.example/backchannel-logout"
GUEST = "guest@fabrikam.example"


def with_backchannel() -> list[dict[str, Any]]:
    apps = applications()
    for app in apps:
        if app["id"] == "demo":
            app["oidc"] = {**app["oidc"], "backchannel_logout_uri": BACKCHANNEL}
    return apps


@pytest.fixture
def rp() -> Iterator[respx.Route]:
    with respx.mock(assert_all_called=False) as router:
        yield router.post(BACKCHANNEL).mock(return_value=httpx.Response(200))


@pytest.fixture
async def api(api_with: ApiFactory, rp: respx.Route) -> AsyncIterator[Api]:
    async with api_with(applications=with_backchannel(), passcode={"resend_interval_seconds": 0}) as running:
        yield running


async def signed_in(api: Api) -> tuple[flows.AuthRequest, dict[str, Any], str]:
    req = flows.AuthRequest(scope="openid profile email offline_access")
    req, tokens = await flows.signed_in_tokens(api.client, api.smtp, GUEST, req)
    [user] = [u for u in api.state().users.values() if u.get("mail") == GUEST]
    return req, tokens, user["id"]


async def logout_claims(api: Api, rp: respx.Route) -> list[dict[str, Any]]:
    await api.rt.backchannel.idle()
    keys = KeySet.import_key_set((await api.client.get("/oauth2/jwks")).json())
    found = []
    for call in rp.calls:
        token = parse_qs(call.request.content.decode())["logout_token"][0]
        decoded = jwt.decode(token, keys, algorithms=["ES256"])
        assert decoded.header["typ"] == "logout+jwt"
        found.append(dict(decoded.claims))
    return found


async def test_admin_revocation_ends_sessions_refresh_tokens_and_tells_the_rp(
    api: Api, rp: respx.Route
) -> None:
    req, tokens, user_id = await signed_in(api)
    response = await api.client.post(
        f"/v1.0/users/{user_id}/revokeSignInSessions", headers=bearer(await api.app_token("admin-app"))
    )
    assert response.status_code == 200 and response.json()["value"] is True
    # Refresh tokens from before the revocation are refused.
    refresh = await api.client.post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": "demo"},
    )
    assert_oauth_error(refresh, "invalid_grant")
    # The SSO session is gone: a silent request needs a sign-in.
    silent = await api.client.get(f"/oauth2/authorize?{flows.AuthRequest(extra={'prompt': 'none'}).query()}")
    assert flows.query_of(silent.headers["location"])["error"] == "login_required"
    [claims] = await logout_claims(api, rp)
    assert claims["iss"] == api.rt.settings.issuer and claims["aud"] == "demo"
    assert claims["sub"] == pairwise_sub(api.rt.pairwise_salt, "demo", user_id)
    assert claims["events"] == {EVENT: {}} and "nonce" not in claims and claims["jti"]
    assert "sid" not in claims
    # A new sign-in works again.
    await flows.signed_in_tokens(api.client, api.smtp, GUEST, req)


async def test_a_reader_may_not_revoke(api: Api, rp: respx.Route) -> None:
    _, tokens, user_id = await signed_in(api)
    response = await api.client.post(
        f"/v1.0/users/{user_id}/revokeSignInSessions", headers=bearer(await api.app_token("reader-app"))
    )
    assert response.status_code == 403
    refresh = await api.client.post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": "demo"},
    )
    assert refresh.status_code == 200
    assert await logout_claims(api, rp) == []


async def test_unknown_user_is_404(api: Api) -> None:
    response = await api.client.post(
        "/v1.0/users/00000000-0000-4000-8000-000000000000/revokeSignInSessions",
        headers=bearer(await api.app_token("admin-app")),
    )
    assert response.status_code == 404


async def test_rp_initiated_logout_sends_a_logout_token_with_the_sid(api: Api, rp: respx.Route) -> None:
    _, tokens, _ = await signed_in(api)
    keys = KeySet.import_key_set((await api.client.get("/oauth2/jwks")).json())
    sid = jwt.decode(tokens["id_token"], keys, algorithms=["ES256"]).claims["sid"]
    response = await api.client.get("/oauth2/logout", params={"id_token_hint": tokens["id_token"]})
    assert response.status_code == 200
    [claims] = await logout_claims(api, rp)
    assert claims["sid"] == sid


async def test_a_revoked_user_token_no_longer_calls_the_admin_api(api: Api) -> None:
    from tests.admin.helpers import ADMIN

    admin = await api.add_user(ADMIN)
    token = await api.user_token(admin)
    assert (await api.client.get("/v1.0/me", headers=bearer(token))).status_code == 200
    api.clock.advance(1)
    revoked = await api.client.post("/v1.0/me/revokeSignInSessions", headers=bearer(token))
    assert revoked.status_code == 200
    api.clock.advance(2)
    after = await api.client.get("/v1.0/me", headers=bearer(token))
    assert after.status_code == 401 and after.json()["error"]["innerError"]["code"] == "sessions_revoked"
