"""Configuration of the email one-time passcode connector and its passcode policy."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from idp_connectors.base import ConnectorConfigBase, ConnectorContext

if TYPE_CHECKING:
    from idp_connectors.email_otp.connector import EmailOtpConnector


class PasscodePolicy(BaseModel):
    """The top-level `passcode:` section. Defaults are the ones we document in the README."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    length: Annotated[int, Field(ge=6, le=12)] = Field(default=8, description="Digits per passcode.")
    validity_seconds: Annotated[int, Field(gt=0, le=86400)] = Field(
        default=1800, description="How long a passcode works."
    )
    max_attempts: Annotated[int, Field(gt=0, le=100)] = Field(
        default=5, description="Wrong passcodes allowed per sign-in; a resend does not reset the count."
    )
    resend_interval_seconds: Annotated[int, Field(ge=0, le=3600)] = Field(
        default=60, description="Minimum time between two passcodes to one address."
    )
    max_sends_per_address_per_hour: Annotated[int, Field(gt=0)] = Field(
        default=5, description="Passcodes one address may be sent in an hour."
    )


class EmailOtpConfig(ConnectorConfigBase):
    """A connector entry `{id: email, type: email_otp}`; the last-resort home identity (issuer `mail`)."""

    type: Literal["email_otp"]
    passcode: PasscodePolicy | None = Field(
        default=None,
        description="This connector's passcode policy; left out, the top-level `passcode:` applies.",
    )

    def open(self, ctx: ConnectorContext) -> EmailOtpConnector:
        from idp_connectors.email_otp.connector import EmailOtpConnector

        return EmailOtpConnector(self, self.passcode or PasscodePolicy(), ctx)
