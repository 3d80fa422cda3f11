"""The end of a sign-in: find or link or sign up the user, start the SSO session, send a code to the client.

Users are found by their (issuer, subject) identity. An unknown identity whose email already
belongs to a user is linked only as ``gateway.policy.linking`` allows; otherwise it may sign up
through the app's user flow (``gateway.signup``: API connectors and the attribute page when the
flow has them), or is refused. Nothing is written on a refusal.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway import audit
from gateway.directory import users
from gateway.directory.app_access import app_access
from gateway.directory.identities import directory_issuer
from gateway.i18n import Message
from gateway.oidc import responses
from gateway.oidc.errors import AccessDenied
from gateway.pages import error_page
from gateway.policy.linking import decide_link
from gateway.policy.signup import self_service_sign_up
from gateway.runtime import Runtime
from gateway.settings.signup import UserFlow
from gateway.signin import policy_step, redemption, transaction
from gateway.signin.standing import Standing
from gateway.signin.transaction import SignIn
from idp_connectors.base import UpstreamIdentity

PASSCODE_TYPES = frozenset({"email_otp"})


class Refusal(Exception):
    def __init__(self, reason: str, message: Message, user_id: str | None = None) -> None:
        super().__init__(message.key)
        self.reason, self.message, self.user_id = reason, message, user_id


class NeedsSignUp(Exception):
    """The app's user flow lets the identity sign up, and the flow has pages or API connectors."""

    def __init__(self, flow: UserFlow) -> None:
        super().__init__(flow.id)
        self.flow = flow


class NeedsConsent(Exception):
    """The identity redeems a pending invitation: the guest must accept the consent page first."""

    def __init__(self, guest_id: str) -> None:
        super().__init__(guest_id)
        self.guest_id = guest_id


async def complete_signin(
    rt: Runtime, request: Request, signin: SignIn, identity: UpstreamIdentity
) -> Response:
    now = rt.now()
    connector_type = rt.connector_types[identity.connector_id]
    # A step-up comes back here: the first pass's decisions stay in the one audit record.
    decisions = [*signin.decisions, audit.decision("authentication", "passed", "upstream_identity_verified")]
    admitted = await policy_step.admit(rt, request, signin, identity, decisions)
    if isinstance(admitted, Response):
        return admitted
    try:
        user = await _resolve_user(rt, signin, identity, connector_type, now, decisions)
    except NeedsConsent as consent:
        if redemption.redeems_automatically(rt, identity):
            return await redemption.redeem_automatically(rt, request, signin, consent.guest_id, identity)
        return await redemption.ask_consent(rt, signin, consent.guest_id, identity)
    except NeedsSignUp as signup:
        from gateway.signup import flow as signup_flow  # late: the flow finishes through this module

        return await signup_flow.begin(rt, request, signin, identity, signup.flow, decisions)
    except (Refusal, redemption.RedemptionRefused) as refusal:
        user_id = getattr(refusal, "user_id", None) or signin.redeem_user_id
        decisions.append(audit.decision("directory", "refused", refusal.reason))
        await transaction.finish(rt.store, signin.id)
        audit.signin_failed(
            rt,
            signin.app_id or None,
            reason=refusal.reason,
            request=request,
            connector_id=identity.connector_id,
            user_id=user_id,
            decisions=decisions,
        )
        title = Message("signin.refused.title")
        return error_page(request, title, refusal.message, status=403, ui_locales=signin.ui_locales)
    return await finish_signin(rt, request, signin, identity, user, decisions, standing=admitted)


async def finish_signin(
    rt: Runtime,
    request: Request,
    signin: SignIn,
    identity: UpstreamIdentity,
    user: dict[str, Any],
    decisions: list[dict[str, str]],
    *,
    standing: Standing | None = None,
) -> Response:
    """App assignment, then the policy step (``gateway.signin.policy_step``): cross-tenant access,
    conditional access, MFA and terms, and the way back (a code to the app, or the invitation's target).
    ``standing``: what ``policy_step.admit`` established in this request, if it ran."""
    app = rt.settings.application(signin.app_id)
    if (
        app is not None
        and app.assignment_required
        and not (await app_access(rt.store, app, user["id"])).assigned
    ):
        decisions.append(audit.decision("application", "refused", "app_assignment_required"))
        await transaction.finish(rt.store, signin.id)
        audit.signin_failed(
            rt,
            signin.app_id,
            reason="app_assignment_required",
            request=request,
            connector_id=identity.connector_id,
            user_id=user["id"],
            decisions=decisions,
        )
        if signin.protocol == "saml" and signin.saml is not None:  # a SAML error Response, not an OAuth one
            from gateway.saml_idp.answer import deny  # late: it loads the XML stack

            return await deny(rt, request, signin, "You have not been given access to this application.")
        denied = AccessDenied("the user is not assigned to this application")
        return responses.error(signin.redirect_uri, denied, state=signin.state, issuer=rt.settings.issuer)
    return await policy_step.after_authentication(rt, request, signin, identity, user, decisions, standing)


