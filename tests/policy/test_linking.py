"""Account-linking decisions, one row per case."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.policy.linking import LinkDecision, decide_link

ANN = {"id": "u-ann", "mail": "ann@fabrikam.example"}
ANN2 = {"id": "u-ann2", "mail": "ann@fabrikam.example"}

ROWS: list[tuple[str, dict[str, Any], LinkDecision]] = [
    (
        "no user has the email: create",
        {
            "email": "ann@fabrikam.example",
            "email_verified": False,
            "connector_trusts_email": False,
            "users_with_email": [],
        },
        LinkDecision("create", "no_user_with_this_email"),
    ),
    (
        "no email at all: create",
        {"email": None, "email_verified": False, "connector_trusts_email": True, "users_with_email": [ANN]},
        LinkDecision("create", "no_user_with_this_email"),
    ),
    (
        "unverified email equal to a guest's: refuse",
        {
            "email": "ann@fabrikam.example",
            "email_verified": False,
            "connector_trusts_email": True,
            "users_with_email": [ANN],
        },
        LinkDecision("refuse", "unverified_email_in_use"),
    ),
    (
        "verified but connector not trusted: refuse",
        {
            "email": "ann@fabrikam.example",
            "email_verified": True,
            "connector_trusts_email": False,
            "users_with_email": [ANN],
        },
        LinkDecision("refuse", "email_in_use_by_another_identity"),
    ),
    (
        "verified and trusted: link",
        {
            "email": "ann@fabrikam.example",
            "email_verified": True,
            "connector_trusts_email": True,
            "users_with_email": [ANN],
        },
        LinkDecision("link", "verified_email_trusted_for_linking", "u-ann"),
    ),
    (
        "two users share the email: refuse",
        {
            "email": "ann@fabrikam.example",
            "email_verified": True,
            "connector_trusts_email": True,
            "users_with_email": [ANN, ANN2],
        },
        LinkDecision("refuse", "email_matches_several_users"),
    ),
]


@pytest.mark.parametrize(("case", "inputs", "expected"), ROWS, ids=[r[0] for r in ROWS])
def test_decide_link(case: str, inputs: dict[str, Any], expected: LinkDecision) -> None:
    assert decide_link(**inputs) == expected
