"""Configuration of bootstrap administrators (``directory:``) and of invitations (``invitations:``,
with the optional terms of use a guest accepts on the consent page).

Directory roles come only from this file: a signed-in user holds the roles listed for an
administrator whose ``email`` equals the user object's ``mail`` (ignoring case) and only while the
user's ``userType`` is ``Member``. Nothing in the store grants a role.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from gateway.invitations.addresses import check_address

RoleName = Literal["Global Administrator", "User Administrator", "Guest Inviter"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _lower_case_address(value: str) -> str:
    return check_address(value).lower()


def _https_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname or parts.fragment:
        raise ValueError("must be an absolute https URL without a fragment")
    return value


def _https_or_loopback_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.fragment:
        raise ValueError("must be an absolute http(s) URL without a fragment")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ValueError("must use https (http is allowed only for loopback addresses)")
    return value


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _display_text(value: str) -> str:
    if value != value.strip() or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError("must not start or end with spaces or contain control characters")
    return value


class Administrator(_Strict):
    email: Annotated[str, AfterValidator(_lower_case_address)] = Field(
        description="The administrator's address (stored lower-case); matched against the user's `mail`."
    )
    roles: list[RoleName] = Field(
        min_length=1, description="Global Administrator, User Administrator and/or Guest Inviter."
    )

    @field_validator("roles")
    @classmethod
    def _no_repeats(cls, roles: list[RoleName]) -> list[RoleName]:
        if len(set(roles)) != len(roles):
            raise ValueError("a role is listed twice")
        return roles


class Directory(_Strict):
    administrators: list[Administrator] = Field(
        [], description="Bootstrap administrators: the only source of directory roles."
    )

    @field_validator("administrators")
    @classmethod
    def _unique_emails(cls, administrators: list[Administrator]) -> list[Administrator]:
        seen: set[str] = set()
        for admin in administrators:
            if admin.email in seen:
                raise ValueError(f"{admin.email} is listed twice")
            seen.add(admin.email)
        return administrators

    def roles_of(self, mail: str | None) -> frozenset[str]:
        """The roles configured for this address (none for None or an unlisted address)."""
        if not mail:
            return frozenset()
        wanted = mail.lower()
        return next((frozenset(a.roles) for a in self.administrators if a.email == wanted), frozenset())


class TermsOfUse(_Strict):
    display_name: Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_display_text)] = Field(
        description='Shown as "I have read and accept <display_name>" on the consent page.'
    )
    url: Annotated[str, AfterValidator(_https_or_loopback_url)] = Field(
        description="Where the terms are published (https; http only for loopback addresses)."
    )
    version: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")] = Field(
        description="The version a guest accepts; recorded as `termsOfUseAcceptedVersion` on the user."
    )


class Invitations(_Strict):
    ticket_lifetime_days: Annotated[int, Field(ge=1, le=365)] = Field(
        90, description="How long an invitation's redeem link works (days); a reset issues a new one."
    )
    privacy_statement_url: Annotated[str, AfterValidator(_https_url)] | None = Field(
        None, description="The organisation's privacy statement, linked from the consent page (https)."
    )
    terms_of_use: TermsOfUse | None = Field(
        None, description="Terms of use a guest must accept on the consent page; none when null."
    )
