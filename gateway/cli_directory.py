"""The directory commands of ``gateway``: ``invite`` and ``users list|show|delete|restore|reset-mfa``.

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
matches a user's ``mail`` or ``otherMails``. ``gateway users list`` pages through the whole directory
(live users, or soft-deleted ones with ``--deleted``) as a table or, with ``--json``, a JSON array of
Graph views. ``gateway users delete ID|EMAIL`` does what ``DELETE /v1.0/users/{id}`` does, through the
same code (``directory.revocation.revoke_sign_in_sessions`` on an opened ``Runtime``): sessions and
refresh tokens are revoked, relying parties with a ``backchannel_logout_uri`` get a logout token
(delivered, retries included, before the command returns; one that could not be delivered makes it
exit 1, the user staying deleted), then the user is soft-deleted (restorable for 30 days).
``gateway users restore ID`` undoes a soft delete. ``gateway users reset-mfa ID`` removes every TOTP
method of a user (``gateway.mfa.methods.reset_methods``), so its next sign-in that needs MFA registers
an authenticator app again. Delete, restore and reset are audited (``deleteUser``, ``restoreUser``,
``resetSoftwareOathMethods``) with the API's reason codes, failures included.

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
    """Register ``invite`` and ``users list|show|delete|restore|reset-mfa``; ``load`` reads the configuration
    of ``--config`` (None after printing its problems)."""
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

    listing = users.add_parser("list", parents=[config], help="list users (a table, or JSON with --json)")
    listing.add_argument(
        "--state", choices=["PendingAcceptance", "Accepted"], help="only this externalUserState"
    )
    listing.add_argument("--type", choices=["Guest", "Member"], dest="user_type", help="only this userType")
    listing.add_argument(
        "--mail", type=_address, metavar="ADDR", help="only users with this mail or otherMails"
    )
    listing.add_argument("--deleted", action="store_true", help="list soft-deleted users instead")
    listing.add_argument("--json", action="store_true", help="print a JSON array of users (Graph names)")
    listing.set_defaults(command=functools.partial(_users_list, load))

    delete = users.add_parser(
        "delete", parents=[config], help="soft-delete a user and end all of its sign-ins"
    )
    delete.add_argument(
        "user", metavar="ID|EMAIL", help="the user's object id, mail or one of its otherMails"
    )
    delete.set_defaults(command=functools.partial(_users_delete, load))

    restore = users.add_parser("restore", parents=[config], help="restore a soft-deleted user")
    restore.add_argument("user", metavar="ID", help="the deleted user's object id")
    restore.set_defaults(command=functools.partial(_users_restore, load))

    reset_mfa = users.add_parser(
        "reset-mfa", parents=[config], help="remove a user's authenticator apps (TOTP): it registers again"
    )
    reset_mfa.add_argument("user", metavar="USER_ID", help="the user's object id")
    reset_mfa.set_defaults(command=functools.partial(_users_reset_mfa, load))


def _address(text: str) -> str:
    if not text or len(text) > MAX_ADDRESS or not text.isprintable():
        raise argparse.ArgumentTypeError(f"must be an address of 1 to {MAX_ADDRESS} printable characters")
    return text


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
        outbox = open_outbox(settings.mail, in_process=True)
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
    problem = _not_one(key, found)
    if problem is not None:
        return _fail(problem[1])
    print(json.dumps(graph_user(found[0]), indent=2))
    return 0


def _shown(key: str) -> str:
    """``key`` as it may be echoed to a terminal (no control characters, bounded)."""
    return key if len(key) <= MAX_ADDRESS and key.isprintable() else "(the value given)"


def _not_one(key: str, found: list[dict[str, Any]]) -> tuple[str, str] | None:
    """Why ``found`` is not exactly one user: (audit reason, message); None when it is."""
    if not found:
        return "user_not_found", f"no user has the {'address' if '@' in key else 'id'} {_shown(key)}"
    if len(found) > 1:
        ids = ", ".join(str(user["id"]) for user in found)
        return (
            "ambiguous_address",
            f"{len(found)} users hold the address {_shown(key)} ({ids}): give an object id",
        )
    return None


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


# -- gateway users list --------------------------------------------------------------------------

PAGE_SIZE = 500
COLUMNS = ("id", "userType", "mail", "externalUserState", "createdDateTime")


def _users_list(load: SettingsLoader, args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    settings = load(args)
    if settings is None:
        return 1
    import asyncio

    from gateway.admin.graph import graph_user

    found = asyncio.run(_all_users(settings, args))
    views = [graph_user(user) for user in found]
    if args.json:
        print(json.dumps(views, indent=2))
        return 0
    columns = (*COLUMNS, "deletedDateTime") if args.deleted else COLUMNS
    rows = [columns, *([_cell(user.get(name)) for name in columns] for user in found)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    for row in rows:
        print("  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip())
    if not found:
        print("(no users)")
    return 0


def _cell(value: object) -> str:
    """A table cell: ``-`` for none; anything a terminal would interpret is replaced."""
    if value is None or value == "":
        return "-"
    return "".join(c if c.isprintable() else "\N{REPLACEMENT CHARACTER}" for c in str(value))


async def _all_users(settings: Settings, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every user the filters select, page after page (ordered by id)."""
    from gateway.store.factory import open_store

    store = open_store(settings.store)
    try:
        await store.migrate()
        found: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            page, cursor = await store.list_users(
                mail=args.mail, external_user_state=args.state, user_type=args.user_type,
                deleted=bool(args.deleted), limit=PAGE_SIZE, after=cursor,
            )  # fmt: skip
            found.extend(page)
            if cursor is None:
                return found
    finally:
        await store.close()


