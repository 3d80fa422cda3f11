"""``gateway.mfa.qr``: the otpauth URI authenticator apps import, and its QR code as inline SVG."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, unquote, urlsplit

import pyotp
import pytest
import segno

from gateway.mfa import qr

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def test_the_uri_names_issuer_account_and_every_parameter() -> None:
    uri = qr.otpauth_uri(SECRET, issuer="Contoso", account="guest@fabrikam.example")
    assert uri == (
        "otpauth://totp/Contoso:guest@fabrikam.example?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
        "&issuer=Contoso&algorithm=SHA1&digits=6&period=30"
    )


@pytest.mark.parametrize(
    ("issuer", "account", "label_issuer", "label_account"),
    [
        ("Contoso Ltd & Co", "a+b@fabrikam.example", "Contoso Ltd & Co", "a+b@fabrikam.example"),
        ("Contoso: the org", "x:y@fabrikam.example", "Contoso the org", "x y@fabrikam.example"),
        ("Zürich  AG", "ünï@fabrikam.example", "Zürich AG", "ünï@fabrikam.example"),
        ("a?b#c/d", "g@h.example", "a?b#c/d", "g@h.example"),
    ],
    ids=["ampersand-plus", "colons", "unicode-spaces", "uri-delimiters"],
)
def test_labels_are_escaped_and_keep_one_colon(
    issuer: str, account: str, label_issuer: str, label_account: str
) -> None:
    uri = qr.otpauth_uri(SECRET, issuer=issuer, account=account)
    parts = urlsplit(uri)
    assert (parts.scheme, parts.netloc) == ("otpauth", "totp")
    assert parts.path.count(":") == 1 and "?" not in parts.path and "#" not in uri
    issuer_part, account_part = unquote(parts.path[1:]).split(":")
    assert (issuer_part, account_part) == (label_issuer, label_account)
    query = parse_qs(parts.query, strict_parsing=True)
    assert query == {
        "secret": [SECRET], "issuer": [label_issuer],
        "algorithm": ["SHA1"], "digits": ["6"], "period": ["30"],
    }  # fmt: skip


def test_an_authenticator_library_reads_the_uri_back() -> None:
    uri = qr.otpauth_uri(SECRET, issuer="Contoso & Co", account="guest@fabrikam.example")
    parsed = pyotp.parse_uri(uri)
    assert isinstance(parsed, pyotp.TOTP)
    assert (parsed.secret, parsed.issuer, parsed.name) == (SECRET, "Contoso & Co", "guest@fabrikam.example")
    assert (parsed.digits, parsed.interval) == (6, 30)
    assert parsed.at(1_700_000_000) == pyotp.TOTP(SECRET).at(1_700_000_000)


def test_the_qr_code_is_inline_svg_the_page_csp_allows() -> None:
    uri = qr.otpauth_uri(SECRET, issuer="Contoso", account="guest@fabrikam.example")
    svg = qr.qr_svg(uri)
    assert svg.startswith("<svg ") and svg.endswith("</svg>")
    assert 'class="qr"' in svg
    for forbidden in ("style", "<script", "href", "http", "<?xml", "<image", "data:"):
        assert forbidden not in svg, forbidden  # no inline style or script, nothing fetched
    assert SECRET not in svg  # the secret is drawn, not written


def dark_modules(svg: str) -> set[tuple[int, int]]:
    """The (column, row) of every dark module the SVG's stroked path draws (quiet zone included)."""
    path = re.search(r'<path stroke="#000" d="([^"]+)"', svg)
    assert path is not None
    x = y = 0.0
    dark: set[tuple[int, int]] = set()
    for command, first, second in re.findall(r"([MmHhVv])(-?[0-9.]+)(?:[ ,](-?[0-9.]+))?", path.group(1)):
        if command == "M":
            x, y = float(first), float(second)
        elif command == "m":
            x, y = x + float(first), y + float(second)
        elif command == "h":
            dark.update((int(x) + i, int(y)) for i in range(int(float(first))))
            x += float(first)
        else:
            raise AssertionError(f"unexpected path command {command}")
    return dark


def test_the_svg_draws_exactly_the_modules_of_the_uri_s_qr_code() -> None:
    uri = qr.otpauth_uri(SECRET, issuer="Contoso", account="guest@fabrikam.example")
    svg = qr.qr_svg(uri)
    symbol = segno.make(uri, error="m", micro=False)
    border = 4  # the quiet zone QR codes need
    expected = {
        (column + border, row + border)
        for row, line in enumerate(symbol.matrix)
        for column, module in enumerate(line)
        if module
    }
    assert dark_modules(svg) == expected
    size = symbol.symbol_size(scale=qr.QR_SCALE)[0]
    assert svg.startswith(f'<svg width="{size}" height="{size}"')
    other = qr.qr_svg(qr.otpauth_uri(SECRET, issuer="Contoso", account="other@fabrikam.example"))
    assert dark_modules(other) != expected


def test_the_secret_is_grouped_for_typing() -> None:
    assert qr.grouped(SECRET) == "JBSW Y3DP EHPK 3PXP JBSW Y3DP EHPK 3PXP"
    assert qr.grouped("ABCDEF") == "ABCD EF"
