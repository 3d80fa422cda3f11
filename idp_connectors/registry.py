"""The registry: one line per connector type, from `type` to its typed config model.

Adding a connector is one module plus one line here (in ``REGISTRY`` and in ``ConnectorConfig``).
"""

from __future__ import annotations

from typing import Annotated, TypeAlias

from pydantic import BaseModel, Field

from idp_connectors.email_otp.config import EmailOtpConfig
from idp_connectors.facebook.config import FacebookConfig
from idp_connectors.google.config import GoogleConfig
from idp_connectors.microsoft.config import MicrosoftConfig
from idp_connectors.oidc.config import OidcConfig
from idp_connectors.saml.config import SamlConfig
from idp_connectors.wsfed.config import WsFedConfig

REGISTRY: dict[str, type[BaseModel]] = {
    "email_otp": EmailOtpConfig,
    "facebook": FacebookConfig,
    "oidc": OidcConfig,
    "google": GoogleConfig,
    "microsoft": MicrosoftConfig,
    "saml": SamlConfig,
    "wsfed": WsFedConfig,
}

AnyConnectorConfig: TypeAlias = (
    EmailOtpConfig | FacebookConfig | OidcConfig | GoogleConfig | MicrosoftConfig | SamlConfig | WsFedConfig
)
ConnectorConfig: TypeAlias = Annotated[AnyConnectorConfig, Field(discriminator="type")]