async def _resolve_user(
    rt: Runtime,
    signin: SignIn,
    identity: UpstreamIdentity,
    connector_type: str,
    now: int,
    decisions: list[dict[str, str]],
) -> dict[str, Any]:
    issuer = directory_issuer(identity, connector_type)
    if signin.redeem_user_id is not None:  # opened from an invitation link
        guest = await rt.store.get_user(signin.redeem_user_id)
        if guest is None:
            raise Refusal("invitation_not_pending", Message("redemption.refused.withdrawn"))
        await redemption.redemption_check(rt, signin, guest, identity, connector_type)
        raise NeedsConsent(guest["id"])
    user = await rt.store.find_user_by_identity(issuer, identity.subject)
    if user is not None and not _holds(user, issuer, identity.subject):
        # A redemption reset replaced this identity: it no longer signs the guest in.
        raise Refusal("identity_was_reset", Message("signin.refused.identity_was_reset"), user["id"])
    if user is not None:
        decisions.append(audit.decision("directory", "found", "existing_user"))
        if not user.get("accountEnabled", True):
            raise Refusal("account_disabled", Message("refusal.account_disabled.detail"), user["id"])
        return user

    same_email = await rt.store.find_users_by_mail(identity.email) if identity.email else []
    holder = next((u for u in same_email if _holds(u, issuer, identity.subject)), None)
    if holder is not None:  # a concurrent first sign-in of this same identity created it meanwhile
        decisions.append(audit.decision("directory", "found", "existing_user"))
        return holder
    invited = [u for u in same_email if redemption.is_pending_invitation(u)]
    if len(invited) == 1:  # just-in-time redemption (b2b-concepts §3.4)
        await redemption.redemption_check(rt, signin, invited[0], identity, connector_type)
        raise NeedsConsent(invited[0]["id"])
    link = decide_link(
        email=identity.email,
        email_verified=identity.email_verified,
        # Read only when a user has this email (decide_link looks at it only then): for a connector
        # type without the setting, pydantic's failed attribute lookup costs an exception.
        connector_trusts_email=bool(same_email) and _trusts_email_for_linking(rt, identity.connector_id),
        users_with_email=same_email,
    )
    if link.action == "refuse":
        raise Refusal(
            link.reason,
            Message("signin.refused.email_taken", email=identity.email),
        )
    if link.action == "link":
        assert link.user_id is not None
        linked = await rt.store.add_identity(
            link.user_id, issuer, identity.subject, users.identity_object(issuer, identity.subject)
        )
        target = await rt.store.get_user(link.user_id)
        if not linked or target is None:
            raise Refusal("link_conflict", Message("signin.refused.link_conflict"))
        decisions.append(audit.decision("directory", "linked", link.reason))
        if not target.get("accountEnabled", True):
            raise Refusal("account_disabled", Message("refusal.account_disabled.detail"), target["id"])
        return target

    if _is_bootstrap_admin(rt, identity, connector_type):
        created = await users.create_bootstrap_admin(rt.store, identity, issuer, now)
        decisions.append(audit.decision("directory", "created", "bootstrap_administrator"))
        return created
    app = rt.settings.application(signin.app_id)
    signup = self_service_sign_up(rt.settings, app, identity.connector_id) if app else None
    if signup is None or not signup.allowed:
        reason = signup.reason if signup else "unknown_application"
        if identity.email:
            raise Refusal(reason, Message("signin.refused.no_access", email=identity.email))
        raise Refusal(reason, Message("signin.refused.no_access_account"))
    if not identity.email:
        raise Refusal("upstream_sent_no_email", Message("signin.refused.no_email"))
    flow = rt.settings.user_flow(app.user_flow) if app else None
    if flow is not None and flow.collects:
        raise NeedsSignUp(flow)
    created = await users.sign_up(rt.store, identity, issuer, rt.settings.tenant.domain, now)
    decisions.append(audit.decision("directory", "created", signup.reason))
    return created


def _is_bootstrap_admin(rt: Runtime, identity: UpstreamIdentity, connector_type: str) -> bool:
    """Bootstrap administrators (``directory.administrators``) become Members on their first passcode
    sign-in: only a passcode proves control of the mailbox; an upstream's word is not enough here."""
    if connector_type not in PASSCODE_TYPES or not identity.email_verified or not identity.email:
        return False
    email = identity.email.lower()
    return any(admin.email == email for admin in rt.settings.directory.administrators)


def _holds(user: dict[str, Any], issuer: str, subject: str) -> bool:
    identities = user.get("identities") or []
    return any(i.get("issuer") == issuer and i.get("issuerAssignedId") == subject for i in identities)


def _trusts_email_for_linking(rt: Runtime, connector_id: str) -> bool:
    config = next((c for c in rt.settings.connectors if c.id == connector_id), None)
    return bool(getattr(config, "trust_email_for_linking", False))
