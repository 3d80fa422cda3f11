"""The passcode email (subject, plain-text body, simple HTML alternative) and the mail layout it shares.

Texts come from the gateway's catalogue of the sign-in's language (``ConnectorContext.mail_texts``:
key -> text with ``{placeholders}``); ``ENGLISH`` holds the same keys' English texts for use
without one. The layout (``html_document``, ``footer_links``, ``text_footer``) puts the
organisation's logo above the HTML part and its privacy and terms links under both parts; the
gateway's invitation mails use it too.

Everything inserted into the HTML is escaped; the tenant name is flattened to one line before it
goes into the Subject header, so no configuration value can add a header.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape

from idp_connectors.base import MailBranding, MailMessage

ENGLISH: Mapping[str, str] = {
    "mail.passcode.subject": "Your {org} sign-in code",
    "mail.passcode.intro": "Your {org} sign-in code is:",
    "mail.passcode.use": "Enter it on the sign-in page. It works for {validity}, for this sign-in only.",
    "mail.passcode.never_share": "Never share this code with anyone.",
    "mail.passcode.ignore": "If you didn't ask for a code, you can ignore this email: someone may have typed "
    "your address by mistake, and nobody can sign in without the code.",
    "mail.footer.privacy": "Privacy statement",
    "mail.footer.terms": "Terms of use",
    "duration.second_one": "1 second",
    "duration.second_other": "{count} seconds",
    "duration.minute_one": "1 minute",
    "duration.minute_other": "{count} minutes",
    "duration.hour_one": "1 hour",
    "duration.hour_other": "{count} hours",
}
"""The English texts of the keys this module uses (the gateway's ``en.yaml`` has the same ones)."""

_BODY_STYLE = "font-family: sans-serif; line-height: 1.5; color: #1b1b1b;"
_CODE_STYLE = "font-family: monospace; font-size: 28px; letter-spacing: 4px; font-weight: bold;"
_NO_BRANDING = MailBranding()


def one_line(text: str) -> str:
    return " ".join(text.split())


def duration_key(seconds: int) -> tuple[str, int]:
    """The catalogue key and count that describe ``seconds`` (``1800`` -> ``duration.minute_other``, 30),
    rounded down, so a mail or page never promises more time than there is."""
    if seconds >= 3600 and seconds % 3600 == 0:
        unit, count = "hour", seconds // 3600
    elif seconds >= 60:
        unit, count = "minute", seconds // 60
    else:
        unit, count = "second", seconds
    return f"duration.{unit}_{'one' if count == 1 else 'other'}", count


def describe_duration(seconds: int, texts: Mapping[str, str] = ENGLISH) -> str:
    """``1800`` -> ``30 minutes`` (in the language of ``texts``)."""
    key, count = duration_key(seconds)
    return texts[key].format_map({"count": count})


def footer_links(branding: MailBranding, texts: Mapping[str, str]) -> list[tuple[str, str]]:
    """The footer's (label, URL) pairs: the privacy statement and the terms, when configured."""
    links = [
        (texts["mail.footer.privacy"], branding.privacy_url),
        (texts["mail.footer.terms"], branding.terms_url),
    ]
    return [(label, url) for label, url in links if url]


def text_footer(links: Sequence[tuple[str, str]]) -> str:
    """The plain-text footer: a signature separator and one ``Label: URL`` line per link."""
    if not links:
        return ""
    return "\n--\n" + "".join(f"{label}: {url}\n" for label, url in links)


def html_document(
    *, lang: str, title: str, body: str, name: str, branding: MailBranding, links: Sequence[tuple[str, str]]
) -> str:
    """An HTML mail: the logo (alt text ``name``) above ``body`` (escaped markup), the links under it."""
    parts = [
        "<!DOCTYPE html>\n",
        f'<html lang="{escape(lang)}">\n',
        f'<head><meta charset="utf-8"><title>{escape(title)}</title></head>\n',
        f'<body style="{_BODY_STYLE}">\n',
    ]
    if branding.logo_url:
        parts.append(
            f'<p><img src="{escape(branding.logo_url)}" alt="{escape(one_line(name))}" '
            'style="max-height: 48px; max-width: 200px;"></p>\n'
        )
    parts.append(body)
    if links:
        anchors = " · ".join(f'<a href="{escape(url)}">{escape(label)}</a>' for label, url in links)
        parts.append(f'<p style="font-size: 12px; color: #555;">{anchors}</p>\n')
    parts.append("</body>\n</html>\n")
    return "".join(parts)


@dataclass(frozen=True, slots=True)
class _Layout:
    """A passcode mail without its code: the subject, and the text and HTML on either side of the code."""

    texts: Mapping[str, str]
    branding: MailBranding
    tenant_name: str
    validity_seconds: int
    lang: str
    subject: str
    text: tuple[str, str]
    html: tuple[str, str]


_CODE_MARK = "<!--code-->"  # never in the layout's own markup, and escaped text has no "<"
_last: _Layout | None = None


def _layout(
    texts: Mapping[str, str], lang: str, tenant_name: str, validity_seconds: int, branding: MailBranding
) -> _Layout:
    """The mail around the code, worked out once for the same texts, branding (the same objects:
    a configuration's, which a reload replaces rather than changes), name, validity and language."""
    global _last
    last = _last
    if (
        last is not None
        and last.texts is texts
        and last.branding is branding
        and last.tenant_name == tenant_name
        and last.validity_seconds == validity_seconds
        and last.lang == lang
    ):
        return last
    tenant = one_line(tenant_name)
    validity = describe_duration(validity_seconds, texts)
    subject = texts["mail.passcode.subject"].format_map({"org": tenant})
    intro = texts["mail.passcode.intro"].format_map({"org": tenant})
    use = texts["mail.passcode.use"].format_map({"validity": validity})
    never_share, ignore = texts["mail.passcode.never_share"], texts["mail.passcode.ignore"]
    links = footer_links(branding, texts)
    body = (
        f"<p>{escape(intro)}</p>\n"
        f'<p style="{_CODE_STYLE}">{_CODE_MARK}</p>\n'
        f"<p>{escape(use)} {escape(never_share)}</p>\n"
        f'<p style="color: #555;">{escape(ignore)}</p>\n'
    )
    html = html_document(lang=lang, title=subject, body=body, name=tenant, branding=branding, links=links)
    before, _, after = html.partition(_CODE_MARK)
    layout = _Layout(
        texts=texts,
        branding=branding,
        tenant_name=tenant_name,
        validity_seconds=validity_seconds,
        lang=lang,
        subject=one_line(subject),
        text=(f"{intro}\n\n    ", f"\n\n{use}\n{never_share}\n\n{ignore}\n" + text_footer(links)),
        html=(before, after),
    )
    _last = layout  # one entry: the configuration's mail, in one language at a time
    return layout


def passcode_message(
    *,
    to: str,
    code: str,
    tenant_name: str,
    validity_seconds: int,
    texts: Mapping[str, str] = ENGLISH,
    lang: str = "en",
    branding: MailBranding | None = None,
) -> MailMessage:
    """The email that carries ``code`` to ``to``, in the language of ``texts`` (tagged ``lang``)."""
    layout = _layout(texts, lang, tenant_name, validity_seconds, branding or _NO_BRANDING)
    text_before, text_after = layout.text
    html_before, html_after = layout.html
    return MailMessage(
        to=to,
        subject=layout.subject,
        text=text_before + code + text_after,
        html=html_before + escape(code) + html_after,
    )
