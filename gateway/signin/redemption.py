"""Invitation redemption (b2b-concepts §3): the redeem link, the identity check, the consent page.

``GET /redeem?tenant&user&ticket`` checks the ticket (``gateway.invitations.tickets``) and opens
a sign-in pre-filled with the invited address; home-realm discovery then picks the home IdP
as for any sign-in. When the upstream identity comes back, ``redemption_check`` refuses an
identity whose verified email is not the invited one, a sign-up-only IdP (Facebook), a
domain blocked since the invitation, or an identity another user already holds. The guest then
sees the consent page (the organisation's privacy statement, what is shared, and the terms of use
when ``invitations.terms_of_use`` is configured: accepting needs their checkbox, whose version is
recorded as ``termsOfUseAcceptedVersion`` / ``termsOfUseAcceptedDateTime`` on the guest); accepting
binds the identity to the guest (sticky until a redemption reset), sets ``externalUserState: Accepted`` and
continues to ``inviteRedirectUrl`` — or, for a just-in-time redemption during an app's sign-in, to
the app. With automatic redemption agreed with the guest's organisation (§3.5) there is no consent
page: the invitation is accepted as the guest signs in, and a notification mail needing no action
is sent instead.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from gateway import audit
from gateway.directory.identities import directory_issuer
from gateway.directory.users import identity_object, iso
from gateway.i18n import Joined, Message, english_text, page_language, translations_for
from gateway.invitations.mail import redeemed_notification
from gateway.invitations.tickets import check_ticket
from gateway.pages import error_page, render
from gateway.policy.collaboration import guest_domain
from gateway.policy.cross_tenant import invitation_blocked, resolve_home
from gateway.policy.home_realm import discover, email_domain
from gateway.runtime import Runtime
from gateway.signin import transaction
from gateway.signin.forms import checked_form
from gateway.signin.transaction import SignIn
from idp_connectors.base import UpstreamIdentity

INVALID_LINK_TITLE = Message("redemption.invalid_link.title")
INVALID_LINK = Message("redemption.invalid_link.detail")
EXPIRED_TITLE = Message("error.expired.title")


class RedemptionRefused(Exception):
    """``reason`` is the audit code; ``message`` the guest's explanation (in their language on the page)."""

    def __init__(self, reason: str, message: Message) -> None:
        super().__init__(english_text(message))
        self.reason, self.message = reason, message


def is_pending_invitation(user: dict[str, Any]) -> bool:
    return user.get("creationType") == "Invitation" and user.get("externalUserState") == "PendingAcceptance"


async def redeem(request: Request) -> Response:
    """``GET /redeem``: the link in the invitation mail."""
    rt: Runtime = request.app.state.runtime
    params = request.query_params
    invitation = await check_ticket(
        rt.store, params.get("tenant", ""), params.get("user", ""), params.get("ticket", ""), now=rt.clock()
    )
    if invitation is None or invitation.tenant_id != rt.settings.tenant.id:
        audit.signin_failed(
            rt,
            None,
            reason="invalid_redeem_ticket",
            request=request,
            decisions=[audit.decision("redemption", "refused", "invalid_redeem_ticket")],
        )
        return error_page(request, INVALID_LINK_TITLE, INVALID_LINK, status=400)
    user = await rt.store.get_user(invitation.user_id)
    if user is None or not user.get("accountEnabled", True):
        return error_page(request, INVALID_LINK_TITLE, INVALID_LINK, status=400)
    if user.get("externalUserState") == "Accepted":
        # Already redeemed: the link is a way back to the resources (§2.2); the app signs them in.
        return RedirectResponse(
            invitation.redirect_url, status_code=303, headers={"Cache-Control": "no-store"}
        )
    browser_id = rt.browser.browser_id(request)
    new_browser = browser_id is None
    if browser_id is None:
        browser_id = rt.browser.new_browser_id()
    signin = SignIn(
        id=transaction.new_id(),
        app_id="",
        client_id="",
        redirect_uri=invitation.redirect_url,
        scopes=[],
        browser=rt.browser.binding(browser_id),
        created_at=rt.now(),
        email=invitation.email,
        login_hint=invitation.email,
        redeem_user_id=invitation.user_id,
        invited_email=invitation.email,
    )
    await transaction.save(rt.store, signin, rt.settings.tokens.signin_seconds)
    response = RedirectResponse(
        f"/signin/{signin.id}", status_code=303, headers={"Cache-Control": "no-store"}
    )
    if new_browser:
        rt.browser.set_cookie(response, browser_id)
    return response


