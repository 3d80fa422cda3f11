"""The registry: one line per connector type, from `type` to its typed config model."""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import Field

from idp_connectors.email_otp.config import EmailOtpConfig

REGISTRY = {
    "email_otp": EmailOtpConfig,
}

ConnectorConfig = Annotated[Union[tuple(REGISTRY.values())], Field(discriminator="type")]  # type: ignore[valid-type]  # noqa: UP007
