"""``branding:`` and ``translations:`` in gateway.yaml: what loads, and the problems ``check-config``
reports with their line and key path (nothing is created while loading)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.i18n import translations_for
from gateway.settings import ConfigError, load_settings

HEAD = """\
issuer: http://127.0.0.1:8000
tenant:
  id: 4f5c2b0e-6a71-4c3e-9a8e-2f1d7c9b1a00
  domain: contoso.example
  name: Contoso
mail:
  from: Contoso <no-reply@contoso.example>
  console: true
connectors:
  - {id: email, type: email_otp}
"""

BRANDED = """\
branding:
  name: Contoso Partners
  logo_url: /static/logo.svg
  colors: {primary: "#0B6E4F", background: "#fff", text: "#1f2328"}
  privacy_url: https://contoso.example/privacy
  terms_url: https://contoso.example/terms
  default_language: de
translations:
  fr: {signin.email.title: "Se connecter"}
  de:
    signin.email.title: "Anmelden"
    signin.passcode.lead: "Code mit {length} Ziffern an {address}, gültig {validity}."
  fr-CA: {signin.email.next: "Continuer"}
"""


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    yield tmp_path


def problems(workdir: Path, text: str) -> list[str]:
    path = workdir / "gateway.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert sorted(p.name for p in workdir.iterdir()) == ["gateway.yaml"], "loading must create nothing"
    return [str(p).removeprefix(f"{path.parent}/") for p in caught.value.problems]


def test_branding_and_translations_load(workdir: Path) -> None:
    path = workdir / "gateway.yaml"
    path.write_text(HEAD + BRANDED, encoding="utf-8")
    settings = load_settings(path)
    assert settings.branding.colors.primary == "#0b6e4f"  # hex, lower-cased
    site = translations_for(settings)
    assert site.languages == ("de", "en", "fr", "fr-CA") and site.default == "de"
    assert site.catalogue("fr").text("signin.email.title") == "Se connecter"  # overrides the shipped text
    assert site.catalogue("fr").text("signin.email.next") == "Suivant"  # the rest stays French
    assert site.catalogue("fr-CA").text("signin.email.next") == "Continuer"
    assert site.catalogue("fr-CA").text("signin.email.title") == "Se connecter"  # falls back to fr first
    assert site.catalogue("de").text("signin.email.title") == "Anmelden"
    assert site.catalogue("de").text("signin.email.next") == "Next"  # key by key, English fills the gaps
    branding = site.branding
    assert branding.name == "Contoso Partners" and branding.logo_url == "/static/logo.svg"
    assert branding.mail.logo_url == "http://127.0.0.1:8000/static/logo.svg"  # mails need an absolute URL
    assert branding.image_source is None  # our own origin: the CSP needs nothing more
    assert branding.style is not None and "--accent:#0b6e4f" in branding.style


def test_the_privacy_statement_is_shared_with_the_invitations_setting(workdir: Path) -> None:
    path = workdir / "gateway.yaml"
    path.write_text(
        HEAD + "invitations: {privacy_statement_url: https://contoso.example/p}\n", encoding="utf-8"
    )
    branding = translations_for(load_settings(path)).branding
    assert branding.privacy_url == branding.consent_privacy_url == "https://contoso.example/p"
    path.write_text(
        HEAD
        + "invitations: {privacy_statement_url: https://contoso.example/guests}\n"
        + "branding: {privacy_url: https://contoso.example/all}\n",
        encoding="utf-8",
    )
    branding = translations_for(load_settings(path)).branding
    assert branding.privacy_url == "https://contoso.example/all"  # footers
    assert branding.consent_privacy_url == "https://contoso.example/guests"  # the consent page keeps its own


def test_an_unknown_translation_key_is_a_problem_at_its_line(workdir: Path) -> None:
    text = HEAD + "translations:\n  fr:\n    signin.email.titel: Connexion\n"
    assert problems(workdir, text) == [
        "gateway.yaml:13:25: translations.fr.signin.email.titel: unknown key 'signin.email.titel': "
        "translations may only use the English catalogue's keys"
    ]


def test_placeholders_must_match_the_english_text(workdir: Path) -> None:
    text = HEAD + 'translations:\n  fr:\n    signin.email.lead: "pour continuer vers {application}"\n'
    assert problems(workdir, text) == [
        "gateway.yaml:13:24: translations.fr.signin.email.lead: placeholders must match the English "
        "text's ({app}); found {application}"
    ]


def test_a_placeholder_missing_from_a_translation_is_a_problem(workdir: Path) -> None:
    text = HEAD + 'translations:\n  de:\n    signin.email.lead: "weiter"\n'
    [problem] = problems(workdir, text)
    assert problem.endswith(
        "translations.de.signin.email.lead: placeholders must match the English text's ({app}); found none"
    )


@pytest.mark.parametrize("bad", ["{app.__class__}", "{app!r}", "{app:>9}", "{", "{0}"])
def test_only_plain_placeholders_are_allowed(workdir: Path, bad: str) -> None:
    text = HEAD + f"translations:\n  fr:\n    signin.email.lead: '{bad}'\n"
    [problem] = problems(workdir, text)
    assert problem.startswith("gateway.yaml:13:24: translations.fr.signin.email.lead: ")
    assert "placeholder" in problem


@pytest.mark.parametrize("colour", ["red", "#12345", "#1234567", "2457c5", "#ggg", "rgb(1,2,3)", "#123;x"])
def test_colours_must_be_hex(workdir: Path, colour: str) -> None:
    text = HEAD + f'branding:\n  colors: {{primary: "{colour}"}}\n'
    assert problems(workdir, text) == [
        "gateway.yaml:12:21: branding.colors.primary: must be a hex colour: #rgb or #rrggbb, e.g. #2457c5"
    ]


def test_unknown_colour_names_are_refused(workdir: Path) -> None:
    [problem] = problems(workdir, HEAD + 'branding:\n  colors: {accent: "#fff"}\n')
    assert problem == (
        "gateway.yaml:12:12: branding.colors.accent: unknown key `accent`; "
        "allowed keys: primary, background, text"
    )


def test_the_default_language_needs_a_catalogue(workdir: Path) -> None:
    text = HEAD + "branding:\n  default_language: de\n"
    assert problems(workdir, text) == [
        "gateway.yaml:12:21: branding.default_language: no catalogue for 'de': use one of en, fr, "
        "or add its texts under translations"
    ]


@pytest.mark.parametrize(
    ("logo", "message"),
    [
        ("http://cdn.example/logo.png", "must use https (http is allowed only for loopback addresses), or"),
        ("javascript:alert(1)", "must be an absolute http(s) URL, or a path under /static/"),
        ("/var/logo.png", "a path must name a file under /static/"),
        ("/static/../secret", "a path must name a file under /static/"),
        ('/static/a"onerror=x', "a path must name a file under /static/"),
    ],
)  # fmt: skip
def test_the_logo_is_https_or_our_own_static_file(workdir: Path, logo: str, message: str) -> None:
    [problem] = problems(workdir, HEAD + f"branding:\n  logo_url: '{logo}'\n")
    assert problem.startswith("gateway.yaml:12:13: branding.logo_url: ") and message in problem


def test_footer_links_must_be_absolute_https(workdir: Path) -> None:
    [problem] = problems(workdir, HEAD + "branding:\n  terms_url: http://contoso.example/terms\n")
    assert problem.startswith("gateway.yaml:12:14: branding.terms_url: ") and "https" in problem


def test_a_language_tag_must_be_well_formed_and_given_once(workdir: Path) -> None:
    [bad] = problems(workdir, HEAD + "translations:\n  French: {signin.email.title: Connexion}\n")
    assert bad == (
        "gateway.yaml:12:11: translations.French: must be a language tag: a lower-case language and "
        "optional subtags, e.g. fr or pt-BR"
    )
    [twice] = problems(
        workdir,
        HEAD + "translations:\n  pt-BR: {signin.email.next: A}\n  pt-br: {signin.email.next: B}\n",
    )
    assert twice == "gateway.yaml:13:10: translations.pt-br: language 'pt-br' is given twice (as 'pt-BR')"


def test_unknown_branding_keys_are_refused(workdir: Path) -> None:
    [problem] = problems(workdir, HEAD + "branding:\n  colour: blue\n")
    assert problem.startswith("gateway.yaml:12:3: branding.colour: ")
