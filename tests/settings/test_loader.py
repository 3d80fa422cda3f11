"""load_settings: every problem at once, each with its file:line:col, key path and what is allowed."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from gateway.settings import ConfigError, ConfigProblem, Settings, load_settings, settings_json_schema
from idp_connectors.registry import REGISTRY

ROOT = Path(__file__).resolve().parents[2]
SECRET = "s" * 40

# Line numbers below are 1-based, as printed; the tests spell them out to pin exact positions.
VALID = """\
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
applications:
  - id: demo
    name: Demo app
    oidc:
      client_id: demo
      redirect_uris:
        - http://127.0.0.1:8000/demo/callback
    user_flow: default
user_flows:
  - {id: default, identity_providers: [email]}
demo: {enabled: true}
"""


TOP_KEYS = ", ".join(f.alias or name for name, f in Settings.model_fields.items())
TYPES = ", ".join(REGISTRY)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    yield tmp_path


def write(workdir: Path, text: str, name: str = "gateway.yaml") -> Path:
    path = workdir / name
    path.write_text(text, encoding="utf-8")
    return path


def problems(workdir: Path, text: str, environ: Mapping[str, str] | None = None) -> list[str]:
    """The rendered problems of ``text``; also proves loading created nothing in the working dir."""
    path = write(workdir, text)
    before = sorted(p.name for p in workdir.iterdir())
    with pytest.raises(ConfigError) as caught:
        load_settings(path, {} if environ is None else environ)
    assert sorted(p.name for p in workdir.iterdir()) == before  # nothing persisted (no var/)
    assert str(caught.value) == "\n".join(str(p) for p in caught.value.problems)
    return [str(p).removeprefix(f"{path}:") for p in caught.value.problems]


def test_the_shipped_default_config_loads(workdir: Path) -> None:
    settings = load_settings(ROOT / "config" / "gateway.yaml", {})
    assert settings.issuer == "http://127.0.0.1:8000"
    assert settings.mail.console is True
    assert [c.id for c in settings.connectors] == ["email"]
    assert list(workdir.iterdir()) == []


def test_the_examples_load_with_their_environment(workdir: Path) -> None:
    environ = {
        "GATEWAY_SECRET": SECRET,
        "REDIS_PASSWORD": "r3dis",
        "SMTP_PASSWORD": "smtp-pass",
        "PORTAL_CLIENT_SECRET": "portal-secret-0123456789",
        "FABRIKAM_CLIENT_SECRET": "fabrikam-secret-0123456789",
    }
    production = load_settings(ROOT / "config" / "examples" / "production.yaml", environ)
    assert production.secrets is not None and production.secrets.keys == [SECRET]
    assert production.store == "rediss://:r3dis@redis.contoso.example:6380/0"
    assert production.mail.smtp is not None and production.mail.smtp.password == "smtp-pass"
    assert [p.id for p in production.conditional_access] == [
        "guests-mfa-and-terms",
        "block-outside-office-report-only",
    ]
    local = load_settings(ROOT / "config" / "examples" / "local-smtp.yaml", {})
    assert local.mail.smtp is not None and local.mail.smtp.port == 1025
    assert list(workdir.iterdir()) == []


def test_valid_text_loads_and_environ_defaults_to_the_process_environment(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GW_TEST_TENANT_NAME", "Fabrikam")
    path = write(workdir, VALID.replace("name: Contoso", "name: ${GW_TEST_TENANT_NAME}"))
    settings = load_settings(str(path))
    assert isinstance(settings, Settings)
    assert settings.tenant.name == "Fabrikam"


def test_typo_at_top_level_names_the_key_and_suggests(workdir: Path) -> None:
    assert problems(workdir, VALID.replace("issuer:", "issuerr:")) == [
        "1:1: issuerr: unknown key `issuerr`; did you mean `issuer`? allowed keys: " + TOP_KEYS + ""
    ]  # and no separate "missing issuer": the suggestion says it


def test_typo_in_a_nested_list_item_points_at_the_key(workdir: Path) -> None:
    found = problems(workdir, VALID.replace("redirect_uris:", "redirect_uri:"))
    assert len(found) == 1
    assert found[0].startswith(
        "16:7: applications[0].oidc.redirect_uri: unknown key `redirect_uri`; did you mean `redirect_uris`? "
        "allowed keys: client_id, client_secret, redirect_uris, post_logout_redirect_uris,"
    )


def test_allowed_keys_use_aliases(workdir: Path) -> None:
    found = problems(workdir, VALID.replace("  from:", "  frm:"))
    assert found == [
        "7:3: mail.frm: unknown key `frm`; did you mean `from`? allowed keys: from, console, smtp"
    ]


def test_unknown_key_without_a_close_match_lists_what_is_allowed(workdir: Path) -> None:
    assert problems(workdir, VALID.replace("demo: {enabled: true}", "demo: {enabled: true, zzz: 1}")) == [
        "21:23: demo.zzz: unknown key `zzz`; allowed keys: enabled"
    ]


def test_several_problems_are_reported_at_once_in_file_order(workdir: Path) -> None:
    text = (
        VALID.replace("issuer:", "issuerr:")
        .replace("id: 4f5c2b0e-6a71-4c3e-9a8e-2f1d7c9b1a00", "id: not-a-uuid")
        .replace("type: email_otp", "type: ldap")
        .replace("demo: {enabled: true}", "demo: {enabled: maybe}")
    )
    found = problems(workdir, text)
    assert [p.split(": ")[0:2] for p in found] == [
        ["1:1", "issuerr"],
        ["3:7", "tenant.id"],
        ["10:23", "connectors[0].type"],
        ["21:17", "demo.enabled"],
    ]
    assert found[1] == (
        "3:7: tenant.id: String should match pattern "
        "'^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'"
    )
    assert found[2] == "10:23: connectors[0].type: unknown type `ldap`; allowed types: " + TYPES
    assert found[3] == "21:17: demo.enabled: must be a boolean (true or false)"


def test_missing_connector_type_points_at_the_item(workdir: Path) -> None:
    assert problems(workdir, VALID.replace("{id: email, type: email_otp}", "{id: email}")) == [
        "10:5: connectors[0]: missing required key `type`; allowed types: " + TYPES
    ]


def test_unknown_key_inside_a_connector_lists_that_connectors_keys(workdir: Path) -> None:
    text = VALID.replace("{id: email, type: email_otp}", "{id: email, type: email_otp, zzz: x}")
    assert problems(workdir, text) == [
        "10:34: connectors[0].zzz: unknown key `zzz`; allowed keys: id, display_name, domains, type, passcode"
    ]


def test_missing_required_key_points_at_the_parent_mapping(workdir: Path) -> None:
    assert problems(workdir, VALID.replace("  domain: contoso.example\n", "")) == [
        "3:3: tenant: missing required key `domain`"
    ]


def test_missing_top_level_key_has_no_key_path(workdir: Path) -> None:
    text = VALID.replace("mail:\n  from: Contoso <no-reply@contoso.example>\n  console: true\n", "")
    assert problems(workdir, text) == ["1:1: missing required key `mail`"]


def test_wrong_types_say_what_is_expected(workdir: Path) -> None:
    text = VALID.replace("  console: true\n", "  smtp: {host: 127.0.0.1, port: twenty-five}\n").replace(
        "tenant:\n", "tokens: {access_token_seconds: [1]}\ntenant:\n"
    )
    assert problems(workdir, text) == [
        "2:32: tokens.access_token_seconds: must be an integer",
        "9:33: mail.smtp.port: must be an integer",
    ]


def test_a_section_that_is_not_a_mapping_lists_its_keys(workdir: Path) -> None:
    assert problems(workdir, VALID.replace("demo: {enabled: true}", "demo: true")) == [
        "21:7: demo: must be a mapping; allowed keys: enabled"
    ]


def test_union_of_string_and_list_is_one_clear_problem(workdir: Path) -> None:
    head = f"secrets:\n  key: 5\n{VALID}"
    assert problems(workdir, head) == ["2:8: secrets.key: must be a string or a list"]
    listed = f"secrets:\n  key:\n    - {SECRET}\n    - 7\n{VALID}"
    assert problems(workdir, listed) == ["4:7: secrets.key[1]: must be a string"]


def test_issuer_with_a_path_is_refused(workdir: Path) -> None:
    assert problems(workdir, VALID.replace("http://127.0.0.1:8000\n", "http://127.0.0.1:8000/gw\n", 1)) == [
        "1:9: issuer: the issuer has no path or query"
    ]


def test_http_issuer_is_refused_unless_loopback(workdir: Path) -> None:
    text = f"secrets: {{key: {SECRET}}}\n" + VALID.replace(
        "issuer: http://127.0.0.1:8000", "issuer: http://login.contoso.example"
    )
    assert problems(workdir, text) == [
        "2:9: issuer: must use https (http is allowed only for loopback addresses)"
    ]


def test_public_issuer_without_a_secret_is_refused(workdir: Path) -> None:
    text = VALID.replace("issuer: http://127.0.0.1:8000", "issuer: https://login.contoso.example")
    assert problems(workdir, text) == [
        "1:9: issuer: secrets.key is required when the issuer is not a loopback address"
    ]


def test_bad_list_item_is_named_by_index(workdir: Path) -> None:
    text = VALID.replace(
        "        - http://127.0.0.1:8000/demo/callback\n",
        "        - http://127.0.0.1:8000/demo/callback\n        - http://rp.example/callback\n",
    )
    assert problems(workdir, text) == [
        "18:11: applications[0].oidc.redirect_uris[1]: "
        "must use https (http is allowed only for loopback addresses)"
    ]


def test_cross_reference_errors_are_placed(workdir: Path) -> None:
    text = VALID.replace("identity_providers: [email]", "identity_providers: [email, google]")
    assert problems(workdir, text) == [
        "20:47: user_flows[0].identity_providers[1]: unknown connector 'google'"
    ]


def test_duplicate_keys_are_all_reported_with_their_first_definition(workdir: Path) -> None:
    text = VALID.replace("  name: Contoso\n", "  name: Contoso\n  name: Fabrikam\n").replace(
        "demo: {enabled: true}", "demo: {enabled: true, enabled: false}"
    )
    assert problems(workdir, text) == [
        "6:3: tenant.name: duplicate key (first defined at line 5, column 3)",
        "22:23: demo.enabled: duplicate key (first defined at line 22, column 8)",
    ]


def test_keys_equal_only_after_construction_are_duplicates_too(workdir: Path) -> None:
    assert problems(workdir, VALID + "1: a\n1.0: b\n") == [
        "23:1: duplicate key (it equals an earlier key of this mapping)"
    ]


def test_unset_variable_is_a_problem_at_its_scalar(workdir: Path) -> None:
    text = "secrets:\n  key: ${GATEWAY_SECRET}\n" + VALID
    # the empty substitute would also be "too short": that follow-on error is not reported
    assert problems(workdir, text, {"OTHER": "x"}) == [
        "2:8: secrets.key: environment variable GATEWAY_SECRET is not set"
    ]


def test_unset_variables_are_reported_alongside_other_problems(workdir: Path) -> None:
    text = 'secrets:\n  key: ["${A}", "x${B}"]\n' + VALID.replace("issuer:", "issuerr:")
    assert problems(workdir, text) == [
        "2:9: secrets.key[0]: environment variable A is not set",
        "2:17: secrets.key[1]: environment variable B is not set",
        "3:1: issuerr: unknown key `issuerr`; did you mean `issuer`? allowed keys: " + TOP_KEYS + "",
    ]


def test_variables_substitute_whole_and_embedded(workdir: Path) -> None:
    text = "secrets:\n  key: ${SECRET}\n" + VALID.replace(
        "name: Contoso", 'name: "${ORG} (${ENV_NAME})"'
    ).replace("  console: true\n", "  smtp: {host: '${SMTP_HOST}', port: '${SMTP_PORT}'}\n")
    environ = {
        "SECRET": SECRET,
        "ORG": "Contoso",
        "ENV_NAME": "staging",
        "SMTP_HOST": "mail.internal",
        "SMTP_PORT": "2525",
    }
    settings = load_settings(write(workdir, text), environ)
    assert settings.secrets is not None and settings.secrets.keys == [SECRET]
    assert settings.tenant.name == "Contoso (staging)"
    assert settings.mail.smtp is not None
    assert (settings.mail.smtp.host, settings.mail.smtp.port) == ("mail.internal", 2525)


def test_double_dollar_escapes_a_literal_reference(workdir: Path) -> None:
    text = VALID.replace("name: Contoso", 'name: "Costs $${HOME} and ${X}, not $$X"')
    settings = load_settings(write(workdir, text), {"X": "y", "HOME": "/root"})
    assert settings.tenant.name == "Costs ${HOME} and y, not $$X"


def test_malformed_reference_is_a_problem(workdir: Path) -> None:
    assert problems(workdir, VALID.replace("name: Contoso", "name: Contoso ${1BAD}"), {"1BAD": "x"}) == [
        "5:9: tenant.name: write ${NAME} for a variable, or $${ for a literal ${"
    ]


def test_variable_values_are_never_echoed(workdir: Path) -> None:
    found = problems(workdir, "secrets:\n  key: ${S}\n" + VALID, {"S": "hunter2-short"})
    assert found == ["2:8: secrets.key: each secret key must be at least 32 characters"]
    assert "hunter2" not in "\n".join(found)


def test_yaml_syntax_error_has_its_position(workdir: Path) -> None:
    assert problems(workdir, VALID.replace("demo: {enabled: true}", "demo: {enabled: true")) == [
        "22:1: YAML syntax error: expected ',' or '}', but got '<stream end>' "
        "(while parsing a flow mapping started at line 21, column 7)"
    ]


def test_unquoted_variable_in_flow_collection_gets_a_hint(workdir: Path) -> None:
    found = problems(workdir, "secrets: {key: ${S}}\n" + VALID, {"S": SECRET})
    assert found == [
        "1:17: YAML syntax error: expected ',' or '}', but got '{' (while parsing a flow mapping started at "
        'line 1, column 10); inside [ ] or { } quote a value that uses a variable: "${NAME}"'
    ]


def test_empty_file_is_a_clear_problem(workdir: Path) -> None:
    for text in ("", "# nothing yet\n", "---\n"):
        assert problems(workdir, text) == [
            "1:1: the file is empty; it needs at least `issuer`, `tenant`, `mail`, `connectors`"
        ]


def test_top_level_must_be_a_mapping(workdir: Path) -> None:
    message = "the top level must be a mapping of settings (key: value)"
    assert problems(workdir, "\n- issuer\n") == [f"2:1: {message}"]
    assert problems(workdir, "just text\n") == [f"1:1: {message}"]


def test_custom_yaml_tags_are_refused(workdir: Path) -> None:
    assert problems(workdir, VALID.replace("name: Contoso", "name: !vault contoso")) == [
        "5:9: tenant.name: the YAML tag `!vault` is not supported here"
    ]
    settings = load_settings(write(workdir, VALID.replace("name: Contoso", "name: !!str 42")), {})
    assert settings.tenant.name == "42"


def test_control_characters_and_bad_encoding_are_placed(workdir: Path) -> None:
    assert problems(workdir, VALID.replace("name: Contoso", "name: Con\x07toso")) == [
        "5:12: character #x0007 is not allowed in YAML"
    ]
    path = workdir / "gateway.yaml"
    path.write_bytes(VALID.encode().replace(b"name: Contoso", b"name: Con\xfftoso"))
    with pytest.raises(ConfigError) as caught:
        load_settings(path, {})
    assert [str(p) for p in caught.value.problems] == [f"{path}:5:12: the file is not UTF-8 text"]


def test_unreadable_file_names_the_file(workdir: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings("nowhere.yaml", {})
    assert str(caught.value) == "nowhere.yaml: cannot read the file: No such file or directory"
    assert list(workdir.iterdir()) == []


def test_alias_expansion_is_bounded(workdir: Path) -> None:
    bomb = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 7)
    )
    found = problems(workdir, bomb + VALID)
    assert len(found) == 1
    assert found[0].endswith("the document is too big or nested too deeply (check aliases)")


def test_deep_nesting_is_refused(workdir: Path) -> None:
    assert problems(workdir, "issuer: " + "[" * 500 + "]" * 500 + "\n") == [
        "1:1: the document is nested too deeply"
    ]  # the parser's own limit
    found = problems(workdir, "issuer: " + "[" * 100 + "]" * 100 + "\n")
    # our own limit: 64 levels; the 65th "[" is column 73 (after "issuer: " and 64 brackets)
    message = "the document is too big or nested too deeply (check aliases)"
    assert found == ["1:73: issuer" + "[0]" * 64 + f": {message}"]


def test_problem_renders_exactly() -> None:
    problem = ConfigProblem("gw.yaml", 3, 7, "applications[0].oidc.redirect_uris[1]", "must use https")
    assert str(problem) == "gw.yaml:3:7: applications[0].oidc.redirect_uris[1]: must use https"
    assert str(ConfigProblem("gw.yaml", 1, 1, "", "the file is empty")) == "gw.yaml:1:1: the file is empty"
    assert str(ConfigProblem("gw.yaml", 0, 0, "", "cannot read")) == "gw.yaml: cannot read"


def test_json_schema_is_for_editors() -> None:
    schema = settings_json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "gateway.yaml"
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"issuer", "tenant", "mail", "connectors"}
    assert "from" in schema["$defs"]["Mail"]["properties"]  # by alias
    connectors = schema["properties"]["connectors"]["items"]
    assert connectors["discriminator"]["propertyName"] == "type"
    json.dumps(schema)  # serialisable as it is


def test_applications_are_found_by_id_and_by_client_id(workdir: Path) -> None:
    apps = "".join(
        f"  - {{id: app{i}, name: App {i}, user_flow: default, oidc: {{client_id: client{i}, "
        f"redirect_uris: ['https://app{i}.example/cb']}}}}\n"
        for i in range(50)
    )
    text = VALID.replace("applications:\n", f"applications:\n{apps}", 1)
    settings = load_settings(write(workdir, text), {})
    assert settings.application("app0") is settings.applications[0]
    assert settings.application("app49") is settings.applications[49]
    assert settings.client("client7") is settings.application("app7")
    assert settings.client("demo") is settings.application("demo") is settings.applications[50]
    assert settings.application("client7") is None and settings.client("app7") is None
    assert settings.application("nope") is None and settings.client("nope") is None


def test_a_copy_with_other_applications_finds_those(workdir: Path) -> None:
    settings = load_settings(write(workdir, VALID), {})
    assert settings.application("demo") is not None  # indexed now
    renamed = settings.applications[0].model_copy(update={"id": "portal"})
    copy = settings.model_copy(update={"applications": [renamed]})
    assert copy.application("demo") is None and copy.application("portal") is renamed
    assert copy.client("demo") is renamed
    assert settings.application("demo") is settings.applications[0]  # the original keeps its own
