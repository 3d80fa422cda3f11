"""Guards of the policy step: what one sign-in established never passes to another user, trust is
read from the current settings, and passive requests never get a page.

- MFA done here belongs to the user who did it: sent home again (sign-in frequency), an upstream
  that answers for someone else is refused before the directory is touched.
- A session made while a partner was trusted for MFA stops counting that MFA once the settings no
  longer trust it.
- ``prompt=none`` never lands on the MFA page: the app gets ``login_required``.
- Inbound rules naming groups fail closed when the upstream left the groups out (Entra's overage).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import flows
from tests.support.oidc_idp import IdpUser
from tests.support.smtp_server import SmtpServer
from tests.support.trust import (
    ALICE_OID,
    APP_B_REDIRECT,
    PARTNER_TENANT,
    TrustEnv,
    partner,
    policy,
    step_path,
    trust_env,
)

HOUR = 3600
TRUST_MFA = {"inbound_trust": {"mfa_accepted": True}}


@pytest.fixture
def env(tmp_path: Path, smtp_server: SmtpServer) -> Iterator[TrustEnv]:
    with trust_env(tmp_path, smtp_server) as found:
        yield found


async def test_a_reauthentication_that_comes_back_as_someone_else_is_refused(env: TrustEnv) -> None:
    frequency = {"type": "hours", "value": 1}  # primary and secondary authentication
    async with env.gateway(policies=[policy("guests-mfa", "mfa", session=frequency)]) as gw:
        gw.partner.idp.knobs.id_token_claims = {"auth_time": int(gw.clock()) - HOUR + 100}
        req, callback = await gw.sign_in()  # Mallory, whose home sign-in is 58 minutes old
        path = step_path(callback, "mfa")
        gw.clock.advance(200)  # the hour is over while she registers her TOTP
        _, done = await gw.register_totp(path)
        # After a form, a page that moves on by itself takes her home (CSP form-action stops a redirect).
        assert done.status_code == 200, done.text
        home = re.search(r'id="continue" href="([^"]+)"', done.text)
        assert home and "prompt=login" in home.group(1)
        gw.partner.idp.knobs.id_token_claims = {}
        gw.partner.idp.user = IdpUser(sub="bob-0002", email="bob@fabrikam.example")
        users_before = len(gw.users())
        back = await gw.from_idp(html.unescape(home.group(1)))
        assert back.status_code == 403 and "Sign in as the same person" in back.text
        assert len(gw.users()) == users_before  # Bob was not signed up on the way
        assert "code=" not in back.headers.get("location", "")
        assert req.state  # the app got nothing back


async def test_home_mfa_in_a_session_stops_counting_when_the_partner_is_no_longer_trusted(
    env: TrustEnv,
) -> None:
    policies = [policy("guests-mfa", "mfa")]
    async with env.gateway(partners=[partner(**TRUST_MFA)], policies=policies) as gw:
        gw.partner.says(amr=["pwd", "mfa"], tid=PARTNER_TENANT, oid=ALICE_OID)
        req, callback = await gw.sign_in()
        assert "mfa" in (await gw.id_claims(req, callback))["amr"]
        cookies = dict(gw.client.cookies)
    async with env.gateway(partners=[partner()], policies=policies) as gw:  # trust withdrawn, same store
        gw.client.cookies.update(cookies)
        again = flows.AuthRequest()
        answer = await gw.client.get(f"/oauth2/authorize?{again.query()}")
        assert answer.status_code == 303
        assert answer.headers["location"].endswith("/mfa"), answer.headers["location"]  # TOTP here now


async def test_prompt_none_never_lands_on_a_page(env: TrustEnv) -> None:
    async with env.gateway(policies=[policy("app-b-mfa", "mfa", apps=("app-b",))]) as gw:
        gw.partner.says(amr=["pwd"], tid=PARTNER_TENANT, oid=ALICE_OID)
        req, callback = await gw.sign_in()
        await gw.id_claims(req, callback)  # a session without MFA; app B needs MFA
        silent = flows.AuthRequest(client_id="app-b", redirect_uri=APP_B_REDIRECT, extra={"prompt": "none"})
        answer = await gw.client.get(f"/oauth2/authorize?{silent.query()}")
        assert answer.status_code == 303
        query = flows.query_of(answer.headers["location"])
        assert answer.headers["location"].startswith(APP_B_REDIRECT)
        assert query["error"] == "login_required" and query["state"] == silent.state


async def test_a_group_rule_fails_closed_when_the_upstream_left_the_groups_out(env: TrustEnv) -> None:
    group = "0a0b0c0d-1111-4222-8333-444455556666"
    inbound = {
        "users_and_groups": {
            "access_type": "blocked",
            "targets": [{"target": group, "target_type": "group"}],
        },
        "applications": {
            "access_type": "blocked",
            "targets": [{"target": "app-b", "target_type": "application"}],
        },
    }
    async with env.gateway(partners=[partner(b2b_collaboration_inbound=inbound)]) as gw:
        overage = {"_claim_names": {"groups": "src1"}, "_claim_sources": {"src1": {"endpoint": "https://x"}}}
        gw.partner.says(tid=PARTNER_TENANT, oid=ALICE_OID, **overage)
        before = len(gw.users())
        _, refused = await gw.sign_in()
        assert refused.status_code == 403 and len(gw.users()) == before
        gw.partner.says(tid=PARTNER_TENANT, oid=ALICE_OID, groups=["another-group"])
        req, allowed = await gw.sign_in()
        assert "amr" in await gw.id_claims(req, allowed)
