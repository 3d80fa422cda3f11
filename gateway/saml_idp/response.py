"""Answering a checked SAML request: the signed Response, POSTed to the ACS by an auto-submitting page.

``respond`` releases what the sign-in established (``AuthnFacts``: the SSO session's sid, time,
class and trusted claims) to the app named in the checked ``SamlRequest``: the NameID of the
app's format (pairwise ``sub`` for persistent, ``mail``, ``userPrincipalName``), the attributes of
its release list (groups and roles as the OIDC claims have them), signed with the key store's
current RS256 key (off the event loop), encrypted when configured. It records the app as a
participant of the session (its NameID, for single logout) and answers the page
``saml_post.html``: ``SAMLResponse`` and ``RelayState`` in hidden fields, submitted by
``/static/autosubmit.js`` (``script-src 'self'``, ``form-action`` allowing the ACS origin).
``error_response`` answers a refusal after the request was validated (``RequestDenied``,
``NoPassive``, ...) the same way. The ACS is the validated one, checked again against the
current configuration; if it is no longer registered an error page is shown and nothing is posted.
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from gateway.directory.app_access import app_access
from gateway.http import page_headers
from gateway.observability.events import tokens_issued
from gateway.oidc.claims import pairwise_sub
from gateway.pages import error_page, render
from gateway.saml_idp.assertion import (
    NameId,
    ReleaseRefused,
    add_assertion,
    attribute_values,
    build_response,
    seal,
)
from gateway.saml_idp.certificates import signer
from gateway.saml_idp.metadata import entity_id
from gateway.saml_idp.request import SamlRequest

if TYPE_CHECKING:
    from gateway.runtime import Runtime
    from gateway.settings.models import Application
    from gateway.settings.saml_app import SamlApplication

PARTICIPANT_KIND = "saml-participant"
"""``{sid}:{app_id}`` → the NameID an app received in that SSO session (single logout needs it)."""


@dataclass(frozen=True)
class AuthnFacts:
    """What the sign-in established (the SSO session's values)."""

    sid: str
    auth_time: int
    acr: str
    amr: list[str]
    auth_claims: dict[str, Any] = field(default_factory=dict)
    """``mfa_source`` and trusted device claims (``gateway.signin.standing.Standing.auth_claims``)."""


def participant_id(sid: str, app_id: str) -> str:
    return f"{sid}:{app_id}"


def _registered(rt: Runtime, saml: SamlRequest) -> tuple[Application, SamlApplication] | None:
    """The app and its SAML registration, if the request still fits the configuration."""
    app = rt.settings.application(saml.app_id)
    if app is None or app.saml is None:
        return None
    if app.saml.entity_id != saml.sp_entity_id or saml.acs_url not in app.saml.acs_urls:
        return None
    return app, app.saml


def _not_registered(request: Request) -> Response:
    return error_page(
        request,
        "This sign-in cannot be completed",
        "The application's SAML registration changed; start again from the application.",
        status=400,
    )


def name_id_for(rt: Runtime, app: Application, sp: SamlApplication, user: dict[str, Any]) -> NameId:
    """The NameID of the app's format; ``ReleaseRefused`` when the user has no such value."""
    if sp.name_id_format == "persistent":
        return NameId(
            pairwise_sub(rt.pairwise_salt, app.id, str(user["id"])),
            sp.name_id_format_uri,
            name_qualifier=entity_id(rt.settings),
            sp_name_qualifier=sp.entity_id,
        )
    source = "mail" if sp.name_id_format == "email" else "userPrincipalName"
    value = user.get(source)
    if not isinstance(value, str) or not value:
        raise ReleaseRefused(f"the user has no {source} for the NameID this application needs")
    return NameId(value, sp.name_id_format_uri)


def _post_page(
    rt: Runtime, request: Request, app: Application, saml: SamlRequest, document: bytes
) -> Response:
    parts = urlsplit(saml.acs_url)
    headers = page_headers(f"{parts.scheme}://{parts.netloc}")
    headers["Content-Security-Policy"] = headers["Content-Security-Policy"].replace(
        "default-src 'none';", "default-src 'none'; script-src 'self';"
    )
    fields = [("SAMLResponse", base64.b64encode(document).decode("ascii"))]
    if saml.relay_state is not None:
        fields.append(("RelayState", saml.relay_state))
    context = {"action": saml.acs_url, "fields": fields, "app_name": app.name}
    return render(request, "saml_post.html", context, headers=headers)


async def respond(
    rt: Runtime, request: Request, saml: SamlRequest, *, user: dict[str, Any], authn: AuthnFacts
) -> Response:
    """The signed Response with one Assertion for ``user``, POSTed to the validated ACS."""
    registered = _registered(rt, saml)
    if registered is None:
        return _not_registered(request)
    app, sp = registered
    wanted = {attribute.source for attribute in sp.attributes}
    groups: list[str] | None = None
    roles: list[str] | None = None
    if app.assignment_required or wanted & {"groups", "roles"}:
        access = await app_access(rt.store, app, str(user["id"]))
        if app.assignment_required and not access.assigned:
            return await error_response(
                rt, request, saml, "RequestDenied", "The user is not assigned to this application."
            )
        groups, roles = access.groups, access.roles
    now = rt.now()
    issuer = entity_id(rt.settings)
    try:
        name_id = name_id_for(rt, app, sp, user)
        released = [
            (
                attribute,
                attribute_values(
                    attribute.source,
                    user=user,
                    tenant_id=rt.settings.tenant.id,
                    groups=groups,
                    roles=roles,
                    amr=authn.amr,
                    auth_claims=authn.auth_claims,
                ),
            )
            for attribute in sp.attributes
        ]
        document = build_response(
            issuer=issuer, destination=saml.acs_url, in_response_to=saml.request_id, now=now
        )
        add_assertion(
            document,
            issuer=issuer,
            sp_entity_id=sp.entity_id,
            acs_url=saml.acs_url,
            in_response_to=saml.request_id,
            name_id=name_id,
            now=now,
            authn_instant=authn.auth_time,
            session_index=authn.sid,
            acr=authn.acr,
            attributes=released,
        )
    except ReleaseRefused as refused:
        return await error_response(
            rt, request, saml, "Responder", f"The sign-in cannot be completed: {refused}."
        )
    key, certificate = signer(rt)
    encrypt_for = sp.certificate() if sp.encrypt_assertion else None
    body = await asyncio.to_thread(
        seal, document, sign=sp.sign, key=key, certificate=certificate, encrypt_for=encrypt_for
    )
    tokens_issued(saml.app_id, "saml")
    await rt.store.put(
        PARTICIPANT_KIND,
        participant_id(authn.sid, app.id),
        {
            "user_id": str(user["id"]),
            "name_id": name_id.value,
            "format": name_id.format,
            "name_qualifier": name_id.name_qualifier,
            "sp_name_qualifier": name_id.sp_name_qualifier,
        },
        rt.settings.tokens.session_seconds,
    )
    return _post_page(rt, request, app, saml, body)


async def error_response(
    rt: Runtime, request: Request, saml: SamlRequest, status: str, message: str
) -> Response:
    """A signed SAML Response carrying only a Status (e.g. ``RequestDenied``, ``NoPassive``; a
    second-level code gets its top-level code), POSTed to the validated ACS. ``ValueError`` for a
    name that is not a SAML 2.0 status code."""
    registered = _registered(rt, saml)
    if registered is None:
        return _not_registered(request)
    app, sp = registered
    try:
        document = build_response(
            issuer=entity_id(rt.settings),
            destination=saml.acs_url,
            in_response_to=saml.request_id,
            now=rt.now(),
            status=status,
            message=message,
        )
    except ReleaseRefused:
        document = build_response(
            issuer=entity_id(rt.settings),
            destination=saml.acs_url,
            in_response_to=saml.request_id,
            now=rt.now(),
            status=status,
        )
    key, certificate = signer(rt)
    body = await asyncio.to_thread(
        seal, document, sign=sp.sign, key=key, certificate=certificate, encrypt_for=None
    )
    return _post_page(rt, request, app, saml, body)
