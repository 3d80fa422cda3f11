"""Languages of the guest-facing pages and mails: catalogues, negotiation, the organisation's look.

- ``catalogue``: the shipped YAML catalogues (``catalogues/<tag>.yaml``; English names every key),
  ``{placeholder}`` parsing, one language's compiled texts (``Catalogue``) and ``Message``, a text
  resolved once the page's language is known.
- ``negotiation``: ``negotiate(ui_locales, accept_language, available, default)`` (RFC 4647).
- ``translations``: ``Translations`` of one configuration (languages with their overrides and
  fallbacks, ``PageBranding``), ``translations_for(settings)`` and ``page_language(rt, request,
  ui_locales)``.

Pages get ``t("key", **values)``, ``lang`` and ``branding`` from ``gateway.pages.render``.
"""

from gateway.i18n.catalogue import Catalogue, Joined, Message, english_text
from gateway.i18n.negotiation import negotiate, parse_accept_language
from gateway.i18n.translations import PageBranding, Translations, page_language, translations_for

__all__ = [
    "Catalogue",
    "Joined",
    "Message",
    "PageBranding",
    "Translations",
    "english_text",
    "negotiate",
    "page_language",
    "parse_accept_language",
    "translations_for",
]
