"""Branding and translations settings: ``branding:`` (name, logo, colours, footer links, default
language) and ``translations:`` (per language, texts that override or add to the shipped catalogues).

``branding_problems`` checks what needs the whole file: every translated key exists in the English
catalogue (``gateway/i18n/catalogues/en.yaml``) with the same ``{placeholders}``, and the default
language has a catalogue (shipped, or given under ``translations``).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from gateway.i18n.catalogue import PlaceholderError, english, placeholders, shipped

if TYPE_CHECKING:
    from gateway.settings.models import Settings

Problems = list[tuple[tuple[str | int, ...], str]]

_HEX_COLOUR = re.compile(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})")
_LANGUAGE_TAG = re.compile(r"[a-z]{2,3}(?:-[A-Za-z0-9]{2,8})*")
_STATIC_PATH = re.compile(r"/static/(?:[A-Za-z0-9_-][A-Za-z0-9._-]*/)*[A-Za-z0-9_-][A-Za-z0-9._-]*")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_ORIGIN_AUTHORITY = re.compile(rf"(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{{1,5}})?")
"""A logo URL's host and port: its origin becomes a CSP ``img-src`` source, so nothing else may be
there (a user name, white space or ``;`` could otherwise add sources or whole directives)."""


def _hex_colour(value: str) -> str:
    if not _HEX_COLOUR.fullmatch(value):
        raise ValueError("must be a hex colour: #rgb or #rrggbb, e.g. #2457c5")
    return value.lower()


def _language_tag(value: str) -> str:
    if not _LANGUAGE_TAG.fullmatch(value):
        raise ValueError(
            "must be a language tag: a lower-case language and optional subtags, e.g. fr or pt-BR"
        )
    return value


def _link(value: str) -> str:
    from gateway.settings.models import check_absolute_url  # late: models imports this module

    return check_absolute_url(value)


def _logo(value: str) -> str:
    if value.startswith("/"):
        if not _STATIC_PATH.fullmatch(value):
            raise ValueError(
                "a path must name a file under /static/ (letters, digits, . _ - and /), e.g. /static/logo.svg"
            )
        return value
    from gateway.settings.models import check_absolute_url  # late: models imports this module

    try:
        check_absolute_url(value)
    except ValueError as exc:
        raise ValueError(f"{exc}, or a path under /static/") from exc
    if not _ORIGIN_AUTHORITY.fullmatch(urlsplit(value).netloc):
        raise ValueError(
            "the URL's host must be a plain host name or address with an optional port "
            "(no user name, password, white space or ';')"
        )
    return value


HexColour = Annotated[str, AfterValidator(_hex_colour)]
Link = Annotated[str, AfterValidator(_link)]
LanguageTag = Annotated[str, AfterValidator(_language_tag)]
CatalogueKey = Annotated[str, Field(min_length=1, max_length=200)]
CatalogueText = Annotated[str, Field(min_length=1, max_length=4000)]

TranslationOverrides = dict[LanguageTag, dict[CatalogueKey, CatalogueText]]
"""``translations:``: per language tag, catalogue key -> text."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Colours(_Strict):
    primary: HexColour | None = Field(
        None, description="Buttons, links and focus rings (#rrggbb or #rgb); left out, #2457c5."
    )
    background: HexColour | None = Field(
        None, description="The page behind the card, in the light colour scheme (dark mode keeps its own)."
    )
    text: HexColour | None = Field(
        None, description="The text colour, in the light colour scheme (dark mode keeps its own)."
    )


class Branding(_Strict):
    """How sign-in pages and mails present the organisation."""

    name: Annotated[str, Field(min_length=1, max_length=256)] | None = Field(
        None, description="The organisation's name on pages and in mails; left out, tenant.name."
    )
    logo_url: Annotated[str, AfterValidator(_logo)] | None = Field(
        None,
        description="The logo on every page and in the HTML part of mails: an https URL (http only on "
        "loopback) or a path under /static/. Its alt text is the branding name.",
    )
    colors: Colours = Field(Colours(), description="Page colours (hex only).")
    privacy_url: Link | None = Field(
        None,
        description="The privacy statement, linked in every page footer and mail footer; left out, "
        "invitations.privacy_statement_url (which the consent page keeps using, falling back to this one).",
    )
    terms_url: Link | None = Field(
        None, description="The organisation's terms, linked in every page footer and mail footer."
    )
    default_language: LanguageTag = Field(
        "en",
        description="The language of pages and mails when neither the app's ui_locales nor the browser's "
        "Accept-Language names an available one. Needs a catalogue: shipped (en, fr) or under translations.",
    )


def _texts_problems(lang: str, texts: dict[str, str], reference: dict[str, str]) -> Problems:
    problems: Problems = []
    for key, text in texts.items():
        where = ("translations", lang, key)
        if key not in reference:
            problems.append(
                (where, f"unknown key {key!r}: translations may only use the English catalogue's keys")
            )
            continue
        try:
            found = placeholders(text)
        except PlaceholderError as exc:
            problems.append((where, str(exc)))
            continue
        expected = placeholders(reference[key])
        if found != expected:
            want = ", ".join(f"{{{name}}}" for name in sorted(expected)) or "none"
            got = ", ".join(f"{{{name}}}" for name in sorted(found)) or "none"
            problems.append((where, f"placeholders must match the English text's ({want}); found {got}"))
    return problems


def branding_problems(settings: Settings) -> Problems:
    """Translated keys exist in English with the same placeholders; the default language has a catalogue."""
    problems: Problems = []
    reference = english()
    seen: dict[str, str] = {}
    for lang, texts in settings.translations.items():
        if lang.lower() in seen:
            problems.append(
                (("translations", lang), f"language {lang!r} is given twice (as {seen[lang.lower()]!r})")
            )
        seen[lang.lower()] = lang
        problems += _texts_problems(lang, texts, reference)
    available = {tag.lower() for tag in shipped()} | set(seen)
    default = settings.branding.default_language
    if default.lower() not in available:
        problems.append(
            (
                ("branding", "default_language"),
                f"no catalogue for {default!r}: use one of {', '.join(sorted(available))}, "
                "or add its texts under translations",
            )
        )
    return problems
