"""Conditional access: which policies apply to one sign-in and what they demand (b2b-concepts §8).

Pure: ``evaluate`` takes the configured policies, named locations and agreements, who signs in
(``Subject``) and the trusted facts of the sign-in (``Context``, with ``now`` passed in) and returns an
``Evaluation``: one ``PolicyResult`` per policy (Graph ``appliedConditionalAccessPolicy`` results),
whether the sign-in is blocked, the user actions still needed, and the sign-in log's
``conditionalAccessStatus`` and ``authenticationRequirement``.

A policy applies when its users, applications and locations conditions all match (checked in that
order; the first that fails is the reason; exclusions win over inclusions). Its grant then succeeds,
needs a user action (MFA, accepting terms, signing in again) or fails (block, or a device state no
user action can produce). Report-only policies are evaluated the same way but never block or ask.

Reason codes (stable; the What-If answer and the audit record print them):
``policy_disabled``, ``user_not_included``, ``user_excluded``, ``application_not_included``,
``application_excluded``, ``location_not_included``, ``location_excluded`` (not applied);
``grant_satisfied``, ``session_controls_satisfied`` (success); ``mfa_required``, ``terms_required``,
``sign_in_frequency_reauthentication``, ``sign_in_frequency_mfa`` (user action required);
``blocked_by_policy``, ``device_not_compliant``, ``device_not_hybrid_joined``, ``terms_unavailable``
(failure). User actions (``Evaluation.required``): ``mfa``, ``reauthentication`` (a fresh primary
sign-in; factors from before it no longer count), ``terms:<agreement id>``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from gateway.settings.conditional_access import (
    ALL,
    ALL_TRUSTED,
    GUESTS_OR_EXTERNAL_USERS,
    Agreement,
    ConditionalAccessPolicy,
    GrantControls,
    GuestsOrExternalUsers,
    NamedLocation,
    SignInFrequency,
    UserConditions,
)

PolicyResultValue = Literal[
    "success",
    "failure",
    "userActionRequired",
    "notApplied",
    "notEnabled",
    "reportOnlySuccess",
    "reportOnlyFailure",
    "reportOnlyInterrupted",
    "reportOnlyNotApplied",
]
NOT_APPLIED_RESULTS: frozenset[str] = frozenset({"notApplied", "reportOnlyNotApplied", "notEnabled"})
REPORT_ONLY = "enabledForReportingButNotEnforced"
_REPORT_ONLY_RESULTS: dict[str, PolicyResultValue] = {
    "success": "reportOnlySuccess",
    "failure": "reportOnlyFailure",
    "userActionRequired": "reportOnlyInterrupted",
    "notApplied": "reportOnlyNotApplied",
}
_ADDRESS = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Subject:
    """Who signs in, as the directory and the trusted home organisation say."""

    user_id: str | None  # our directory id
    group_ids: frozenset[str]  # our directory group ids
    external_user_type: str | None  # None: one of the organisation's own members; else a reference guest type
    home_tenant_id: str | None


@dataclass(frozen=True)
class Context:
    """The sign-in's trusted facts. Times are Unix seconds."""

    app_id: str
    client_ip: str | None
    mfa: bool  # MFA satisfied (trusted from home or done here)
    compliant_device: bool  # trusted facts only
    hybrid_joined_device: bool
    accepted_terms: Mapping[str, str]  # agreement id -> accepted version
    auth_time: int  # primary authentication time
    mfa_time: int | None  # when MFA was satisfied
    signin_started_at: int  # factors at/after this were performed in this sign-in (everyTime)
    now: int


@dataclass(frozen=True)
class PolicyResult:
    policy_id: str
    display_name: str
    state: str
    result: PolicyResultValue
    reason: str
    enforced_grant_controls: tuple[str, ...]  # e.g. ("mfa",), ("termsOfUse:guest-terms",)
    enforced_session_controls: tuple[str, ...]  # e.g. ("signInFrequency",)
    unmet: tuple[str, ...]  # "mfa", "terms:<id>", "compliantDevice", "domainJoinedDevice", "block", ...


