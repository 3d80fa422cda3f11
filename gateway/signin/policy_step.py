"""The policy step of a sign-in: what cross-tenant access and conditional access let through, and how.

Runs once the user is known (``after_authentication``), again after each page it sends the user
to (``resume``, from the MFA and terms pages), and for a sign-in the SSO session answers
(``for_session``, from the authorization endpoint). ``gateway.signin.policy_eval`` decides; this
module acts on the decision (b2b-concepts §5.4):

- refused (cross-tenant access, a ``block`` grant, a device requirement nothing trusted
  satisfies, MFA the home organisation was asked for and did not do): a clear page, the
  transaction ended, an audit record; nothing is minted.
- ``reauthentication`` (sign-in frequency): the home IdP is asked again with ``prompt=login``, once.
- ``mfa`` when the home organisation is trusted for MFA: the home IdP is asked for it
  (``acr_values`` of the partner's mapping and ``prompt=login``), once; without it the
  sign-in is refused. Otherwise (untrusted partners, social, passcode) TOTP here:
  ``/signin/{id}/mfa``.
- ``terms:<id>``: ``/signin/{id}/terms``.
- nothing left: the SSO session carries the standing (amr, acr, trusted facts) and the app gets
  its code; the audit record lists every policy's result and the cross-tenant decision.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from gateway import audit
from gateway.directory.app_access import app_access
from gateway.directory.identities import directory_issuer
from gateway.http import client_ip
from gateway.i18n import Message, translations_for
from gateway.pages import error_page
from gateway.runtime import Runtime
from gateway.signin import transaction
from gateway.signin.policy_eval import Assessment, assess, inbound_gate, needs_group_ids
from gateway.signin.sessions import SsoSession
from gateway.signin.standing import Standing, from_identity
from gateway.signin.transaction import SignIn
from idp_connectors.base import RedirectConnector, UpstreamIdentity

LOCAL_ACTIONS = frozenset({"mfa"})
"""Required actions the gateway's own pages satisfy (besides ``terms:<id>``)."""

REFUSALS = frozenset(
    {
        "home_tenant_mismatch",
        "cross_tenant_user_blocked",
        "cross_tenant_application_blocked",
        "blocked_by_policy",
        "device_not_compliant",
        "device_not_hybrid_joined",
        "mfa_not_satisfied_at_home",
        "sign_in_frequency_not_met",
        "account_disabled",
        "reauthenticated_as_another_user",
    }
)
"""Reasons with their own page (catalogue ``refusal.<reason>.title`` / ``.detail``); others show
``blocked_by_policy``'s."""


async def admit(
    rt: Runtime, request: Request, signin: SignIn, identity: UpstreamIdentity, decisions: list[dict[str, str]]
) -> Response | Standing:
    """Before the directory is read or written: refuse an identity whose home organisation may not
    sign in here (a tenant mismatch, or inbound cross-tenant access blocking it). Lets it in with
    the standing it earns, which ``after_authentication`` then takes rather than work it out again."""
    established = from_identity(rt.settings, identity, rt.connector_types[identity.connector_id], rt.now())
    if established.standing is None:
        assert established.refusal is not None
        return await _refuse(
            rt, request, signin, ("cross_tenant_access", established.refusal), decisions,
            user_id=None, connector_id=identity.connector_id,
        )  # fmt: skip
    standing = established.standing
    if signin.policy_user_id is not None and not await _same_user(rt, signin.policy_user_id, identity):
        # Sent home again (step-up, re-authentication), the upstream answered for someone else:
        # nothing this sign-in established (MFA done here, terms) may pass to them.
        return await _refuse(
            rt, request, signin, ("authentication", "reauthenticated_as_another_user"), decisions,
            user_id=signin.policy_user_id, connector_id=identity.connector_id,
        )  # fmt: skip
    access = inbound_gate(rt.settings, standing, signin.app_id)
    if access is None or access.allowed:
        return standing
    log = {"homeTenantId": standing.home_tenant_id, "crossTenantAccessType": "b2bCollaboration"}
    return await _refuse(
        rt, request, signin, ("cross_tenant_access", access.reason), decisions,
        user_id=None, connector_id=identity.connector_id, log=log,
    )  # fmt: skip