async def redemption_check(
    rt: Runtime, signin: SignIn, guest: dict[str, Any], identity: UpstreamIdentity, connector_type: str
) -> None:
    """May this identity redeem this invitation? Raises ``RedemptionRefused`` with a reason code."""
    if not is_pending_invitation(guest) or not guest.get("accountEnabled", True):
        raise RedemptionRefused("invitation_not_pending", Message("redemption.refused.not_pending"))
    config = next(c for c in rt.settings.connectors if c.id == identity.connector_id)
    if type(config).signup_only:
        raise RedemptionRefused("connector_cannot_redeem", Message("redemption.refused.cannot_redeem"))
    invited = _invited_addresses(signin, guest)
    claimed = (identity.email or "").lower()
    if not identity.email_verified or claimed not in invited:
        addresses = Joined(sorted(invited), "list.or")
        raise RedemptionRefused(
            "redeemer_email_mismatch", Message("redemption.refused.email_mismatch", addresses=addresses)
        )
    route = discover(rt.realm, email=claimed)
    claimed_domain = route.reason in ("partner_domain", "connector_domain")
    if route.connector_id != identity.connector_id and (connector_type != "email_otp" or claimed_domain):
        # Only the identity provider home-realm discovery picks for the invited address may redeem
        # it (a passcode proves the mailbox, unless an organisation claims the domain): otherwise any
        # IdP could assert "verified" for someone else's address.
        raise RedemptionRefused(
            "connector_not_authoritative", Message("redemption.refused.not_authoritative")
        )
    domain = email_domain(claimed) or ""
    welcome = guest_domain(
        domain,
        rt.settings.external_collaboration,
        cross_tenant_blocked=invitation_blocked(rt.settings, domain),
    )
    if welcome.reason == "cross_tenant_access_blocked":
        raise RedemptionRefused(
            "cross_tenant_access_blocked", Message("redemption.refused.cross_tenant_blocked")
        )
    if not welcome.allowed:
        raise RedemptionRefused("domain_blocked", Message("redemption.refused.domain_blocked"))
    holder = await rt.store.find_user_by_identity(
        directory_issuer(identity, connector_type), identity.subject
    )
    if holder is not None and holder["id"] != guest["id"]:
        raise RedemptionRefused("identity_already_used", Message("redemption.refused.identity_used"))


def _invited_addresses(signin: SignIn, guest: dict[str, Any]) -> set[str]:
    """The redeem link's address; just in time, any of the guest's addresses (mail, otherMails)."""
    if signin.invited_email:
        return {signin.invited_email.lower()}
    return {a.lower() for a in [guest.get("mail"), *(guest.get("otherMails") or [])] if isinstance(a, str)}


async def ask_consent(rt: Runtime, signin: SignIn, guest_id: str, identity: UpstreamIdentity) -> Response:
    signin.redeem_user_id = guest_id
    signin.pending_identity = dataclasses.asdict(identity)
    remaining = signin.created_at + rt.settings.tokens.signin_seconds - rt.now()
    await transaction.save(rt.store, signin, max(remaining, 1))
    return RedirectResponse(
        f"/signin/{signin.id}/consent", status_code=303, headers={"Cache-Control": "no-store"}
    )


def redeems_automatically(rt: Runtime, identity: UpstreamIdentity) -> bool:
    """Automatic redemption (b2b-concepts §3.5): the guest's home organisation, reached through its
    own connector, has ``automatic_user_consent.inbound_allowed`` (the partner entry records the
    agreement; the partner allows it outbound on its side). Invitation terms of use still need
    the consent page, where they are accepted."""
    if rt.settings.invitations.terms_of_use is not None:
        return False
    home = resolve_home(
        rt.settings,
        connector_id=identity.connector_id,
        connector_type=rt.connector_types[identity.connector_id],
        home_tenant_id=identity.home_tenant_id,
    ).home
    return home is not None and home.authoritative and home.inbound.automatic_consent_inbound


async def redeem_automatically(
    rt: Runtime, request: Request, signin: SignIn, guest_id: str, identity: UpstreamIdentity
) -> Response:
    """Redeem without the consent page, send the no-action notification, and finish the sign-in."""
    signin.redeem_user_id = guest_id
    guest = await _accept(rt, signin, identity)
    if isinstance(guest, RedemptionRefused):
        return await _refused(rt, request, signin, identity, guest)
    if isinstance(guest.get("mail"), str):
        rt.outbox.send(
            redeemed_notification(
                to=guest["mail"],
                portal_url=f"{rt.settings.issuer}/myapps",
                translations=translations_for(rt.settings),
                language=page_language(rt, request, signin.ui_locales),
            )
        )
    from gateway.signin.complete import finish_signin

    decisions = [
        audit.decision("authentication", "passed", "upstream_identity_verified"),
        audit.decision("redemption", "accepted", "invitation_redeemed_automatically"),
    ]
    return await finish_signin(rt, request, signin, identity, guest, decisions)


async def _refused(
    rt: Runtime, request: Request, signin: SignIn, identity: UpstreamIdentity, refused: RedemptionRefused
) -> Response:
    await transaction.finish(rt.store, signin.id)
    audit.signin_failed(
        rt,
        signin.app_id or None,
        reason=refused.reason,
        request=request,
        connector_id=identity.connector_id,
        user_id=signin.redeem_user_id,
        decisions=[audit.decision("redemption", "refused", refused.reason)],
    )
    title = Message("redemption.refused.title")
    return error_page(request, title, refused.message, status=403, ui_locales=signin.ui_locales)