@dataclass(frozen=True)
class Evaluation:
    results: tuple[PolicyResult, ...]  # one per configured policy, in configuration order
    blocked: bool
    block_reason: str | None  # the first enforced failure's reason
    required: tuple[str, ...]  # sorted user actions enforced policies need; () when blocked
    status: Literal["success", "failure", "notApplied"]  # conditionalAccessStatus
    authentication_requirement: Literal["singleFactorAuthentication", "multiFactorAuthentication"]


@dataclass(frozen=True)
class _Control:
    token: str  # what `unmet` says: "mfa", "terms:<id>", "compliantDevice", ...
    met: bool
    actionable: bool  # the user can satisfy it now (MFA, accepting terms)
    reason: str


@dataclass(frozen=True)
class _Outcome:
    """One applied policy before OR choices are made across policies."""

    result: Literal["success", "failure", "userActionRequired"]
    reason: str
    unmet: tuple[str, ...]  # AND unmet controls, a failure's unmet controls, frequency needs
    options: tuple[str, ...]  # an unmet OR grant: the actions of which any one would do
    mfa_needed: bool


def evaluate(
    policies: Sequence[ConditionalAccessPolicy],
    named_locations: Sequence[NamedLocation],
    agreements: Sequence[Agreement],
    subject: Subject,
    context: Context,
) -> Evaluation:
    """Evaluate every policy for one sign-in; see the module docstring for the rules."""
    locations = {location.id: location for location in named_locations}
    versions = {agreement.id: agreement.version for agreement in agreements}
    address = _address(context.client_ip)
    outcomes: list[_Outcome | str] = []  # a str is the reason a policy did not apply
    for policy in policies:
        if policy.state == "disabled":
            outcomes.append("policy_disabled")
            continue
        skipped = _not_applied(policy, subject, context.app_id, address, locations)
        outcomes.append(skipped if skipped is not None else _applied(policy, context, versions))
    chosen = _choose_options(policies, outcomes)
    results = tuple(
        _result(p, o, chosen.get(i)) for i, (p, o) in enumerate(zip(policies, outcomes, strict=True))
    )
    enforced = [
        (result, outcome)
        for policy, result, outcome in zip(policies, results, outcomes, strict=True)
        if policy.state == "enabled" and isinstance(outcome, _Outcome)
    ]
    failures = [result for result, _ in enforced if result.result == "failure"]
    required = () if failures else _required(result for result, _ in enforced)
    mfa = any(outcome.mfa_needed or "mfa" in result.unmet for result, outcome in enforced)
    return Evaluation(
        results=results,
        blocked=bool(failures),
        block_reason=failures[0].reason if failures else None,
        required=required,
        status="failure" if failures else ("success" if enforced else "notApplied"),
        authentication_requirement="multiFactorAuthentication" if mfa else "singleFactorAuthentication",
    )


def _address(client_ip: str | None) -> _ADDRESS | None:
    """The client address (an IPv4-mapped IPv6 address as IPv4); None when unknown or unparsable."""
    if not client_ip:
        return None
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _not_applied(
    policy: ConditionalAccessPolicy,
    subject: Subject,
    app_id: str,
    address: _ADDRESS | None,
    locations: Mapping[str, NamedLocation],
) -> str | None:
    """The first condition that does not match, or None when the policy applies."""
    users = policy.conditions.users
    if _user_excluded(users, subject):
        return "user_excluded"
    if not _user_included(users, subject):
        return "user_not_included"
    apps = policy.conditions.applications
    if app_id in apps.exclude_applications:
        return "application_excluded"
    if ALL not in apps.include_applications and app_id not in apps.include_applications:
        return "application_not_included"
    where = policy.conditions.locations
    if where is not None:
        if any(_at(name, address, locations) for name in where.exclude_locations):
            return "location_excluded"
        if ALL not in where.include_locations and not any(
            _at(name, address, locations) for name in where.include_locations
        ):
            return "location_not_included"
    return None


def _user_included(users: UserConditions, subject: Subject) -> bool:
    listed = users.include_users
    return (
        ALL in listed
        or (GUESTS_OR_EXTERNAL_USERS in listed and subject.external_user_type is not None)
        or (subject.user_id is not None and subject.user_id in listed)
        or bool(subject.group_ids.intersection(users.include_groups))
        or _guest_matches(users.include_guests_or_external_users, subject)
    )


