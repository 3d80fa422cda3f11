"""Configuration of who signs in where: partner organisations and the redemption order.

``cross_tenant_access.partners[]`` names a partner organisation by tenant id and domains and
the connector its users sign in through; ``redemption`` mirrors the reference's
``invitationRedemptionIdentityProviderConfiguration``. Inbound access and trust settings
(``cross_tenant_access.default`` and the rest of a partner entry) extend these models.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from idp_connectors.base import check_domain

TenantId = Annotated[str, Field(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
DomainName = Annotated[str, AfterValidator(check_domain)]
PrimarySource = Literal["azureActiveDirectory", "externalFederation", "socialIdentityProviders"]
Fallback = Literal["defaultConfiguredIdp", "emailOneTimePasscode", "microsoftAccount"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Partner(_Strict):
    tenant_id: TenantId = Field(description="The partner organisation's tenant id (its guests' home `tid`).")
    name: str | None = Field(None, max_length=256)
    domains: list[DomainName] = Field([], description="Email domains of the partner's users (exact match).")
    connector: str | None = Field(
        None,
        description="The connector its users sign in through (typically an `oidc` connector at its issuer).",
    )


class CrossTenantDefault(_Strict):
    """The default entry for organisations without their own; access and trust settings come with issue 5."""


class CrossTenantAccess(_Strict):
    default: CrossTenantDefault = CrossTenantDefault()
    partners: list[Partner] = []

    @field_validator("partners")
    @classmethod
    def _unique_tenants(cls, partners: list[Partner]) -> list[Partner]:
        seen: set[str] = set()
        for partner in partners:
            if partner.tenant_id in seen:
                raise ValueError(f"tenant {partner.tenant_id} has two partner entries")
            seen.add(partner.tenant_id)
        return partners


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
