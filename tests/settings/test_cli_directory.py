"""``gateway invite`` and ``gateway users show``: the operator's directory commands, end to end.

Each test writes its own configuration (fixed ``secrets.key``, a SQLite store under ``tmp_path``) and
runs the commands in-process through ``main``; one test runs ``python -m gateway invite`` for real.
What was (not) persisted is read straight from the SQLite file (``tests.support.inspect_store``).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import respx

from gateway.admin.models import InvitationOut, UserOut
from gateway.cli import main
from gateway.invitations import check_ticket
from gateway.store.factory import open_store
from tests.settings.test_loader import ROOT
from tests.support.inspect_store import snapshot, users
from tests.support.smtp_server import SmtpServer

TENANT_ID = "4f5c2b0e-6a71-4c3e-9a8e-2f1d7c9b1a00"
REDIRECT = "https://apps.contoso.example/welcome"
CONFIG = """\
issuer: http://127.0.0.1:8000
tenant:
  id: {tenant}
  domain: contoso.example
  name: Contoso
secrets:
  key: cli-directory-tests-fixed-secret-key-0123456789
store: sqlite:///var/gateway.db
mail:
  from: Contoso <no-reply@contoso.example>
{mail}
connectors:
  - {{id: email, type: email_otp}}
applications:
  - id: demo
    name: Demo app
    oidc:
      client_id: demo
      redirect_uris: [http://127.0.0.1:8000/demo/callback]
    user_flow: default
user_flows:
  - {{id: default, identity_providers: [email]}}
"""
CONSOLE = "  console: true"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GATEWAY_CONFIG", raising=False)
    yield tmp_path


@pytest.fixture
def audit(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="gateway.audit")
    return caplog


def audit_records(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "gateway.audit"]


def write(workdir: Path, *, mail: str = CONSOLE, collaboration: str = "") -> str:
    text = CONFIG.format(tenant=TENANT_ID, mail=mail)
    if collaboration:
        text += f"external_collaboration: {collaboration}\n"
    (workdir / "gateway.yaml").write_text(text, encoding="utf-8")
    return "gateway.yaml"


def smtp_mail(server: SmtpServer) -> str:
    return f"  smtp: {{host: {server.host}, port: {server.port}}}"


def db(workdir: Path) -> Path:
    return workdir / "var" / "gateway.db"


def invite(config: str, email: str, *extra: str) -> int:
    return main(["invite", email, "--redirect", REDIRECT, "--config", config, *extra])


def text_body(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(cast(EmailMessage, part).get_content()).replace("\r\n", "\n")


def ticket_invited_by(workdir: Path, user_id: str, redeem_url: str) -> str | None:
    """Who the redeem link's live ticket says invited the guest (None: the link does not work)."""
    ticket = parse_qs(urlsplit(redeem_url).query)["ticket"][0]

    async def check() -> str | None:
        store = open_store(f"sqlite:///{db(workdir)}")
        try:
            found = await check_ticket(store, TENANT_ID, user_id, ticket)
        finally:
            await store.close()
        return None if found is None else found.invited_by

    return asyncio.run(check())


def test_invite_prints_the_201_body_and_creates_the_guest(
    workdir: Path, capsys: pytest.CaptureFixture[str], audit: pytest.LogCaptureFixture
) -> None:
    config = write(workdir)
    assert invite(config, "Guest@Partner.Example", "--display-name", "Guest One") == 0
    out, err = capsys.readouterr()
    assert out.startswith('{\n  "id": "')  # JSON, indent 2
    invitation = json.loads(out)
    InvitationOut.model_validate(invitation)  # exactly the API's 201 shape: no key missing or extra
    user_id = invitation["invitedUser"]["id"]
    assert invitation | {"id": "-", "inviteRedeemUrl": "-"} == {
        "id": "-", "inviteRedeemUrl": "-", "invitedUserDisplayName": "Guest One", "invitedUserType": "Guest",
        "invitedUserEmailAddress": "Guest@partner.example", "sendInvitationMessage": False,
        "resetRedemption": False, "inviteRedirectUrl": REDIRECT, "status": "PendingAcceptance",
        "invitedUserMessageInfo": {
            "messageLanguage": None, "customizedMessageBody": None, "ccRecipients": [],
        },
        "invitedUser": {"id": user_id},
    }  # fmt: skip
    [guest] = users(db(workdir))
    assert guest["id"] == user_id
    assert (guest["mail"], guest["userType"], guest["displayName"]) == (
        "Guest@partner.example",
        "Guest",
        "Guest One",
    )
    assert guest["userPrincipalName"] == "guest_partner.example#EXT#@contoso.example"
    assert (guest["externalUserState"], guest["creationType"], guest["sponsors"]) == (
        "PendingAcceptance", "Invitation", [],
    )  # fmt: skip
    assert snapshot(db(workdir)).count("invite-ticket") == 1
    assert ticket_invited_by(workdir, user_id, invitation["inviteRedeemUrl"]) == "operator:cli"
    assert "DEV OUTBOX" not in err  # no --send: no mail
    [record] = audit_records(audit)
    assert record | {"time": 0} == {
        "event": "admin", "action": "invite", "result": "success", "time": 0, "tenant": TENANT_ID,
        "actor": {"kind": "operator", "id": "cli"}, "target": user_id, "ip": None,
        "reasons": ["admin_role", "domain_not_listed", "user_created"], "detail": None, "request_id": None,
    }  # fmt: skip


def test_invite_a_member_as_the_operator(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write(workdir, collaboration="{allow_invites_from: adminsAndGuestInviters}")
    assert invite(config, "colleague@partner.example", "--member") == 0
    invitation = json.loads(capsys.readouterr().out)
    assert invitation["invitedUserType"] == "Member"
    assert [u["userType"] for u in users(db(workdir))] == ["Member"]


def test_invite_send_delivers_over_smtp_before_exiting(
    workdir: Path, capsys: pytest.CaptureFixture[str], smtp_server: SmtpServer
) -> None:
    config = write(workdir, mail=smtp_mail(smtp_server))
    code = invite(
        config,
        "guest@partner.example",
        "--send",
        "--display-name",
        "Guest One",
        "--message",
        "Welcome <b>aboard</b>",
    )
    assert code == 0
    invitation = json.loads(capsys.readouterr().out)
    assert invitation["sendInvitationMessage"] is True
    assert invitation["invitedUserMessageInfo"]["customizedMessageBody"] == "Welcome <b>aboard</b>"
    [received] = smtp_server.received  # already there: the command waited for the delivery
    assert received.rcpt_tos == ("guest@partner.example",)
    assert received.mail_from == "no-reply@contoso.example"
    message = received.message
    assert message["Subject"] == "You're invited to access applications within Contoso"
    text = text_body(message)
    assert invitation["inviteRedeemUrl"] in text
    assert "Hello Guest One," in text
    assert "Message from Contoso:\n\n    Welcome <b>aboard</b>\n" in text  # the operator's message is kept
    html = cast(EmailMessage, message.get_body(preferencelist=("html",))).get_content()
    assert "Welcome &lt;b&gt;aboard&lt;/b&gt;" in html and "<b>aboard" not in html


def test_invite_send_that_cannot_be_delivered_exits_1_but_keeps_the_invitation(
    workdir: Path,
    capsys: pytest.CaptureFixture[str],
    smtp_server: SmtpServer,
    audit: pytest.LogCaptureFixture,
) -> None:
    config = write(workdir, mail=smtp_mail(smtp_server))
    smtp_server.refuse_next(1, "550 5.1.1 Mailbox unavailable")
    assert invite(config, "guest@partner.example", "--send") == 1
    out, err = capsys.readouterr()
    invitation = json.loads(out)  # printed anyway: the link can be handed over another way
    assert (
        "gateway: the invitation was created but its mail was not delivered: mail to g***@partner.example"
        in err
    )
    assert smtp_server.data_commands == 1 and smtp_server.messages == []
    assert [u["id"] for u in users(db(workdir))] == [invitation["invitedUser"]["id"]]
    [record] = audit_records(audit)
    assert record["result"] == "success"
    assert record["reasons"][-2:] == ["invitation_mail_queued", "invitation_mail_not_delivered"]


def test_inviting_an_address_that_already_has_a_user_creates_and_sends_nothing(
    workdir: Path, capsys: pytest.CaptureFixture[str], smtp_server: SmtpServer
) -> None:
    config = write(workdir, mail=smtp_mail(smtp_server))
    assert invite(config, "guest@partner.example") == 0
    first = json.loads(capsys.readouterr().out)
    assert invite(config, "GUEST@partner.example", "--send") == 0
    out, err = capsys.readouterr()
    again = json.loads(out)
    user_id = first["invitedUser"]["id"]
    assert again["invitedUser"] == {"id": user_id}
    assert (again["inviteRedeemUrl"], again["sendInvitationMessage"], again["status"]) == (
        None, False, "PendingAcceptance",
    )  # fmt: skip
    assert (
        err
        == f"gateway: GUEST@partner.example already belongs to user {user_id}: nothing was created or sent\n"
    )
    assert len(users(db(workdir))) == 1 and snapshot(db(workdir)).count("invite-ticket") == 1
    assert smtp_server.data_commands == 0


@pytest.mark.parametrize(
    ("collaboration", "email", "expected"),
    [
        (
            "{blocked_domains: [blocked.example]}",
            "someone@Blocked.Example",
            "invitation refused (domain_blocked): Invitations to blocked.example are blocked by your "
            "organisation. Contact your administrator.",
        ),
        (
            "{allowed_domains: [partner.example]}",
            "someone@elsewhere.example",
            "invitation refused (domain_not_allowed): elsewhere.example is not on your organisation's list "
            "of allowed domains for guests.",
        ),
        (
            "{allow_invites_from: none}",
            "someone@partner.example",
            "invitation refused (invitations_disabled): Your organisation does not allow guest invitations. "
            "Contact your administrator for help.",
        ),
    ],
)
def test_external_collaboration_settings_refuse_the_operator_too(
    workdir: Path,
    capsys: pytest.CaptureFixture[str],
    smtp_server: SmtpServer,
    audit: pytest.LogCaptureFixture,
    collaboration: str,
    email: str,
    expected: str,
) -> None:
    config = write(workdir, mail=smtp_mail(smtp_server), collaboration=collaboration)
    assert invite(config, email, "--send") == 1
    assert capsys.readouterr() == ("", f"gateway: {expected}\n")
    assert users(db(workdir)) == [] and snapshot(db(workdir)).artefacts == {}
    assert smtp_server.data_commands == 0
    [record] = audit_records(audit)
    reason = expected.split("(")[1].split(")")[0]
    assert (record["result"], record["actor"], record["reasons"]) == (
        "failure", {"kind": "operator", "id": "cli"}, [reason],
    )  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["not-an-address"], "EMAIL: an email address has exactly one @"),
        (["two@@partner.example"], "EMAIL: an email address has exactly one @"),
        (["a b@partner.example"], "EMAIL: the user name may contain only printable ASCII characters"),
        (["guest@partner"], "EMAIL: the part after the @ is not a valid domain name"),
        (
            ["guest@partner.example", "--display-name", "two\nlines"],
            "--display-name: control characters are not allowed",
        ),
        (
            ["guest@partner.example", "--message", "x" * 4001],
            "--message: String should have at most 4000 characters",
        ),
    ],
)
def test_bad_input_exits_1_naming_the_argument_and_touches_no_store(
    workdir: Path,
    capsys: pytest.CaptureFixture[str],
    audit: pytest.LogCaptureFixture,
    argv: list[str],
    expected: str,
) -> None:
    config = write(workdir)
    assert invite(config, *argv) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"gateway: {expected}")
    assert not (workdir / "var").exists()  # refused before the store was opened
    [record] = audit_records(audit)
    assert (record["result"], record["reasons"], record["target"]) == ("failure", ["invalid_field"], None)