def _user_excluded(users: UserConditions, subject: Subject) -> bool:
    listed = users.exclude_users
    return (
        (GUESTS_OR_EXTERNAL_USERS in listed and subject.external_user_type is not None)
        or (subject.user_id is not None and subject.user_id in listed)
        or bool(subject.group_ids.intersection(users.exclude_groups))
        or _guest_matches(users.exclude_guests_or_external_users, subject)
    )


def _guest_matches(condition: GuestsOrExternalUsers | None, subject: Subject) -> bool:
    if condition is None or subject.external_user_type not in condition.guest_or_external_user_types:
        return False
    tenants = condition.external_tenants
    if tenants.membership_kind == "all":
        return True
    return subject.home_tenant_id is not None and subject.home_tenant_id in (tenants.members or [])


def _at(name: str, address: _ADDRESS | None, locations: Mapping[str, NamedLocation]) -> bool:
    """Whether the address is inside a named location (or any trusted one); never for an unknown address."""
    if address is None:
        return False
    if name == ALL_TRUSTED:
        candidates = [location for location in locations.values() if location.is_trusted]
    else:
        candidates = [locations[name]] if name in locations else []
    return any(address in network for location in candidates for network in location.networks())


def _applied(policy: ConditionalAccessPolicy, context: Context, versions: Mapping[str, str]) -> _Outcome:
    grant = policy.grant_controls
    frequency = _frequency(policy)
    fresh = _frequency_needs(frequency, context) if frequency is not None else None
    secondary = frequency is not None and frequency.authentication_type == "secondaryAuthentication"
    if grant is None:
        if fresh is None:
            return _Outcome("success", "session_controls_satisfied", (), (), secondary)
        return _Outcome("userActionRequired", _FRESH_REASONS[fresh], (fresh,), (), secondary)
    controls = _controls(grant, context, versions)
    unmet = [control for control in controls if not control.met]
    extra = (fresh,) if fresh is not None else ()
    mfa_control = next((c for c in controls if c.token == "mfa"), None)
    if grant.operator == "OR" and len(unmet) < len(controls):
        others_met = any(c.met for c in controls if c.token != "mfa")
        mfa_needed = secondary or (mfa_control is not None and mfa_control.met and not others_met)
        if fresh is None:
            return _Outcome("success", "grant_satisfied", (), (), mfa_needed)
        return _Outcome("userActionRequired", _FRESH_REASONS[fresh], extra, (), mfa_needed)
    if grant.operator == "OR":
        options = tuple(c.token for c in unmet if c.actionable)
        if not options:
            return _Outcome("failure", unmet[0].reason, tuple(c.token for c in unmet), (), secondary)
        first = next(c for c in unmet if c.actionable)
        return _Outcome("userActionRequired", first.reason, extra, options, secondary)
    mfa_needed = secondary or mfa_control is not None
    stuck = [control for control in unmet if not control.actionable]
    if stuck:
        return _Outcome("failure", stuck[0].reason, tuple(c.token for c in unmet), (), mfa_needed)
    if unmet:
        tokens = tuple(dict.fromkeys([*(c.token for c in unmet), *extra]))
        return _Outcome("userActionRequired", unmet[0].reason, tokens, (), mfa_needed)
    if fresh is not None:
        return _Outcome("userActionRequired", _FRESH_REASONS[fresh], extra, (), mfa_needed)
    return _Outcome("success", "grant_satisfied", (), (), mfa_needed)


_FRESH_REASONS = {"reauthentication": "sign_in_frequency_reauthentication", "mfa": "sign_in_frequency_mfa"}


