"""Configuration of conditional access: ``named_locations``, ``terms_of_use`` and ``conditional_access``.

The models mirror Microsoft Graph's ``conditionalAccessPolicy`` (b2b-concepts §8) with snake_case keys
and the reference's enum values: users, applications and locations conditions, grant controls
(``block``, ``mfa``, ``compliantDevice``, ``domainJoinedDevice``, terms of use) and the sign-in
frequency session control. Each model checks its own shape; ``conditional_access_problems(settings)``
checks what needs the whole file (unique ids, references to applications, named locations and
agreements). Evaluation lives in :mod:`gateway.policy.conditional_access`.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from gateway.settings.directory import _display_text, _https_or_loopback_url

if TYPE_CHECKING:
    from gateway.settings.models import Settings

Problems = list[tuple[tuple[str | int, ...], str]]

SLUG_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
OBJECT_ID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"

ALL = "All"
NONE = "None"
GUESTS_OR_EXTERNAL_USERS = "GuestsOrExternalUsers"
ALL_TRUSTED = "AllTrusted"

GuestOrExternalUserType = Literal[
    "internalGuest",
    "b2bCollaborationGuest",
    "b2bCollaborationMember",
    "b2bDirectConnectUser",
    "otherExternalUser",
    "serviceProvider",
]
BuiltInControl = Literal["block", "mfa", "compliantDevice", "domainJoinedDevice"]
PolicyState = Literal["enabled", "disabled", "enabledForReportingButNotEnforced"]


def _slug(value: str) -> str:
    if re.fullmatch(SLUG_PATTERN, value) is None:
        raise ValueError(
            f"{value!r} must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return value


def _object_id(kind: str) -> AfterValidator:
    def check(value: str) -> str:
        if not _is_object_id(value):
            raise ValueError(f"{value!r} is not a {kind} (a lower-case UUID)")
        return value

    return AfterValidator(check)


def _is_object_id(value: str) -> bool:
    return re.fullmatch(OBJECT_ID_PATTERN, value) is not None


Slug = Annotated[str, AfterValidator(_slug), WithJsonSchema({"type": "string", "pattern": SLUG_PATTERN})]
DisplayName = Annotated[str, Field(min_length=1, max_length=256), AfterValidator(_display_text)]
_UUID_SCHEMA = WithJsonSchema({"type": "string", "pattern": OBJECT_ID_PATTERN})
GroupId = Annotated[str, _object_id("directory group id"), _UUID_SCHEMA]
TenantId = Annotated[str, _object_id("tenant id"), _UUID_SCHEMA]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _no_repeats(values: Sequence[str]) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"{value!r} is listed twice")
        seen.add(value)


def _alone(values: Sequence[str], special: str, key: str) -> None:
    if special in values and len(values) > 1:
        raise ValueError(f"{special} stands alone in {key}: it cannot be combined with other values")


def _network(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value))
    except ValueError:
        pass
    try:
        network = ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(f"{value!r} is not an IPv4 or IPv6 address range (CIDR)") from None
    raise ValueError(f"{value!r} has host bits set; did you mean {network}?")


def _user_id(value: str) -> str:
    if value in (ALL, NONE, GUESTS_OR_EXTERNAL_USERS):
        return value
    if not _is_object_id(value):
        raise ValueError(
            f"{value!r} is neither a directory user id (a lower-case UUID) nor one of "
            f"{ALL}, {NONE}, {GUESTS_OR_EXTERNAL_USERS}"
        )
    return value


CidrRange = Annotated[str, AfterValidator(_network)]
UserReference = Annotated[str, AfterValidator(_user_id)]


class NamedLocation(_Strict):
    """Graph ``ipNamedLocation``: address ranges a location condition can include or exclude."""

    id: Slug = Field(description="Unique id, used in `include_locations` / `exclude_locations`.")
    display_name: DisplayName = Field(description="Name shown in What-If answers and the sign-in log.")
    ip_ranges: list[CidrRange] = Field(
        min_length=1,
        description="IPv4 and IPv6 ranges in CIDR notation (`203.0.113.0/24`, `2001:db8::/32`); "
        "host bits must be zero. A bare address is a one-address range.",
    )
    is_trusted: bool = Field(False, description="Counts as a trusted location (`AllTrusted`).")

    @field_validator("id")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value in (ALL, ALL_TRUSTED):
            raise ValueError(f"{value} is a reserved location name; choose another id")
        return value

    @field_validator("ip_ranges")
    @classmethod
    def _unique_ranges(cls, ranges: list[str]) -> list[str]:
        _no_repeats(ranges)
        return ranges

    @functools.cached_property
    def parsed_ranges(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """The ranges as networks, parsed once per loaded configuration (not at every sign-in)."""
        return tuple(ipaddress.ip_network(r) for r in self.ip_ranges)

    def networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return self.parsed_ranges


class Agreement(_Strict):
    """Terms of use a conditional-access grant can require; accepted once per version."""

    id: Slug = Field(description="Unique id, used in a grant's `terms_of_use`.")
    display_name: DisplayName = Field(description='Shown as "I have read and accept <display_name>".')
    url: Annotated[str, AfterValidator(_https_or_loopback_url)] = Field(
        description="Where the terms are published (https; http only for loopback addresses)."
    )
    version: Slug = Field(
        description="The current version. Raising it asks every user again at their next sign-in."
    )


class ExternalTenants(_Strict):
    """Graph ``conditionalAccessExternalTenants``: which home organisations a guest-type condition covers."""

    membership_kind: Literal["all", "enumerated"] = Field(
        description="`all`: guests from any organisation; `enumerated`: only from `members`."
    )
    members: list[TenantId] | None = Field(
        None, description="Home tenant ids, required with `enumerated` and only then."
    )

    @model_validator(mode="after")
    def _members_iff_enumerated(self) -> ExternalTenants:
        if self.membership_kind == "enumerated":
            if not self.members:
                raise ValueError("membership_kind enumerated needs at least one tenant id in members")
            _no_repeats(self.members)
        elif self.members is not None:
            raise ValueError("members is allowed only with membership_kind enumerated")
        return self


class GuestsOrExternalUsers(_Strict):
    """Graph ``conditionalAccessGuestsOrExternalUsers``."""

    guest_or_external_user_types: list[GuestOrExternalUserType] = Field(
        min_length=1,
        description="internalGuest, b2bCollaborationGuest, b2bCollaborationMember, b2bDirectConnectUser, "
        "otherExternalUser and/or serviceProvider.",
    )
    external_tenants: ExternalTenants = Field(
        default_factory=lambda: ExternalTenants(membership_kind="all"),
        description="Home organisations covered; left out, all of them.",
    )

    @field_validator("guest_or_external_user_types")
    @classmethod
    def _unique_types(cls, types: list[GuestOrExternalUserType]) -> list[GuestOrExternalUserType]:
        _no_repeats(types)
        return types


class UserConditions(_Strict):
    """Who a policy covers. Exclusions win over inclusions."""

    include_users: list[UserReference] = Field(
        [],
        description="`All`, `None` (alone), `GuestsOrExternalUsers` and/or directory user ids.",
    )
    exclude_users: list[UserReference] = Field(
        [], description="`GuestsOrExternalUsers` and/or directory user ids."
    )
    include_groups: list[GroupId] = Field([], description="Directory group ids whose members are covered.")
    exclude_groups: list[GroupId] = Field([], description="Directory group ids whose members are not.")
    include_guests_or_external_users: GuestsOrExternalUsers | None = Field(
        None, description="Guests of these types from these home organisations are covered."
    )
    exclude_guests_or_external_users: GuestsOrExternalUsers | None = Field(
        None, description="Guests of these types from these home organisations are not covered."
    )

    @field_validator("include_users")
    @classmethod
    def _include_shape(cls, users: list[str]) -> list[str]:
        _no_repeats(users)
        _alone(users, ALL, "include_users")
        _alone(users, NONE, "include_users")
        return users

    @field_validator("exclude_users")
    @classmethod
    def _exclude_shape(cls, users: list[str]) -> list[str]:
        _no_repeats(users)
        for special in (ALL, NONE):
            if special in users:
                raise ValueError(f"exclude_users takes user ids or {GUESTS_OR_EXTERNAL_USERS}, not {special}")
        return users

    @field_validator("include_groups", "exclude_groups")
    @classmethod
    def _unique_groups(cls, groups: list[str]) -> list[str]:
        _no_repeats(groups)
        return groups

    @model_validator(mode="after")
    def _someone_included(self) -> UserConditions:
        others = bool(self.include_groups) or self.include_guests_or_external_users is not None
        if not self.include_users and not others:
            raise ValueError(
                "include someone: set include_users, include_groups or include_guests_or_external_users"
            )
        if NONE in self.include_users and others:
            raise ValueError(
                "include_users None stands alone: remove include_groups and include_guests_or_external_users"
            )
        return self


class ApplicationConditions(_Strict):
    include_applications: list[str] = Field(
        min_length=1, description="`All`, `None` (alone) or application ids from `applications`."
    )
    exclude_applications: list[str] = Field([], description="Application ids from `applications`.")

    @field_validator("include_applications")
    @classmethod
    def _include_shape(cls, apps: list[str]) -> list[str]:
        _no_repeats(apps)
        _alone(apps, ALL, "include_applications")
        _alone(apps, NONE, "include_applications")
        return apps

    @field_validator("exclude_applications")
    @classmethod
    def _exclude_shape(cls, apps: list[str]) -> list[str]:
        _no_repeats(apps)
        for special in (ALL, NONE):
            if special in apps:
                raise ValueError(f"exclude_applications takes application ids, not {special}")
        return apps


class LocationConditions(_Strict):
    include_locations: list[str] = Field(
        min_length=1,
        description="`All` (alone; any sign-in, unknown addresses included), `AllTrusted` and/or named "
        "location ids.",
    )
    exclude_locations: list[str] = Field([], description="`AllTrusted` and/or named location ids.")

    @field_validator("include_locations")
    @classmethod
    def _include_shape(cls, locations: list[str]) -> list[str]:
        _no_repeats(locations)
        _alone(locations, ALL, "include_locations")
        return locations

    @field_validator("exclude_locations")
    @classmethod
    def _exclude_shape(cls, locations: list[str]) -> list[str]:
        _no_repeats(locations)
        if ALL in locations:
            raise ValueError(f"exclude_locations takes {ALL_TRUSTED} or named location ids, not {ALL}")
        return locations


class Conditions(_Strict):
    users: UserConditions = Field(description="Who the policy covers.")
    applications: ApplicationConditions = Field(description="Which apps the policy covers.")
    locations: LocationConditions | None = Field(
        None, description="Where from (client IP address); left out, any location."
    )


class GrantControls(_Strict):
    """Graph ``conditionalAccessGrantControls``: what a covered sign-in must satisfy."""

    operator: Literal["AND", "OR"] | None = Field(
        None,
        description="`AND`: every control; `OR`: any one. Required when there is more than one control "
        "or agreement.",
    )
    built_in_controls: list[BuiltInControl] = Field(
        [], description="`block` (alone), `mfa`, `compliantDevice`, `domainJoinedDevice`."
    )
    terms_of_use: list[Slug] = Field([], description="Agreement ids (from `terms_of_use`) to accept.")

    @field_validator("built_in_controls")
    @classmethod
    def _controls_shape(cls, controls: list[BuiltInControl]) -> list[BuiltInControl]:
        _no_repeats(controls)
        _alone(controls, "block", "built_in_controls")
        return controls

    @field_validator("terms_of_use")
    @classmethod
    def _unique_terms(cls, terms: list[str]) -> list[str]:
        _no_repeats(terms)
        return terms

    @model_validator(mode="after")
    def _grant_shape(self) -> GrantControls:
        count = len(self.built_in_controls) + len(self.terms_of_use)
        if count == 0:
            raise ValueError("a grant needs at least one of built_in_controls or terms_of_use")
        if "block" in self.built_in_controls and self.terms_of_use:
            raise ValueError("block stands alone: it cannot be combined with terms_of_use")
        if count > 1 and self.operator is None:
            raise ValueError("operator (AND or OR) is required with more than one control or agreement")
        return self


class SignInFrequency(_Strict):
    """Graph ``signInFrequencySessionControl``: how old the sign-in's factors may be."""

    is_enabled: bool = Field(True, description="Whether the control applies.")
    type: Literal["days", "hours"] | None = Field(None, description="Unit of `value` (timeBased only).")
    value: int | None = Field(None, description="1-365 days or 1-23 hours (timeBased only).")
    authentication_type: Literal["primaryAndSecondaryAuthentication", "secondaryAuthentication"] = Field(
        "primaryAndSecondaryAuthentication",
        description="primaryAndSecondaryAuthentication: sign in again; secondaryAuthentication: MFA again.",
    )
    frequency_interval: Literal["timeBased", "everyTime"] = Field(
        "timeBased",
        description="timeBased: within `value` `type`; everyTime: performed during this very sign-in.",
    )

    @model_validator(mode="after")
    def _period_shape(self) -> SignInFrequency:
        if self.frequency_interval == "everyTime":
            if self.type is not None or self.value is not None:
                raise ValueError("frequency_interval everyTime takes no type or value")
            return self
        if self.type is None or self.value is None:
            raise ValueError("frequency_interval timeBased needs type (days or hours) and value")
        limit = 365 if self.type == "days" else 23
        if not 1 <= self.value <= limit:
            hint = "" if self.type == "days" else " (use type days for longer periods)"
            raise ValueError(f"value must be 1 to {limit} {self.type}{hint}")
        return self

    @property
    def period_seconds(self) -> int | None:
        """The allowed age in seconds (timeBased), None for everyTime."""
        if self.type is None or self.value is None:
            return None
        return self.value * (86400 if self.type == "days" else 3600)


