"""The end of a SAML app's sign-in: app assignment, then the assertion POSTed to the checked ACS.

Called by the policy step once every policy is satisfied (``gateway.signin.policy_step``); the
assertion carries what the SSO session established (``acr``, ``amr``, the trusted facts), so a
SAML app sees the same MFA and device state as an OIDC app would.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway import audit
from gateway.directory.app_access import app_access
from gateway.pages import error_page
from gateway.runtime import Runtime
from gateway.saml_idp.request import SamlRequest
from gateway.saml_idp.response import AuthnFacts, error_response, respond
from gateway.signin.sessions import SsoSession
from gateway.signin.transaction import SignIn


async def answer_saml_app(
    rt: Runtime,
    request: Request,
    signin: SignIn,
    session: SsoSession,
    user: dict[str, Any],
    auth_claims: dict[str, Any],
) -> Response:
    assert signin.saml is not None
    saml = SamlRequest.from_json(signin.saml)
    app = rt.settings.application(saml.app_id)
    if app is None or app.saml is None:
        return error_page(
            request, "Unknown application", "This application is no longer configured.", status=400
        )
    if app.assignment_required and not (await app_access(rt.store, app, user["id"])).assigned:
        audit.signin_failed(
            rt,
            app.id,
            reason="app_assignment_required",
            request=request,
            user_id=user["id"],
            connector_id=session.connector_id,
            decisions=[audit.decision("application", "refused", "app_assignment_required")],
        )
        return await deny(rt, request, signin, "You have not been given access to this application.")
    authn = AuthnFacts(
        sid=session.sid,
        auth_time=session.auth_time,
        acr=session.acr,
        amr=list(session.amr),
        auth_claims=auth_claims,
    )
    return await respond(rt, request, saml, user=user, authn=authn)


async def deny(rt: Runtime, request: Request, signin: SignIn, message: str) -> Response:
    """A signed ``RequestDenied`` Response to the app's checked ACS: how a SAML app learns it was
    refused (an OIDC app gets ``access_denied``)."""
    assert signin.saml is not None
    return await error_response(rt, request, SamlRequest.from_json(signin.saml), "RequestDenied", message)