def _controls(grant: GrantControls, context: Context, versions: Mapping[str, str]) -> list[_Control]:
    """The grant's controls in configuration order (built-in controls, then agreements)."""
    controls: list[_Control] = []
    for name in grant.built_in_controls:
        if name == "block":
            controls.append(_Control("block", False, False, "blocked_by_policy"))
        elif name == "mfa":
            controls.append(_Control("mfa", context.mfa, True, "mfa_required"))
        elif name == "compliantDevice":
            controls.append(_Control(name, context.compliant_device, False, "device_not_compliant"))
        else:
            controls.append(_Control(name, context.hybrid_joined_device, False, "device_not_hybrid_joined"))
    for agreement in grant.terms_of_use:
        version = versions.get(agreement)
        if version is None:  # configuration references an agreement that is not there: fail closed
            controls.append(_Control(f"terms:{agreement}", False, False, "terms_unavailable"))
        else:
            accepted = context.accepted_terms.get(agreement) == version
            controls.append(_Control(f"terms:{agreement}", accepted, True, "terms_required"))
    return controls


def _frequency(policy: ConditionalAccessPolicy) -> SignInFrequency | None:
    session = policy.session_controls
    frequency = session.sign_in_frequency if session is not None else None
    return frequency if frequency is not None and frequency.is_enabled else None


def _frequency_needs(frequency: SignInFrequency, context: Context) -> str | None:
    """``reauthentication`` or ``mfa`` when the factor the control covers is too old, else None."""
    primary = frequency.authentication_type == "primaryAndSecondaryAuthentication"
    performed = context.auth_time if primary else context.mfa_time
    if frequency.frequency_interval == "everyTime":
        fresh = performed is not None and performed >= context.signin_started_at
    else:
        period = frequency.period_seconds
        fresh = performed is not None and period is not None and context.now - performed <= period
    if fresh:
        return None
    return "reauthentication" if primary else "mfa"


def _choose_options(
    policies: Sequence[ConditionalAccessPolicy], outcomes: Sequence[_Outcome | str]
) -> dict[int, str]:
    """For each unmet OR grant, the one action to ask for: one that enforced policies already need
    (AND grants, frequency, earlier choices), else its first actionable control in configuration order.
    Enforced policies choose first, those with fewer options before those with more."""
    needed: set[str] = set()
    for policy, outcome in zip(policies, outcomes, strict=True):
        if policy.state == "enabled" and isinstance(outcome, _Outcome):
            needed.update(outcome.unmet if outcome.result == "userActionRequired" else ())
    chosen: dict[int, str] = {}
    order = sorted(range(len(policies)), key=lambda i: (policies[i].state != "enabled", _width(outcomes[i])))
    for index in order:
        outcome = outcomes[index]
        if not isinstance(outcome, _Outcome) or not outcome.options:
            continue
        pick = next((option for option in outcome.options if option in needed), outcome.options[0])
        chosen[index] = pick
        if policies[index].state == "enabled":
            needed.add(pick)
    return chosen


def _width(outcome: _Outcome | str) -> int:
    return len(outcome.options) if isinstance(outcome, _Outcome) else 0


def _result(policy: ConditionalAccessPolicy, outcome: _Outcome | str, choice: str | None) -> PolicyResult:
    if isinstance(outcome, str):
        result: PolicyResultValue = "notEnabled" if outcome == "policy_disabled" else "notApplied"
        if policy.state == REPORT_ONLY and result == "notApplied":
            result = "reportOnlyNotApplied"
        return PolicyResult(policy.id, policy.display_name, policy.state, result, outcome, (), (), ())
    unmet = outcome.unmet
    reason = outcome.reason
    if choice is not None:
        unmet = tuple(dict.fromkeys([choice, *unmet]))
        reason = "mfa_required" if choice == "mfa" else "terms_required"
    value: PolicyResultValue = outcome.result
    if policy.state == REPORT_ONLY:
        value = _REPORT_ONLY_RESULTS[outcome.result]
    return PolicyResult(
        policy.id,
        policy.display_name,
        policy.state,
        value,
        reason,
        _grant_names(policy.grant_controls),
        ("signInFrequency",) if _frequency(policy) is not None else (),
        unmet,
    )


def _grant_names(grant: GrantControls | None) -> tuple[str, ...]:
    if grant is None:
        return ()
    return (*grant.built_in_controls, *(f"termsOfUse:{agreement}" for agreement in grant.terms_of_use))


def _required(results: Iterable[PolicyResult]) -> tuple[str, ...]:
    return tuple(sorted({token for r in results if r.result == "userActionRequired" for token in r.unmet}))
