"""Sign-in pages in the guest's language, over ASGI: ``ui_locales=fr`` and ``Accept-Language: fr`` give
French pages (email, passcode, errors) and a French passcode mail; the branding (name, logo, colours,
footer links) shows on every page under a CSP that allows exactly the branded style."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from tests.support import flows
from tests.support.gateway_app import make_settings as base_settings
from tests.support.gateway_app import running_app
from tests.support.smtp_server import SmtpServer, extract_passcode

EMAIL = "guest@fabrikam.example"
BRANDING = {
    "name": "Contoso <Partners> & Co",
    "logo_url": "https://cdn.contoso.example/logo.svg",
    "colors": {"primary": "#0B6E4F", "background": "#fafafa"},
    "privacy_url": "https://contoso.example/privacy?a=1&b=2",
    "terms_url": "https://contoso.example/terms",
}
TRANSLATIONS = {"de": {"signin.email.title": "Anmelden"}}


def make_settings(tmp_path: Path, smtp: SmtpServer, **overrides: Any) -> Any:
    return base_settings(tmp_path, smtp, branding=BRANDING, translations=TRANSLATIONS, **overrides)


@pytest.fixture
async def client(tmp_path: Path, smtp_server: SmtpServer) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(make_settings(tmp_path, smtp_server)) as (_, client):
        yield client


def lang_of(page: httpx.Response) -> str:
    match = re.search(r'<html lang="([^"]+)">', page.text)
    assert match, page.text[:200]
    return match.group(1)


def text_of(message: EmailMessage, kind: str) -> str:
    part = message.get_body(preferencelist=(kind,))
    assert part is not None
    return str(cast(EmailMessage, part).get_content()).replace("\r\n", "\n")


async def test_ui_locales_fr_gives_the_french_email_page(client: httpx.AsyncClient) -> None:
    page = await client.get(
        f"/oauth2/authorize?{flows.AuthRequest(extra={'ui_locales': 'fr-CA en'}).query()}"
    )
    assert page.status_code == 200 and lang_of(page) == "fr"
    assert "<h1>Connexion</h1>" in page.text
    assert "pour continuer vers <strong>Demo app</strong>" in page.text
    assert ">Adresse e-mail</label>" in page.text and ">Suivant</button>" in page.text
    assert "Sign in" not in page.text and "Email address" not in page.text


async def test_the_french_passcode_page_and_mail(client: httpx.AsyncClient, smtp_server: SmtpServer) -> None:
    path = await flows.start(client, flows.AuthRequest(extra={"ui_locales": "fr"}))
    sent = await flows.submit_email(client, path, EMAIL)
    assert sent.status_code == 200, sent.text  # the passcode page
    mail = await smtp_server.wait_for(to=EMAIL, timeout=10)
    assert mail["Subject"] == "Votre code de connexion Contoso <Partners> & Co"
    text, html = text_of(mail, "plain"), text_of(mail, "html")
    assert "Votre code de connexion Contoso <Partners> & Co est :" in text
    assert "Il est valable 30 minutes, pour cette connexion uniquement." in text
    assert "Déclaration de confidentialité: https://contoso.example/privacy?a=1&b=2" in text
    assert '<html lang="fr">' in html
    assert '<img src="https://cdn.contoso.example/logo.svg" alt="Contoso &lt;Partners&gt; &amp; Co"' in html
    assert '<a href="https://contoso.example/privacy?a=1&amp;b=2">Déclaration de confidentialité</a>' in html
    assert '<a href="https://contoso.example/terms">Conditions d’utilisation</a>' in html  # noqa: RUF001 - French typography
    page = await client.get(f"{path}/passcode")
    assert page.status_code == 200 and lang_of(page) == "fr"
    assert "<h1>Saisissez votre code</h1>" in page.text
    assert f'8 chiffres à <strong id="address">{EMAIL}</strong>. Il est valable 30 minutes.' in page.text
    code = extract_passcode(mail)
    wrong = "1" * 8 if code != "1" * 8 else "2" * 8
    refused = await client.post(f"{path}/passcode", data={"csrf": flows.csrf_of(page), "passcode": wrong})
    assert refused.status_code == 400 and lang_of(refused) == "fr"
    assert "Ce code n’est pas le bon. Il vous reste 4 essais." in refused.text  # noqa: RUF001 - French typography
    done = await client.post(f"{path}/passcode", data={"csrf": flows.csrf_of(page), "passcode": code})
    assert done.status_code == 303, done.text  # the language changes nothing else


async def test_error_pages_follow_the_sign_in_s_ui_locales(client: httpx.AsyncClient) -> None:
    path = await flows.start(client, flows.AuthRequest(extra={"ui_locales": "fr"}))
    page = await client.get(path)
    refused = await client.post(f"{path}/idp", data={"csrf": flows.csrf_of(page), "connector": "nope"})
    assert refused.status_code == 400 and lang_of(refused) == "fr"
    assert "<h1>Fournisseur d’identité inconnu</h1>" in refused.text  # noqa: RUF001 - French typography
    assert "Choisissez l’une des options de connexion proposées." in refused.text  # noqa: RUF001 - French typography
    forged = await client.post(f"{path}/email", data={"csrf": "forged", "email": EMAIL})
    assert forged.status_code == 403 and "<h1>Formulaire expiré</h1>" in forged.text


async def test_accept_language_fr_gives_french_pages(client: httpx.AsyncClient) -> None:
    headers = {"Accept-Language": "fr-CH, fr;q=0.9, en;q=0.8"}
    page = await client.get(f"/oauth2/authorize?{flows.AuthRequest().query()}", headers=headers)
    assert lang_of(page) == "fr" and "<h1>Connexion</h1>" in page.text
    expired = await client.get("/signin/unknown-sign-in", headers=headers)
    assert expired.status_code == 400 and lang_of(expired) == "fr"
    assert "<h1>Connexion expirée</h1>" in expired.text


async def test_ui_locales_come_before_accept_language(client: httpx.AsyncClient) -> None:
    query = flows.AuthRequest(extra={"ui_locales": "en"}).query()
    page = await client.get(f"/oauth2/authorize?{query}", headers={"Accept-Language": "fr"})
    assert lang_of(page) == "en" and "<h1>Sign in</h1>" in page.text


async def test_a_configured_language_falls_back_to_english_key_by_key(client: httpx.AsyncClient) -> None:
    page = await client.get(
        f"/oauth2/authorize?{flows.AuthRequest().query()}", headers={"Accept-Language": "de"}
    )
    assert lang_of(page) == "de"
    assert "<h1>Anmelden</h1>" in page.text and ">Next</button>" in page.text


async def test_unsupported_languages_get_the_default(client: httpx.AsyncClient) -> None:
    query = flows.AuthRequest(extra={"ui_locales": "ja"}).query()
    page = await client.get(f"/oauth2/authorize?{query}", headers={"Accept-Language": "es"})
    assert lang_of(page) == "en" and "<h1>Sign in</h1>" in page.text


async def test_discovery_advertises_the_languages(client: httpx.AsyncClient) -> None:
    document = (await client.get("/.well-known/openid-configuration")).json()
    assert document["ui_locales_supported"] == ["de", "en", "fr"]


async def test_every_page_shows_the_branding_escaped(client: httpx.AsyncClient) -> None:
    page = await client.get(f"/oauth2/authorize?{flows.AuthRequest().query()}")
    name = "Contoso &lt;Partners&gt; &amp; Co"
    assert f"<title>Sign in · {name}</title>" in page.text
    assert (
        f'<img class="logo" id="logo" src="https://cdn.contoso.example/logo.svg" alt="{name}">' in page.text
    )
    assert f'<p class="org-name">{name}</p>' in page.text
    assert 'id="privacy-link" href="https://contoso.example/privacy?a=1&amp;b=2"' in page.text
    assert 'id="terms-link" href="https://contoso.example/terms"' in page.text
    assert "Contoso <Partners>" not in page.text


async def test_the_csp_allows_exactly_the_branded_style_and_logo(client: httpx.AsyncClient) -> None:
    for page in (
        await client.get(f"/oauth2/authorize?{flows.AuthRequest().query()}"),
        await client.get("/signin/unknown-sign-in"),
    ):
        csp = page.headers["content-security-policy"]
        assert "unsafe-inline" not in csp and "script-src" not in csp
        styles = re.findall(r"<style>(.*?)</style>", page.text, re.S)
        assert styles == [
            ":root{--accent:#0b6e4f}@media not all and (prefers-color-scheme:dark){:root{--bg:#fafafa}}"
        ]
        digest = base64.b64encode(hashlib.sha256(styles[0].encode()).digest()).decode()
        directives = {d.strip().split(" ", 1)[0]: d.strip() for d in csp.split(";") if d.strip()}
        assert directives["style-src"] == f"style-src 'self' 'sha256-{digest}'"
        assert directives["img-src"] == "img-src 'self' data: https://cdn.contoso.example"


async def test_without_branding_the_pages_and_their_csp_are_as_before(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    async with running_app(base_settings(tmp_path, smtp_server)) as (_, client):
        page = await client.get(f"/oauth2/authorize?{flows.AuthRequest().query()}")
    assert "<style>" not in page.text and "<footer" not in page.text and 'id="logo"' not in page.text
    assert "<title>Sign in · Contoso</title>" in page.text and lang_of(page) == "en"
    csp = page.headers["content-security-policy"]
    assert "style-src 'self';" in csp and "img-src 'self' data:;" in csp
