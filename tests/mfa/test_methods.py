"""``gateway.mfa.methods`` on the real SQLite store and a real Redis: enrolment, registration,
verification, replay (RFC 6238 §5.2, concurrent submissions included), attempt limits and reset."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from gateway.directory.users import iso
from gateway.mfa import methods, totp
from gateway.mfa.methods import ATTEMPT, ENROLMENT, METHODS_KEY, USED_STEP
from gateway.secrets import SecretBox
from gateway.store.base import Store
from tests.mfa.conftest import Backend

NOW = 1_700_000_015
SIGNIN = "signin-1"
TTL = 600


def code(secret: str, offset: int = 0, now: int = NOW) -> str:
    return totp.code_at(secret, totp.time_step(now) + offset)


def wrong_code(secret: str, now: int = NOW) -> str:
    window = {code(secret, d, now) for d in (-1, 0, 1)}
    return next(f"{n:06d}" for n in range(1_000_000) if f"{n:06d}" not in window)


async def slots_taken(store: Store, user_id: str) -> int:
    return sum(
        [await store.get(ATTEMPT, f"{user_id}:{slot}") is not None for slot in range(methods.MAX_FAILURES)]
    )


async def registered(store: Store, box: SecretBox, user: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Register a method for ``user`` (with a code of the previous step, so the current and next
    steps stay usable); returns its secret and the stored user."""
    secret = await methods.enrolment_secret(store, box, SIGNIN, user["id"], TTL)
    result = await methods.register(
        store, box, user_id=user["id"], signin_id=SIGNIN, code=code(secret, -1), now=NOW
    )
    assert result.outcome == "accepted"
    stored = await store.get_user(user["id"])
    assert stored is not None
    return secret, stored


# -- enrolment -----------------------------------------------------------------------------------


async def test_the_enrolment_secret_is_kept_sealed_and_offered_again(
    store: Store, box: SecretBox, user: dict[str, Any]
) -> None:
    secret = await methods.enrolment_secret(store, box, SIGNIN, user["id"], TTL)
    assert totp.is_secret(secret)
    assert await methods.enrolment_secret(store, box, SIGNIN, user["id"], TTL) == secret  # a reload
    stored = await store.get(ENROLMENT, f"{SIGNIN}:{user['id']}")
    assert stored is not None and secret not in json.dumps(stored)
    assert box.unseal("totp", stored["secret"]).decode() == secret
    left = await store.ttl(ENROLMENT, f"{SIGNIN}:{user['id']}")
    assert left is not None and TTL - 5 <= left <= TTL


async def test_each_sign_in_gets_its_own_secret(store: Store, box: SecretBox, user: dict[str, Any]) -> None:
    first = await methods.enrolment_secret(store, box, SIGNIN, user["id"], TTL)
    assert await methods.enrolment_secret(store, box, "signin-2", user["id"], TTL) != first


async def test_two_concurrent_first_loads_offer_one_secret(
    store: Store, box: SecretBox, user: dict[str, Any]
) -> None:
    offered = await asyncio.gather(
        *(methods.enrolment_secret(store, box, SIGNIN, user["id"], TTL) for _ in range(4))
    )
    assert len(set(offered)) == 1
    assert await methods.pending_secret(store, box, SIGNIN, user["id"]) == offered[0]


async def test_a_secret_sealed_under_a_retired_key_is_replaced(store: Store, user: dict[str, Any]) -> None:
    old = SecretBox(["an-old-secret-key-" + "o" * 32])
    await methods.enrolment_secret(store, old, SIGNIN, user["id"], TTL)
    current = SecretBox(["the-new-secret-key-" + "n" * 32])
    assert await methods.pending_secret(store, current, SIGNIN, user["id"]) is None
    fresh = await methods.enrolment_secret(store, current, SIGNIN, user["id"], TTL)
    assert await methods.pending_secret(store, current, SIGNIN, user["id"]) == fresh


# -- registration --------------------------------------------------------------------------------


async def test_registration_stores_the_sealed_method_and_consumes_the_offer(
    store: Store, box: SecretBox, user: dict[str, Any]
) -> None:
    secret = await methods.enrolment_secret(store, box, SIGNIN, user["id"], TTL)
    result = await methods.register(
        store, box, user_id=user["id"], signin_id=SIGNIN, code=code(secret), now=NOW
    )
    assert result.outcome == "accepted" and result.reason is None
    stored = await store.get_user(user["id"])
    assert stored is not None
    [method] = stored[METHODS_KEY]
    assert set(method) == {"id", "createdDateTime", "secret"}
    assert method["id"] == result.method_id and method["createdDateTime"] == iso(NOW)
    assert secret not in json.dumps(stored)  # sealed at rest
    assert box.unseal("totp", method["secret"]).decode() == secret
    assert await store.get(ENROLMENT, f"{SIGNIN}:{user['id']}") is None
    assert await slots_taken(store, user["id"]) == 0  # a right code is not counted
    # The registration's code counts as used: it is not accepted again.
    assert (await methods.verify(store, box, stored, code(secret), NOW)).outcome == "reused"


