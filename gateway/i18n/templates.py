"""Page templates compiled once per language, with their fixed texts written in.

``install(env, translations)`` makes ``<lang>/<name>`` a template name of ``env``: the template
``<name>`` compiled for that language. While it compiles, every ``{{ t("key") }}`` with a literal
key and no values becomes the escaped text itself, so a page pays nothing at render time for its
fixed texts; ``t`` calls with values (or computed keys) stay calls to the context's ``t``, which
``gateway.pages.render`` binds to the same language. Templates a language template extends or
includes are taken from the same language (``join_path``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from jinja2 import BaseLoader, Environment, TemplateNotFound
from jinja2.ext import Extension
from jinja2.lexer import TOKEN_DATA, Token, TokenStream

if TYPE_CHECKING:
    from gateway.i18n.translations import Translations

_FOLDABLE = ("variable_begin", "name", "lparen", "string", "rparen", "variable_end")


def _split(name: str | None, languages: frozenset[str]) -> tuple[str | None, str]:
    """``("fr", "x.html")`` for ``fr/x.html``; ``(None, name)`` for a name without a language."""
    if name is None:
        return None, ""
    lang, _, rest = name.partition("/")
    return (lang, rest) if rest and lang in languages else (None, name)


class LanguageLoader(BaseLoader):
    """``<lang>/<name>`` loads ``<name>`` from the wrapped loader (other names pass through)."""

    def __init__(self, loader: BaseLoader, languages: frozenset[str]) -> None:
        self.loader = loader
        self.languages = languages

    def get_source(
        self, environment: Environment, template: str
    ) -> tuple[str, str | None, Callable[[], bool] | None]:
        _, name = _split(template, self.languages)
        try:
            return self.loader.get_source(environment, name)
        except TemplateNotFound:
            raise TemplateNotFound(template) from None


class FixedTexts(Extension):
    """Writes ``{{ t("key") }}`` into a language's template as that language's escaped text."""

    def filter_stream(self, stream: TokenStream) -> Iterator[Token]:
        translations: Translations = self.environment.gateway_translations  # type: ignore[attr-defined]
        lang, _ = _split(stream.name, frozenset(translations.languages))
        if lang is None:
            yield from stream
            return
        catalogue = translations.catalogue(lang)
        pending: list[Token] = []
        for token in stream:
            pending.append(token)
            if token.type != _FOLDABLE[len(pending) - 1] or (len(pending) == 2 and token.value != "t"):
                if token.type == "variable_begin":  # a new print may start here
                    yield from pending[:-1]
                    pending = [token]
                else:
                    yield from pending
                    pending = []
                continue
            if len(pending) == len(_FOLDABLE):
                text = catalogue.fixed_html(pending[3].value)
                if text is not None:
                    yield Token(pending[0].lineno, TOKEN_DATA, str(text))
                else:  # an unknown key, or one that needs values: the call says so when the page renders
                    yield from pending
                pending = []
        yield from pending


def install(env: Environment, translations: Translations) -> None:
    """Let ``env`` compile ``<lang>/<name>`` for each of ``translations``' languages."""
    languages = frozenset(translations.languages)
    assert env.loader is not None
    env.loader = LanguageLoader(env.loader, languages)
    env.extend(gateway_translations=translations)
    env.add_extension(FixedTexts)

    def join_path(template: str, parent: str) -> str:
        lang, _ = _split(parent, languages)
        return f"{lang}/{template}" if lang is not None and "/" not in template else template

    env.join_path = join_path  # type: ignore[method-assign]


def template_name(lang: str, name: str) -> str:
    """The name of ``name`` compiled for ``lang`` (a language ``install`` was given)."""
    return f"{lang}/{name}"
