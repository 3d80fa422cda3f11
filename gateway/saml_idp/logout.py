"""SAML 2.0 single logout at ``/saml2/slo`` (HTTP-Redirect binding), and logout of every SAML app.

Every LogoutRequest and LogoutResponse that arrives here must be signed by the SP's configured
certificate (SAML Profiles 4.4.4.1 and 4.4.4.2: front-channel logout messages MUST be signed),
over the raw query octets like a signed AuthnRequest (``SAMLRequest``/``SAMLResponse``, then
``RelayState``, ``SigAlg``); an unsigned one is refused (``request_not_signed``) before anything
is stored or ended, so a forged request naming a guessable NameID (email, UPN) cannot
end someone's session cross-site. Configuration makes ``slo_url`` need ``sp_certificate``.

SP-initiated: a signed ``LogoutRequest`` from a registered SP (``Destination`` = our SLO endpoint,
a fresh IssueInstant, its ID used once) ends this browser's SSO session when its NameID is the
one that app received in this session and its SessionIndex (if any) is the session's sid. The
other SAML apps of the session that have an ``slo_url`` then get a signed ``LogoutRequest`` in
turn (front-channel, each one's signed ``LogoutResponse`` returns here and moves on to the next),
OIDC apps their back-channel logout tokens, and finally the SP gets a signed ``LogoutResponse``
(``Success``, with ``PartialLogout`` when another app did not confirm). A request that matches no
session is answered ``Success`` with nothing ended. A signed ``LogoutResponse`` that answers none
of our pending requests shows the signed-out page.

When the gateway session ends at ``/oauth2/logout``, ``end_session_chain`` takes the browser
through the same chain of LogoutRequests to every SAML app of the session, then on to the
post-logout redirect (``logout_requests`` gives the bare URLs). Participants are recorded by
``gateway.saml_idp.response``.
"""

from __future__ import annotations

import asyncio
import hmac
from typing import TYPE_CHECKING, Any
from urllib.parse import quote_plus, unquote_plus, urlencode, urlsplit

from lxml import etree
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from gateway.oidc.backchannel import notify_logout
from gateway.pages import error_page, render
from gateway.saml_idp.assertion import ASSERTION_SECONDS, add_status, new_id
from gateway.saml_idp.certificates import signer
from gateway.saml_idp.metadata import entity_id, slo_url
from gateway.saml_idp.request import (
    CLOCK_SKEW_SECONDS,
    REPLAY_TTL,
    Inbound,
    SamlRequestError,
    check_header,
    check_signature,
    children,
    parse,
    raw_query,
    read_redirect,
    sender,
)
from gateway.saml_idp.response import PARTICIPANT_KIND, participant_id
from idp_connectors.saml.authn_request import deflate_base64
from idp_connectors.saml.xmltime import format_instant, parse_instant
from idp_connectors.xmlsecurity.gate import RSA_SHA256, SAML2, SAML2P, XmlRejected, text_of
from idp_connectors.xmlsecurity.signature import sign_redirect_query

if TYPE_CHECKING:
    from gateway.runtime import Runtime
    from gateway.settings.models import Application
    from gateway.settings.saml_app import SamlApplication

REPLAY_KIND = "saml-logout-request"
CHAIN_KIND = "saml-logout"
"""Our pending LogoutRequest ID → the rest of an SP-initiated logout (who is next, whom to answer)."""
CHAIN_SECONDS = 600
SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"

P = f"{{{SAML2P}}}"
A = f"{{{SAML2}}}"


def _refuse(reason: str, message: str) -> SamlRequestError:
    return SamlRequestError(reason, message)


def _check_signed(inbound: Inbound, root: etree._Element, sp: SamlApplication) -> None:
    """A valid signature by the SP's certificate, whatever ``require_signed_requests`` says
    (SAML Profiles 4.4.4.1, 4.4.4.2); a bad one is refused by ``check_signature`` itself."""
    if not check_signature(inbound, root, sp):
        raise _refuse(
            "request_not_signed",
            "Single logout messages must be signed by the service provider (SAML Profiles 4.4.4).",
        )