async def test_a_wrong_registration_code_saves_nothing_but_the_attempt(
    store: Store, box: SecretBox, user: dict[str, Any]
) -> None:
    secret = await methods.enrolment_secret(store, box, SIGNIN, user["id"], TTL)
    result = await methods.register(
        store, box, user_id=user["id"], signin_id=SIGNIN, code=wrong_code(secret), now=NOW
    )
    assert (result.outcome, result.reason) == ("invalid", "mfa_code_invalid")
    assert await store.get_user(user["id"]) == user  # no method
    assert await methods.pending_secret(store, box, SIGNIN, user["id"]) == secret  # still on offer
    assert await slots_taken(store, user["id"]) == 1


async def test_registration_without_an_offer_is_stale_and_counts_nothing(
    store: Store, box: SecretBox, user: dict[str, Any]
) -> None:
    result = await methods.register(store, box, user_id=user["id"], signin_id=SIGNIN, code="123456", now=NOW)
    assert result.outcome == "stale" and result.reason is None
    assert await store.get_user(user["id"]) == user
    assert await slots_taken(store, user["id"]) == 0


async def test_registration_after_another_one_won_is_stale(
    store: Store, box: SecretBox, user: dict[str, Any]
) -> None:
    _, stored = await registered(store, box, user)
    offered = await methods.enrolment_secret(store, box, "signin-2", user["id"], TTL)
    result = await methods.register(
        store, box, user_id=user["id"], signin_id="signin-2", code=code(offered), now=NOW
    )
    assert result.outcome == "stale"
    assert await store.get_user(user["id"]) == stored  # the first method stays, alone


async def test_two_concurrent_registrations_store_one_method(
    store: Store, box: SecretBox, user: dict[str, Any]
) -> None:
    secret = await methods.enrolment_secret(store, box, SIGNIN, user["id"], TTL)
    results = await asyncio.gather(
        *(
            methods.register(store, box, user_id=user["id"], signin_id=SIGNIN, code=code(secret), now=NOW)
            for _ in range(2)
        )
    )
    assert "accepted" in [r.outcome for r in results]
    stored = await store.get_user(user["id"])
    assert stored is not None and len(stored[METHODS_KEY]) == 1


# -- verification and replay ---------------------------------------------------------------------


@pytest.mark.parametrize("offset", [-1, 0, 1], ids=["previous", "current", "next"])
async def test_a_code_of_the_window_is_accepted(
    store: Store, box: SecretBox, user: dict[str, Any], offset: int
) -> None:
    secret, stored = await registered(store, box, user)
    result = await methods.verify(store, box, stored, code(secret, offset, NOW + 60), NOW + 60)
    assert result.outcome == "accepted" and result.method_id == stored[METHODS_KEY][0]["id"]
    assert await slots_taken(store, user["id"]) == 0


@pytest.mark.parametrize("offset", [-2, 2])
async def test_a_code_outside_the_window_is_invalid(
    store: Store, box: SecretBox, user: dict[str, Any], offset: int
) -> None:
    secret, stored = await registered(store, box, user)
    typed = code(secret, offset, NOW + 60)
    assert typed not in {code(secret, d, NOW + 60) for d in (-1, 0, 1)}
    result = await methods.verify(store, box, stored, typed, NOW + 60)
    assert (result.outcome, result.reason) == ("invalid", "mfa_code_invalid")


async def test_an_accepted_code_is_never_accepted_again(
    store: Store, box: SecretBox, user: dict[str, Any]
) -> None:
    secret, stored = await registered(store, box, user)
    typed = code(secret, 0, NOW + 60)
    assert (await methods.verify(store, box, stored, typed, NOW + 60)).outcome == "accepted"
    for later in (NOW + 60, NOW + 75, NOW + 89):  # still inside its window
        result = await methods.verify(store, box, stored, typed, later)
        assert (result.outcome, result.reason) == ("reused", "mfa_code_reused")
    assert await slots_taken(store, user["id"]) == 3  # replays count as failures


