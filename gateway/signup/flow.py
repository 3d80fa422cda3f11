"""The sign-up steps between the identity provider and the new guest (b2b-concepts §7).

``begin`` runs when an unknown identity may sign up through the app's user flow: the
``post_federation_signup`` API connector (Continue pre-fills the attribute page), then the attribute
page when the flow collects attributes, then ``collected``: the ``post_attribute_collection``
connector (Continue overrides values; ValidationError keeps the page open with its message), and only
then the guest (``creationType: SelfServiceSignUp``, attributes as Graph properties and
``extension_<app id>_<name>``). A ShowBlockPage reply ends the sign-up on a page with the connector's
message; any other reply ends it on a page with a reference code. Nothing is written to the directory
before the last step succeeds. Between pages the identity and the values wait in the sign-in
transaction, so any replica serves the next request.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from gateway import audit
from gateway.directory import users
from gateway.directory.identities import directory_issuer
from gateway.i18n import page_language
from gateway.pages import render
from gateway.runtime import Runtime
from gateway.settings.signup import UserFlow, extensions_app_id
from gateway.signin import transaction
from gateway.signin.transaction import SignIn
from gateway.signup import api_connector
from gateway.signup.attributes import (
    CONNECTOR_TYPES_SENDING_IDENTITIES,
    InvalidConnectorValue,
    Value,
    connector_request,
    from_connector,
    from_identity,
    missing_required,
    user_properties,
)
from idp_connectors.base import UpstreamIdentity


class Stop(Exception):
    """The sign-up ends here: ``response`` is the page to show."""

    def __init__(self, response: Response) -> None:
        super().__init__("sign-up stopped")
        self.response = response


class StayOnPage(Exception):
    """``post_attribute_collection`` answered ValidationError: the attribute page again, with its message."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


async def begin(
    rt: Runtime,
    request: Request,
    signin: SignIn,
    identity: UpstreamIdentity,
    flow: UserFlow,
    decisions: list[dict[str, str]],
) -> Response:
    """Start the sign-up of ``identity`` through ``flow`` (the directory has not been touched)."""
    decisions.append(audit.decision("signup", "started", "user_flow_allows_signup"))
    values = from_identity(
        flow,
        {"displayName": identity.name, "givenName": identity.given_name, "surname": identity.family_name},
    )
    try:
        values.update(
            await _call(rt, request, signin, identity, flow, values, "post_federation_signup", decisions)
        )
    except Stop as stop:
        return stop.response
    if flow.attributes:
        signin.pending_identity = dataclasses.asdict(identity)
        signin.signup = {"flow": flow.id, "values": values}
        signin.decisions = decisions
        remaining = signin.created_at + rt.settings.tokens.signin_seconds - rt.now()
        await transaction.save(rt.store, signin, max(remaining, 1))
        return RedirectResponse(
            f"/signin/{signin.id}/signup", status_code=303, headers={"Cache-Control": "no-store"}
        )
    try:
        return await collected(rt, request, signin, identity, flow, values, decisions)
    except StayOnPage as stay:  # no page to stay on: the message ends the sign-up
        return await _blocked(
            rt, request, signin, identity, decisions, "api_connector_validation_error", stay.message
        )


async def collected(
    rt: Runtime,
    request: Request,
    signin: SignIn,
    identity: UpstreamIdentity,
    flow: UserFlow,
    values: dict[str, Value],
    decisions: list[dict[str, str]],
) -> Response:
    """After the attribute page (or without one): the last connector, then the guest, then the sign-in's
    remaining steps. Raises ``StayOnPage`` for a ValidationError reply."""
    try:
        values = {
            **values,
            **await _call(
                rt, request, signin, identity, flow, values, "post_attribute_collection", decisions
            ),
        }
    except Stop as stop:
        return stop.response
    missing = missing_required(flow, values)
    if missing:
        return await _failed(
            rt,
            request,
            signin,
            identity,
            decisions,
            api_connector.Failure(
                api_connector.new_reference(),
                "api_connector_invalid_reply",
                f"the Continue reply left required attribute(s) {', '.join(missing)} without a value",
            ),
        )
    from gateway.signin.complete import finish_signin  # late: complete imports this module

    issuer = directory_issuer(identity, rt.connector_types[identity.connector_id])
    user = await users.sign_up(
        rt.store,
        identity,
        issuer,
        rt.settings.tenant.domain,
        rt.now(),
        properties=user_properties(flow, values, extensions_app_id(rt.settings)),
    )
    decisions.append(audit.decision("directory", "created", "self_service_sign_up"))
    signin.pending_identity, signin.signup = None, None  # a replayed form finds no sign-up to finish
    return await finish_signin(rt, request, signin, identity, user, decisions)


