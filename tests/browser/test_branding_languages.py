"""Headless Chromium on the branded, French sign-in page of the real gateway: ``html[lang=fr]``, the
logo (from another origin the CSP allows), the primary colour on the button, the footer links; then
the French passcode page and mail. No CSP violation is reported on the way."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import ConsoleMessage, Page
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.support import flows
from tests.support.live_server import free_port, live_server
from tests.support.oidc_idp import serve_in_thread
from tests.support.smtp_server import SmtpServer, extract_passcode

EMAIL = "ada.guest@fabrikam.example"
LOGO_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="120" height="40" viewBox="0 0 120 40">'
    '<rect width="120" height="40" fill="#0b6e4f"/></svg>'
)


async def logo(request: Request) -> Response:
    return Response(LOGO_SVG, media_type="image/svg+xml")


@pytest.fixture
def logo_url() -> Iterator[str]:
    """A logo on another loopback origin (the way a CDN would serve it)."""
    port = free_port()
    with serve_in_thread(Starlette(routes=[Route("/logo.svg", logo)]), "127.0.0.1", port, "logo"):
        yield f"http://127.0.0.1:{port}/logo.svg"


@pytest.fixture
def branded(tmp_path: Path, smtp_server: SmtpServer, logo_url: str) -> Iterator[Any]:
    branding = {
        "name": "Contoso Partners",
        "logo_url": logo_url,
        "colors": {"primary": "#0b6e4f"},
        "privacy_url": "https://contoso.example/privacy",
        "terms_url": "https://contoso.example/terms",
    }
    smtp = (smtp_server.host, smtp_server.port)
    with live_server(tmp_path / "server", smtp=smtp, overrides={"branding": branding}) as server:
        yield server
    print(f"server log ({server.log_path}):\n{server.log()[-4000:]}")


@pytest.mark.browser
async def test_the_branded_french_sign_in_page(page: Page, branded: Any, smtp_server: SmtpServer) -> None:
    violations: list[str] = []

    def watch(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            violations.append(message.text)

    page.on("console", watch)
    base = branded.base_url
    request = flows.AuthRequest(redirect_uri=f"{base}/demo/callback", extra={"ui_locales": "fr-CA"})
    await page.goto(f"{base}/oauth2/authorize?{request.query()}")

    assert await page.get_attribute("html", "lang") == "fr"
    assert (await page.inner_text("h1")).strip() == "Connexion"
    logo = page.locator("img#logo")
    assert await logo.get_attribute("alt") == "Contoso Partners"
    await page.wait_for_function("document.querySelector('img#logo').complete")
    assert await logo.evaluate("img => img.naturalWidth") == 120  # loaded: the CSP lets its origin in
    button = page.locator("form[action$='/email'] button[type=submit]")
    assert (await button.inner_text()).strip() == "Suivant"
    assert await button.evaluate("b => getComputedStyle(b).backgroundColor") == "rgb(11, 110, 79)"
    privacy, terms = page.locator("footer #privacy-link"), page.locator("footer #terms-link")
    assert await privacy.get_attribute("href") == "https://contoso.example/privacy"
    assert (await privacy.inner_text()).strip() == "Déclaration de confidentialité"
    assert await terms.get_attribute("href") == "https://contoso.example/terms"
    assert (await terms.inner_text()).strip() == "Conditions d’utilisation"  # noqa: RUF001 - French typography

    await page.fill("input#email", EMAIL)
    await button.click()
    await page.wait_for_url(re.compile(re.escape(base) + r"/signin/[A-Za-z0-9_-]+/email$"))
    assert await page.get_attribute("html", "lang") == "fr"
    assert (await page.inner_text("h1")).strip() == "Saisissez votre code"
    mail = await smtp_server.wait_for(to=EMAIL, timeout=15)
    assert mail["Subject"] == "Votre code de connexion Contoso Partners"
    assert re.fullmatch(r"[0-9]{8}", extract_passcode(mail))
    assert violations == []