# --- outbound messages ------------------------------------------------------------------------


def _message(tag: str, *, issuer: str, destination: str, now: int) -> etree._Element:
    root = etree.Element(P + tag, nsmap={"samlp": SAML2P, "saml": SAML2})
    root.set("ID", new_id())
    root.set("Version", "2.0")
    root.set("IssueInstant", format_instant(now))
    root.set("Destination", destination)
    etree.SubElement(root, A + "Issuer").text = issuer
    return root


def logout_request_xml(
    *, issuer: str, destination: str, participant: dict[str, Any], session_index: str, now: int
) -> tuple[str, bytes]:
    """(its ID, the document) of a LogoutRequest for the NameID recorded in ``participant``."""
    root = _message("LogoutRequest", issuer=issuer, destination=destination, now=now)
    root.set("NotOnOrAfter", format_instant(now + ASSERTION_SECONDS))
    name_id = etree.SubElement(root, A + "NameID", Format=str(participant["format"]))
    if participant.get("name_qualifier"):
        name_id.set("NameQualifier", str(participant["name_qualifier"]))
    if participant.get("sp_name_qualifier"):
        name_id.set("SPNameQualifier", str(participant["sp_name_qualifier"]))
    name_id.text = str(participant["name_id"])
    etree.SubElement(root, P + "SessionIndex").text = session_index
    return str(root.get("ID")), bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def logout_response_xml(
    *, issuer: str, destination: str, in_response_to: str, status: str, now: int
) -> bytes:
    root = _message("LogoutResponse", issuer=issuer, destination=destination, now=now)
    root.set("InResponseTo", in_response_to)
    add_status(root, status, None)
    if status == "PartialLogout":  # a partial logout is still a Success at the top level
        code = root.find(f"{P}Status/{P}StatusCode")
        assert code is not None
        code.set("Value", SUCCESS)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


async def redirect_url(rt: Runtime, target: str, parameter: str, xml: bytes, relay_state: str | None) -> str:
    """``target`` carrying the message signed for the HTTP-Redirect binding (RSA-SHA256, our current key)."""
    params = [(parameter, deflate_base64(xml))]
    if relay_state is not None:
        params.append(("RelayState", relay_state))
    params.append(("SigAlg", RSA_SHA256))
    query = urlencode(params, quote_via=quote_plus)
    key, _ = signer(rt)
    signature = await asyncio.to_thread(sign_redirect_query, query, key)
    query += "&Signature=" + quote_plus(signature)
    separator = "&" if urlsplit(target).query else "?"
    return f"{target}{separator}{query}"


def _saml_app(rt: Runtime, app_id: str) -> Application | None:
    app = rt.settings.application(app_id)
    return app if app is not None and app.saml is not None and app.saml.slo_url is not None else None


async def _request_url(
    rt: Runtime, app: Application, participant: dict[str, Any], sid: str
) -> tuple[str, str]:
    assert app.saml is not None and app.saml.slo_url is not None
    request_id, xml = logout_request_xml(
        issuer=entity_id(rt.settings),
        destination=app.saml.slo_url,
        participant=participant,
        session_index=sid,
        now=rt.now(),
    )
    return request_id, await redirect_url(rt, app.saml.slo_url, "SAMLRequest", xml, None)


async def _take_participants(
    rt: Runtime, user_id: str, sid: str, *, exclude: str | None = None
) -> list[tuple[Application, dict[str, Any]]]:
    """The SAML apps with an ``slo_url`` that ``user_id`` signed in to in session ``sid``, each
    record removed as it is taken (every app is asked once)."""
    found: list[tuple[Application, dict[str, Any]]] = []
    for app in rt.settings.applications:
        if app.id == exclude or _saml_app(rt, app.id) is None:
            continue
        record = await rt.store.get(PARTICIPANT_KIND, participant_id(sid, app.id))
        if record is None or record.get("user_id") != user_id:
            continue
        await rt.store.delete(PARTICIPANT_KIND, participant_id(sid, app.id))
        found.append((app, record))
    return found


