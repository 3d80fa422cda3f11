"""The email-first step: route the guest to their home identity provider (``gateway.policy.home_realm``).

Also the identity-provider buttons the page offers (social IdPs the app accepts; Facebook only
where the app's user flow allows sign-up) and the ``idp_hint`` / ``domain_hint`` shortcuts.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from gateway import audit
from gateway.policy.home_realm import Route, discover
from gateway.policy.signup import self_service_sign_up
from gateway.runtime import Runtime
from gateway.signin import transaction
from gateway.signin.federation import start_upstream
from gateway.signin.transaction import SignIn

BUTTON_TYPES = {"google": "Google", "facebook": "Facebook", "microsoft": "Microsoft"}


@dataclass(frozen=True)
class Button:
    connector_id: str
    label: str | None
    """The connector's ``display_name``; None: the page says "Sign in with {provider}" in its language."""
    provider: str


def accepted_connectors(rt: Runtime, signin: SignIn) -> list[str] | None:
    app = rt.settings.application(signin.app_id)
    if app is None:  # a redemption from an invitation link: no app yet, every connector may serve
        return None if signin.redeem_user_id else []
    return app.allowed_connectors


def buttons(rt: Runtime, signin: SignIn) -> list[Button]:
    app = rt.settings.application(signin.app_id)
    if app is None:
        return []
    found: list[Button] = []
    for config in rt.settings.connectors:
        kind = str(config.type)
        if kind not in BUTTON_TYPES:
            continue
        if app.allowed_connectors is not None and config.id not in app.allowed_connectors:
            continue
        if type(config).signup_only and not self_service_sign_up(rt.settings, app, config.id).allowed:
            continue
        found.append(Button(config.id, config.display_name, BUTTON_TYPES[kind]))
    return found


def route_for_email(rt: Runtime, signin: SignIn, email: str) -> Route:
    return discover(rt.realm, email=email, allowed=accepted_connectors(rt, signin))


def route_for_hints(rt: Runtime, signin: SignIn) -> Route | None:
    """The route the authorization request's ``idp_hint`` / ``domain_hint`` asks for, if it names one."""
    if signin.hints_used or not (signin.idp_hint or signin.domain_hint):
        return None
    route = discover(
        rt.realm,
        idp_hint=signin.idp_hint,
        domain_hint=signin.domain_hint,
        allowed=accepted_connectors(rt, signin),
    )
    return route if route.reason in ("idp_hint", "partner_domain", "connector_domain") else None


def is_upstream(rt: Runtime, connector_id: str) -> bool:
    return connector_id in rt.upstream_connectors


async def go_upstream(rt: Runtime, request: Request, signin: SignIn, route: Route) -> Response:
    """From a GET (the authorization request's hints): straight to the home IdP."""
    assert route.connector_id is not None
    signin.partner_tenant_id = route.partner_tenant_id
    signin.hints_used = True
    return await start_upstream(rt, request, signin, route.connector_id, changed=True)


async def choose_upstream(rt: Runtime, signin: SignIn, route: Route) -> Response:
    """From a form POST: remember the choice; continue at ``/signin/{id}/upstream`` (``start_upstream``)."""
    assert route.connector_id is not None
    signin.partner_tenant_id = route.partner_tenant_id
    signin.connector_id = route.connector_id
    remaining = signin.created_at + rt.settings.tokens.signin_seconds - rt.now()
    await transaction.save(rt.store, signin, max(remaining, 1))
    return RedirectResponse(
        f"/signin/{signin.id}/upstream", status_code=303, headers={"Cache-Control": "no-store"}
    )


def refuse_route(rt: Runtime, request: Request, signin: SignIn, route: Route) -> None:
    audit.signin_failed(
        rt,
        signin.app_id,
        reason=route.reason,
        request=request,
        decisions=[audit.decision("home_realm", "refused", route.reason)],
    )
