"""``directory:`` (bootstrap administrators) and ``invitations:`` in gateway.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from gateway.settings import ConfigError, load_settings
from gateway.settings.directory import Directory, Invitations
from tests.support.gateway_app import make_settings

BASE = """\
issuer: http://127.0.0.1:8000
tenant: {id: 4f5c2b0e-6a71-4c3e-9a8e-2f1d7c9b1a00, domain: contoso.example, name: Contoso}
mail: {from: Contoso <no-reply@contoso.example>, console: true}
connectors: [{id: email, type: email_otp}]
secrets: {key: %s}
""" % ("k" * 40)


def test_defaults(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    assert settings.directory.administrators == []
    assert settings.invitations.ticket_lifetime_days == 90
    assert settings.invitations.privacy_statement_url is None


def test_administrators_are_lower_cased_and_their_roles_looked_up_by_mail() -> None:
    directory = Directory.model_validate(
        {
            "administrators": [
                {"email": "Ada@Contoso.Example", "roles": ["Global Administrator", "Guest Inviter"]}
            ]
        }
    )
    assert directory.administrators[0].email == "ada@contoso.example"
    assert directory.roles_of("ADA@contoso.example") == {"Global Administrator", "Guest Inviter"}
    assert directory.roles_of("someone@contoso.example") == frozenset()
    assert directory.roles_of(None) == frozenset()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"administrators": [{"email": "a@contoso.example", "roles": ["Root"]}]}, "Global Administrator"),
        ({"administrators": [{"email": "a@contoso.example", "roles": []}]}, "at least 1"),
        ({"administrators": [{"email": "a@contoso.example", "roles": ["Guest Inviter", "Guest Inviter"]}]},
         "listed twice"),
        ({"administrators": [{"email": "a@contoso.example", "roles": ["Guest Inviter"]},
                             {"email": "A@contoso.example", "roles": ["Guest Inviter"]}]}, "listed twice"),
        ({"administrators": [{"email": "not-an-address", "roles": ["Guest Inviter"]}]}, "@"),
        ({"administrators": [{"email": "a@contoso.example", "roles": ["Guest Inviter"], "x": 1}]}, "Extra"),
        ({"admins": []}, "Extra"),
    ],
)  # fmt: skip
def test_bad_directory_settings(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Directory.model_validate(data)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"ticket_lifetime_days": 0}, "greater than or equal to 1"),
        ({"ticket_lifetime_days": 366}, "less than or equal to 365"),
        ({"ticket_lifetime_days": "ninety"}, "integer"),
        ({"privacy_statement_url": "http://contoso.example/privacy"}, "https"),
        ({"privacy_statement_url": "https://contoso.example/privacy#top"}, "https"),
        ({"privacy_statement_url": "privacy.html"}, "https"),
    ],
)
def test_bad_invitation_settings(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Invitations.model_validate(
            {"ticket_lifetime_days": 90, **data} if "ticket" not in str(data) else data
        )


def test_a_full_yaml_loads(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(
        BASE
        + "directory:\n  administrators:\n    - {email: Ada@Contoso.Example, roles: [Global Administrator]}\n"
        + "invitations: {ticket_lifetime_days: 30, privacy_statement_url: https://contoso.example/privacy}\n"
    )
    settings = load_settings(path)
    assert settings.directory.roles_of("ada@contoso.example") == {"Global Administrator"}
    assert settings.invitations.ticket_lifetime_days == 30
    assert settings.invitations.privacy_statement_url == "https://contoso.example/privacy"


def test_yaml_errors_name_the_line_and_key(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(
        BASE + "directory:\n  administrators:\n    - {email: ada@contoso.example, roles: [Owner]}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    rendered = [str(problem) for problem in caught.value.problems]
    assert len(rendered) == 1
    assert rendered[0].startswith(f"{path}:8:")
    assert "directory.administrators[0].roles[0]" in rendered[0]