async def logout_requests(rt: Runtime, session_user_id: str, sid: str) -> list[str]:
    """Signed HTTP-Redirect LogoutRequest URLs for every SAML app (with an ``slo_url``) that this
    session signed in to; call it when the gateway session ends. Each app is returned once."""
    urls: list[str] = []
    for app, record in await _take_participants(rt, session_user_id, sid):
        urls.append((await _request_url(rt, app, record, sid))[1])
    return urls


# --- the endpoint -----------------------------------------------------------------------------


async def slo(request: Request) -> Response:
    """``GET /saml2/slo``: a LogoutRequest from an SP, or an SP's LogoutResponse to ours."""
    rt: Runtime = request.app.state.runtime
    query = raw_query(request)
    names = {unquote_plus(pair.partition("=")[0]) for pair in query.split("&") if pair}
    try:
        if "SAMLRequest" in names and "SAMLResponse" not in names:
            return await _logout_request(rt, request, read_redirect(query, "SAMLRequest"))
        if "SAMLResponse" in names and "SAMLRequest" not in names:
            return await _logout_response(rt, request, read_redirect(query, "SAMLResponse"))
    except SamlRequestError as refused:
        return error_page(request, "This sign-out request was refused", refused.message, status=400)
    return error_page(
        request,
        "Invalid request",
        "Send one LogoutRequest or LogoutResponse (HTTP-Redirect binding).",
        status=400,
    )


def _fresh(root: etree._Element, now: int) -> None:
    deadline = root.get("NotOnOrAfter")
    if deadline is not None:
        at = parse_instant(deadline)
        if at is None:
            raise _refuse("request_malformed", "NotOnOrAfter is not a valid time.")
        if at + CLOCK_SKEW_SECONDS <= now:
            raise _refuse("request_expired", "The sign-out request has expired.")


def _text(element: etree._Element, what: str) -> str:
    try:
        return text_of(element)
    except XmlRejected:
        raise _refuse("request_malformed", f"The {what} is not plain text.") from None


async def _logout_request(rt: Runtime, request: Request, inbound: Inbound) -> Response:
    root = parse(inbound.xml, "LogoutRequest")
    app = sender(rt.settings, root)
    sp = app.saml
    assert sp is not None
    if sp.slo_url is None:
        raise _refuse("slo_not_configured", "This service provider has no single logout URL registered.")
    _check_signed(inbound, root, sp)
    now = rt.now()
    check_header(root, destination=slo_url(rt.settings), signed=True, now=now)
    _fresh(root, now)
    name_ids = children(root, A + "NameID")
    if len(name_ids) != 1:
        raise _refuse("request_malformed", "The LogoutRequest must carry one plain NameID.")
    name_id, name_format = _text(name_ids[0], "NameID"), name_ids[0].get("Format")
    indexes = [_text(element, "SessionIndex") for element in children(root, P + "SessionIndex")]
    request_id = str(root.get("ID"))
    if not await rt.store.add(REPLAY_KIND, f"{app.id}:{request_id}", {}, REPLAY_TTL):
        raise _refuse("request_replayed", "This sign-out request was already used.")
    reply = {"app_id": app.id, "in_response_to": request_id, "relay_state": inbound.relay_state}
    session = await rt.sessions.current(request, now)
    if session is None or (indexes and session.sid not in indexes):
        return await _answer(rt, request, reply, partial=False)
    record = await rt.store.get(PARTICIPANT_KIND, participant_id(session.sid, app.id))
    if (
        record is None
        or record.get("user_id") != session.user_id
        or not hmac.compare_digest(str(record.get("name_id", "")).encode(), name_id.encode())
        or name_format not in (None, record.get("format"))
    ):
        return await _answer(rt, request, reply, partial=False)
    await rt.store.delete(PARTICIPANT_KIND, participant_id(session.sid, app.id))
    others = await _take_participants(rt, session.user_id, session.sid, exclude=app.id)
    chain = {
        "reply": reply,
        "sid": session.sid,
        "pending": [{"app_id": other.id, "participant": record} for other, record in others],
        "partial": False,
    }
    response = await _continue(rt, request, chain)
    await rt.sessions.end(request, response)
    await notify_logout(rt, session.user_id, session.sid)
    return response