class SessionControls(_Strict):
    sign_in_frequency: SignInFrequency | None = Field(
        None, description="Re-authentication or fresh MFA after a period, or at every sign-in."
    )

    @model_validator(mode="after")
    def _something(self) -> SessionControls:
        if self.sign_in_frequency is None:
            raise ValueError(
                "set at least one session control (sign_in_frequency), or leave session_controls out"
            )
        return self


class ConditionalAccessPolicy(_Strict):
    """Graph ``conditionalAccessPolicy``: conditions, then grant and/or session controls."""

    id: Slug = Field(description="Unique id, shown in What-If answers and the sign-in log.")
    display_name: DisplayName = Field(description="Human-readable name.")
    state: PolicyState = Field(
        "enabled",
        description="enabled, disabled, or enabledForReportingButNotEnforced (report-only: evaluated and "
        "logged, never enforced).",
    )
    conditions: Conditions = Field(description="Users, applications and (optionally) locations covered.")
    grant_controls: GrantControls | None = Field(None, description="What a covered sign-in must satisfy.")
    session_controls: SessionControls | None = Field(None, description="Session limits for covered sign-ins.")

    @model_validator(mode="after")
    def _has_controls(self) -> ConditionalAccessPolicy:
        if self.grant_controls is None and self.session_controls is None:
            raise ValueError("a policy needs grant_controls, session_controls or both")
        return self


