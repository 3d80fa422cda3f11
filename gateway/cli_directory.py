"""The directory commands of ``gateway``: ``invite`` and ``users show``.

The command line acts as the install's **operator**: whoever can read the configuration and reach
the store. It invites as a Global Administrator (``Inviter.operator``, ``invited_by`` ``operator:cli``),
so it may invite Members, but it still obeys ``external_collaboration``: ``allow_invites_from: none``
refuses it too, and the domain allow-/deny-list applies. Every invitation attempt that gets past the
configuration leaves one audit record (``event: admin``, ``action: invite``) whose actor is
``{"kind": "operator", "id": "cli"}`` (``gateway.audit.operator_action``).

``gateway invite`` validates its arguments exactly as ``POST /v1.0/invitations`` validates a body
(``admin.models.InvitationCreate``) and prints the same ``201`` body (JSON, indent 2). With ``--send``
the mail goes through the configured outbox, which is drained before the command returns; a mail the
outbox could not deliver makes the command exit 1 (the invitation itself stays, with its link printed).
``gateway users show ID|EMAIL`` prints the Graph view of one user (``admin.graph.graph_user``); EMAIL
matches a user's ``mail`` or ``otherMails``.

Only ``argparse`` is needed to register the commands; everything else is imported when one runs.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.invitations.invite import InvitationRequest, Outcome
    from gateway.mail.outbox import Outbox
    from gateway.settings.models import Settings

SettingsLoader = Callable[[argparse.Namespace], "Settings | None"]

OPERATOR_NAME = "cli"
MAX_ID = 64
MAX_ADDRESS = 254
OPTION_OF = {
    "invitedUserEmailAddress": "EMAIL",
    "inviteRedirectUrl": "--redirect",
    "invitedUserDisplayName": "--display-name",
    "invitedUserMessageInfo.customizedMessageBody": "--message",
}


def add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    config: argparse.ArgumentParser,
    load: SettingsLoader,
) -> None:
    """Register ``invite`` and ``users show``; ``load`` reads the configuration of ``--config``
    (None after printing its problems)."""
    invite = commands.add_parser(
        "invite",
        parents=[config],
        help="invite a guest, as the install's operator",
        description="Invite a guest (as POST /v1.0/invitations does) and print the invitation as JSON.",
    )
    invite.add_argument("email", metavar="EMAIL", help="the address to invite")
    invite.add_argument(
        "--redirect", required=True, metavar="URL", help="where the guest lands once redeemed (https)"
    )
    invite.add_argument(
        "--send", action="store_true", help="mail the invitation (delivered before the command exits)"
    )
    invite.add_argument("--display-name", metavar="NAME", help="the guest's display name")
    invite.add_argument("--member", action="store_true", help="invite a Member instead of a Guest")
    invite.add_argument("--message", metavar="TEXT", help="plain-text message in the invitation mail")
    invite.set_defaults(command=functools.partial(_invite, load))

    users = commands.add_parser("users", help="read the directory").add_subparsers(
        title="users commands", required=True, metavar="COMMAND"
    )
    show = users.add_parser("show", parents=[config], help="print a user as JSON (Graph names)")
    show.add_argument("user", metavar="ID|EMAIL", help="the user's object id, mail or one of its otherMails")
    show.set_defaults(command=functools.partial(_users_show, load))


def _fail(message: str) -> int:
    print(f"gateway: {message}", file=sys.stderr)
    return 1


def _log_to_stderr() -> None:
    """Audit records and mail logs go to stderr as under ``serve``, unless the program that runs
    the command set logging up already (as ``logging.basicConfig`` decides)."""
    if not logging.getLogger().handlers:
        from logging.config import dictConfig

        from gateway.cli import LOG_CONFIG

        dictConfig(LOG_CONFIG)


class _MailFailures(logging.Handler):
    """Collects what the outbox reports at ERROR while the command runs (it never raises)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


# -- gateway invite ------------------------------------------------------------------------------


