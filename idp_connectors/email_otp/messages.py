"""The passcode email: its subject, plain-text body and simple HTML alternative.

Everything inserted into the HTML is escaped; the tenant name is flattened to one line
before it goes into the Subject header, so no configuration value can add a header.
"""

from __future__ import annotations

from html import escape

from idp_connectors.base import MailMessage


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _plural(count: int, unit: str) -> str:
    return f"{count} {unit}" if count == 1 else f"{count} {unit}s"


def describe_duration(seconds: int) -> str:
    """``1800`` -> ``30 minutes``. Rounds down, so the email never promises more time than there is."""
    if seconds >= 3600 and seconds % 3600 == 0:
        return _plural(seconds // 3600, "hour")
    if seconds >= 60:
        return _plural(seconds // 60, "minute")
    return _plural(seconds, "second")


def passcode_message(*, to: str, code: str, tenant_name: str, validity_seconds: int) -> MailMessage:
    """The email that carries ``code`` to ``to``."""
    tenant = _one_line(tenant_name)
    validity = describe_duration(validity_seconds)
    subject = f"Your {tenant} sign-in code"
    text = (
        f"Your {tenant} sign-in code is:\n"
        "\n"
        f"    {code}\n"
        "\n"
        f"Enter it on the sign-in page. It works for {validity}, for this sign-in only.\n"
        "Never share this code with anyone.\n"
        "\n"
        "If you didn't ask for a code, you can ignore this email: someone may have typed your\n"
        "address by mistake, and nobody can sign in without the code.\n"
    )
    t, c, v = escape(tenant), escape(code), escape(validity)
    html = (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n'
        '<head><meta charset="utf-8"><title>' + escape(subject) + "</title></head>\n"
        '<body style="font-family: sans-serif; line-height: 1.5; color: #1b1b1b;">\n'
        f"<p>Your {t} sign-in code is:</p>\n"
        '<p style="font-family: monospace; font-size: 28px; letter-spacing: 4px; font-weight: bold;">'
        f"{c}</p>\n"
        f"<p>Enter it on the sign-in page. It works for {v}, for this sign-in only. "
        "Never share this code with anyone.</p>\n"
        '<p style="color: #555;">If you didn\'t ask for a code, you can ignore this email: someone may '
        "have typed your address by mistake, and nobody can sign in without the code.</p>\n"
        "</body>\n"
        "</html>\n"
    )
    return MailMessage(to=to, subject=subject, text=text, html=html)
