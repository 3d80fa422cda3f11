"""The end of a sign-in: directory lookup or self-service sign-up, SSO session, code to the client."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from gateway import audit
from gateway.directory import users
from gateway.oidc.authorize import respond_with_code
from gateway.oidc.claims import ACR_SINGLE_FACTOR
from gateway.pages import error_page
from gateway.policy.signup import self_service_sign_up
from gateway.runtime import Runtime
from gateway.signin import transaction
from gateway.signin.transaction import SignIn
from idp_connectors.base import UpstreamIdentity


async def complete_signin(
    rt: Runtime, request: Request, signin: SignIn, identity: UpstreamIdentity
) -> Response:
    app = rt.settings.application(signin.app_id)
    now = rt.now()
    decisions = [audit.decision("authentication", "passed", "upstream_identity_verified")]
    user = await users.find_for_identity(rt.store, identity)
    if user is not None:
        decisions.append(audit.decision("directory", "found", "existing_user"))
        if not user.get("accountEnabled", True):
            decisions.append(audit.decision("directory", "refused", "account_disabled"))
            return await _refuse(rt, request, signin, identity, decisions, "account_disabled",
                                 "Your account in this organisation is disabled.", user_id=user["id"])
    else:
        signup = self_service_sign_up(rt.settings, app, identity.connector_id) if app else None
        if signup is None or not signup.allowed:
            reason = signup.reason if signup else "unknown_application"
            decisions.append(audit.decision("directory", "refused", reason))
            return await _refuse(rt, request, signin, identity, decisions, reason,
                                 f"{identity.email} has no access to this application.")
        user = await users.sign_up(rt.store, identity, rt.settings.tenant.domain, now)
        decisions.append(audit.decision("directory", "created", signup.reason))

    lifetime = rt.settings.tokens.session_seconds
    await rt.sessions.forget(request)
    session, token = await rt.sessions.create(
        user_id=user["id"], auth_time=identity.auth_time or now, lifetime=lifetime, amr=list(identity.amr),
        acr=ACR_SINGLE_FACTOR, idp=identity.issuer, connector_id=identity.connector_id,
    )
    await transaction.finish(rt.store, signin.id)
    decisions.append(audit.decision("session", "created", "sso_session_started"))
    audit.signin_succeeded(rt, signin.app_id, user_id=user["id"], connector_id=identity.connector_id,
                           request=request, decisions=decisions)
    response = await respond_with_code(rt, request, signin, session, fresh=True)
    rt.sessions.attach(response, token, lifetime)
    return response


async def _refuse(
    rt: Runtime, request: Request, signin: SignIn, identity: UpstreamIdentity,
    decisions: list[dict[str, str]], reason: str, message: str, *, user_id: str | None = None,
) -> Response:
    await transaction.finish(rt.store, signin.id)
    audit.signin_failed(rt, signin.app_id, reason=reason, request=request, connector_id=identity.connector_id,
                        user_id=user_id, decisions=decisions)
    return error_page(request, "You can't sign in here", message, status=403)