async def _load(request: Request) -> tuple[Runtime, SignIn] | Response:
    rt: Runtime = request.app.state.runtime
    signin = await transaction.load(rt.store, request.path_params["signin_id"])
    if signin is None or signin.pending_identity is None or signin.redeem_user_id is None:
        return error_page(request, EXPIRED_TITLE, Message("error.expired.start_again_invitation"), status=400)
    if not rt.browser.matches(signin.browser, request):
        return error_page(
            request,
            Message("error.wrong_browser.title"),
            Message("error.wrong_browser.short"),
            status=403,
            ui_locales=signin.ui_locales,
        )
    return rt, signin


async def consent_page(request: Request) -> Response:
    loaded = await _load(request)
    if isinstance(loaded, Response):
        return loaded
    rt, signin = loaded
    return _render_consent(request, rt, signin)


def _render_consent(
    request: Request, rt: Runtime, signin: SignIn, *, error: Message | None = None, status: int = 200
) -> Response:
    browser_id = rt.browser.browser_id(request)
    assert browser_id is not None
    identity = signin.pending_identity or {}
    return render(
        request,
        "consent.html",
        {
            "signin": signin,
            "csrf": rt.browser.csrf_token(signin.id, browser_id),
            "email": identity.get("email"),
            "name": identity.get("name"),
            "privacy_url": translations_for(rt.settings).branding.consent_privacy_url,
            "terms": rt.settings.invitations.terms_of_use,
            "error": error,
        },
        status=status,
        ui_locales=signin.ui_locales,
    )


async def submit_consent(request: Request) -> Response:
    loaded = await _load(request)
    if isinstance(loaded, Response):
        return loaded
    rt, signin = loaded
    form = await checked_form(rt, request, signin.id, signin.ui_locales)
    if isinstance(form, Response):
        return form
    assert signin.pending_identity is not None and signin.redeem_user_id is not None
    identity = UpstreamIdentity(**signin.pending_identity)
    if form.get("decision") != "accept":
        await transaction.finish(rt.store, signin.id)
        audit.signin_failed(
            rt,
            signin.app_id or None,
            reason="consent_declined",
            request=request,
            connector_id=identity.connector_id,
            user_id=signin.redeem_user_id,
            decisions=[audit.decision("redemption", "declined", "consent_declined")],
        )
        return render(request, "declined.html", {}, status=200, ui_locales=signin.ui_locales)
    terms = rt.settings.invitations.terms_of_use
    if terms is not None and form.get("accept_terms") != terms.version:
        # Nothing is stored: the same sign-in shows the page again with the box to tick.
        error = Message("consent.terms_required", name=terms.display_name)
        return _render_consent(request, rt, signin, error=error, status=400)
    from gateway.signin.complete import finish_signin

    guest = await _accept(rt, signin, identity)
    if isinstance(guest, RedemptionRefused):
        return await _refused(rt, request, signin, identity, guest)
    decisions = [
        audit.decision("authentication", "passed", "upstream_identity_verified"),
        audit.decision("redemption", "accepted", "invitation_redeemed"),
    ]
    return await finish_signin(rt, request, signin, identity, guest, decisions)


async def _accept(
    rt: Runtime, signin: SignIn, identity: UpstreamIdentity
) -> dict[str, Any] | RedemptionRefused:
    """Bind the identity to the guest and mark the invitation accepted."""
    assert signin.redeem_user_id is not None
    guest = await rt.store.get_user(signin.redeem_user_id)
    connector_type = rt.connector_types[identity.connector_id]
    if guest is None:
        return RedemptionRefused("invitation_not_pending", Message("redemption.refused.withdrawn"))
    try:
        await redemption_check(rt, signin, guest, identity, connector_type)
    except RedemptionRefused as refused:
        return refused
    issuer = directory_issuer(identity, connector_type)
    identity_entry = identity_object(issuer, identity.subject)
    if not await rt.store.add_identity(guest["id"], issuer, identity.subject, identity_entry):
        # Already indexed: fine only if it is this guest's own (a reset back to the same account).
        holder = await rt.store.find_user_by_identity(issuer, identity.subject)
        if holder is None or holder["id"] != guest["id"]:
            return RedemptionRefused("identity_already_used", Message("redemption.refused.identity_used"))
    guest = await rt.store.get_user(guest["id"])
    assert guest is not None
    now = iso(rt.now())
    guest["identities"] = [identity_object(issuer, identity.subject)]
    guest["externalUserState"] = "Accepted"
    guest["externalUserStateChangeDateTime"] = now
    if not guest.get("displayName") and identity.name:
        guest["displayName"] = identity.name
    terms = rt.settings.invitations.terms_of_use
    if terms is not None:  # submit_consent has checked the box carries this version
        guest["termsOfUseAcceptedVersion"] = terms.version
        guest["termsOfUseAcceptedDateTime"] = now
    await rt.store.update_user(guest)
    return guest


ROUTES = [
    Route("/redeem", redeem, methods=["GET"]),
    Route("/signin/{signin_id}/consent", consent_page, methods=["GET"]),
    Route("/signin/{signin_id}/consent", submit_consent, methods=["POST"]),
]