async def after_authentication(
    rt: Runtime,
    request: Request,
    signin: SignIn,
    identity: UpstreamIdentity,
    user: dict[str, Any],
    decisions: list[dict[str, str]],
    standing: Standing | None = None,
) -> Response:
    """The first pass: the standing this identity earns (``standing``, when ``admit`` gave it in this
    same request), then the decision."""
    if standing is None:
        connector_type = rt.connector_types[identity.connector_id]
        established = from_identity(rt.settings, identity, connector_type, rt.now())
        if established.standing is None:
            assert established.refusal is not None
            return await _refuse(
                rt, request, signin, ("cross_tenant_access", established.refusal), decisions,
                user_id=user["id"], connector_id=identity.connector_id,
            )  # fmt: skip
        standing = established.standing
    if standing.home_tenant_id is not None:
        outcome = "mfa_trusted" if standing.mfa else "mfa_not_trusted"
        decisions += [
            audit.decision("trust", outcome, reason)
            for reason in standing.trust_reasons or ["mfa_claim_absent"]
        ]
    return await _decide(rt, request, signin, user, standing, decisions)


async def resume(rt: Runtime, request: Request, signin: SignIn) -> Response:
    """After the MFA or terms page: re-read the user and decide again on the stored standing."""
    if signin.standing is None or signin.policy_user_id is None:
        return error_page(
            request,
            Message("error.expired.title"),
            Message("error.expired.start_again"),
            status=400,
            ui_locales=signin.ui_locales,
        )
    standing = Standing.from_json(signin.standing).under_current_trust(rt.settings)
    if signin.local_mfa_at is not None:  # the MFA page of this sign-in, by this same user
        standing = standing.with_local_mfa(signin.local_mfa_at)
    user = await rt.store.get_user(signin.policy_user_id)
    decisions = list(signin.decisions)
    if user is None or not user.get("accountEnabled", True):
        return await _refuse(
            rt, request, signin, ("directory", "account_disabled"), decisions,
            user_id=signin.policy_user_id, connector_id=standing.connector_id,
        )  # fmt: skip
    return await _decide(rt, request, signin, user, standing, decisions)


async def for_session(
    rt: Runtime,
    request: Request,
    signin: SignIn,
    session: SsoSession,
    user: dict[str, Any],
    *,
    passive: bool = False,
) -> Response | None:
    """A sign-in the SSO session would answer: evaluated on the session's standing.

    Returns the response, or None when the session cannot answer: a fresh sign-in is needed
    (re-authentication, or MFA to be asked of the home organisation), or ``passive`` (OIDC
    ``prompt=none``, SAML ``IsPassive``) and the sign-in would need a page; the caller then starts
    a sign-in or answers the protocol's error.
    """
    standing = _session_standing(rt, session)
    decisions = [audit.decision("sso_session", "reused", "session_valid")]
    assessment = await _assess(rt, request, signin, user, standing, decisions)
    if passive and (assessment.refusal is not None or assessment.required):
        return None
    if assessment.refusal is not None:
        return await _refuse_assessed(rt, request, signin, user, standing, assessment, decisions)
    required = assessment.required
    if "reauthentication" in required or ("mfa" in required and _ask_home(rt, assessment, standing)):
        return None
    if not await _assigned(rt, signin, user):  # refused by the app's answer, with its own record
        return await _answer_app(rt, request, signin, session, user, standing)
    if required:
        signin.policy_user_id = user["id"]
        signin.standing = standing.to_json()
        return await _ask_user(rt, signin, required, decisions)
    audit.signin_succeeded(
        rt,
        signin.app_id,
        user_id=user["id"],
        connector_id=standing.connector_id,
        request=request,
        decisions=decisions,
        policy=assessment.log,
    )
    return await _answer_app(rt, request, signin, session, user, standing)


