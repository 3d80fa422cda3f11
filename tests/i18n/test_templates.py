"""Templates compiled per language: ``{{ t("key") }}`` written in as escaped text, calls with values left to
the context's ``t``, and extended templates taken from the same language."""

from __future__ import annotations

from pathlib import Path

import pytest
from jinja2 import DictLoader, Environment, TemplateNotFound, select_autoescape

from gateway.i18n import translations_for
from gateway.i18n.templates import install, template_name
from tests.support.gateway_app import make_settings

TEMPLATES = {
    "base.html": (
        '<html lang="{{ lang }}"><title>{{ t("page.title_default") }}</title>{% block body %}{% endblock %}'
    ),
    "page.html": (
        '{% extends "base.html" %}{% block body %}'
        '<h1>{{ t( "signin.email.title" ) }}</h1>'
        '<p>{{ t("signin.email.lead", app=app) }}</p>'
        "<p>{{ t(key) }}</p>"
        "<p>{{ t('page.privacy_statement') }}|{{t(\"signin.email.or\")}}</p>"
        "{% endblock %}"
    ),
    "missing.html": '<p>{{ t("no.such.key") }}</p>',
    "no_values.html": '<p>{{ t("signin.email.lead") }}</p>',
}


@pytest.fixture
def env(tmp_path: Path) -> Environment:
    environment = Environment(loader=DictLoader(TEMPLATES), autoescape=select_autoescape())
    install(
        environment,
        translations_for(make_settings(tmp_path, translations={"de": {"page.title_default": "A<B"}})),
    )
    return environment


def calls(env: Environment, name: str) -> int:
    source = env.loader.get_source(env, name)[0]  # type: ignore[union-attr]
    return str(env.compile(source, name=name, raw=True)).count("context.call(")


def test_fixed_texts_are_written_in_and_calls_with_values_stay(env: Environment) -> None:
    page = env.get_template(template_name("fr", "page.html"))
    html = page.render(lang="fr", t=lambda key, **values: f"[{key}]", app="<Demo>", key="signin.email.next")
    assert html == (
        '<html lang="fr"><title>Connexion</title>'
        "<h1>Connexion</h1><p>[signin.email.lead]</p><p>[signin.email.next]</p>"
        "<p>déclaration de confidentialité|ou</p>"
    )
    assert calls(env, "fr/page.html") == 2  # the call with a value and the one with a computed key


def test_written_in_texts_are_escaped(env: Environment) -> None:
    html = env.get_template(template_name("de", "base.html")).render(lang="de", t=None)
    assert "<title>A&lt;B</title>" in html


def test_names_without_a_language_compile_with_calls(env: Environment) -> None:
    assert calls(env, "page.html") == 5
    with pytest.raises(TemplateNotFound):
        env.get_template("xx/page.html")


def test_an_unknown_key_stays_a_call_that_fails_when_rendered(env: Environment) -> None:
    template = env.get_template(template_name("en", "missing.html"))

    def t(key: str) -> str:
        raise KeyError(key)

    with pytest.raises(KeyError, match=r"no\.such\.key"):
        template.render(t=t)


def test_a_text_that_needs_values_is_never_written_in(env: Environment) -> None:
    assert calls(env, "fr/no_values.html") == 1  # compiles; the call fails when the page renders