async def test_an_older_code_after_a_newer_one_is_refused(
    store: Store, box: SecretBox, user: dict[str, Any]
) -> None:
    secret, stored = await registered(store, box, user)
    now = NOW + 120
    assert (await methods.verify(store, box, stored, code(secret, 1, now), now)).outcome == "accepted"
    for older in (0, -1):  # both still valid by the clock, but older than the accepted step
        assert (await methods.verify(store, box, stored, code(secret, older, now), now)).outcome == "reused"
    # The next step's code, once its time comes, is fine.
    later = now + 2 * totp.PERIOD
    assert (await methods.verify(store, box, stored, code(secret, 0, later), later)).outcome == "accepted"


async def test_concurrent_submissions_of_one_code_pass_once(
    store: Store, box: SecretBox, user: dict[str, Any]
) -> None:
    secret, stored = await registered(store, box, user)
    now = NOW + 60
    typed = code(secret, 0, now)
    results = await asyncio.gather(*(methods.verify(store, box, stored, typed, now) for _ in range(5)))
    assert sorted(r.outcome for r in results) == ["accepted"] + ["reused"] * 4


async def test_more_concurrent_submissions_than_attempts_still_pass_once(
    store: Store, box: SecretBox, user: dict[str, Any]
) -> None:
    secret, stored = await registered(store, box, user)
    now = NOW + 60
    typed = code(secret, 0, now)
    results = await asyncio.gather(*(methods.verify(store, box, stored, typed, now) for _ in range(9)))
    outcomes = [r.outcome for r in results]
    assert outcomes.count("accepted") == 1
    assert set(outcomes) - {"accepted"} <= {"reused", "locked"}


async def test_concurrent_codes_of_two_steps_never_accept_the_older_after_the_newer(
    store: Store, box: SecretBox, user: dict[str, Any]
) -> None:
    secret, stored = await registered(store, box, user)
    now = NOW + 120
    newer, older = code(secret, 1, now), code(secret, 0, now)
    results = await asyncio.gather(
        methods.verify(store, box, stored, newer, now), methods.verify(store, box, stored, older, now)
    )
    assert results[0].outcome == "accepted"
    # The older one may have passed first (then both are in order), or it is refused: never after.
    assert results[1].outcome in ("accepted", "reused")
    again = await methods.verify(store, box, stored, older, now)
    assert again.outcome == "reused"


async def test_a_method_sealed_under_a_retired_key_accepts_nothing(
    store: Store, box: SecretBox, user: dict[str, Any]
) -> None:
    secret, stored = await registered(store, box, user)
    other = SecretBox(["a-different-install-key-" + "d" * 32])
    assert (
        await methods.verify(store, other, stored, code(secret, 0, NOW + 60), NOW + 60)
    ).outcome == "invalid"


async def test_malformed_stored_methods_are_ignored(
    store: Store, box: SecretBox, user: dict[str, Any]
) -> None:
    secret, stored = await registered(store, box, user)
    good = stored[METHODS_KEY][0]
    junk: list[Any] = [None, "x", {"id": 3}, {"id": "a", "createdDateTime": "b"}, {**good, "secret": None}]
    messy = {**stored, METHODS_KEY: [*junk, good]}
    assert methods.stored_methods(messy) == [good]
    assert (
        await methods.verify(store, box, messy, code(secret, 0, NOW + 60), NOW + 60)
    ).outcome == "accepted"
    assert methods.stored_methods({"id": "u", METHODS_KEY: "not a list"}) == []
    assert methods.public_view(good) == {"id": good["id"], "createdDateTime": good["createdDateTime"]}


# -- attempt limits ------------------------------------------------------------------------------


async def test_the_sixth_attempt_in_15_minutes_is_refused_unchecked(
    backend: Backend, box: SecretBox, user: dict[str, Any]
) -> None:
    store = backend.store
    secret, stored = await registered(store, box, user)
    now = NOW + 60
    for _ in range(methods.MAX_FAILURES):
        assert (await methods.verify(store, box, stored, wrong_code(secret, now), now)).outcome == "invalid"
    result = await methods.verify(store, box, stored, code(secret, 0, now), now)  # the right code
    assert (result.outcome, result.reason) == ("locked", "mfa_attempts_exceeded")
    assert methods.FAILURE_WINDOW - 5 <= result.retry_after <= methods.FAILURE_WINDOW
    method_id = stored[METHODS_KEY][0]["id"]
    assert await store.get(USED_STEP, f"{method_id}:{totp.time_step(now)}") is None  # never checked
    if backend.clock is not None:  # the window passes (SQLite's clock; Redis would take 15 minutes)
        backend.clock.now += methods.FAILURE_WINDOW
        later = now + methods.FAILURE_WINDOW
        assert (await methods.verify(store, box, stored, code(secret, 0, later), later)).outcome == "accepted"