async def _decide(
    rt: Runtime,
    request: Request,
    signin: SignIn,
    user: dict[str, Any],
    standing: Standing,
    decisions: list[dict[str, str]],
) -> Response:
    assessment = await _assess(rt, request, signin, user, standing, decisions)
    if assessment.refusal is not None:
        return await _refuse_assessed(rt, request, signin, user, standing, assessment, decisions)
    required = assessment.required
    signin.policy_user_id, signin.standing = user["id"], standing.to_json()
    if "reauthentication" in required:
        if "login" in signin.prompt or not _is_redirect(rt, standing.connector_id):
            return await _refuse(
                rt, request, signin, ("conditional_access", "sign_in_frequency_not_met"), decisions,
                user_id=user["id"], connector_id=standing.connector_id, log=assessment.log,
            )  # fmt: skip
        signin.prompt = sorted({*signin.prompt, "login"})
        decisions.append(audit.decision("conditional_access", "reauthenticate", "sign_in_frequency"))
        return await _upstream_again(rt, request, signin, standing, decisions, ())
    if "mfa" in required and _ask_home(rt, assessment, standing):
        if signin.home_step_up:
            return await _refuse(
                rt, request, signin, ("mfa", "mfa_not_satisfied_at_home"), decisions,
                user_id=user["id"], connector_id=standing.connector_id, log=assessment.log,
            )  # fmt: skip
        signin.home_step_up = True
        decisions.append(audit.decision("mfa", "requested", "mfa_requested_from_home"))
        assert assessment.inbound is not None
        acr_values = tuple(assessment.inbound.claims_mapping.mfa_acr_values)
        return await _upstream_again(rt, request, signin, standing, decisions, acr_values)
    if required:
        return await _ask_user(rt, signin, required, decisions)
    return await _grant(rt, request, signin, user, standing, decisions, assessment)


async def _assess(
    rt: Runtime,
    request: Request,
    signin: SignIn,
    user: dict[str, Any],
    standing: Standing,
    decisions: list[dict[str, str]],
) -> Assessment:
    """Assess the sign-in (``policy_eval.assess``); the cross-tenant decision joins ``decisions``."""
    groups = (
        frozenset(await rt.store.list_user_groups(user["id"]))
        if needs_group_ids(rt.settings)
        else frozenset()
    )
    assessment = assess(
        rt.settings,
        user=user,
        group_ids=groups,
        standing=standing,
        app_id=signin.app_id,
        client_ip=client_ip(request),
        signin_started_at=signin.created_at,
        requested_acr_values=signin.acr_values,
        now=rt.now(),
    )
    if assessment.access is not None:
        outcome = "allowed" if assessment.access.allowed else "blocked"
        decisions.append(audit.decision("cross_tenant_access", outcome, assessment.access.reason))
    return assessment


async def _refuse_assessed(
    rt: Runtime,
    request: Request,
    signin: SignIn,
    user: dict[str, Any],
    standing: Standing,
    assessment: Assessment,
    decisions: list[dict[str, str]],
) -> Response:
    assert assessment.refusal is not None
    step = "cross_tenant_access" if assessment.evaluation is None else "conditional_access"
    return await _refuse(
        rt, request, signin, (step, assessment.refusal), decisions,
        user_id=user["id"], connector_id=standing.connector_id, log=assessment.log,
    )  # fmt: skip


def _ask_home(rt: Runtime, assessment: Assessment, standing: Standing) -> bool:
    """MFA is asked of the home organisation when it is trusted for MFA and reachable by redirect."""
    return (
        assessment.home_mfa_trusted
        and standing.home_authoritative
        and _is_redirect(rt, standing.connector_id)
    )


def _is_redirect(rt: Runtime, connector_id: str) -> bool:
    return isinstance(rt.connectors.get(connector_id), RedirectConnector)


async def _upstream_again(
    rt: Runtime,
    request: Request,
    signin: SignIn,
    standing: Standing,
    decisions: list[dict[str, str]],
    acr_values: tuple[str, ...],
) -> Response:
    from gateway.signin.federation import start_upstream  # late: federation imports the sign-in's end

    signin.decisions = decisions
    signin.local_mfa_at = None  # after a new home sign-in, factors done before it count no more
    # After a form (the attribute, MFA or terms page), the CSP's form-action would stop a redirect to
    # the home IdP: a page that moves on by itself goes there instead.
    return await start_upstream(
        rt,
        request,
        signin,
        standing.connector_id,
        changed=True,
        step_up=True,
        step_up_acr_values=acr_values,
        via_page=request.method == "POST",
    )


async def _ask_user(
    rt: Runtime, signin: SignIn, required: tuple[str, ...], decisions: list[dict[str, str]]
) -> Response:
    """Save what is pending and send the browser to the first page that satisfies it."""
    remaining = signin.created_at + rt.settings.tokens.signin_seconds - rt.now()
    signin.required = list(required)
    signin.decisions = decisions
    if remaining > 0:
        await transaction.save(rt.store, signin, remaining)
    page = "mfa" if "mfa" in required else "terms"
    return RedirectResponse(
        f"/signin/{signin.id}/{page}", status_code=303, headers={"Cache-Control": "no-store"}
    )