def conditional_access_problems(settings: Settings) -> Problems:
    """Unique ids and references to applications, named locations and agreements."""
    problems: Problems = []
    problems += _duplicates("named_locations", [n.id for n in settings.named_locations])
    problems += _duplicates("terms_of_use", [a.id for a in settings.terms_of_use])
    problems += _duplicates("conditional_access", [p.id for p in settings.conditional_access])
    app_ids = {a.id for a in settings.applications}
    location_ids = {n.id for n in settings.named_locations}
    agreement_ids = {a.id for a in settings.terms_of_use}
    for i, policy in enumerate(settings.conditional_access):
        where: tuple[str | int, ...] = ("conditional_access", i, "conditions")
        apps = policy.conditions.applications
        for key, values in (
            ("include_applications", apps.include_applications),
            ("exclude_applications", apps.exclude_applications),
        ):
            for j, app in enumerate(values):
                if app not in (ALL, NONE) and app not in app_ids:
                    problems.append(((*where, "applications", key, j), f"unknown application {app!r}"))
        locations = policy.conditions.locations
        if locations is not None:
            for key, values in (
                ("include_locations", locations.include_locations),
                ("exclude_locations", locations.exclude_locations),
            ):
                for j, location in enumerate(values):
                    if location not in (ALL, ALL_TRUSTED) and location not in location_ids:
                        problems.append(
                            ((*where, "locations", key, j), f"unknown named location {location!r}")
                        )
        if policy.grant_controls is not None:
            for j, agreement in enumerate(policy.grant_controls.terms_of_use):
                if agreement not in agreement_ids:
                    problems.append(
                        (
                            ("conditional_access", i, "grant_controls", "terms_of_use", j),
                            f"unknown agreement {agreement!r} (see terms_of_use)",
                        )
                    )
    return problems


def _duplicates(section: str, ids: list[str]) -> Problems:
    seen: set[str] = set()
    found: Problems = []
    for index, item in enumerate(ids):
        if item in seen:
            found.append(((section, index, "id"), f"duplicate id {item!r}"))
        seen.add(item)
    return found
