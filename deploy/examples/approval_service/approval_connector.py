"""The two API connector endpoints the gateway calls during a self-service sign-up (b2b-concepts §7).

``POST /api/post-federation-signup`` (after the identity provider): approved -> Continue (pre-filling
``displayName`` from the request), pending or denied -> ShowBlockPage, unknown -> Continue (the user goes
on to the attribute page). ``POST /api/post-attribute-collection`` (before the user is created):
approved -> Continue, unknown -> the request is filed as pending -> ShowBlockPage, pending or denied ->
ShowBlockPage. A sign-up whose ``identities[0].issuer`` is not one the gateway sends for passcode
(``mail``), Google (``google.com``) or Facebook (``facebook.com``) gets a ShowBlockPage saying so.

ValidationError is never sent: it asks the *user* to fix the attribute page, and nothing here is the
user's to fix. A request the gateway should never send (not JSON, no valid ``email``, a malformed
``identities`` or custom attribute) is a plain 400 ``application/problem+json``, which the gateway treats
as a failed call: the sign-up stops there (fails closed) and the operator sees the detail in this
service's log. Nothing is filed for it.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Coroutine
from typing import Any

from approval_auth import BasicRealm
from approval_http import NO_STORE, BodyTooLarge, media_type, problem, read_body
from approval_messages import MessageKey, message
from approval_store import AccessRequest, Applicant, ApprovalStore, AttributeValue
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

KNOWN_ISSUERS = frozenset({"mail", "google.com", "facebook.com"})
"""``identities[].issuer`` as the gateway labels passcode, Google and Facebook sign-ups."""
VERSION = "1.0.0"
MAX_BODY = 64 * 1024
MAX_EMAIL = 320
MAX_TEXT = 1024
MAX_DISPLAY_NAME = 256
_EXTENSION = re.compile(r"^extension_[A-Za-z0-9_]{1,200}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
log = logging.getLogger("approval_service")

Endpoint = Callable[[Request], Coroutine[Any, Any, Response]]


class BadGatewayRequest(ValueError):
    """The body is not what the gateway sends; the message says what is wrong."""


def _text(body: dict[str, Any], name: str, limit: int, *, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > limit or _CONTROL.search(value):
        raise BadGatewayRequest(f"{name} must be a non-empty string of at most {limit} characters")
    return value


def _identity(body: dict[str, Any]) -> tuple[str, str] | None:
    """``identities[0]`` as (issuer, issuerAssignedId); None when the gateway sent no identities."""
    identities = body.get("identities")
    if identities is None or identities == []:
        return None
    if not isinstance(identities, list) or not all(isinstance(item, dict) for item in identities):
        raise BadGatewayRequest("identities must be a list of objects")
    for i, item in enumerate(identities):
        try:
            _text(item, "issuer", MAX_TEXT, required=True)
            _text(item, "issuerAssignedId", MAX_TEXT, required=True)
            _text(item, "signInType", MAX_TEXT)
        except BadGatewayRequest as exc:
            raise BadGatewayRequest(f"identities[{i}].{exc}") from None
    return identities[0]["issuer"], identities[0]["issuerAssignedId"]


def _attributes(body: dict[str, Any]) -> dict[str, AttributeValue]:
    """The custom attributes (``extension_<app id>_<name>``): strings, booleans or integers."""
    found: dict[str, AttributeValue] = {}
    for name, value in body.items():
        if not name.startswith("extension_"):
            continue
        if not _EXTENSION.match(name):
            raise BadGatewayRequest(f"{name[:80]!r} is not a custom attribute name")
        if isinstance(value, bool | int) or (
            isinstance(value, str) and len(value) <= MAX_TEXT and not _CONTROL.search(value)
        ):
            found[name] = value
        else:
            raise BadGatewayRequest(
                f"{name} must be a string (at most {MAX_TEXT} characters), a boolean or an integer"
            )
    return found


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def parse_applicant(raw: bytes) -> Applicant:
    """The applicant a connector request describes; ``BadGatewayRequest`` says what is malformed."""
    try:
        body = json.loads(raw, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise BadGatewayRequest("the body is not JSON") from None
    if not isinstance(body, dict):
        raise BadGatewayRequest("the body must be a JSON object")
    email = _text(body, "email", MAX_EMAIL, required=True)
    if email is None or not _EMAIL.match(email):
        raise BadGatewayRequest("email must be an email address")
    identity = _identity(body)
    return Applicant(
        email=email,
        issuer=identity[0] if identity else None,
        issuer_assigned_id=identity[1] if identity else None,
        display_name=_text(body, "displayName", MAX_DISPLAY_NAME),
        attributes=_attributes(body),
        ui_locales=_text(body, "ui_locales", MAX_TEXT),
    )


def _continue(claims: dict[str, Any]) -> JSONResponse:
    return JSONResponse({"version": VERSION, "action": "Continue", **claims}, headers=NO_STORE)


def _block(key: MessageKey, applicant: Applicant) -> JSONResponse:
    body = {"version": VERSION, "action": "ShowBlockPage", "userMessage": message(key, applicant.ui_locales)}
    return JSONResponse(body, headers=NO_STORE)


def _refusal(found: AccessRequest, applicant: Applicant) -> JSONResponse:
    return _block("denied" if found.status == "denied" else "pending", applicant)


def _unknown_provider(applicant: Applicant) -> bool:
    """The reference's check: ``identities[0].issuer`` exists and is one this service files requests for
    (passcode, Google, Facebook). Without ``identities`` the address alone would key the request, and an
    approval given to one address could then serve another identity provider claiming the same one."""
    return applicant.issuer is None or applicant.issuer not in KNOWN_ISSUERS


async def _receive(request: Request, realm: BasicRealm, step: str) -> Applicant | Response:
    """The authenticated, well-formed request's applicant, or the reply refusing it."""
    if not realm.allows(request):
        return realm.challenge(as_json=True)
    if media_type(request) != "application/json":
        return problem(415, "the body must be application/json")
    try:
        raw = await read_body(request, MAX_BODY)
        return parse_applicant(raw)
    except BodyTooLarge:
        return problem(413, f"the body is longer than {MAX_BODY} bytes")
    except BadGatewayRequest as exc:
        log.warning("refused a malformed %s request: %s", step, exc)
        return problem(400, str(exc))


def routes(store: ApprovalStore, realm: BasicRealm) -> list[Route]:
    """The two connector endpoints, authenticated with ``realm``."""

    async def post_federation_signup(request: Request) -> Response:
        applicant = await _receive(request, realm, "post_federation_signup")
        if isinstance(applicant, Response):
            return applicant
        if _unknown_provider(applicant):
            return _block("provider", applicant)
        found = await run_in_threadpool(store.find, applicant)
        if found is None:
            return _continue({})
        if found.status == "approved":
            return _continue({"displayName": found.display_name} if found.display_name else {})
        return _refusal(found, applicant)

    async def post_attribute_collection(request: Request) -> Response:
        applicant = await _receive(request, realm, "post_attribute_collection")
        if isinstance(applicant, Response):
            return applicant
        if _unknown_provider(applicant):
            return _block("provider", applicant)
        found, filed = await run_in_threadpool(store.file, applicant)
        if filed:
            log.info("filed access request %d", found.id)
        if found.status == "approved":
            return _continue({})
        return _refusal(found, applicant)

    endpoints: list[tuple[str, Endpoint]] = [
        ("/api/post-federation-signup", post_federation_signup),
        ("/api/post-attribute-collection", post_attribute_collection),
    ]
    return [Route(path, endpoint, methods=["POST"]) for path, endpoint in endpoints]