@pytest.mark.parametrize(
    "url", ["http://apps.contoso.example/", "javascript:alert(1)", "https://x.example/#frag"]
)
def test_a_bad_redirect_exits_1(workdir: Path, capsys: pytest.CaptureFixture[str], url: str) -> None:
    config = write(workdir)
    assert main(["invite", "guest@partner.example", "--redirect", url, "--config", config]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("gateway: --redirect: must be an absolute https URL without a fragment")
    assert not (workdir / "var").exists()


def test_missing_redirect_is_a_usage_error(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write(workdir)
    assert main(["invite", "guest@partner.example", "--config", config]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("usage: gateway invite")
    assert "the following arguments are required: --redirect" in err
    assert sorted(p.name for p in workdir.iterdir()) == ["gateway.yaml"]


def test_a_broken_configuration_exits_1_before_anything_happens(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(workdir)
    (workdir / "gateway.yaml").write_text(
        (workdir / "gateway.yaml").read_text().replace("issuer:", "issuerr:"), encoding="utf-8"
    )
    assert invite("gateway.yaml", "guest@partner.example") == 1
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("gateway.yaml:1:1: issuerr: unknown key `issuerr`")
    assert main(["users", "show", "guest@partner.example", "--config", "gateway.yaml"]) == 1
    assert sorted(p.name for p in workdir.iterdir()) == ["gateway.yaml"]


def test_an_unsafe_smtp_transport_exits_1_before_anything_is_written(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write(workdir, mail="  smtp: {host: mail.example, port: 25, username: gw, password: secret}")
    assert invite(config, "guest@partner.example", "--send") == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(
        "gateway: mail.smtp: refusing to send the SMTP password unencrypted to mail.example"
    )
    assert not (workdir / "var").exists()


def test_users_show_by_id_and_by_email(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write(workdir)
    assert invite(config, "guest@partner.example", "--display-name", "Guest One") == 0
    user_id = json.loads(capsys.readouterr().out)["invitedUser"]["id"]
    [stored] = users(db(workdir))
    for key in (user_id, "guest@partner.example", "Guest@PARTNER.example"):
        assert main(["users", "show", key, "--config", config]) == 0, key
        out, err = capsys.readouterr()
        assert err == ""
        assert out.startswith(f'{{\n  "id": "{user_id}"')
        shown = json.loads(out)
        UserOut.model_validate(shown)
        assert shown == {name: stored[name] for name in UserOut.model_fields if name in stored}
        assert shown["displayName"] == "Guest One" and shown["externalUserState"] == "PendingAcceptance"


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("0b6c1e8e-2c0a-4a39-9d0e-6d3a8c1f0e55", "no user has the id 0b6c1e8e-2c0a-4a39-9d0e-6d3a8c1f0e55"),
        ("nobody@partner.example", "no user has the address nobody@partner.example"),
        ("x" * 65, "no user has the id " + "x" * 65),
        ("bad\x1bid", "no user has the id (the value given)"),
    ],
)
def test_users_show_an_unknown_user_exits_1(
    workdir: Path, capsys: pytest.CaptureFixture[str], key: str, expected: str
) -> None:
    config = write(workdir)
    assert invite(config, "guest@partner.example") == 0
    capsys.readouterr()
    assert main(["users", "show", key, "--config", config]) == 1
    assert capsys.readouterr() == ("", f"gateway: {expected}\n")


def test_users_show_refuses_an_address_two_users_hold(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write(workdir)
    ids = ["00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000002"]

    async def two_users() -> None:
        store = open_store("sqlite:///var/gateway.db")
        try:
            await store.migrate()
            for n, user_id in enumerate(ids):
                user = {"id": user_id, "userType": "Guest", "mail": f"user{n}@partner.example",
                        "otherMails": ["shared@partner.example"]}  # fmt: skip
                assert await store.create_user(user, [("https://idp.partner.example", f"sub-{n}")])
        finally:
            await store.close()

    asyncio.run(two_users())
    assert main(["users", "show", "shared@partner.example", "--config", config]) == 1
    assert capsys.readouterr() == (
        "",
        f"gateway: 2 users hold the address shared@partner.example ({ids[0]}, {ids[1]}): give an object id\n",
    )
    assert main(["users", "show", ids[1], "--config", config]) == 0
    assert json.loads(capsys.readouterr().out)["mail"] == "user1@partner.example"


def test_users_needs_a_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["users"]) == 2
    assert "the following arguments are required: COMMAND" in capsys.readouterr().err
    assert main(["--help"]) == 0
    help_text = capsys.readouterr().out
    assert "invite" in help_text and "users" in help_text


def test_python_dash_m_gateway_invite(workdir: Path) -> None:
    config = write(workdir)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway",
            "invite",
            "guest@partner.example",
            "--redirect",
            REDIRECT,
            "--send",
        ],
        cwd=workdir,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "GATEWAY_CONFIG": config},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    invitation = json.loads(done.stdout)
    assert invitation["sendInvitationMessage"] is True
    assert "DEV OUTBOX (mail.console: true)" in done.stderr and invitation["inviteRedeemUrl"] in done.stderr
    records = [json.loads(line) for line in done.stderr.splitlines() if line.startswith('{"action":"invite"')]
    assert [(r["actor"], r["result"], r["target"]) for r in records] == [
        ({"kind": "operator", "id": "cli"}, "success", invitation["invitedUser"]["id"])
    ]
    assert [u["id"] for u in users(db(workdir))] == [invitation["invitedUser"]["id"]]


# -- users list / delete / restore ---------------------------------------------------------------

BACKCHANNEL = "https://rp.example/backchannel-logout"
GUESTS = ("a@partner.example", "b@partner.example", "c@other.example")


def with_backchannel(workdir: Path) -> str:
    config = write(workdir)
    path = workdir / config
    path.write_text(
        path.read_text().replace(
            "      redirect_uris: [http://127.0.0.1:8000/demo/callback]\n",
            "      redirect_uris: [http://127.0.0.1:8000/demo/callback]\n"
            f"      backchannel_logout_uri: {BACKCHANNEL}\n",
        ),
        encoding="utf-8",
    )
    return config


def directory(workdir: Path, config: str, capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    """Three invited guests, one of them Accepted, and a Member; address -> id."""
    ids: dict[str, str] = {}
    for email in (*GUESTS, "staff@contoso.example"):
        assert invite(config, email, *(["--member"] if email.startswith("staff") else [])) == 0
        ids[email] = json.loads(capsys.readouterr().out)["invitedUser"]["id"]

    async def accept() -> None:
        store = open_store(f"sqlite:///{db(workdir)}")
        try:
            user = await store.get_user(ids["b@partner.example"])
            assert user is not None
            await store.update_user({**user, "externalUserState": "Accepted"})
        finally:
            await store.close()

    asyncio.run(accept())
    return ids


async def in_store(workdir: Path, user_id: str) -> tuple[Any, Any]:
    """(live user, deleted view) of ``user_id`` as the store holds them now."""
    store = open_store(f"sqlite:///{db(workdir)}")
    try:
        return await store.get_user(user_id), await store.get_deleted_user(user_id)
    finally:
        await store.close()


def listing(config: str, capsys: pytest.CaptureFixture[str], *options: str) -> list[dict[str, Any]]:
    assert main(["users", "list", "--json", "--config", config, *options]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    return cast(list[dict[str, Any]], json.loads(out))


def test_users_list_prints_a_table_of_every_user(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write(workdir)
    ids = directory(workdir, config, capsys)
    monkeypatch.setattr("gateway.cli_directory.PAGE_SIZE", 1)  # four pages: the cursor is followed
    assert main(["users", "list", "--config", config]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    header, *rows = out.splitlines()
    assert header.split() == ["id", "userType", "mail", "externalUserState", "createdDateTime"]
    stored = {u["id"]: u for u in users(db(workdir))}
    assert [row.split()[0] for row in rows] == sorted(ids.values())  # ordered by id
    for row in rows:
        user = stored[row.split()[0]]
        assert row.split() == [
            user["id"], user["userType"], user["mail"], user["externalUserState"], user["createdDateTime"],
        ]  # fmt: skip
    assert header.index("userType") == rows[0].index(stored[rows[0].split()[0]]["userType"])  # aligned


def test_users_list_json_and_filters(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write(workdir)
    ids = directory(workdir, config, capsys)
    monkeypatch.setattr("gateway.cli_directory.PAGE_SIZE", 2)
    everyone = listing(config, capsys)
    assert [u["id"] for u in everyone] == sorted(ids.values())
    stored = {u["id"]: u for u in users(db(workdir))}
    for shown in everyone:
        UserOut.model_validate(shown)
        assert shown == {
            name: stored[shown["id"]][name] for name in UserOut.model_fields if name in stored[shown["id"]]
        }
    assert [u["mail"] for u in listing(config, capsys, "--state", "Accepted")] == ["b@partner.example"]
    assert [u["mail"] for u in listing(config, capsys, "--type", "Member")] == ["staff@contoso.example"]
    assert [u["mail"] for u in listing(config, capsys, "--mail", "C@OTHER.example")] == ["c@other.example"]
    pending_guests = listing(config, capsys, "--type", "Guest", "--state", "PendingAcceptance")
    assert sorted(u["mail"] for u in pending_guests) == ["a@partner.example", "c@other.example"]
    assert listing(config, capsys, "--mail", "nobody@partner.example") == []
    assert listing(config, capsys, "--deleted") == []


def test_users_list_deleted_shows_when(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write(workdir)
    ids = directory(workdir, config, capsys)
    assert main(["users", "list", "--deleted", "--config", config]) == 0
    assert capsys.readouterr().out.splitlines()[1:] == ["(no users)"]
    assert main(["users", "delete", "a@partner.example", "--config", config]) == 0
    capsys.readouterr()
    [deleted] = listing(config, capsys, "--deleted")
    assert deleted["id"] == ids["a@partner.example"] and deleted["accountEnabled"] is False
    assert ids["a@partner.example"] not in [u["id"] for u in listing(config, capsys)]
    assert main(["users", "list", "--deleted", "--config", config]) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert header.split()[-1] == "deletedDateTime"
    assert row.split()[0] == ids["a@partner.example"] and row.split()[-1] == deleted["deletedDateTime"]


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--state", "Pending"], "argument --state: invalid choice: 'Pending'"),
        (["--type", "guest"], "argument --type: invalid choice: 'guest'"),
        (["--mail", ""], "argument --mail: must be an address of 1 to 254 printable characters"),
        (["--mail", "a\x1b@partner.example"], "argument --mail: must be an address of 1 to 254 printable"),
        (["--mail", "a" * 250 + "@x.example"], "argument --mail: must be an address of 1 to 254 printable"),
    ],
)
def test_users_list_bad_options_are_usage_errors(
    workdir: Path, capsys: pytest.CaptureFixture[str], options: list[str], expected: str
) -> None:
    config = write(workdir)
    assert main(["users", "list", "--config", config, *options]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("usage: gateway users list") and expected in err
    assert not (workdir / "var").exists()  # refused before the store was opened


def test_users_delete_revokes_everything_tells_the_rp_then_soft_deletes(
    workdir: Path, capsys: pytest.CaptureFixture[str], audit: pytest.LogCaptureFixture
) -> None:
    config = with_backchannel(workdir)
    ids = directory(workdir, config, capsys)
    user_id = ids["a@partner.example"]

    async def sessions() -> None:
        store = open_store(f"sqlite:///{db(workdir)}")
        try:
            await store.put("session", "s-a", {"user": user_id}, 3600, grant_id=f"user:{user_id}")
            await store.put("refresh", "r-a", {"user": user_id}, 3600, grant_id=f"user:{user_id}")
            await store.put("session", "s-b", {}, 3600, grant_id=f"user:{ids['b@partner.example']}")
        finally:
            await store.close()

    asyncio.run(sessions())
    audit.clear()
    with respx.mock(assert_all_called=False) as router:
        rp = router.post(BACKCHANNEL).mock(return_value=httpx.Response(200))
        assert main(["users", "delete", "A@Partner.Example", "--config", config]) == 0
    out = capsys.readouterr().out
    live, deleted = asyncio.run(in_store(workdir, user_id))
    assert live is None and deleted is not None and deleted["accountEnabled"] is False
    when = deleted["deletedDateTime"]
    assert out == (
        f"deleted user {user_id} (a@partner.example) at {when}; restorable for 30 days\n"
        "revoked: its sign-in sessions and refresh tokens (signInSessionsValidFromDateTime moved to now)\n"
        "back-channel logout sent to: demo\n"
    )
    assert deleted["signInSessionsValidFromDateTime"] >= deleted["createdDateTime"]
    assert (snapshot(db(workdir)).count("session"), snapshot(db(workdir)).count("refresh")) == (1, 0)
    [call] = rp.calls
    token = parse_qs(call.request.content.decode())["logout_token"][0]
    header, claims = (json.loads(base64.urlsafe_b64decode(part + "==")) for part in token.split(".")[:2])
    assert header["typ"] == "logout+jwt"
    assert (claims["iss"], claims["aud"], claims["events"]) == (
        "http://127.0.0.1:8000", "demo", {"http://schemas.openid.net/event/backchannel-logout": {}},
    )  # fmt: skip
    assert "sid" not in claims and claims["sub"] and claims["sub"] != user_id  # pairwise
    [record] = audit_records(audit)
    assert (record["action"], record["result"], record["actor"], record["target"], record["reasons"]) == (
        "deleteUser", "success", {"kind": "operator", "id": "cli"}, user_id, ["user_soft_deleted"],
    )  # fmt: skip


def test_users_delete_exits_1_when_the_rp_refuses_but_the_user_stays_deleted(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = with_backchannel(workdir)
    ids = directory(workdir, config, capsys)
    with respx.mock(assert_all_called=False) as router:
        router.post(BACKCHANNEL).mock(return_value=httpx.Response(400))
        assert main(["users", "delete", ids["c@other.example"], "--config", config]) == 1
    out, err = capsys.readouterr()
    assert out.startswith(f"deleted user {ids['c@other.example']} (c@other.example) at ")
    assert (
        "gateway: the user was deleted but not every relying party was told: "
        "back-channel logout refused by demo: HTTP 400\n"
    ) in err
    assert asyncio.run(in_store(workdir, ids["c@other.example"]))[0] is None


@pytest.mark.parametrize(
    ("key", "expected", "reason"),
    [
        ("0b6c1e8e-2c0a-4a39-9d0e-6d3a8c1f0e55", "no user has the id 0b6c1e8e-2c0a-4a39-9d0e-6d3a8c1f0e55",
         "user_not_found"),
        ("nobody@partner.example", "no user has the address nobody@partner.example", "user_not_found"),
        ("bad\x1bid", "no user has the id (the value given)", "user_not_found"),
        ("x" * 65, "no user has the id " + "x" * 65, "user_not_found"),
    ],
)  # fmt: skip
def test_users_delete_an_unknown_user_exits_1_and_changes_nothing(
    workdir: Path,
    capsys: pytest.CaptureFixture[str],
    audit: pytest.LogCaptureFixture,
    key: str,
    expected: str,
    reason: str,
) -> None:
    config = write(workdir)
    directory(workdir, config, capsys)
    before = users(db(workdir))
    audit.clear()
    assert main(["users", "delete", key, "--config", config]) == 1
    assert capsys.readouterr() == ("", f"gateway: {expected}\n")
    assert users(db(workdir)) == before
    [record] = audit_records(audit)
    assert (record["action"], record["result"], record["target"], record["reasons"]) == (
        "deleteUser", "failure", key[:64], [reason],
    )  # fmt: skip


def test_users_delete_refuses_an_address_two_users_hold(
    workdir: Path, capsys: pytest.CaptureFixture[str], audit: pytest.LogCaptureFixture
) -> None:
    config = write(workdir)
    ids = directory(workdir, config, capsys)

    async def share() -> None:
        store = open_store(f"sqlite:///{db(workdir)}")
        try:
            for email in ("a@partner.example", "b@partner.example"):
                user = await store.get_user(ids[email])
                assert user is not None
                await store.update_user({**user, "otherMails": ["shared@partner.example"]})
        finally:
            await store.close()

    asyncio.run(share())
    before = users(db(workdir))
    audit.clear()
    assert main(["users", "delete", "shared@partner.example", "--config", config]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("gateway: 2 users hold the address shared@partner.example (")
    assert users(db(workdir)) == before
    [record] = audit_records(audit)
    assert (record["result"], record["reasons"]) == ("failure", ["ambiguous_address"])


def test_users_restore_brings_a_deleted_user_back(
    workdir: Path, capsys: pytest.CaptureFixture[str], audit: pytest.LogCaptureFixture
) -> None:
    config = write(workdir)
    ids = directory(workdir, config, capsys)
    user_id = ids["b@partner.example"]
    assert main(["users", "delete", user_id, "--config", config]) == 0
    capsys.readouterr()
    audit.clear()
    assert main(["users", "restore", user_id, "--config", config]) == 0
    assert capsys.readouterr() == (
        f"restored user {user_id} (b@partner.example); it signs in again from now on\n",
        "",
    )
    live, deleted = asyncio.run(in_store(workdir, user_id))
    assert deleted is None and live is not None
    assert (live["accountEnabled"], live["externalUserState"]) == (True, "Accepted")
    assert "deletedDateTime" not in live
    [record] = audit_records(audit)
    assert (record["action"], record["result"], record["actor"], record["target"], record["reasons"]) == (
        "restoreUser", "success", {"kind": "operator", "id": "cli"}, user_id, ["user_restored"],
    )  # fmt: skip


@pytest.mark.parametrize("which", ["live", "unknown", "long", "control"])
def test_users_restore_of_no_deleted_user_exits_1_and_changes_nothing(
    workdir: Path, capsys: pytest.CaptureFixture[str], audit: pytest.LogCaptureFixture, which: str
) -> None:
    config = write(workdir)
    ids = directory(workdir, config, capsys)
    key = {
        "live": ids["a@partner.example"],  # not deleted: nothing to restore
        "unknown": "0b6c1e8e-2c0a-4a39-9d0e-6d3a8c1f0e55",
        "long": "x" * 65,
        "control": "bad\x1bid",
    }[which]
    before = users(db(workdir))
    audit.clear()
    assert main(["users", "restore", key, "--config", config]) == 1
    shown = "(the value given)" if which == "control" else key
    assert capsys.readouterr() == ("", f"gateway: no deleted user has the id {shown}\n")
    assert users(db(workdir)) == before
    [record] = audit_records(audit)
    assert (record["action"], record["result"], record["target"], record["reasons"]) == (
        "restoreUser", "failure", key[:64], ["deleted_item_not_found"],
    )  # fmt: skip