async def test_registration_and_verification_share_the_attempts(
    store: Store, box: SecretBox, user: dict[str, Any]
) -> None:
    secret = await methods.enrolment_secret(store, box, SIGNIN, user["id"], TTL)
    for _ in range(methods.MAX_FAILURES):
        result = await methods.register(
            store, box, user_id=user["id"], signin_id=SIGNIN, code=wrong_code(secret), now=NOW
        )
        assert result.outcome == "invalid"
    result = await methods.register(
        store, box, user_id=user["id"], signin_id=SIGNIN, code=code(secret), now=NOW
    )
    assert result.outcome == "locked" and result.retry_after > 0
    assert await store.get_user(user["id"]) == user  # the right code was not even checked


async def test_a_right_code_gives_its_attempt_back(
    store: Store, box: SecretBox, user: dict[str, Any]
) -> None:
    secret, stored = await registered(store, box, user)
    now = NOW + 60
    for _ in range(methods.MAX_FAILURES - 1):
        await methods.verify(store, box, stored, wrong_code(secret, now), now)
    assert (await methods.verify(store, box, stored, code(secret, 0, now), now)).outcome == "accepted"
    assert await slots_taken(store, user["id"]) == methods.MAX_FAILURES - 1
    assert (await methods.verify(store, box, stored, wrong_code(secret, now), now)).outcome == "invalid"
    assert (await methods.verify(store, box, stored, wrong_code(secret, now), now)).outcome == "locked"


async def test_concurrent_wrong_codes_get_five_checks_at_most(
    store: Store, box: SecretBox, user: dict[str, Any]
) -> None:
    secret, stored = await registered(store, box, user)
    now = NOW + 60
    results = await asyncio.gather(
        *(methods.verify(store, box, stored, wrong_code(secret, now), now) for _ in range(12))
    )
    outcomes = [r.outcome for r in results]
    assert outcomes.count("invalid") == methods.MAX_FAILURES
    assert outcomes.count("locked") == 12 - methods.MAX_FAILURES


async def test_attempts_are_per_user(store: Store, box: SecretBox, user: dict[str, Any]) -> None:
    secret, stored = await registered(store, box, user)
    now = NOW + 60
    for _ in range(methods.MAX_FAILURES):
        await methods.verify(store, box, stored, wrong_code(secret, now), now)
    other = {**user, "id": "another-user", "mail": "other@fabrikam.example"}
    assert await store.create_user(other, [("mail", "other@fabrikam.example")])
    offered = await methods.enrolment_secret(store, box, SIGNIN, "another-user", TTL)
    result = await methods.register(
        store, box, user_id="another-user", signin_id=SIGNIN, code=code(offered), now=NOW
    )
    assert result.outcome == "accepted"


# -- reset ---------------------------------------------------------------------------------------


async def test_reset_removes_every_method(store: Store, box: SecretBox, user: dict[str, Any]) -> None:
    _, stored = await registered(store, box, user)
    await store.update_user({**stored, METHODS_KEY: [*stored[METHODS_KEY], {"id": "second"}]})
    assert await methods.reset_methods(store, user["id"]) == 2
    after = await store.get_user(user["id"])
    assert after is not None and METHODS_KEY not in after and not methods.has_method(after)
    assert await methods.reset_methods(store, user["id"]) == 0


async def test_reset_of_a_user_without_methods_writes_nothing(
    store: Store, user: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def refuse(_: dict[str, Any]) -> None:
        raise AssertionError("nothing to write")

    monkeypatch.setattr(store, "update_user", refuse)
    assert await methods.reset_methods(store, user["id"]) == 0


async def test_reset_of_an_unknown_user_raises_key_error(store: Store) -> None:
    with pytest.raises(KeyError):
        await methods.reset_methods(store, "no-such-user")
    with pytest.raises(KeyError):
        await methods.remove_method(store, "no-such-user", "m")


async def test_remove_method_deletes_that_one_only(
    store: Store, box: SecretBox, user: dict[str, Any]
) -> None:
    _, stored = await registered(store, box, user)
    [method] = stored[METHODS_KEY]
    other = {"id": "other", "createdDateTime": iso(NOW), "secret": method["secret"]}
    await store.update_user({**stored, METHODS_KEY: [method, other]})
    assert not await methods.remove_method(store, user["id"], "unknown")
    assert await methods.remove_method(store, user["id"], method["id"])
    after = await store.get_user(user["id"])
    assert after is not None and after[METHODS_KEY] == [other]