async def _call(
    rt: Runtime,
    request: Request,
    signin: SignIn,
    identity: UpstreamIdentity,
    flow: UserFlow,
    values: dict[str, Value],
    step: api_connector.Step,
    decisions: list[dict[str, str]],
) -> dict[str, Value]:
    """Call the flow's connector for ``step`` (if any); the values its Continue sets. Raises ``Stop``."""
    connector_id = getattr(flow.api_connectors, step)
    if connector_id is None:
        return {}
    app_id = extensions_app_id(rt.settings)
    connector_type = rt.connector_types[identity.connector_id]
    identities = (
        [users.identity_object(directory_issuer(identity, connector_type), identity.subject)]
        if connector_type in CONNECTOR_TYPES_SENDING_IDENTITIES
        else []
    )
    assert identity.email is not None  # complete_signin refuses sign-up without an address
    body = connector_request(
        flow,
        values,
        email=identity.email,
        identities=identities,
        ui_locales=" ".join(signin.ui_locales) or page_language(rt, request, signin.ui_locales),
        extensions_app_id=app_id,
    )
    reply = await rt.api_connectors[connector_id].call(step, body)
    if isinstance(reply, api_connector.Continue):
        try:
            taken = from_connector(flow, reply.claims, app_id)
        except InvalidConnectorValue as exc:
            failure = api_connector.Failure(
                api_connector.new_reference(), "api_connector_invalid_reply", str(exc)
            )
            raise Stop(await _failed(rt, request, signin, identity, decisions, failure)) from exc
        decisions.append(audit.decision("signup", "continued", f"{step}_continue"))
        return taken
    if isinstance(reply, api_connector.ShowBlockPage):
        raise Stop(
            await _blocked(rt, request, signin, identity, decisions, f"{step}_block_page", reply.user_message)
        )
    if isinstance(reply, api_connector.ValidationError):
        decisions.append(audit.decision("signup", "validation_error", f"{step}_validation_error"))
        raise StayOnPage(reply.user_message)
    raise Stop(await _failed(rt, request, signin, identity, decisions, reply))


async def _blocked(
    rt: Runtime,
    request: Request,
    signin: SignIn,
    identity: UpstreamIdentity,
    decisions: list[dict[str, str]],
    reason: str,
    message: str,
) -> Response:
    decisions.append(audit.decision("signup", "blocked", reason))
    await _end(rt, request, signin, identity, decisions, reason, None)
    return render(
        request,
        "signup_blocked.html",
        {"message": message, "reference": None},
        status=403,
        ui_locales=signin.ui_locales,
    )


async def _failed(
    rt: Runtime,
    request: Request,
    signin: SignIn,
    identity: UpstreamIdentity,
    decisions: list[dict[str, str]],
    failure: api_connector.Failure,
) -> Response:
    decisions.append(audit.decision("signup", "failed", failure.reason))
    detail = f"reference {failure.reference}: {failure.detail}"
    await _end(rt, request, signin, identity, decisions, failure.reason, detail)
    return render(
        request,
        "signup_blocked.html",
        {"message": None, "reference": failure.reference},
        status=502,
        ui_locales=signin.ui_locales,
    )


async def _end(
    rt: Runtime,
    request: Request,
    signin: SignIn,
    identity: UpstreamIdentity,
    decisions: list[dict[str, str]],
    reason: str,
    detail: str | None,
) -> None:
    await transaction.finish(rt.store, signin.id)
    audit.signin_failed(
        rt,
        signin.app_id or None,
        reason=reason,
        request=request,
        detail=detail,
        connector_id=identity.connector_id,
        decisions=decisions,
    )


def pending(signin: SignIn) -> tuple[UpstreamIdentity, dict[str, Any]] | None:
    """The identity and sign-up state a sign-in's attribute page works on, if it has one.

    None once the sign-in has moved on to a known user (``policy_user_id``: the user went back and
    signed in as someone who exists, and the policy step now waits on them): a sign-up left behind
    must not create its guest and take over that sign-in."""
    if (
        signin.signup is None
        or signin.pending_identity is None
        or signin.redeem_user_id is not None
        or signin.policy_user_id is not None
    ):
        return None
    return UpstreamIdentity(**signin.pending_identity), signin.signup
