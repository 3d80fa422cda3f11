"""Mails in the guest's language with the organisation's branding: the invitation (its
``messageLanguage``), the notice of an automatic redemption, and the passcode mail's language choice."""

from __future__ import annotations

from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any, cast

import pytest

from gateway.i18n import translations_for
from gateway.invitations.mail import InvitationMail, invitation_messages, redeemed_notification
from gateway.secrets import SecretBox
from gateway.settings.models import Settings
from idp_connectors.base import ConnectorContext, MailBranding, MailMessage
from idp_connectors.email_otp.config import EmailOtpConfig, PasscodePolicy
from idp_connectors.email_otp.connector import EmailOtpConnector
from tests.admin.helpers import Api, body, config
from tests.support.assertions import Clock
from tests.support.gateway_app import make_settings, running_app
from tests.support.memory_state import MemoryState
from tests.support.smtp_server import SmtpServer

BRANDING = {
    "name": "Contoso Partners",
    "logo_url": "/static/logo.svg",
    "privacy_url": "https://contoso.example/privacy",
    "terms_url": "https://contoso.example/terms",
}


@pytest.fixture
async def api(tmp_path: Path, smtp_server: SmtpServer) -> AsyncIterator[Api]:
    settings = make_settings(tmp_path, smtp_server, branding=BRANDING, **config())
    clock = Clock()
    async with running_app(settings, clock=clock) as (app, client):
        yield Api(app, client, smtp_server, clock)


def part(message: EmailMessage, kind: str) -> str:
    found = message.get_body(preferencelist=(kind,))
    assert found is not None
    return str(cast(EmailMessage, found).get_content()).replace("\r\n", "\n")


async def invite(api: Api, email: str, language: str | None) -> EmailMessage:
    info: dict[str, Any] = {"messageLanguage": language} if language else {}
    payload = body(
        email, sendInvitationMessage=True, invitedUserDisplayName="Guest One", invitedUserMessageInfo=info
    )
    response = await api.invite(await api.app_token(), payload)
    assert response.status_code == 201, response.text
    return await api.smtp.wait_for(to=email, timeout=10)


async def test_an_invitation_with_message_language_fr_is_french_and_branded(api: Api) -> None:
    mail = await invite(api, "guest@partner.example", "fr-FR")
    assert mail["Subject"] == "Vous êtes invité à accéder aux applications de Contoso Partners"
    text, html = part(mail, "plain"), part(mail, "html")
    assert "Bonjour Guest One," in text
    assert "Contoso Partners vous a invité à accéder à ses applications." in text
    assert "Accepter l’invitation :" in text and "Le lien est valable jusqu’au " in text  # noqa: RUF001 - French typography
    assert "Pour bloquer les prochaines invitations de Contoso Partners, rendez-vous sur " in text
    assert "Déclaration de confidentialité: https://contoso.example/privacy" in text
    assert "Conditions d’utilisation: https://contoso.example/terms" in text  # noqa: RUF001 - French typography
    assert '<html lang="fr">' in html
    assert '<img src="http://127.0.0.1:8000/static/logo.svg" alt="Contoso Partners"' in html
    assert ">Bloquer les prochaines invitations</a>" in html
    assert '<a href="https://contoso.example/privacy">Déclaration de confidentialité</a>' in html


async def test_an_invitation_in_an_unsupported_or_no_language_is_in_the_default(api: Api) -> None:
    for email, language in (("a@partner.example", "es-ES"), ("b@partner.example", None)):
        mail = await invite(api, email, language)
        assert mail["Subject"] == "You're invited to access applications within Contoso Partners"
        assert '<html lang="en">' in part(mail, "html")
        assert "Privacy statement: https://contoso.example/privacy" in part(mail, "plain")


def settings_with(tmp_path: Path, **overrides: Any) -> Settings:
    return make_settings(tmp_path, None, **overrides)


