"""Inviting a guest (b2b-concepts §1, §2): the work behind ``POST /v1.0/invitations``, without HTTP.

Checks, in order: may the caller invite at all (``policy.collaboration.may_invite``); only
administrators may invite a ``Member`` or reset a redemption; is the address's domain welcome
(``guest_domain``; cross-tenant access settings that block all users of the domain's organisation
refuse it as ``cross_tenant_access_blocked``, b2b-concepts §5.5); has the recipient blocked
invitations from this organisation (``blocklist``, b2b-concepts §2.2: refused as
``recipient_blocked_invitations``). Then either:

- a new invitation: when a user already holds the address (``mail``/``otherMails``) or its
  ``#EXT#`` user principal name, nothing is written and no mail is sent: the outcome names that
  user. Otherwise the guest object is created in ``PendingAcceptance`` with pre-redemption
  identities, and a redeem ticket is issued (``tickets``);
- a reset (``resetRedemption``): the guest keeps its object id and UPN; the new address joins
  ``otherMails`` unless the user already holds it; the state returns to ``PendingAcceptance``, the
  identities to their pre-redemption form, and a new ticket replaces every older one.

"Administrator" means a user with Global Administrator or User Administrator, or an app with
``User.ReadWrite.All`` or ``Directory.ReadWrite.All`` (``User.Invite.All`` alone invites guests only).
The command line invites as the install's operator (``Inviter.operator``): a Global Administrator
caller that still obeys ``external_collaboration`` (``allow_invites_from: none`` refuses it too).
Every refusal raises ``InvitationRefused`` before anything is written.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from gateway.directory.users import guest_upn, iso
from gateway.i18n.translations import translations_for
from gateway.invitations.addresses import domain_of
from gateway.invitations.blocklist import is_blocked
from gateway.invitations.mail import InvitationMail, invitation_messages
from gateway.invitations.tickets import Invitation, issue_ticket, redeem_url
from gateway.policy.collaboration import INVITING_ADMIN_ROLES, Caller, guest_domain, may_invite
from gateway.policy.cross_tenant import invitation_blocked
from gateway.settings.models import Settings
from gateway.store.base import Store
from idp_connectors.base import MailSender

ADMIN_APP_PERMISSIONS = frozenset({"User.ReadWrite.All", "Directory.ReadWrite.All"})
MAX_OTHER_MAILS = 250
PENDING, COMPLETED = "PendingAcceptance", "Completed"

RefusalKind = Literal["forbidden", "not_found", "invalid", "conflict"]

MESSAGES = {
    "invitations_disabled": "Your organisation does not allow guest invitations. "
    "Contact your administrator for help.",
    "invitations_limited_to_admins": "Only administrators and guest inviters may invite guests "
    "in this organisation.",
    "guests_may_not_invite": "Guests of this organisation may not invite other guests.",
    "app_lacks_invite_permission": "The application needs the User.Invite.All, User.ReadWrite.All "
    "or Directory.ReadWrite.All permission to invite guests.",
    "member_type_needs_admin": "Only a Global Administrator or User Administrator (or an app with "
    "User.ReadWrite.All or Directory.ReadWrite.All) may invite a Member.",
    "recipient_blocked_invitations": "The recipient has opted out of invitations from this "
    "organisation, so they cannot be invited.",
    "reset_needs_admin": "Only a Global Administrator or User Administrator (or an app with "
    "User.ReadWrite.All or Directory.ReadWrite.All) may reset a redemption.",
}


class InvitationRefused(Exception):
    """The invitation is refused; nothing was written. ``reason`` is a stable audit code."""

    def __init__(
        self, reason: str, message: str, kind: RefusalKind = "forbidden", *, target: str | None = None
    ) -> None:
        super().__init__(message)
        self.reason, self.message, self.kind, self.target = reason, message, kind, target


@dataclass(frozen=True, slots=True)
class InvitationRequest:
    """A validated request. ``email`` and ``cc`` passed ``addresses.check_address``."""

    email: str
    redirect_url: str
    display_name: str | None = None
    user_type: Literal["Guest", "Member"] = "Guest"
    send_message: bool = False
    cc: str | None = None
    custom_message: str | None = None
    message_language: str | None = None
    reset: bool = False
    reset_user_id: str | None = None


@dataclass(frozen=True, slots=True)
class Inviter:
    caller: Caller
    user: dict[str, Any] | None = None
    """The calling user's object; None for an app."""
    app_id: str | None = None
    operator: str | None = None
    """Set for the install's operator (the command line, ``gateway invite``): neither a directory
    user nor an app; it names the operator in ``invited_by`` (``operator:<name>``)."""

    @property
    def ref(self) -> str:
        if self.operator is not None:
            return f"operator:{self.operator}"
        return f"user:{self.user['id']}" if self.user is not None else f"app:{self.app_id}"

    @property
    def is_admin(self) -> bool:
        if self.caller.kind == "app":
            return bool(self.caller.app_permissions & ADMIN_APP_PERMISSIONS)
        return bool(self.caller.roles & INVITING_ADMIN_ROLES)


