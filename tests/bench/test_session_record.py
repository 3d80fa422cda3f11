"""The SSO session record stays small (the load benchmark's target: at most 1 KiB a session in Redis):
``Sessions.create`` stores the standing without its entries at their default, and what comes back
reads as the same ``Standing``, down to the defaults that are not falsy (``upstream_groups_complete``)."""

from __future__ import annotations

import hashlib

import pytest
import redis

from gateway.signin.sessions import KIND, Sessions, compact_standing
from gateway.signin.standing import Standing
from gateway.store.factory import open_store
from gateway.store.redis import artefact_key

pytestmark = pytest.mark.redis
NOW = 1_700_000_000
USER_ID = "0b6f3c52-6f1e-4d4e-9a5b-3f2a1c0d9e87"
PASSCODE = Standing(connector_id="email", connector_type="email_otp", auth_time=NOW, idp="mail")
PARTNER = Standing(
    connector_id="partner-a",
    connector_type="oidc",
    auth_time=NOW,
    idp="https://idp.partner-a.example",
    home_tenant_id="11111111-2222-4333-8444-555555555555",
    home_authoritative=True,
    upstream_user_id="alice-0001",
    upstream_group_ids=("g-1", "g-2"),
    upstream_groups_complete=False,
    upstream_mfa=True,
    mfa_source="home",
    mfa_time=NOW,
    compliant_device=True,
    trust_reasons=("mfa_trusted_from_home",),
)


def test_compacting_drops_only_defaults_and_keeps_a_false_groups_complete() -> None:
    passcode = compact_standing(PASSCODE.to_json())
    assert passcode == {
        "connector_id": "email",
        "connector_type": "email_otp",
        "auth_time": NOW,
        "idp": "mail",
    }
    partner = compact_standing(PARTNER.to_json())
    assert partner["upstream_groups_complete"] is False  # its default is True: dropping it would fail open
    # everything the partner's standing says is kept; only hybrid_joined_device is at its default
    assert partner == {k: v for k, v in PARTNER.to_json().items() if k != "hybrid_joined_device"}
    incomplete = Standing(**{**PASSCODE.__dict__, "upstream_groups_complete": False})
    assert Standing.from_json(compact_standing(incomplete.to_json())) == incomplete


# A passcode guest's session fits in 1 KiB; a partner guest's with every fact set (groups, MFA and
# device trusted from home, reasons) does not (1152 B, one allocator size class up): the bound
# here guards against growth, the benchmark prints the figure.
@pytest.mark.parametrize(
    ("standing", "limit"), [(PASSCODE, 1024), (PARTNER, 1152)], ids=["passcode", "partner"]
)
async def test_a_stored_session_reads_back_as_the_same_standing_and_stays_small(
    standing: Standing, limit: int, fresh_redis_url: str
) -> None:
    store = open_store(fresh_redis_url)
    try:
        session, token = await Sessions(store, secure=False).create(
            user_id=USER_ID, auth_time=NOW, lifetime=3600, amr=standing.amr, acr=standing.acr,
            idp=standing.idp, connector_id=standing.connector_id, standing=standing.to_json(),
        )  # fmt: skip
        stored = await store.get(KIND, hashlib.sha256(token.encode()).hexdigest())
    finally:
        await store.close()
    assert stored is not None
    assert stored["standing"] == compact_standing(standing.to_json())  # no entry at its default
    assert Standing.from_json(stored["standing"]) == standing
    assert {name: value for name, value in stored.items() if name != "standing"} == {
        name: value for name, value in session.to_json().items() if name != "standing"
    }
    with redis.Redis.from_url(fresh_redis_url) as client:
        key = artefact_key(KIND, hashlib.sha256(token.encode()).hexdigest())
        size = client.memory_usage(key, samples=0)
    assert size is not None and 0 < size <= limit, size
