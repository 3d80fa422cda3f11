"""The attribute page of a sign-up: ``GET`` and ``POST /signin/{id}/signup``.

The page lists the flow's attributes in their configured order, pre-filled from the identity
provider and the ``post_federation_signup`` connector, labelled in the page's language. A POST is
checked server-side (required, type, length); a refused form comes back with a message per field
(400) and nothing stored. A valid one goes on to ``gateway.signup.flow.collected``; a ValidationError
from ``post_attribute_collection`` shows the page again with the connector's message, and its
decision is kept for the sign-in's one audit record.

A valid form is taken once: an atomic marker (``SUBMITTING``) is added before the connector is
called, so a double click or a replayed form sent while the first is still being handled calls the
connector and creates the guest once, and mints no second code (409). A ValidationError, which
leaves the user on the page, removes the marker, and so does an unexpected failure (the form may be
sent again).
"""

from __future__ import annotations

import contextlib
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.http import origin
from gateway.i18n import Message, page_language
from gateway.pages import error_page, render
from gateway.runtime import Runtime
from gateway.settings.signup import FlowAttribute, UserFlow
from gateway.signin import transaction
from gateway.signin.forms import checked_form
from gateway.signin.routes import EXPIRED, EXPIRED_TITLE, WRONG_BROWSER, WRONG_BROWSER_TITLE
from gateway.signin.transaction import SignIn
from gateway.signup import flow as signup_flow
from gateway.signup.attributes import (
    AUTOCOMPLETE,
    FORM_PREFIX,
    FieldError,
    Value,
    kind,
    max_length,
    parse_form,
)
from idp_connectors.base import UpstreamIdentity

Loaded = tuple[Runtime, SignIn, UpstreamIdentity, UserFlow, dict[str, Value]]

SUBMITTING = "signup-submit"
"""Artefact kind: the marker of an attribute form being handled (id: the sign-in's)."""
BUSY_TITLE = Message("signup.busy.title")
BUSY = Message("signup.busy.detail")


async def _load(request: Request) -> Loaded | Response:
    rt: Runtime = request.app.state.runtime
    signin = await transaction.load(rt.store, request.path_params["signin_id"])
    if signin is None:
        return error_page(request, EXPIRED_TITLE, EXPIRED, status=400)
    if _seconds_left(rt, signin) <= 0:
        return error_page(request, EXPIRED_TITLE, EXPIRED, status=400, ui_locales=signin.ui_locales)
    if not rt.browser.matches(signin.browser, request):
        return error_page(
            request, WRONG_BROWSER_TITLE, WRONG_BROWSER, status=403, ui_locales=signin.ui_locales
        )
    pending = signup_flow.pending(signin)
    user_flow = rt.settings.user_flow(pending[1].get("flow")) if pending else None
    if pending is None or user_flow is None:
        return error_page(request, EXPIRED_TITLE, EXPIRED, status=400, ui_locales=signin.ui_locales)
    identity, state = pending
    return rt, signin, identity, user_flow, dict(state.get("values") or {})


async def attribute_page(request: Request) -> Response:
    loaded = await _load(request)
    if isinstance(loaded, Response):
        return loaded
    rt, signin, identity, user_flow, values = loaded
    return _render(rt, request, signin, identity, user_flow, values)


async def submit_attributes(request: Request) -> Response:
    loaded = await _load(request)
    if isinstance(loaded, Response):
        return loaded
    rt, signin, identity, user_flow, _ = loaded
    form = await checked_form(rt, request, signin.id, signin.ui_locales)
    if isinstance(form, Response):
        return form
    values, errors = parse_form(user_flow, form)
    if errors:
        shown = {**values, **{e.name: form.get(FORM_PREFIX + e.name, "") for e in errors}}
        return _render(rt, request, signin, identity, user_flow, shown, errors=errors, status=400)
    ttl = max(_seconds_left(rt, signin), 1)
    if not await rt.store.add(SUBMITTING, signin.id, {}, ttl):
        return error_page(request, BUSY_TITLE, BUSY, status=409, ui_locales=signin.ui_locales)
    decisions = list(signin.decisions)
    try:
        return await signup_flow.collected(rt, request, signin, identity, user_flow, values, decisions)
    except signup_flow.StayOnPage as stay:
        signin.decisions = decisions  # the ValidationError joins the sign-in's one audit record
        await transaction.save(rt.store, signin, ttl)
        await rt.store.delete(SUBMITTING, signin.id)
        return _render(rt, request, signin, identity, user_flow, values, message=stay.message, status=400)
    except Exception:
        # Failed half-way (the store went away): the user may send the form again. Creating the guest
        # is idempotent (``users.sign_up`` returns the one a first attempt created).
        with contextlib.suppress(Exception):
            await rt.store.delete(SUBMITTING, signin.id)
        raise


def _seconds_left(rt: Runtime, signin: SignIn) -> int:
    return signin.created_at + rt.settings.tokens.signin_seconds - rt.now()


def _render(
    rt: Runtime,
    request: Request,
    signin: SignIn,
    identity: UpstreamIdentity,
    user_flow: UserFlow,
    values: dict[str, Any],
    *,
    errors: list[FieldError] | None = None,
    message: str | None = None,
    status: int = 200,
) -> Response:
    browser_id = rt.browser.browser_id(request)
    assert browser_id is not None  # the browser binding matched
    language = page_language(rt, request, signin.ui_locales)
    by_name = {e.name: e for e in errors or []}
    fields = [
        {
            "name": attribute.name,
            "input": FORM_PREFIX + attribute.name,
            "kind": kind(attribute),
            "label": _label(attribute, language),
            "custom": attribute.custom,
            "required": attribute.required,
            "value": values.get(attribute.name),
            "autocomplete": AUTOCOMPLETE.get(attribute.name, "off"),
            "max_length": max_length(attribute),
            "error": by_name.get(attribute.name),
        }
        for attribute in user_flow.attributes
    ]
    app = rt.settings.application(signin.app_id)
    return render(
        request,
        "signup_attributes.html",
        {
            "signin": signin,
            "csrf": rt.browser.csrf_token(signin.id, browser_id),
            "email": identity.email,
            "app_name": app.name if app is not None else rt.settings.tenant.name,
            "fields": fields,
            "errors": [f for f in fields if f["error"] is not None],
            "message": message,
        },
        status=status,
        form_action=origin(signin.redirect_uri),
        ui_locales=signin.ui_locales,
    )


def _label(attribute: FlowAttribute, language: str) -> str | None:
    """A custom attribute's label in ``language`` (or its base language, or English, or its name);
    None for built-ins, whose labels come from the catalogue."""
    if not attribute.custom:
        return None
    labels = attribute.label
    return labels.get(language) or labels.get(language.split("-")[0]) or labels.get("en") or attribute.name


ROUTES = [
    Route("/signin/{signin_id}/signup", attribute_page, methods=["GET"]),
    Route("/signin/{signin_id}/signup", submit_attributes, methods=["POST"]),
]
