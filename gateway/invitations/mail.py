"""The invitation email (b2b-concepts §2.2) and the notice of an automatic redemption (§3.5).

Each has a subject, a plain-text body and an HTML alternative, in one language: the invitation's
``invitedUserMessageInfo.messageLanguage`` when the gateway has it (``fr-FR`` picks ``fr``), the
redemption notice's the guest's sign-in's; otherwise ``branding.default_language``. Texts come
from the catalogues (``mail.invitation.*``, ``mail.redeemed.*``); the organisation's branding puts
its name in the texts, its logo above the HTML part and its privacy and terms links in the footer
(``idp_connectors.email_otp.messages``'s layout, shared with the passcode mail).

The inviter's custom message is plain text: it is escaped in the HTML (never rendered as markup)
and kept only when the inviter is a user with an address or the install's operator (the command
line, signing as the organisation); an app's custom message is dropped. Names go into the Subject
header flattened to one line, so no value can add a header.

The outbox delivers one recipient per message, so a ``ccRecipients`` entry gets its own copy of
the same mail (same subject, body and link).

Every invitation ends with a footer linking to ``/invitations/block``, where the recipient can block
future invitations from this organisation (``blocklist``; b2b-concepts §2.2).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape

from markupsafe import Markup

from gateway.i18n.catalogue import Catalogue
from gateway.i18n.translations import Translations
from idp_connectors.base import MailMessage
from idp_connectors.email_otp.messages import footer_links, html_document, one_line, text_footer


@dataclass(frozen=True, slots=True)
class InvitationMail:
    to: str
    cc: str | None
    redeem_url: str
    block_url: str
    """``{issuer}/invitations/block``: the footer's link to opt out of this organisation's invitations."""
    expires_at: int
    invitee_name: str | None
    inviter_name: str | None
    """The inviting user's display name (or address); None when an app invites."""
    inviter_mail: str | None
    custom_message: str | None
    """Already dropped (None) when the inviter is an app or has no address."""
    language: str | None = None
    """``messageLanguage`` (a BCP 47 tag): the mail's language when the gateway has a catalogue for it."""


def _language(translations: Translations, requested: str | None) -> tuple[str, Catalogue]:
    lang = translations.negotiate((requested,) if requested else ())
    return lang, translations.catalogue(lang)


def _date(timestamp: int, texts: Catalogue) -> str:
    when = datetime.fromtimestamp(timestamp, UTC)
    month = texts.text(f"mail.month.{when.month}")
    return texts.text("mail.date", day=when.day, month=month, year=when.year)


def _subject(mail: InvitationMail, org: str, texts: Catalogue) -> str:
    if mail.inviter_name:
        return texts.text("mail.invitation.subject_by", inviter=one_line(mail.inviter_name), org=org)
    return texts.text("mail.invitation.subject", org=org)


def _invited_you(mail: InvitationMail, org: str, texts: Catalogue) -> str:
    if mail.inviter_name and mail.inviter_mail:
        who = f"{one_line(mail.inviter_name)} ({mail.inviter_mail})"
    elif mail.inviter_name:
        who = one_line(mail.inviter_name)
    else:
        return texts.text("mail.invitation.invited_by_org", org=org)
    return texts.text("mail.invitation.invited_by", inviter=who, org=org)


def _hello(mail: InvitationMail, texts: Catalogue) -> str:
    if mail.invitee_name:
        return texts.text("mail.invitation.hello_name", name=one_line(mail.invitee_name))
    return texts.text("mail.invitation.hello")


def _text(mail: InvitationMail, org: str, texts: Catalogue, links: list[tuple[str, str]]) -> str:
    lines = [_hello(mail, texts), "", _invited_you(mail, org, texts), ""]
    if mail.custom_message:
        author = one_line(mail.inviter_name or org)
        lines += [texts.text("mail.invitation.message_from", author=author), ""]
        lines += [f"    {line}" for line in mail.custom_message.splitlines()] + [""]
    lines += [
        texts.text("mail.invitation.accept_text"),
        "",
        mail.redeem_url,
        "",
        texts.text("mail.invitation.until", date=_date(mail.expires_at, texts)),
        "",
        texts.text("mail.invitation.ignore"),
        "",
        "--",
        texts.text("mail.invitation.block_text", org=org, url=mail.block_url),
    ]
    return "\n".join(lines) + "\n" + text_footer(links).removeprefix("\n--\n")


