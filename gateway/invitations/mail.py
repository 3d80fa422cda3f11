"""The invitation email (b2b-concepts §2.2): subject, plain-text body and an HTML alternative.

The inviter's custom message is plain text: it is escaped in the HTML (never rendered as markup)
and kept only when the inviter is a user with an address or the install's operator (the command
line, signing as the organisation); an app's custom message is dropped.
Names go into the Subject header flattened to one line, so no value can add a header. Only English
is written: ``messageLanguage`` is accepted and validated, but every message is English for now.

The outbox delivers one recipient per message, so a ``ccRecipients`` entry gets its own copy of
the same mail (same subject, body and link).

Every mail ends with a footer linking to ``/invitations/block``, where the recipient can block
future invitations from this organisation (``blocklist``; b2b-concepts §2.2).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape

from idp_connectors.base import MailMessage


@dataclass(frozen=True, slots=True)
class InvitationMail:
    to: str
    cc: str | None
    tenant_name: str
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


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _subject(mail: InvitationMail) -> str:
    tenant = _one_line(mail.tenant_name)
    if mail.inviter_name:
        return f"{_one_line(mail.inviter_name)} invited you to access applications within {tenant}"
    return f"You're invited to access applications within {tenant}"


def _invited_you(mail: InvitationMail) -> str:
    tenant = _one_line(mail.tenant_name)
    if mail.inviter_name and mail.inviter_mail:
        who = f"{_one_line(mail.inviter_name)} ({mail.inviter_mail})"
    elif mail.inviter_name:
        who = _one_line(mail.inviter_name)
    else:
        return f"{tenant} invited you to access its applications."
    return f"{who} invited you to access applications within {tenant}."


def _text(mail: InvitationMail, until: str) -> str:
    lines = [f"Hello {_one_line(mail.invitee_name)}," if mail.invitee_name else "Hello,", ""]
    lines += [_invited_you(mail), ""]
    if mail.custom_message:
        lines += [f"Message from {_one_line(mail.inviter_name or mail.tenant_name)}:", ""]
        lines += [f"    {line}" for line in mail.custom_message.splitlines()] + [""]
    lines += [
        "Accept the invitation:",
        "",
        mail.redeem_url,
        "",
        f"The link works until {until}. Once you have accepted, the same link takes you back to the",
        "organisation's applications.",
        "",
        "If you don't know the sender or weren't expecting this invitation, you can ignore this email:",
        "nobody gets access to anything unless you accept it.",
        "",
        "--",
        f"To block future invitations from {_one_line(mail.tenant_name)}, visit {mail.block_url}",
    ]
    return "\n".join(lines) + "\n"


def _html(mail: InvitationMail, subject: str, until: str) -> str:
    greeting = f"Hello {escape(_one_line(mail.invitee_name))}," if mail.invitee_name else "Hello,"
    parts = [
        "<!DOCTYPE html>\n",
        '<html lang="en">\n',
        f'<head><meta charset="utf-8"><title>{escape(subject)}</title></head>\n',
        '<body style="font-family: sans-serif; line-height: 1.5; color: #1b1b1b;">\n',
        f"<p>{greeting}</p>\n",
        f"<p>{escape(_invited_you(mail))}</p>\n",
    ]
    if mail.custom_message:
        author = escape(_one_line(mail.inviter_name or mail.tenant_name))
        parts += [
            f"<p>Message from {author}:</p>\n",
            '<blockquote style="white-space: pre-wrap; border-left: 3px solid #ccc; margin: 0; '
            f'padding-left: 12px;">{escape(mail.custom_message)}</blockquote>\n',
        ]
    link = escape(mail.redeem_url)
    parts += [
        f'<p><a href="{link}" style="font-weight: bold;">Accept the invitation</a></p>\n',
        f'<p style="font-size: 13px; color: #555; word-break: break-all;">{link}</p>\n',
        f"<p>The link works until {escape(until)}. Once you have accepted, the same link takes you "
        "back to the organisation's applications.</p>\n",
        "<p style=\"color: #555;\">If you don't know the sender or weren't expecting this invitation, "
        "you can ignore this email: nobody gets access to anything unless you accept it.</p>\n",
        '<hr><p style="font-size: 12px; color: #555;">Don\'t want invitations from '
        f'{escape(_one_line(mail.tenant_name))}? <a href="{escape(mail.block_url)}">Block future '
        "invitations</a>.</p>\n",
        "</body>\n",
        "</html>\n",
    ]
    return "".join(parts)


def invitation_messages(mail: InvitationMail) -> list[MailMessage]:
    """The message to the guest, then its copy to the cc recipient, if any."""
    until = datetime.fromtimestamp(mail.expires_at, UTC).strftime("%d %B %Y")
    subject = _subject(mail)
    text, html = _text(mail, until), _html(mail, subject, until)
    recipients = [mail.to] if mail.cc is None or mail.cc.lower() == mail.to.lower() else [mail.to, mail.cc]
    # §2.2: Reply-To is the inviter's address when there is one.
    reply_to = mail.inviter_mail or None
    return [MailMessage(to=to, subject=subject, text=text, html=html, reply_to=reply_to) for to in recipients]


def redeemed_notification(*, to: str, tenant_name: str, portal_url: str) -> MailMessage:
    """The notice of an automatic redemption (b2b-concepts §3.5): no consent page was shown, so the
    guest is told, in a mail that needs no action, that they now have access."""
    tenant = _one_line(tenant_name)
    subject = f"You now have access to applications within {tenant}"
    text = "\n".join(
        [
            "Hello,",
            "",
            f"Your organisation and {tenant} have agreed that you may use {tenant}'s applications",
            "with your work account, so your invitation was accepted for you when you signed in.",
            "You don't need to do anything.",
            "",
            f"Your applications: {portal_url}",
        ]
    )
    html = (
        '<!DOCTYPE html>\n<html lang="en">\n'
        f'<head><meta charset="utf-8"><title>{escape(subject)}</title></head>\n'
        '<body style="font-family: sans-serif; line-height: 1.5; color: #1b1b1b;">\n<p>Hello,</p>\n'
        f"<p>Your organisation and {escape(tenant)} have agreed that you may use {escape(tenant)}'s "
        "applications with your work account, so your invitation was accepted for you when you signed "
        "in. You don't need to do anything.</p>\n"
        f'<p><a href="{escape(portal_url)}">Your applications</a></p>\n</body>\n</html>\n'
    )
    return MailMessage(to=to, subject=subject, text=text + "\n", html=html)