def test_invitation_texts_escape_every_value_in_the_html(tmp_path: Path) -> None:
    translations = translations_for(settings_with(tmp_path, branding={"name": "A&B <Org>"}))
    mail = InvitationMail(
        to="g@partner.example", cc=None, redeem_url="https://gw.example/redeem?a=1&b=2",
        block_url="https://gw.example/invitations/block", expires_at=1_767_225_600,  # 1 January 2026
        invitee_name="<Guest>", inviter_name="Ada\r\nBcc: x", inviter_mail="ada@contoso.example",
        custom_message="<b>hi</b>", language="fr",
    )  # fmt: skip
    [message] = invitation_messages(mail, translations)
    assert message.subject == "Ada Bcc: x vous a invité à accéder aux applications de A&B <Org>"
    assert message.html is not None and "<Org>" not in message.html and "<Guest>" not in message.html
    assert "&lt;b&gt;hi&lt;/b&gt;" in message.html and "<b>hi" not in message.html
    assert "Le lien est valable jusqu’au 1 janvier 2026." in message.text  # noqa: RUF001 - French typography
    assert 'href="https://gw.example/redeem?a=1&amp;b=2"' in message.html


def test_the_redemption_notice_is_in_the_sign_in_s_language(tmp_path: Path) -> None:
    translations = translations_for(settings_with(tmp_path, branding=BRANDING))
    notice = redeemed_notification(
        to="g@partner.example",
        portal_url="https://gw.example/myapps",
        translations=translations,
        language="fr",
    )
    assert notice.subject == "Vous avez désormais accès aux applications de Contoso Partners"
    assert (
        "Vous n’avez rien à faire." in notice.text  # noqa: RUF001 - French typography
        and "Vos applications : https://gw.example/myapps" in notice.text
    )
    assert notice.html is not None and '<html lang="fr">' in notice.html
    english = redeemed_notification(
        to="g@partner.example", portal_url="https://x.example", translations=translations
    )
    assert "You don't need to do anything." in english.text


class Outbox:
    def __init__(self) -> None:
        self.sent: list[MailMessage] = []

    def send(self, message: MailMessage) -> None:
        self.sent.append(message)


def connector(tmp_path: Path, outbox: Outbox) -> EmailOtpConnector:
    translations = translations_for(settings_with(tmp_path, branding={"default_language": "fr"}))
    ctx = ConnectorContext(
        state=MemoryState(), mail=outbox, keyed_hash=SecretBox(["x" * 40]).keyed_hash, tenant_name="Contoso",
        mail_texts=translations.texts, mail_language=translations.default,
        mail_branding=MailBranding(privacy_url="https://contoso.example/privacy"),
    )  # fmt: skip
    return EmailOtpConnector(EmailOtpConfig(id="email", type="email_otp"), PasscodePolicy(), ctx)


@pytest.mark.parametrize(
    ("language", "subject"),
    [
        ("en", "Your Contoso sign-in code"),
        ("fr", "Votre code de connexion Contoso"),
        (None, "Votre code de connexion Contoso"),  # the context's default language
        ("ja", "Votre code de connexion Contoso"),  # not available: the default too
    ],
)
async def test_the_passcode_mail_takes_the_language_it_is_given(
    tmp_path: Path, language: str | None, subject: str
) -> None:
    outbox = Outbox()
    await connector(tmp_path, outbox).send_passcode(f"c-{language}", "g@partner.example", language=language)
    [message] = outbox.sent
    assert message.subject == subject
    assert message.text.endswith("https://contoso.example/privacy\n")  # the branded footer


def test_without_catalogues_the_passcode_mail_is_english(tmp_path: Path) -> None:
    from idp_connectors.email_otp.messages import passcode_message

    message = passcode_message(
        to="g@x.example", code="01234567", tenant_name="Contoso", validity_seconds=3600
    )
    assert message.subject == "Your Contoso sign-in code" and "It works for 1 hour" in message.text
    assert message.html is not None and '<html lang="en">' in message.html and "<img" not in message.html
