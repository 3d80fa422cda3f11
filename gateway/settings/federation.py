"""Configuration of who signs in where, and what the organisation lets in and trusts from whom.

``cross_tenant_access`` mirrors the reference's cross-tenant access policy (b2b-concepts §5):
``default`` covers every organisation without its own entry; ``partners[]`` names a partner
organisation by tenant id and domains, the connector its users sign in through, and optionally
its own inbound collaboration, trust, consent and claims-mapping settings (``null`` or left out
inherits the default; each trust flag inherits on its own). The consistency rules of §5.3 are
checked here with the key path of the offending value; ``cross_tenant_problems`` adds the rules
that need the rest of the settings (application ids, the tenant's own id).

``redemption`` mirrors the reference's ``invitationRedemptionIdentityProviderConfiguration``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from idp_connectors.base import check_domain

if TYPE_CHECKING:
    from gateway.settings.models import Settings

TenantId = Annotated[str, Field(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
DomainName = Annotated[str, AfterValidator(check_domain)]
PrimarySource = Literal["azureActiveDirectory", "externalFederation", "socialIdentityProviders"]
Fallback = Literal["defaultConfiguredIdp", "emailOneTimePasscode", "microsoftAccount"]
TargetType = Literal["user", "group", "application"]
AccessType = Literal["allowed", "blocked"]
Loc = tuple[str | int, ...]
Problems = list[tuple[Loc, str]]

ALL_USERS = "AllUsers"
ALL_APPLICATIONS = "AllApplications"
KEYWORD_TYPES: dict[str, TargetType] = {ALL_USERS: "user", ALL_APPLICATIONS: "application"}
MSA_TENANT_ID = "9188040d-6c67-4c5b-b112-36a304b66dad"
"""The tenant id personal Microsoft accounts carry in ``tid``: no organisation."""
DEFAULT_MFA_ACR_VALUES = [
    "https://refeds.org/profile/mfa",
    "http://schemas.microsoft.com/claims/multipleauthn",
]


def _printable(value: str) -> str:
    """A non-empty value of visible ASCII characters (ids, claim names, amr/acr values)."""
    if not value:
        raise ValueError("must not be empty")
    if any(not "\x21" <= ch <= "\x7e" for ch in value):
        raise ValueError("must be visible ASCII characters, without spaces")
    return value


def _trimmed(value: str) -> str:
    """A non-empty value without leading or trailing spaces (device claim values)."""
    if not value.strip():
        raise ValueError("must not be empty")
    if value != value.strip():
        raise ValueError("must not start or end with spaces")
    return value


Token = Annotated[str, Field(max_length=256), AfterValidator(_printable)]
Text = Annotated[str, Field(max_length=256), AfterValidator(_trimmed)]


def _refuse(title: str, problems: Problems) -> None:
    """Raise every problem at once, each at its own key path (nested under the caller's)."""
    if problems:
        raise ValidationError.from_exception_data(
            title,
            [
                InitErrorDetails(type=PydanticCustomError("consistency", message), loc=loc, input=None)
                for loc, message in problems
            ],
        )


def _repeats(values: Sequence[str], what: str, key: Callable[[str], str] = str) -> Problems:
    seen: set[str] = set()
    found: Problems = []
    for index, value in enumerate(values):
        if key(value) in seen:
            found.append(((index,), f"{what} {value!r} is listed twice"))
        seen.add(key(value))
    return found


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AccessTarget(_Strict):
    """One entry of a target list (Graph ``crossTenantAccessPolicyTarget``)."""

    target: Token = Field(
        description="A partner user or group object id, one of this gateway's application ids, or the "
        "keyword `AllUsers` (target_type user) or `AllApplications` (target_type application)."
    )
    target_type: TargetType = Field(description="user, group or application.")

    @model_validator(mode="after")
    def _keywords(self) -> AccessTarget:
        problems: Problems = []
        for keyword, kind in KEYWORD_TYPES.items():
            if self.target == keyword and self.target_type != kind:
                problems.append((("target_type",), f"{keyword} goes with target_type {kind}"))
            elif self.target != keyword and self.target.lower() == keyword.lower():
                problems.append((("target",), f"write the keyword as {keyword}"))
        _refuse("AccessTarget", problems)
        return self


class TargetConfiguration(_Strict):
    """Graph ``crossTenantAccessPolicyTargetConfiguration``: allow only, or block only, these targets."""

    access_type: AccessType = Field(
        description="allowed: only the targets get in (everyone else is blocked); "
        "blocked: the targets are kept out (everyone else gets in)."
    )
    targets: list[AccessTarget] = Field(min_length=1, description="Who or what the access type applies to.")

    @field_validator("targets")
    @classmethod
    def _well_formed(cls, targets: list[AccessTarget]) -> list[AccessTarget]:
        problems: Problems = []
        seen: set[tuple[str, str]] = set()
        for index, target in enumerate(targets):
            if (target.target_type, target.target) in seen:
                problems.append(((index,), f"{target.target_type} target {target.target!r} is listed twice"))
            seen.add((target.target_type, target.target))
            if target.target in KEYWORD_TYPES and len(targets) > 1:
                problems.append(
                    ((index, "target"), f"{target.target} stands alone: it already covers every "
                     f"{KEYWORD_TYPES[target.target]}; remove the other targets")
                )  # fmt: skip
        _refuse("TargetConfiguration", problems)
        return targets

    def covers_all(self) -> bool:
        return any(t.target in KEYWORD_TYPES for t in self.targets)


def _all(kind: TargetType, keyword: str) -> TargetConfiguration:
    return TargetConfiguration(
        access_type="allowed", targets=[AccessTarget(target=keyword, target_type=kind)]
    )


class B2BCollaborationInbound(_Strict):
    """Graph ``crossTenantAccessPolicyB2BSetting`` (inbound): which partner users reach which apps."""

    users_and_groups: TargetConfiguration = Field(
        default_factory=lambda: _all("user", ALL_USERS),
        description="Partner users and groups (targets of type user or group, or AllUsers).",
    )
    applications: TargetConfiguration = Field(
        default_factory=lambda: _all("application", ALL_APPLICATIONS),
        description="This gateway's applications (targets of type application, or AllApplications).",
    )

    @model_validator(mode="after")
    def _consistent(self) -> B2BCollaborationInbound:
        problems: Problems = []
        for index, target in enumerate(self.users_and_groups.targets):
            if target.target_type == "application":
                problems.append(
                    (("users_and_groups", "targets", index, "target_type"),
                     "users_and_groups takes user and group targets; applications go under applications")
                )  # fmt: skip
        for index, target in enumerate(self.applications.targets):
            if target.target_type != "application":
                problems.append(
                    (("applications", "targets", index, "target_type"),
                     "applications takes application targets; users and groups go under users_and_groups")
                )  # fmt: skip
        users, apps = self.users_and_groups, self.applications
        if users.access_type != apps.access_type:
            problems.append(
                (("applications", "access_type"),
                 f"must agree with users_and_groups.access_type ({users.access_type}): a pair of "
                 "allowed and blocked rules conflicts")
            )  # fmt: skip
        elif users.access_type == "blocked" and users.covers_all() and not apps.covers_all():
            problems.append(
                (("applications", "targets"),
                 "when all users are blocked every application is blocked: use AllApplications")
            )  # fmt: skip
        _refuse("B2BCollaborationInbound", problems)
        return self


class InboundTrust(_Strict):
    """Graph ``crossTenantAccessPolicyInboundTrust``: which home-organisation claims count here."""

    mfa_accepted: bool = Field(False, description="Trust MFA done at the guest's home organisation.")
    compliant_device_accepted: bool = Field(
        False, description="Trust the home organisation's claim that the device is compliant."
    )
    hybrid_joined_device_accepted: bool = Field(
        False, description="Trust the home organisation's claim that the device is hybrid joined."
    )


class PartnerInboundTrust(_Strict):
    """A partner's trust flags; each flag left out (or null) inherits the default's."""

    mfa_accepted: bool | None = Field(None, description="null: the default's mfa_accepted.")
    compliant_device_accepted: bool | None = Field(
        None, description="null: the default's compliant_device_accepted."
    )
    hybrid_joined_device_accepted: bool | None = Field(
        None, description="null: the default's hybrid_joined_device_accepted."
    )


class AutomaticUserConsent(_Strict):
    """Graph ``inboundAllowed`` of ``automaticUserConsentSettings``."""

    inbound_allowed: bool = Field(
        False,
        description="Guests from this organisation skip the consent page at redemption (agreed with "
        "the partner, who allows it outbound); they get a notification mail instead. Partner entries only.",
    )


class DeviceClaim(_Strict):
    """Where an upstream states a device fact: a claim, and the values that mean yes."""

    claim: Token = Field(description="The claim name (looked up in the raw claims, then the device claims).")
    values: list[Text] = Field(
        ["true"],
        min_length=1,
        description="Values meaning yes, compared case-insensitively (JSON true also).",
    )

    @field_validator("values")
    @classmethod
    def _unique(cls, values: list[str]) -> list[str]:
        _refuse("DeviceClaim", _repeats(values, "value", str.lower))
        return values


class ClaimsMapping(_Strict):
    """What counts as MFA and as device state in an upstream's claims, and where its ids are."""

    mfa_amr_values: list[Token] = Field(["mfa"], description="OIDC `amr` values (RFC 8176) meaning MFA.")
    mfa_acr_values: list[Token] = Field(
        DEFAULT_MFA_ACR_VALUES,
        description="OIDC `acr` or SAML AuthnContextClassRef values meaning MFA.",
    )
    mfa_max_age_seconds: Annotated[int, Field(gt=0, le=366 * 86400)] | None = Field(
        None, description="How old an upstream MFA may be (needs `auth_time`); null: any age."
    )
    compliant_device: DeviceClaim | None = Field(
        default_factory=lambda: DeviceClaim(claim="iscompliant"),
        description="The claim saying the device is compliant; null: never.",
    )
    hybrid_joined_device: DeviceClaim | None = Field(
        default_factory=lambda: DeviceClaim(claim="ismanaged"),
        description="The claim saying the device is hybrid joined; null: never.",
    )
    user_id_claim: Token = Field("oid", description="The claim holding the partner's user object id.")
    groups_claim: Token = Field("groups", description="The claim holding the partner's group ids.")

    @field_validator("mfa_amr_values", "mfa_acr_values")
    @classmethod
    def _unique(cls, values: list[str]) -> list[str]:
        _refuse("ClaimsMapping", _repeats(values, "value"))
        return values


class Partner(_Strict):
    tenant_id: TenantId = Field(description="The partner organisation's tenant id (its guests' home `tid`).")
    name: str | None = Field(None, min_length=1, max_length=256)
    domains: list[DomainName] = Field([], description="Email domains of the partner's users (exact match).")
    connector: str | None = Field(
        None,
        description="The connector its users sign in through (typically an `oidc` connector at its issuer).",
    )
    is_service_provider: bool = Field(
        False, description="The partner is a service provider of this organisation (isServiceProvider)."
    )
    b2b_collaboration_inbound: B2BCollaborationInbound | None = Field(
        None, description="Which of its users reach which apps; null: the default's."
    )
    inbound_trust: PartnerInboundTrust | None = Field(
        None, description="Which of its claims count here; null (or a flag left out): the default's."
    )
    automatic_user_consent: AutomaticUserConsent | None = Field(None, description="null: the default's.")
    claims_mapping: ClaimsMapping | None = Field(
        None, description="How to read its MFA, device and id claims; null: the default's."
    )


AUTOMATIC_CONSENT_PER_PARTNER = (
    "automatic redemption is agreed with one organisation at a time: set it in that organisation's "
    "partner entry (the default's is false and read-only)"
)


class CrossTenantDefault(_Strict):
    """The settings of every organisation without its own partner entry (the service default)."""

    b2b_collaboration_inbound: B2BCollaborationInbound = Field(
        default_factory=B2BCollaborationInbound,
        description="Which external users reach which apps; AllUsers only (no specific users or groups).",
    )
    inbound_trust: InboundTrust = Field(default_factory=InboundTrust, description="Trusted home claims.")
    automatic_user_consent: AutomaticUserConsent = Field(default_factory=AutomaticUserConsent)
    claims_mapping: ClaimsMapping = Field(
        default_factory=ClaimsMapping, description="How to read upstream MFA, device and id claims."
    )

    @model_validator(mode="after")
    def _all_users_only(self) -> CrossTenantDefault:
        _refuse(
            "CrossTenantDefault",
            [
                (("b2b_collaboration_inbound", "users_and_groups", "targets", index, "target"),
                 "the default covers every organisation, so it cannot name specific users or groups: "
                 "use AllUsers, or give the organisation a partner entry")
                for index, target in enumerate(self.b2b_collaboration_inbound.users_and_groups.targets)
                if target.target != ALL_USERS
            ]
            + ([(("automatic_user_consent", "inbound_allowed"), AUTOMATIC_CONSENT_PER_PARTNER)]
               if self.automatic_user_consent.inbound_allowed else []),
        )  # fmt: skip
        return self


class CrossTenantAccess(_Strict):
    default: CrossTenantDefault = Field(
        default_factory=CrossTenantDefault, description="Every organisation without its own entry."
    )
    partners: list[Partner] = Field([], description="Partner organisations, each overriding the default.")

    @field_validator("partners")
    @classmethod
    def _unique_tenants(cls, partners: list[Partner]) -> list[Partner]:
        seen: set[str] = set()
        for partner in partners:
            if partner.tenant_id in seen:
                raise ValueError(f"tenant {partner.tenant_id} has two partner entries")
            seen.add(partner.tenant_id)
        return partners

    def partner(self, tenant_id: str) -> Partner | None:
        """The partner entry of ``tenant_id`` (compared in lower case), if any."""
        wanted = tenant_id.lower()
        return next((p for p in self.partners if p.tenant_id == wanted), None)


def cross_tenant_problems(settings: Settings) -> Problems:
    """The rules that need the rest of the settings, each with its key path from the top."""
    problems: Problems = []
    app_ids = {app.id for app in settings.applications}
    cta = settings.cross_tenant_access
    entries: list[tuple[Loc, B2BCollaborationInbound | None]] = [
        (("cross_tenant_access", "default"), cta.default.b2b_collaboration_inbound)
    ]
    entries += [
        (("cross_tenant_access", "partners", i), p.b2b_collaboration_inbound)
        for i, p in enumerate(cta.partners)
    ]
    for loc, inbound in entries:
        for index, target in enumerate(inbound.applications.targets if inbound else []):
            if target.target != ALL_APPLICATIONS and target.target not in app_ids:
                problems.append(
                    ((*loc, "b2b_collaboration_inbound", "applications", "targets", index, "target"),
                     f"unknown application {target.target!r}; use an id from applications[].id "
                     "or AllApplications")
                )  # fmt: skip
    for index, partner in enumerate(cta.partners):
        if partner.tenant_id == settings.tenant.id:
            problems.append(
                (("cross_tenant_access", "partners", index, "tenant_id"),
                 "this is the organisation's own tenant id (tenant.id); a partner is another organisation")
            )  # fmt: skip
        elif partner.tenant_id == MSA_TENANT_ID:
            problems.append(
                (("cross_tenant_access", "partners", index, "tenant_id"),
                 "this is the tenant of personal Microsoft accounts, not an organisation")
            )  # fmt: skip
    return problems


class Redemption(_Strict):
    """Which kind of home identity provider wins, and the last resort when none is found.

    ``defaultConfiguredIdp`` means: the email one-time passcode when an `email_otp` connector
    exists, else a personal Microsoft account.
    """

    primary_order: list[PrimarySource] = Field(
        ["azureActiveDirectory", "externalFederation", "socialIdentityProviders"],
        description="Ordered subset of azureActiveDirectory, externalFederation, socialIdentityProviders.",
    )
    fallback: Fallback = "defaultConfiguredIdp"

    @field_validator("primary_order")
    @classmethod
    def _no_repeats(cls, order: list[PrimarySource]) -> list[PrimarySource]:
        if len(set(order)) != len(order):
            raise ValueError("a source is listed twice")
        return order
