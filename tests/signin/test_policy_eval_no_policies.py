"""``policy_eval.assess`` without conditional access policies skips ``evaluate``: what it answers
then (``NO_POLICIES``) must be what ``evaluate`` answers for no policy, whatever the sign-in."""

from __future__ import annotations

import pytest

from gateway.policy.conditional_access import Context, Subject, evaluate
from gateway.settings.conditional_access import Agreement, NamedLocation
from gateway.signin.policy_eval import NO_POLICIES

NOW = 1_800_000_000
OFFICE = NamedLocation(id="office", display_name="Office", ip_ranges=["203.0.113.0/24"], is_trusted=True)
TERMS = Agreement(id="terms", display_name="Terms", url="https://contoso.example/terms", version="v1")


@pytest.mark.parametrize("client_ip", ["203.0.113.7", "::ffff:203.0.113.7", None, "not an address"])
@pytest.mark.parametrize("mfa", [False, True])
@pytest.mark.parametrize("external", [None, "b2bCollaborationGuest"])
def test_no_policies_is_what_evaluate_answers(client_ip: str | None, mfa: bool, external: str | None) -> None:
    subject = Subject("u1", frozenset({"g1"}), external, None)
    context = Context(
        app_id="demo",
        client_ip=client_ip,
        mfa=mfa,
        compliant_device=False,
        hybrid_joined_device=False,
        accepted_terms={"terms": "v1"},
        auth_time=NOW - 60,
        mfa_time=NOW - 60 if mfa else None,
        signin_started_at=NOW - 30,
        now=NOW,
    )
    assert evaluate([], [OFFICE], [TERMS], subject, context) == NO_POLICIES
    assert evaluate([], [], [], subject, context) == NO_POLICIES