@dataclass(frozen=True, slots=True)
class Context:
    settings: Settings
    store: Store
    outbox: MailSender
    now: int


@dataclass
class Outcome:
    invitation_id: str
    user: dict[str, Any]
    status: str
    redeem_url: str | None = None
    created: bool = False
    reset: bool = False
    mailed: bool = False
    reasons: list[str] = field(default_factory=list)


def check_caller(inviter: Inviter, settings: Settings) -> str:
    """``may_invite`` as a refusal; returns the reason it was allowed."""
    decision = may_invite(inviter.caller, settings.external_collaboration)
    if not decision.allowed:
        raise InvitationRefused(decision.reason, MESSAGES[decision.reason])
    return decision.reason


async def invite(ctx: Context, inviter: Inviter, req: InvitationRequest) -> Outcome:
    reasons = [check_caller(inviter, ctx.settings)]
    if req.user_type == "Member" and not req.reset and not inviter.is_admin:
        raise InvitationRefused("member_type_needs_admin", MESSAGES["member_type_needs_admin"])
    if req.reset and not inviter.is_admin:
        raise InvitationRefused("reset_needs_admin", MESSAGES["reset_needs_admin"])
    domain = domain_of(req.email)
    welcome = guest_domain(
        domain,
        ctx.settings.external_collaboration,
        cross_tenant_blocked=invitation_blocked(ctx.settings, domain),
    )
    if not welcome.allowed:
        if welcome.reason == "domain_not_allowed":
            message = f"{domain} is not on your organisation's list of allowed domains for guests."
        elif welcome.reason == "cross_tenant_access_blocked":
            message = (
                f"Your organisation's cross-tenant access settings block guests from {domain}. "
                "Contact your administrator."
            )
        else:
            message = f"Invitations to {domain} are blocked by your organisation. Contact your administrator."
        raise InvitationRefused(welcome.reason, message, target="invitedUserEmailAddress")
    reasons.append(welcome.reason)
    if await is_blocked(ctx.settings, ctx.store, req.email):
        raise InvitationRefused(
            "recipient_blocked_invitations", MESSAGES["recipient_blocked_invitations"],
            target="invitedUserEmailAddress",
        )  # fmt: skip
    if req.reset:
        return await _reset(ctx, inviter, req, reasons)
    return await _new(ctx, inviter, req, reasons)


async def _holders(ctx: Context, email: str) -> list[dict[str, Any]]:
    """Users holding ``email`` as ``mail``/``otherMails`` or as their ``#EXT#`` user principal name."""
    found = {u["id"]: u for u in await ctx.store.find_users_by_mail(email)}
    by_upn = await ctx.store.find_user_by_identity(ctx.settings.tenant.domain, _upn(ctx, email))
    if by_upn is not None:
        found.setdefault(by_upn["id"], by_upn)
    return [found[key] for key in sorted(found)]


def _upn(ctx: Context, email: str) -> str:
    return guest_upn(email.lower(), ctx.settings.tenant.domain)


def _pre_redemption_identities(ctx: Context, upn: str) -> list[dict[str, str]]:
    """§1: until redemption, identities show the host organisation's domain."""
    domain = ctx.settings.tenant.domain
    return [{"signInType": "userPrincipalName", "issuer": domain, "issuerAssignedId": upn}]


def _existing(user: dict[str, Any], reasons: list[str]) -> Outcome:
    status = PENDING if user.get("externalUserState") == PENDING else COMPLETED
    return Outcome(str(uuid.uuid4()), user, status, reasons=[*reasons, "user_exists"])


async def _new(ctx: Context, inviter: Inviter, req: InvitationRequest, reasons: list[str]) -> Outcome:
    holders = await _holders(ctx, req.email)
    if holders:
        return _existing(holders[0], reasons)
    upn = _upn(ctx, req.email)
    stamp = iso(ctx.now)
    user: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "userType": req.user_type,
        "creationType": "Invitation",
        "accountEnabled": True,
        "displayName": req.display_name or req.email.partition("@")[0],
        "mail": req.email,
        "otherMails": [],
        "userPrincipalName": upn,
        "identities": _pre_redemption_identities(ctx, upn),
        "externalUserState": PENDING,
        "externalUserStateChangeDateTime": stamp,
        "createdDateTime": stamp,
        "sponsors": [inviter.user["id"]] if inviter.user is not None else [],
    }
    if not await ctx.store.create_user(user, [(ctx.settings.tenant.domain, upn)]):
        holders = await _holders(ctx, req.email)  # a concurrent invitation of the same address won
        if holders:
            return _existing(holders[0], reasons)
        raise InvitationRefused(
            "address_in_use", f"{req.email} is already used by another object.", "conflict",
            target="invitedUserEmailAddress",
        )  # fmt: skip
    outcome = Outcome("", user, PENDING, created=True, reasons=[*reasons, "user_created"])
    return await _ticket_and_mail(ctx, inviter, req, user, outcome)