async def _grant(
    rt: Runtime,
    request: Request,
    signin: SignIn,
    user: dict[str, Any],
    standing: Standing,
    decisions: list[dict[str, str]],
    assessment: Assessment,
) -> Response:
    lifetime = rt.settings.tokens.session_seconds
    await rt.sessions.forget(request)
    session, token = await rt.sessions.create(
        user_id=user["id"],
        auth_time=standing.auth_time,
        lifetime=lifetime,
        amr=standing.amr,
        acr=standing.acr,
        idp=standing.idp,
        connector_id=standing.connector_id,
        standing=standing.to_json(),
    )
    await transaction.finish(rt.store, signin.id)
    decisions.append(audit.decision("session", "created", "sso_session_started"))
    audit.signin_succeeded(
        rt,
        signin.app_id or None,
        user_id=user["id"],
        connector_id=standing.connector_id,
        request=request,
        decisions=decisions,
        policy=assessment.log,
    )
    response = await _answer_app(rt, request, signin, session, user, standing)
    rt.sessions.attach(response, token, lifetime)
    return response


async def _answer_app(
    rt: Runtime,
    request: Request,
    signin: SignIn,
    session: SsoSession,
    user: dict[str, Any],
    standing: Standing,
) -> Response:
    """The way back: a code to an OIDC app, a POSTed assertion to a SAML app, or, for a redemption
    from the invitation link, on to ``inviteRedirectUrl``."""
    if signin.protocol == "saml" and signin.saml is not None:
        from gateway.saml_idp.answer import answer_saml_app  # late: it imports the sign-in's pieces

        return await answer_saml_app(rt, request, signin, session, user, standing.auth_claims())
    if signin.client_id:
        from gateway.oidc.authorize import respond_with_code  # late: the authorization endpoint imports this

        return await respond_with_code(rt, request, signin, session, fresh=True)
    return RedirectResponse(signin.redirect_uri, status_code=303, headers={"Cache-Control": "no-store"})


async def _refuse(
    rt: Runtime,
    request: Request,
    signin: SignIn,
    refusal: tuple[str, str],
    decisions: list[dict[str, str]],
    *,
    user_id: str | None,
    connector_id: str,
    log: dict[str, Any] | None = None,
) -> Response:
    """End the sign-in with a clear page; the step and reason join the audit record. Nothing is minted."""
    step, reason = refusal
    decisions.append(audit.decision(step, "refused", reason))
    if signin.id:
        await transaction.finish(rt.store, signin.id)
    audit.signin_failed(
        rt,
        signin.app_id or None,
        reason=reason,
        request=request,
        connector_id=connector_id,
        user_id=user_id,
        decisions=decisions,
        policy=log,
    )
    shown = reason if reason in REFUSALS else "blocked_by_policy"
    title = Message(f"refusal.{shown}.title")
    detail = Message(f"refusal.{shown}.detail", org=translations_for(rt.settings).branding.name)
    return error_page(request, title, detail, status=403, ui_locales=signin.ui_locales)


async def _same_user(rt: Runtime, user_id: str, identity: UpstreamIdentity) -> bool:
    issuer = directory_issuer(identity, rt.connector_types[identity.connector_id])
    holder = await rt.store.find_user_by_identity(issuer, identity.subject)
    return holder is not None and holder["id"] == user_id


async def _assigned(rt: Runtime, signin: SignIn, user: dict[str, Any]) -> bool:
    app = rt.settings.application(signin.app_id)
    if app is None or not app.assignment_required:
        return True
    return (await app_access(rt.store, app, user["id"])).assigned


def _session_standing(rt: Runtime, session: SsoSession) -> Standing:
    if session.standing:  # trusted when it was made: trusted still only if the settings still say so
        return Standing.from_json(session.standing).under_current_trust(rt.settings)
    # A session from before the policy step existed: what it recorded, nothing trusted.
    return Standing(
        connector_id=session.connector_id,
        connector_type=rt.connector_types.get(session.connector_id, ""),
        auth_time=session.auth_time,
        idp=session.idp,
    )
