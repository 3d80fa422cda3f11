"""What the mail tests share: the addresses, settings and the passcode mail they send."""

from __future__ import annotations

from typing import Any

from gateway.settings.models import Mail
from idp_connectors.base import MailMessage
from idp_connectors.email_otp.messages import passcode_message

FROM = "Contoso <no-reply@contoso.example>"
TO = "guest@fabrikam.example"
FAST = (0.05, 0.05)  # retry delays short enough for tests


def mail_settings(host: str, port: int, **smtp: Any) -> Mail:
    return Mail.model_validate({"from": FROM, "smtp": {"host": host, "port": port, **smtp}})


def passcode_mail(code: str = "04812345", to: str = TO) -> MailMessage:
    return passcode_message(to=to, code=code, tenant_name="Contoso", validity_seconds=1800)
