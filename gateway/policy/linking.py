"""Account linking: may a new upstream identity join an existing user who has the same email?

Users are keyed by (issuer, subject). An email is a linking key only when the upstream
asserts it verified *and* the connector is configured to trust that (``trust_email_for_linking``);
otherwise a second identity with a known address is refused, never silently merged (the
"nOAuth" class of account takeover).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class LinkDecision:
    action: Literal["create", "link", "refuse"]
    reason: str
    user_id: str | None = None


def decide_link(
    *,
    email: str | None,
    email_verified: bool,
    connector_trusts_email: bool,
    users_with_email: Sequence[dict[str, Any]],
) -> LinkDecision:
    if not email or not users_with_email:
        return LinkDecision("create", "no_user_with_this_email")
    if len(users_with_email) > 1:
        return LinkDecision("refuse", "email_matches_several_users")
    if not email_verified:
        return LinkDecision("refuse", "unverified_email_in_use")
    if not connector_trusts_email:
        return LinkDecision("refuse", "email_in_use_by_another_identity")
    return LinkDecision("link", "verified_email_trusted_for_linking", users_with_email[0]["id"])