def _invite(load: SettingsLoader, args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    settings = load(args)
    if settings is None:
        return 1
    _log_to_stderr()
    import asyncio

    from pydantic import ValidationError

    from gateway.admin.invitations import response_body, to_request
    from gateway.admin.models import InvitationCreate, field_errors
    from gateway.audit import operator_action
    from gateway.invitations.invite import InvitationRefused

    body: dict[str, Any] = {
        "invitedUserEmailAddress": args.email,
        "inviteRedirectUrl": args.redirect,
        "invitedUserType": "Member" if args.member else "Guest",
        "sendInvitationMessage": bool(args.send),
    }
    if args.display_name is not None:
        body["invitedUserDisplayName"] = args.display_name
    if args.message is not None:
        body["invitedUserMessageInfo"] = {"customizedMessageBody": args.message}
    try:
        model = InvitationCreate.model_validate(body)
    except ValidationError as exc:
        problems = [f"{OPTION_OF.get(d['target'], d['target'])}: {d['message']}" for d in field_errors(exc)]
        operator_action(
            settings, action="invite", result="failure", target=None, reasons=["invalid_field"],
            detail="; ".join(problems),
        )  # fmt: skip
        for problem in problems:
            _fail(problem)
        return 1
    req = to_request(model)
    from gateway.mail.outbox import open_outbox

    try:
        outbox = open_outbox(settings.mail)
    except ValueError as exc:
        return _fail(str(exc))  # names its key: mail.smtp or mail.from
    failures = _MailFailures()
    mail_logger = logging.getLogger("gateway.mail")
    mail_logger.addHandler(failures)
    try:
        outcome = asyncio.run(_invite_in_store(settings, outbox, req))
    except InvitationRefused as refused:
        operator_action(
            settings, action="invite", result="failure", target=None, reasons=[refused.reason],
            detail=refused.message,
        )  # fmt: skip
        return _fail(f"invitation refused ({refused.reason}): {refused.message}")
    finally:
        mail_logger.removeHandler(failures)
    reasons = list(outcome.reasons)
    if outcome.mailed and failures.messages:
        reasons.append("invitation_mail_not_delivered")
    operator_action(settings, action="invite", result="success", target=outcome.user["id"], reasons=reasons)
    print(json.dumps(response_body(model, req, outcome), indent=2))
    if "user_exists" in outcome.reasons:
        print(
            f"gateway: {req.email} already belongs to user {outcome.user['id']}: nothing was created or sent",
            file=sys.stderr,
        )
    if outcome.mailed and failures.messages:
        return _fail(
            "the invitation was created but its mail was not delivered: " + "; ".join(failures.messages)
        )
    return 0


async def _invite_in_store(settings: Settings, outbox: Outbox, req: InvitationRequest) -> Outcome:
    import time

    from gateway.invitations.invite import Context, Inviter, invite
    from gateway.policy.collaboration import GLOBAL_ADMINISTRATOR, Caller
    from gateway.store.factory import open_store

    operator = Inviter(
        Caller(kind="user", user_type="Member", roles=frozenset({GLOBAL_ADMINISTRATOR})),
        operator=OPERATOR_NAME,
    )
    store = open_store(settings.store)
    try:
        await store.migrate()
        await outbox.start()
        try:
            return await invite(Context(settings, store, outbox, int(time.time())), operator, req)
        finally:
            await outbox.stop()  # drains the queue: the mail is delivered (or has failed) by now
    finally:
        await store.close()


# -- gateway users show --------------------------------------------------------------------------


def _users_show(load: SettingsLoader, args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    settings = load(args)
    if settings is None:
        return 1
    import asyncio

    from gateway.admin.graph import graph_user

    key: str = args.user
    found = asyncio.run(_find_users(settings, key))
    shown = key if len(key) <= MAX_ADDRESS and key.isprintable() else "(the value given)"
    if not found:
        return _fail(f"no user has the {'address' if '@' in key else 'id'} {shown}")
    if len(found) > 1:
        ids = ", ".join(str(user["id"]) for user in found)
        return _fail(f"{len(found)} users hold the address {shown} ({ids}): give an object id")
    print(json.dumps(graph_user(found[0]), indent=2))
    return 0


async def _find_users(settings: Settings, key: str) -> list[dict[str, Any]]:
    """The users ``key`` names: by ``mail``/``otherMails`` when it has an ``@``, else by object id."""
    from gateway.store.factory import open_store

    if len(key) > (MAX_ADDRESS if "@" in key else MAX_ID):
        return []
    store = open_store(settings.store)
    try:
        await store.migrate()
        if "@" in key:
            return list(await store.find_users_by_mail(key))
        user = await store.get_user(key)
        return [] if user is None else [user]
    finally:
        await store.close()
