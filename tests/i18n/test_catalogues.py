"""The shipped catalogues: French translates every English key with the same placeholders; every key the
templates, the code and the passcode mail use exists; lookups escape what they insert."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from markupsafe import Markup

from gateway.i18n.catalogue import (
    CATALOGUES,
    Catalogue,
    Joined,
    Message,
    PlaceholderError,
    english,
    parse,
    placeholders,
    shipped,
)
from idp_connectors.email_otp.messages import ENGLISH as PASSCODE_MAIL_ENGLISH

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "gateway" / "templates"
T_CALL = re.compile(r"""\bt\(\s*(["'])([^"']+)\1""")
DYNAMIC_T_CALL = re.compile(r"""\bt\(\s*["'][^"']*["']\s*~""")


def test_english_and_french_ship() -> None:
    assert {"en", "fr"} <= set(shipped())
    assert sorted(path.stem for path in CATALOGUES.glob("*.yaml")) == sorted(shipped())


def test_french_translates_every_english_key_with_the_same_placeholders() -> None:
    en, fr = shipped()["en"], shipped()["fr"]
    assert set(fr) == set(en), (
        f"missing in fr: {sorted(set(en) - set(fr))}; extra: {sorted(set(fr) - set(en))}"
    )
    for key, text in en.items():
        assert placeholders(fr[key]) == placeholders(text), key


def test_french_is_a_translation_not_a_copy() -> None:
    en, fr = shipped()["en"], shipped()["fr"]
    # Texts that are the same in both languages (names, formats, punctuation).
    same = {key for key in en if en[key] == fr[key]}
    assert same <= {
        "list.separator", "mail.date", "duration.minute_one", "duration.minute_other",
        "signin.email.invitation_app",
    }, sorted(same)  # fmt: skip


def _template_keys() -> set[str]:
    keys: set[str] = set()
    for path in TEMPLATES.glob("*.html"):
        if path.name.startswith("signup_"):  # the sign-up pages' keys ship with them (signup.*)
            continue
        keys |= {match.group(2) for match in T_CALL.finditer(path.read_text(encoding="utf-8"))}
    return keys


def _code_keys() -> set[str]:
    """Literal keys in the gateway's code: ``Message("key", ...)`` and ``Joined(items, "key")``."""
    keys: set[str] = set()
    for path in (ROOT / "gateway").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
                continue
            position = {"Message": 0, "Joined": 1}.get(node.func.id)
            if position is not None and len(node.args) > position:
                key = node.args[position]
                if isinstance(key, ast.Constant) and isinstance(key.value, str):
                    keys.add(key.value)
    return keys


def test_every_key_the_pages_and_the_code_use_exists_in_english() -> None:
    used = _template_keys() | _code_keys()
    assert len(used) > 150
    assert used - set(english()) == set()


def test_keys_built_at_run_time_exist() -> None:
    from gateway.myapps.routes import REFUSALS as LEAVE_REFUSALS
    from gateway.signin.policy_step import REFUSALS

    for reason in REFUSALS:
        assert {f"refusal.{reason}.title", f"refusal.{reason}.detail"} <= set(english())
    assert all(message.key in english() for message in LEAVE_REFUSALS.values())
    for month in range(1, 13):
        assert f"mail.month.{month}" in english()
    for unit in ("second", "minute", "hour"):
        assert {f"duration.{unit}_one", f"duration.{unit}_other"} <= set(english())


def test_the_passcode_mail_s_built_in_english_is_the_catalogue_s() -> None:
    assert {key: english()[key] for key in PASSCODE_MAIL_ENGLISH} == dict(PASSCODE_MAIL_ENGLISH)


def test_lookups_escape_inserted_values_but_not_markup() -> None:
    catalogue = Catalogue("en", {"k": "Hello {name}, see {link}.", "plain": 'We\'ll <never> & "quote"'})
    html = catalogue.html("k", name="<b>Eve</b> & 'co'", link=Markup('<a href="/x">here</a>'))
    assert html == 'Hello &lt;b&gt;Eve&lt;/b&gt; &amp; &#39;co&#39;, see <a href="/x">here</a>.'
    assert isinstance(html, Markup)
    assert catalogue.html("plain") == "We'll &lt;never&gt; &amp; &#34;quote&#34;"  # apostrophes kept as typed
    assert catalogue.text("k", name="<b>", link="x") == "Hello <b>, see x."  # plain text is not escaped


def test_messages_resolve_in_the_catalogue_s_language_and_nest() -> None:
    fr = Catalogue("fr", {**english(), **shipped()["fr"]})
    wrong = Message("signin.passcode.wrong", attempts_left=Message("signin.passcode.attempts_other", count=3))
    assert fr.resolve(wrong) == "Ce code n’est pas le bon. Il vous reste 3 essais."  # noqa: RUF001 - French typography
    assert fr.resolve(Joined(["A", "B", "C"])) == "A, B et C"
    assert fr.resolve(Joined(["A"])) == "A"
    assert fr.html("terms.error.required", names=Joined(["<A>", "B"])) == (
        "Pour continuer, cochez la case pour accepter &lt;A&gt; et B."
    )


def test_braces_and_unknown_keys() -> None:
    catalogue = Catalogue("en", {"braces": "{{literal}} {x}", "none": "{{only}}"})
    assert catalogue.text("braces", x=1) == "{literal} 1"
    assert catalogue.text("none") == "{only}" and catalogue.html("none") == "{only}"
    with pytest.raises(KeyError):
        catalogue.text("missing")
    with pytest.raises(KeyError):
        catalogue.text("braces")  # a value left out is a bug, not an empty string


@pytest.mark.parametrize("text", ["{", "}", "{a.b}", "{a[0]}", "{a!r}", "{a:>10}", "{0}", "{}", "{ a }"])
def test_only_plain_named_placeholders_are_allowed(text: str) -> None:
    with pytest.raises(PlaceholderError):
        parse(text)


def test_no_template_builds_keys_except_the_sign_up_pages() -> None:
    for path in TEMPLATES.glob("*.html"):
        if not path.name.startswith("signup_"):
            assert not DYNAMIC_T_CALL.search(path.read_text(encoding="utf-8")), path.name


def test_every_guest_page_extends_base_and_takes_its_strings_from_the_catalogue() -> None:
    english_only = {"admin", "owner", "demo"}  # the admin and owner pages and the demo app stay English
    for path in TEMPLATES.glob("*.html"):
        if path.name == "base.html" or path.name.split("_")[0].removesuffix(".html") in english_only:
            continue
        source = path.read_text(encoding="utf-8")
        assert source.startswith('{% extends "base.html" %}'), path.name
        body = re.sub(r"{[{%#].*?[}%#]}", "", source, flags=re.S)  # template code removed
        body = re.sub(r"<[^>]+>", " ", body)  # tags removed: what is left is literal text
        assert re.findall(r"[A-Za-z]{3,}", body) == [], f"{path.name}: untranslated text"