def _html(mail: InvitationMail, org: str, texts: Catalogue) -> str:
    parts = [f"<p>{escape(_hello(mail, texts))}</p>\n", f"<p>{escape(_invited_you(mail, org, texts))}</p>\n"]
    if mail.custom_message:
        author = one_line(mail.inviter_name or org)
        parts += [
            f"<p>{escape(texts.text('mail.invitation.message_from', author=author))}</p>\n",
            '<blockquote style="white-space: pre-wrap; border-left: 3px solid #ccc; margin: 0; '
            f'padding-left: 12px;">{escape(mail.custom_message)}</blockquote>\n',
        ]
    link = escape(mail.redeem_url)
    block = Markup('<a href="{}">{}</a>').format(mail.block_url, texts.text("mail.invitation.block_link"))
    block_line = texts.html("mail.invitation.block_html", org=org, link=block)
    parts += [
        f'<p><a href="{link}" style="font-weight: bold;">{escape(texts.text("mail.invitation.accept_link"))}'
        "</a></p>\n",
        f'<p style="font-size: 13px; color: #555; word-break: break-all;">{link}</p>\n',
        f"<p>{escape(texts.text('mail.invitation.until', date=_date(mail.expires_at, texts)))}</p>\n",
        f'<p style="color: #555;">{escape(texts.text("mail.invitation.ignore"))}</p>\n',
        f'<hr><p style="font-size: 12px; color: #555;">{block_line}</p>\n',
    ]
    return "".join(parts)


def invitation_messages(mail: InvitationMail, translations: Translations) -> list[MailMessage]:
    """The message to the guest, then its copy to the cc recipient, if any."""
    lang, texts = _language(translations, mail.language)
    org = one_line(translations.branding.name)
    branding = translations.branding.mail
    links = footer_links(branding, translations.texts[lang])
    subject = _subject(mail, org, texts)
    text = _text(mail, org, texts, links)
    html = html_document(
        lang=lang, title=subject, body=_html(mail, org, texts), name=org, branding=branding, links=links
    )
    recipients = [mail.to] if mail.cc is None or mail.cc.lower() == mail.to.lower() else [mail.to, mail.cc]
    # §2.2: Reply-To is the inviter's address when there is one.
    reply_to = mail.inviter_mail or None
    return [
        MailMessage(to=to, subject=one_line(subject), text=text, html=html, reply_to=reply_to)
        for to in recipients
    ]


def redeemed_notification(
    *, to: str, portal_url: str, translations: Translations, language: str | None = None
) -> MailMessage:
    """The notice of an automatic redemption (b2b-concepts §3.5): no consent page was shown, so the
    guest is told, in a mail that needs no action, that they now have access."""
    lang, texts = _language(translations, language)
    org = one_line(translations.branding.name)
    branding = translations.branding.mail
    links = footer_links(branding, translations.texts[lang])
    subject = texts.text("mail.redeemed.subject", org=org)
    hello, body = texts.text("mail.redeemed.hello"), texts.text("mail.redeemed.body", org=org)
    text = f"{hello}\n\n{body}\n\n{texts.text('mail.redeemed.portal_text', url=portal_url)}\n" + text_footer(
        links
    )
    html_body = (
        f"<p>{escape(hello)}</p>\n<p>{escape(body)}</p>\n"
        f'<p><a href="{escape(portal_url)}">{escape(texts.text("mail.redeemed.portal_link"))}</a></p>\n'
    )
    html = html_document(lang=lang, title=subject, body=html_body, name=org, branding=branding, links=links)
    return MailMessage(to=to, subject=one_line(subject), text=text, html=html)