# -- gateway users delete / restore --------------------------------------------------------------


def _users_delete(load: SettingsLoader, args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    settings = load(args)
    if settings is None:
        return 1
    _log_to_stderr()
    import asyncio

    from gateway.audit import operator_action

    key: str = args.user
    found = asyncio.run(_find_users(settings, key))
    problem = _not_one(key, found)
    if problem is not None:
        operator_action(
            settings, action="deleteUser", result="failure", target=key[:MAX_ID], reasons=[problem[0]]
        )
        return _fail(problem[1])
    user_id = str(found[0]["id"])
    failures = _BackchannelFailures()
    backchannel_logger = logging.getLogger("gateway.backchannel")
    backchannel_logger.addHandler(failures)
    try:
        deleted = asyncio.run(_delete_in_store(settings, user_id))
    except ValueError as exc:  # the runtime could not open (an unsafe mail.smtp, ...): nothing changed
        return _fail(str(exc))
    finally:
        backchannel_logger.removeHandler(failures)
    if deleted is None:  # deleted by someone else in between
        operator_action(
            settings, action="deleteUser", result="failure", target=user_id, reasons=["user_not_found"]
        )
        return _fail(f"no user has the id {user_id}")
    operator_action(
        settings, action="deleteUser", result="success", target=user_id, reasons=["user_soft_deleted"]
    )
    told = [
        app.oidc.client_id for app in settings.applications if app.oidc and app.oidc.backchannel_logout_uri
    ]
    mail = _cell(deleted.get("mail"))
    print(f"deleted user {user_id} ({mail}) at {deleted['deletedDateTime']}; restorable for 30 days")
    print("revoked: its sign-in sessions and refresh tokens (signInSessionsValidFromDateTime moved to now)")
    if told:
        print(f"back-channel logout sent to: {', '.join(told)}")
    if failures.messages:
        return _fail(
            "the user was deleted but not every relying party was told: " + "; ".join(failures.messages)
        )
    return 0


class _BackchannelFailures(logging.Handler):
    """Collects the back-channel deliveries that finally failed (not the attempts that are retried)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "(attempt" not in str(record.msg):
            self.messages.append(record.getMessage())


async def _delete_in_store(settings: Settings, user_id: str) -> dict[str, Any] | None:
    """As ``DELETE /v1.0/users/{id}``: revoke every sign-in (waiting for the back channel), then
    soft-delete. The deleted view, or None when the user is gone already."""
    from gateway.directory.revocation import revoke_sign_in_sessions
    from gateway.runtime import open_runtime

    rt = await open_runtime(settings)
    try:
        user = await rt.store.get_user(user_id)
        if user is None:
            return None
        await revoke_sign_in_sessions(rt, dict(user))
        await rt.backchannel.idle()  # every logout token delivered, or retried and given up
        return await rt.store.soft_delete_user(user_id, rt.now())
    finally:
        await rt.close()


def _users_restore(load: SettingsLoader, args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    settings = load(args)
    if settings is None:
        return 1
    _log_to_stderr()
    import asyncio

    from gateway.audit import operator_action

    key: str = args.user
    restored = asyncio.run(_restore_in_store(settings, key)) if len(key) <= MAX_ID else None
    if restored is None:
        operator_action(
            settings,
            action="restoreUser",
            result="failure",
            target=key[:MAX_ID],
            reasons=["deleted_item_not_found"],
        )
        return _fail(f"no deleted user has the id {_shown(key)}")
    operator_action(settings, action="restoreUser", result="success", target=key, reasons=["user_restored"])
    print(f"restored user {key} ({_cell(restored.get('mail'))}); it signs in again from now on")
    return 0


async def _restore_in_store(settings: Settings, user_id: str) -> dict[str, Any] | None:
    from gateway.store.factory import open_store

    store = open_store(settings.store)
    try:
        await store.migrate()
        return await store.restore_user(user_id)
    finally:
        await store.close()


# -- gateway users reset-mfa ---------------------------------------------------------------------


def _users_reset_mfa(load: SettingsLoader, args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    settings = load(args)
    if settings is None:
        return 1
    _log_to_stderr()
    import asyncio

    from gateway.audit import operator_action

    key: str = args.user
    removed = asyncio.run(_reset_mfa_in_store(settings, key)) if len(key) <= MAX_ID else None
    if removed is None:
        operator_action(
            settings, action="resetSoftwareOathMethods", result="failure", target=key[:MAX_ID],
            reasons=["user_not_found"],
        )  # fmt: skip
        return _fail(f"no user has the id {_shown(key)}")
    operator_action(
        settings, action="resetSoftwareOathMethods", result="success", target=key,
        reasons=["authentication_methods_reset"], detail=f"{removed} removed",
    )  # fmt: skip
    if removed:
        print(
            f"removed {removed} TOTP method(s) of user {key}: the next sign-in that needs MFA registers again"
        )
    else:
        print(f"user {key} has no TOTP method: nothing changed")
    return 0


async def _reset_mfa_in_store(settings: Settings, user_id: str) -> int | None:
    """How many methods were removed, or None when there is no such live user."""
    from gateway.mfa.methods import reset_methods
    from gateway.store.factory import open_store

    store = open_store(settings.store)
    try:
        await store.migrate()
        try:
            return await reset_methods(store, user_id)
        except KeyError:
            return None
    finally:
        await store.close()