async def _continue(rt: Runtime, request: Request, chain: dict[str, Any]) -> Response:
    """Send the next pending app its LogoutRequest, or answer the SP that started the logout."""
    while chain["pending"]:
        hop = chain["pending"].pop(0)
        app = _saml_app(rt, str(hop["app_id"]))
        if app is None:
            continue
        request_id, url = await _request_url(rt, app, hop["participant"], str(chain["sid"]))
        await rt.store.put(CHAIN_KIND, request_id, {**chain, "target": app.id}, CHAIN_SECONDS)
        return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})
    reply = chain.get("reply")
    if not isinstance(reply, dict):  # the gateway session ended elsewhere (end_session_chain)
        final = chain.get("final_url")
        if isinstance(final, str):
            return RedirectResponse(final, status_code=303, headers={"Cache-Control": "no-store"})
        return render(request, "logged_out.html", {})
    return await _answer(rt, request, reply, partial=bool(chain.get("partial")))


async def end_session_chain(
    rt: Runtime, request: Request, user_id: str, sid: str, final_url: str | None
) -> Response | None:
    """When the gateway session ends elsewhere (``/oauth2/logout``): the first hop of the front-channel
    chain through every SAML app of the session (each one's LogoutResponse moves on to the next),
    ending at ``final_url`` (an already validated post-logout redirect) or the signed-out page.
    None when no SAML app of the session has an ``slo_url``."""
    others = await _take_participants(rt, user_id, sid)
    if not others:
        return None
    chain = {
        "reply": None,
        "sid": sid,
        "pending": [{"app_id": app.id, "participant": record} for app, record in others],
        "partial": False,
        "final_url": final_url,
    }
    return await _continue(rt, request, chain)


async def _answer(rt: Runtime, request: Request, reply: dict[str, Any], *, partial: bool) -> Response:
    """The signed LogoutResponse to the SP that asked (the signed-out page if it left the configuration)."""
    app = _saml_app(rt, str(reply["app_id"]))
    if app is None or app.saml is None or app.saml.slo_url is None:
        return render(request, "logged_out.html", {})
    xml = logout_response_xml(
        issuer=entity_id(rt.settings),
        destination=app.saml.slo_url,
        in_response_to=str(reply["in_response_to"]),
        status="PartialLogout" if partial else "Success",
        now=rt.now(),
    )
    relay_state = reply.get("relay_state")
    url = await redirect_url(
        rt, app.saml.slo_url, "SAMLResponse", xml, relay_state if isinstance(relay_state, str) else None
    )
    return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})


async def _logout_response(rt: Runtime, request: Request, inbound: Inbound) -> Response:
    root = parse(inbound.xml, "LogoutResponse")
    app = sender(rt.settings, root)
    sp = app.saml
    assert sp is not None
    _check_signed(inbound, root, sp)
    check_header(root, destination=slo_url(rt.settings), signed=True, now=rt.now())
    statuses = [
        code.get("Value")
        for status in children(root, P + "Status")
        for code in children(status, P + "StatusCode")
    ]
    in_response_to = root.get("InResponseTo")
    consumed = (
        await rt.store.consume(CHAIN_KIND, in_response_to)
        if in_response_to and len(in_response_to) <= 256
        else None
    )
    if consumed is None or not consumed.first or consumed.payload.get("target") != app.id:
        return render(request, "logged_out.html", {})
    await rt.store.delete(CHAIN_KIND, str(in_response_to))
    chain = dict(consumed.payload)
    chain["partial"] = bool(chain.get("partial")) or statuses != [SUCCESS]
    return await _continue(rt, request, chain)