def _no_such_user() -> InvitationRefused:
    message = "No user has the id given in invitedUser.id."
    return InvitationRefused("user_not_found", message, "not_found", target="invitedUser.id")


async def _reset(ctx: Context, inviter: Inviter, req: InvitationRequest, reasons: list[str]) -> Outcome:
    assert req.reset_user_id is not None
    user = await ctx.store.get_user(req.reset_user_id)
    if user is None:
        raise _no_such_user()
    if user.get("userType") != "Guest":
        raise InvitationRefused(
            "reset_target_not_guest", "Only a guest's redemption can be reset.", "invalid",
            target="invitedUser.id",
        )  # fmt: skip
    if any(holder["id"] != user["id"] for holder in await _holders(ctx, req.email)):
        raise InvitationRefused(
            "address_in_use", f"{req.email} belongs to another user.", "conflict",
            target="invitedUserEmailAddress",
        )  # fmt: skip
    other_mails = [m for m in user.get("otherMails") or [] if isinstance(m, str)]
    held = {m.lower() for m in [user.get("mail"), *other_mails] if isinstance(m, str)}
    if req.email.lower() not in held:
        if not user.get("mail"):
            user["mail"] = req.email
        elif len(other_mails) >= MAX_OTHER_MAILS:
            raise InvitationRefused(
                "too_many_other_mails", f"The user already has {MAX_OTHER_MAILS} otherMails.", "invalid",
                target="invitedUserEmailAddress",
            )  # fmt: skip
        else:
            other_mails.append(req.email)
    user["otherMails"] = other_mails
    user["externalUserState"] = PENDING
    user["externalUserStateChangeDateTime"] = iso(ctx.now)
    user["identities"] = _pre_redemption_identities(ctx, str(user["userPrincipalName"]))
    try:
        await ctx.store.update_user(user)
    except KeyError as exc:  # deleted meanwhile
        raise _no_such_user() from exc
    outcome = Outcome("", user, PENDING, reset=True, reasons=[*reasons, "redemption_reset"])
    return await _ticket_and_mail(ctx, inviter, req, user, outcome)


async def _ticket_and_mail(
    ctx: Context, inviter: Inviter, req: InvitationRequest, user: dict[str, Any], outcome: Outcome
) -> Outcome:
    lifetime = ctx.settings.invitations.ticket_lifetime_days * 86400
    invitation = Invitation(
        id=str(uuid.uuid4()),
        tenant_id=ctx.settings.tenant.id,
        user_id=user["id"],
        email=req.email,
        redirect_url=req.redirect_url,
        invited_by=inviter.ref,
        created_at=ctx.now,
        expires_at=ctx.now + lifetime,
    )
    ticket = await issue_ticket(ctx.store, invitation)
    outcome.invitation_id = invitation.id
    outcome.redeem_url = redeem_url(ctx.settings.issuer, invitation.tenant_id, user["id"], ticket)
    if req.send_message:
        mail = _mail(ctx, inviter, req, outcome.redeem_url, invitation.expires_at)
        for message in invitation_messages(mail, translations_for(ctx.settings)):
            ctx.outbox.send(message)
        outcome.mailed = True
        outcome.reasons.append("invitation_mail_queued")
    return outcome


def _mail(
    ctx: Context, inviter: Inviter, req: InvitationRequest, url: str, expires_at: int
) -> InvitationMail:
    user = inviter.user
    inviter_mail = user.get("mail") if user is not None else None
    inviter_name = (user.get("displayName") or inviter_mail) if user is not None else None
    return InvitationMail(
        to=req.email,
        cc=req.cc,
        redeem_url=url,
        block_url=f"{ctx.settings.issuer.rstrip('/')}/invitations/block",
        expires_at=expires_at,
        invitee_name=req.display_name,
        inviter_name=inviter_name if isinstance(inviter_name, str) else None,
        inviter_mail=inviter_mail if isinstance(inviter_mail, str) else None,
        # §2.2: dropped when an app sends the invitation or the inviter has no address; the
        # operator's message is the organisation's own ("Message from <tenant>").
        custom_message=req.custom_message
        if inviter.operator is not None or (isinstance(inviter_mail, str) and inviter_mail)
        else None,
        language=req.message_language,
    )
