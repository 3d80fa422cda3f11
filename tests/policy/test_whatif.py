"""The What-If answer: outcome, applied and not-applied policies, as JSON."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.policy.whatif import explain
from tests.policy.test_conditional_access import (
    ACCEPTED,
    FOUR_HOURS,
    GUEST,
    MFA,
    NOBODY,
    NOW,
    REPORT_ONLY,
    TERMS,
    block,
    needs,
    policy,
    run,
)


def test_a_full_answer() -> None:
    policies = [
        block("blocked-guests", state="disabled"),
        needs("guests-mfa", MFA, locations={"include_locations": ["All"], "exclude_locations": ["office"]}),
        policy("short-sessions", grant=TERMS, session=FOUR_HOURS),
        needs("nobody", MFA, users=NOBODY, state=REPORT_ONLY),
        block("trial-block", state=REPORT_ONLY),
    ]
    answer = explain(run(policies, GUEST, client_ip="192.0.2.1", auth_time=NOW - 5 * 3600))
    assert answer == {
        "outcome": "userActionRequired",
        "blockReason": None,
        "required": ["mfa", "reauthentication", "terms:guest-terms"],
        "conditionalAccessStatus": "success",
        "authenticationRequirement": "multiFactorAuthentication",
        "appliedPolicies": [
            {
                "id": "guests-mfa",
                "displayName": "Policy guests-mfa",
                "state": "enabled",
                "result": "userActionRequired",
                "reason": "mfa_required",
                "enforcedGrantControls": ["mfa"],
                "enforcedSessionControls": [],
                "unmet": ["mfa"],
            },
            {
                "id": "short-sessions",
                "displayName": "Policy short-sessions",
                "state": "enabled",
                "result": "userActionRequired",
                "reason": "terms_required",
                "enforcedGrantControls": ["termsOfUse:guest-terms"],
                "enforcedSessionControls": ["signInFrequency"],
                "unmet": ["terms:guest-terms", "reauthentication"],
            },
            {
                "id": "trial-block",
                "displayName": "Policy trial-block",
                "state": REPORT_ONLY,
                "result": "reportOnlyFailure",
                "reason": "blocked_by_policy",
                "enforcedGrantControls": ["block"],
                "enforcedSessionControls": [],
                "unmet": ["block"],
            },
        ],
        "notAppliedPolicies": [
            {
                "id": "blocked-guests",
                "displayName": "Policy blocked-guests",
                "state": "disabled",
                "reason": "policy_disabled",
            },
            {
                "id": "nobody",
                "displayName": "Policy nobody",
                "state": REPORT_ONLY,
                "reason": "user_not_included",
            },
        ],
    }
    json.dumps(answer)  # plain JSON as it is


OUTCOMES: list[tuple[str, list[Any], dict[str, Any], tuple[str, str | None, list[str]]]] = [
    ("nothing applies: grant", [needs("m", MFA, users=NOBODY)], {}, ("grant", None, [])),
    ("all satisfied: grant", [needs("m", MFA)], {"mfa": True}, ("grant", None, [])),
    ("an action is missing", [needs("t", TERMS)], {}, ("userActionRequired", None, ["terms:guest-terms"])),
    ("blocked", [needs("t", TERMS), block("b")], {}, ("block", "blocked_by_policy", [])),
    ("report-only never changes the outcome", [block("b", state=REPORT_ONLY)], {}, ("grant", None, [])),
    ("terms accepted", [needs("t", TERMS)], {"accepted_terms": ACCEPTED}, ("grant", None, [])),
]


@pytest.mark.parametrize(
    ("policies", "changes", "expected"), [pytest.param(*r[1:], id=r[0]) for r in OUTCOMES]
)
def test_outcome(
    policies: list[Any], changes: dict[str, Any], expected: tuple[str, str | None, list[str]]
) -> None:
    answer = explain(run(policies, **changes))
    assert (answer["outcome"], answer["blockReason"], answer["required"]) == expected


def test_every_policy_is_listed_once() -> None:
    policies = [
        needs(f"p{i}", MFA, state=state) for i, state in enumerate(["enabled", "disabled", REPORT_ONLY])
    ]
    policies.append(needs("p3", MFA, apps={"include_applications": ["None"]}))
    answer = explain(run(policies))
    applied = [p["id"] for p in answer["appliedPolicies"]]
    not_applied = {p["id"]: p["reason"] for p in answer["notAppliedPolicies"]}
    assert applied == ["p0", "p2"]
    assert not_applied == {"p1": "policy_disabled", "p3": "application_not_included"}
