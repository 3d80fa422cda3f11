"""``gateway whatif``: the What-If answer as JSON on stdout, bad input as one line on stderr.

Each test writes the What-If configuration of ``tests.integration.test_whatif`` to a file (a SQLite
store under ``tmp_path``), seeds the users straight into that store and runs the command in-process
through ``main``; one test runs ``python -m gateway whatif`` for real. That nothing was written is
read straight from the SQLite file (``tests.support.inspect_store``).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gateway.admin.whatif import WhatIfOut
from gateway.cli import main
from gateway.settings.models import Settings
from gateway.store.factory import open_store
from tests.integration.test_whatif import HOME_IP, OFFICE_IP, TENANT_A, People, seed, whatif_config
from tests.support.gateway_app import ROOT, SECRET, default_config, make_settings, merge
from tests.support.inspect_store import snapshot, users


@dataclass(frozen=True)
class Setup:
    config: Path
    settings: Settings
    people: People

    def run(self, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
        code = main(["whatif", "--config", str(self.config), *args])
        out, err = capsys.readouterr()
        return code, out, err

    def stored(self) -> tuple[Any, list[dict[str, Any]]]:
        return snapshot(self.settings), users(self.settings)


async def _seed(settings: Settings) -> People:
    store = open_store(settings.store)
    try:
        await store.migrate()
        return await seed(store)
    finally:
        await store.close()


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Setup:
    monkeypatch.delenv("GATEWAY_CONFIG", raising=False)
    overrides = whatif_config()
    data = merge(
        default_config(),
        {**overrides, "store": f"sqlite:///{tmp_path}/gateway.db", "secrets": {"key": SECRET}},
    )
    config = tmp_path / "gateway.yaml"
    config.write_text(json.dumps(data, indent=1), encoding="utf-8")  # JSON is YAML
    settings = make_settings(tmp_path, **overrides)
    return Setup(config, settings, asyncio.run(_seed(settings)))


def answer_of(out: str) -> dict[str, Any]:
    answer: dict[str, Any] = json.loads(out)
    WhatIfOut.model_validate(answer)
    assert out.startswith('{\n  "user": '), "printed with indent 2"
    return answer


def test_prints_the_answer_and_exits_0(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    before = setup.stored()
    code, out, err = setup.run(
        capsys, "--user", setup.people.guest_b, "--app", "payroll", "--claims", '{"amr": ["pwd", "mfa"]}'
    )
    assert (code, err) == (0, "")
    answer = answer_of(out)
    assert answer["outcome"] == "userActionRequired" and answer["required"] == ["mfa"]
    assert answer["trust"]["upstreamMfa"] is True and answer["trust"]["mfa"] is False
    guests_mfa = next(p for p in answer["appliedPolicies"] if p["id"] == "guests-mfa")
    assert guests_mfa["reason"] == "mfa_required"
    assert setup.stored() == before


def test_claims_file_mfa_done_ip_and_home_tenant_options(
    setup: Setup, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    claims = tmp_path / "claims.json"
    claims.write_text('{"amr": ["mfa"], "iscompliant": "true"}', encoding="utf-8")
    code, out, _ = setup.run(
        capsys, "--user", setup.people.guest_a, "--app", "devices", "--claims-file", str(claims)
    )
    answer = answer_of(out)
    assert code == 0 and answer["outcome"] == "grant" and answer["trust"]["compliantDevice"] is True
    code, out, _ = setup.run(capsys, "--user", setup.people.guest_b, "--app", "payroll", "--mfa-done")
    assert code == 0 and answer_of(out)["mfaSource"] == "resource" and answer_of(out)["outcome"] == "grant"
    for ip, outcome in ((OFFICE_IP, "grant"), (HOME_IP, "block")):
        code, out, _ = setup.run(capsys, "--user", setup.people.guest_b, "--app", "hr", "--ip", ip)
        assert code == 0 and answer_of(out)["outcome"] == outcome
    code, out, _ = setup.run(
        capsys, "--user", setup.people.guest_b, "--app", "demo", "--home-tenant", TENANT_A
    )
    answer = answer_of(out)
    assert (answer["connector"], answer["connectorChosenBy"], answer["homeTenantId"]) == (
        "partner-a",
        "partner",
        TENANT_A,
    )


def test_a_blocked_outcome_still_exits_0(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = setup.run(
        capsys, "--user", setup.people.guest_a, "--app", "payroll", "--connector", "partner-c"
    )
    assert (code, err) == (0, "")
    answer = answer_of(out)
    assert answer["outcome"] == "block" and answer["crossTenantAccess"]["allowed"] is False


BAD = [
    (["--user", "0b6f6d7e-0000-4000-8000-000000000000"], "--user: no user has the id"),
    (["--app", "nope"], "--app: no application has the id 'nope'; configured: demo"),
    (["--connector", "ghost"], "--connector: no connector has the id 'ghost'"),
    (["--ip", "not-an-ip"], "--ip: 'not-an-ip' is not an IP address"),
    (["--home-tenant", "a b"], "--home-tenant: home_tenant_id must be a tenant id"),
    (["--claims", "{"], "--claims: not valid JSON (Expecting property name"),
    (["--claims", '["mfa"]'], "--claims: the claims must be a JSON object"),
    (
        ["--claims", '{"amr": [], "amr": ["mfa"]}'],
        "--claims: not valid claims JSON: the key 'amr' appears twice",
    ),
    (["--claims", '{"auth_time": NaN}'], "--claims: not valid claims JSON: NaN is not JSON"),
    (["--claims", '{"amr": "mfa"}'], "--claims: claims.amr must be a list"),
    (["--claims", '{"auth_time": 99999999999}'], "--claims: claims.auth_time is in the future"),
    (["--claims", '{"' + "x" * 70000 + '": 1}'], "--claims: the claims are larger than 65536 bytes"),
    (["--claims-file", "/nonexistent/claims.json"], "--claims-file: cannot read /nonexistent/claims.json"),
]


@pytest.mark.parametrize(("args", "message"), BAD)
def test_bad_input_is_one_line_on_stderr_exit_1_and_nothing_written(
    setup: Setup, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    before = setup.stored()
    base = {"--user": setup.people.guest_b, "--app": "payroll"}
    for name, value in zip(args[::2], args[1::2], strict=True):
        base[name] = value
    code, out, err = setup.run(capsys, *(item for pair in base.items() for item in pair))
    assert code == 1 and out == ""
    assert err.startswith(f"gateway: {message}"), err
    assert err.count("\n") == 1
    assert setup.stored() == before


def test_a_claims_file_that_is_not_utf8_or_too_large(
    setup: Setup, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    before = setup.stored()
    for content, message in (
        (b'{"amr": ["\xff"]}', "is not UTF-8 text"),
        (b" " * 70000 + b"{}", "larger than"),
    ):
        path = tmp_path / "claims.bin"
        path.write_bytes(content)
        code, out, err = setup.run(
            capsys, "--user", setup.people.guest_b, "--app", "payroll", "--claims-file", str(path)
        )
        assert (code, out) == (1, "") and message in err and err.count("\n") == 1
    assert setup.stored() == before


def test_a_user_with_no_usable_identity_is_asked_for_the_connector(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = setup.run(capsys, "--user", setup.people.pending, "--app", "payroll")
    assert (code, out) == (1, "")
    assert err.startswith("gateway: --connector: name the connector the sign-in comes through")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--app", "payroll"], "the following arguments are required: --user"),
        (["--user", "u"], "the following arguments are required: --app"),
        (
            ["--user", "u", "--app", "payroll", "--claims", "{}", "--claims-file", "c.json"],
            "argument --claims-file: not allowed with argument --claims",
        ),
        (["--user", "u", "--app", "payroll", "--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_usage_errors_exit_2(
    setup: Setup, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    before = setup.stored()
    code, out, err = setup.run(capsys, *args)
    assert (code, out) == (2, "")
    assert err.startswith("usage: gateway") and message in err, err
    assert setup.stored() == before


def test_python_m_gateway_whatif(setup: Setup) -> None:
    done = subprocess.run(
        [
            sys.executable, "-m", "gateway", "whatif", "--config", str(setup.config),
            "--user", setup.people.guest_a, "--app", "payroll", "--claims", '{"amr": ["mfa"]}',
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    answer = answer_of(done.stdout)
    assert answer["outcome"] == "grant" and answer["mfaSource"] == "home"
