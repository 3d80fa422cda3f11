"""Configuration of the email one-time passcode connector and its passcode policy."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class EmailOtpConfig(BaseModel):
    """A connector entry `{id: email, type: email_otp}`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    type: Literal["email_otp"]
    display_name: str = "Email one-time passcode"


class PasscodePolicy(BaseModel):
    """The top-level `passcode:` section. Defaults are the ones we document in the README."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    length: Annotated[int, Field(ge=6, le=12)] = Field(8, description="Digits per passcode.")
    validity_seconds: Annotated[int, Field(gt=0, le=86400)] = Field(
        1800, description="How long a passcode works."
    )
    max_attempts: Annotated[int, Field(gt=0, le=100)] = Field(
        5, description="Wrong passcodes allowed per sign-in; a resend does not reset the count."
    )
    resend_interval_seconds: Annotated[int, Field(ge=0, le=3600)] = Field(
        60, description="Minimum time between two passcodes to one address."
    )
    max_sends_per_address_per_hour: Annotated[int, Field(gt=0)] = Field(
        5, description="Passcodes one address may be sent in an hour."
    )
