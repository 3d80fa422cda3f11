"""The What-If answer (b2b-concepts §8): a conditional-access ``Evaluation`` as JSON.

Used by the CLI and the admin API. ``appliedPolicies`` are the enabled and report-only policies whose
conditions matched, with their controls and outcome; ``notAppliedPolicies`` are the others, each with
the first condition that failed (``policy_disabled`` for a disabled policy, which is never evaluated).
Keys use Graph's camelCase; values are the engine's reason codes and result values.
"""

from __future__ import annotations

from typing import Any

from gateway.policy.conditional_access import NOT_APPLIED_RESULTS, Evaluation, PolicyResult


def explain(evaluation: Evaluation) -> dict[str, Any]:
    """``outcome`` is ``block``, ``userActionRequired`` (see ``required``) or ``grant``."""
    if evaluation.blocked:
        outcome = "block"
    elif evaluation.required:
        outcome = "userActionRequired"
    else:
        outcome = "grant"
    results = evaluation.results
    return {
        "outcome": outcome,
        "blockReason": evaluation.block_reason,
        "required": list(evaluation.required),
        "conditionalAccessStatus": evaluation.status,
        "authenticationRequirement": evaluation.authentication_requirement,
        "appliedPolicies": [_applied(r) for r in results if r.result not in NOT_APPLIED_RESULTS],
        "notAppliedPolicies": [_not_applied(r) for r in results if r.result in NOT_APPLIED_RESULTS],
    }


def _applied(result: PolicyResult) -> dict[str, Any]:
    return {
        "id": result.policy_id,
        "displayName": result.display_name,
        "state": result.state,
        "result": result.result,
        "reason": result.reason,
        "enforcedGrantControls": list(result.enforced_grant_controls),
        "enforcedSessionControls": list(result.enforced_session_controls),
        "unmet": list(result.unmet),
    }


def _not_applied(result: PolicyResult) -> dict[str, Any]:
    return {
        "id": result.policy_id,
        "displayName": result.display_name,
        "state": result.state,
        "reason": result.reason,
    }
