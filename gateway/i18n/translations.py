"""One configuration's languages and look: the ``Translations`` object pages and mails use.

Built once per ``Settings`` (``translations_for``; at start-up, by ``open_runtime``): every
available language (the shipped catalogues and those under ``translations:``) compiled with its
configured overrides and, key by key, its fallback merged in (``fr-CA`` falls back to ``fr`` when
there is one, every language to English, English overrides included). A page's lookup is then one
dict get. ``branding`` is what pages and mails show of the organisation (``PageBranding``).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from markupsafe import Markup

from gateway.i18n.catalogue import ENGLISH, Catalogue, shipped
from gateway.i18n.negotiation import choose
from idp_connectors.base import MailBranding

if TYPE_CHECKING:
    from starlette.requests import Request

    from gateway.runtime import Runtime
    from gateway.settings.models import Settings

CACHED_SETTINGS = 8
_STYLE_SOURCE = "style-src 'self'"
_IMAGE_SOURCE = "img-src 'self' data:"


@dataclass(frozen=True, slots=True)
class PageBranding:
    """The organisation as pages show it (``branding`` in templates) and mails link it."""

    name: str
    logo_url: str | None
    """As configured: an absolute URL or a path under ``/static/`` (for pages)."""
    privacy_url: str | None
    terms_url: str | None
    consent_privacy_url: str | None
    """The consent page's privacy statement: ``invitations.privacy_statement_url``, else ``privacy_url``."""
    style: Markup | None
    """The colours as CSS custom properties: the body of the pages' one inline ``<style>``."""
    style_source: str | None
    """The CSP source that allows exactly that ``<style>``: ``'sha256-…'`` of its text."""
    image_source: str | None
    """The logo's origin, when it is not the gateway's own: added to the CSP ``img-src``."""
    mail: MailBranding
    """The same for mails (the logo as an absolute URL)."""

    def content_security_policy(self, policy: str) -> str:
        """``policy`` with the inline style's hash and the logo's origin allowed (nothing else)."""
        if self.style_source is not None:
            policy = policy.replace(_STYLE_SOURCE, f"{_STYLE_SOURCE} {self.style_source}", 1)
        if self.image_source is not None:
            policy = policy.replace(_IMAGE_SOURCE, f"{_IMAGE_SOURCE} {self.image_source}", 1)
        return policy

    @property
    def adapts_policy(self) -> bool:
        return self.style_source is not None or self.image_source is not None


def _style(settings: Settings) -> str | None:
    colours = settings.branding.colors
    rules = []
    if colours.primary is not None:
        rules.append(f":root{{--accent:{colours.primary}}}")
    light = [
        f"--{name}:{value}" for name, value in (("bg", colours.background), ("fg", colours.text)) if value
    ]
    if light:
        rules.append(f"@media not all and (prefers-color-scheme:dark){{:root{{{';'.join(light)}}}}}")
    return "".join(rules) or None


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def page_branding(settings: Settings) -> PageBranding:
    branding = settings.branding
    style = _style(settings)
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode() if style else None
    logo = branding.logo_url
    external = logo is not None and not logo.startswith("/") and _origin(logo) != _origin(settings.issuer)
    invitation_privacy = settings.invitations.privacy_statement_url
    privacy = branding.privacy_url or invitation_privacy
    return PageBranding(
        name=branding.name or settings.tenant.name,
        logo_url=logo,
        privacy_url=privacy,
        terms_url=branding.terms_url,
        consent_privacy_url=invitation_privacy or branding.privacy_url,
        style=Markup(style) if style else None,  # noqa: S704 - built from validated hex colours only
        style_source=f"'sha256-{digest}'" if digest else None,
        image_source=_origin(logo) if logo is not None and external else None,
        mail=MailBranding(  # mail clients have no base URL: a /static/ logo is joined to the issuer
            logo_url=settings.issuer + logo if logo is not None and logo.startswith("/") else logo,
            privacy_url=privacy,
            terms_url=branding.terms_url,
        ),
    )


class Translations:
    """Every available language of one configuration, compiled, and how to choose among them."""

    def __init__(self, settings: Settings) -> None:
        catalogues = shipped()
        configured = {lang.lower(): (lang, texts) for lang, texts in settings.translations.items()}
        spelled = {tag.lower(): tag for tag in catalogues} | {
            low: lang for low, (lang, _) in configured.items()
        }
        english = {**catalogues[ENGLISH], **configured.get(ENGLISH, (ENGLISH, {}))[1]}
        self.texts: dict[str, dict[str, str]] = {}
        """Per language (as spelled in ``languages``), every key's text: what mail composers format."""
        for low in sorted(spelled, key=lambda tag: (tag.count("-"), tag)):  # parents before children
            parent = spelled.get(low.split("-", 1)[0]) if "-" in low else None
            base = self.texts[parent] if parent is not None else english
            own = {**catalogues.get(spelled[low], {}), **configured.get(low, ("", {}))[1]}
            self.texts[spelled[low]] = {**base, **own}
        self.default = spelled[settings.branding.default_language.lower()]
        self.languages = tuple(sorted(self.texts))
        self._index = {tag.lower(): tag for tag in self.languages}
        self._catalogues = {tag: Catalogue(tag, texts) for tag, texts in self.texts.items()}
        self.branding = page_branding(settings)

    def catalogue(self, lang: str) -> Catalogue:
        """The language's catalogue (``lang`` as ``negotiate`` spells it); the default one otherwise."""
        found = self._catalogues.get(lang)
        return found if found is not None else self._catalogues[self.default]

    def negotiate(self, ui_locales: Sequence[str] = (), accept_language: str | None = None) -> str:
        """``gateway.i18n.negotiate`` over this configuration's languages and default."""
        return choose(ui_locales, accept_language, self._index, self.default)


_built: dict[int, tuple[Settings, Translations]] = {}


def translations_for(settings: Settings) -> Translations:
    """The ``Translations`` of these settings, built on first use and kept (for the last few settings)."""
    found = _built.get(id(settings))
    if found is not None and found[0] is settings:
        return found[1]
    built = Translations(settings)
    if len(_built) >= CACHED_SETTINGS:
        _built.pop(next(iter(_built)))
    _built[id(settings)] = (settings, built)
    return built


def page_language(rt: Runtime, request: Request, ui_locales: Sequence[str] = ()) -> str:
    """The language tag a page for this request is in: the app's ``ui_locales`` first, then the
    browser's ``Accept-Language``, then ``branding.default_language``."""
    return translations_for(rt.settings).negotiate(ui_locales, request.headers.get("accept-language"))
