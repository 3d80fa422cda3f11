"""The registration page's otpauth URI and its QR code, drawn here as inline SVG.

The URI follows the Key Uri Format authenticator apps read (``otpauth://totp/ISSUER:ACCOUNT?
secret=…&issuer=…&algorithm=SHA1&digits=6&period=30``): the issuer is the tenant's name, the
account the user's mail. The QR code is SVG markup for the page itself — no request leaves the
page, and nothing needs ``img-src data:`` or an inline style (segno draws with ``fill`` and
``stroke`` attributes, which the page's CSP allows).
"""

from __future__ import annotations

from urllib.parse import quote, urlencode

import segno

from gateway.mfa import totp

QR_SCALE = 4


def _clean(text: str) -> str:
    """A label part: the colon separates issuer from account, so none may appear inside either."""
    return " ".join(text.replace(":", " ").split())


def otpauth_uri(secret: str, *, issuer: str, account: str) -> str:
    """The URI an authenticator app imports the method from."""
    label = f"{quote(_clean(issuer), safe='')}:{quote(_clean(account), safe='@')}"
    query = urlencode(
        {
            "secret": secret,
            "issuer": _clean(issuer),
            "algorithm": "SHA1",
            "digits": str(totp.DIGITS),
            "period": str(totp.PERIOD),
        },
        quote_via=quote,
    )
    return f"otpauth://totp/{label}?{query}"


def qr_svg(uri: str) -> str:
    """The QR code of ``uri`` as an ``<svg>`` element (dark modules on a white background, quiet
    zone included, so it scans in dark mode too)."""
    code = segno.make(uri, error="m", micro=False)
    svg: str = code.svg_inline(scale=QR_SCALE, dark="#000", light="#fff", svgclass="qr", lineclass=None)
    return svg


def grouped(secret: str) -> str:
    """The secret in groups of four characters, as people type it in by hand."""
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))
