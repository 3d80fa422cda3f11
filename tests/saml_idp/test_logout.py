"""Single logout at ``/saml2/slo`` and ``logout_requests`` for a gateway session that ends elsewhere.

Every LogoutRequest and LogoutResponse an SP sends must be signed with its certificate (SAML
Profiles 4.4.4): the test SPs sign with ``key_pair("sp")`` over the raw Redirect-binding octets,
and an unsigned message is refused whatever it names. An SP's LogoutRequest ends the browser's SSO
session only when it names the NameID that SP got in that session (and its SessionIndex); the
other SAML apps of the session are asked in turn; the SP gets a LogoutResponse signed over the raw
Redirect-binding octets. Bad requests end nothing.
"""

from __future__ import annotations

import base64
import time
import zlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus, unquote_plus, urlencode, urlsplit

import httpx
import pytest
from lxml import etree
from saml2.xml.schema import validate as validate_saml_schema

from gateway.oidc.claims import pairwise_sub
from gateway.saml_idp.certificates import signer
from gateway.saml_idp.logout import CHAIN_KIND, REPLAY_KIND
from gateway.saml_idp.response import PARTICIPANT_KIND
from idp_connectors.saml.xmltime import format_instant
from idp_connectors.xmlsecurity.gate import RSA_SHA256
from idp_connectors.xmlsecurity.signature import (
    redirect_signed_octets,
    sign_redirect_query,
    verify_redirect_query,
)
from tests.saml_idp.conftest import USER, USER_ID, Idp, base
from tests.saml_idp.test_request import deflated
from tests.support.gateway_app import ISSUER
from tests.support.saml_idp import key_pair
from tests.support.saml_sp import post_form_of

SLO = f"{ISSUER}/saml2/slo"
NS = {"samlp": "urn:oasis:names:tc:SAML:2.0:protocol", "saml": "urn:oasis:names:tc:SAML:2.0:assertion"}
STATUS = "urn:oasis:names:tc:SAML:2.0:status:"
PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
EMAIL = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"


@dataclass(frozen=True)
class Redirected:
    """A Redirect-binding message the gateway sent: where to, its XML, and whether its signature verifies."""

    target: str
    parameter: str
    root: etree._Element
    relay_state: str | None
    verified: bool


def redirected(idp: Idp, answer: httpx.Response) -> Redirected:
    assert answer.status_code == 303, answer.text[:300]
    location = answer.headers["location"]
    target, query = location.split("?", 1)
    params = dict(pair.split("=", 1) for pair in query.split("&"))
    parameter = "SAMLRequest" if "SAMLRequest" in params else "SAMLResponse"
    xml = zlib.decompress(base64.b64decode(unquote_plus(params[parameter])), -15)
    validate_saml_schema(xml.decode("utf-8"))
    octets, signature, sig_alg = redirect_signed_octets(query, parameter)
    verified = verify_redirect_query(octets, signature, sig_alg, [signer(idp.rt)[1]])
    relay_state = unquote_plus(params["RelayState"]) if "RelayState" in params else None
    return Redirected(target, parameter, etree.fromstring(xml), relay_state, verified)


def logout_request(
    app_id: str, name_id: str, *, sid: str | None, request_id: str = "_lr1", name_format: str = PERSISTENT
) -> str:
    index = f"<samlp:SessionIndex>{sid}</samlp:SessionIndex>" if sid else ""
    return (
        f'<samlp:LogoutRequest xmlns:samlp="{NS["samlp"]}" xmlns:saml="{NS["saml"]}" ID="{request_id}" '
        f'Version="2.0" IssueInstant="{format_instant(time.time())}" Destination="{SLO}">'
        f"<saml:Issuer>{base(app_id)}/metadata</saml:Issuer>"
        f'<saml:NameID Format="{name_format}">{name_id}</saml:NameID>{index}</samlp:LogoutRequest>'
    )


def logout_response(app_id: str, in_response_to: str, status: str = "Success") -> str:
    return (
        f'<samlp:LogoutResponse xmlns:samlp="{NS["samlp"]}" xmlns:saml="{NS["saml"]}" ID="_resp-{app_id}" '
        f'Version="2.0" IssueInstant="{format_instant(time.time())}" Destination="{SLO}" '
        f'InResponseTo="{in_response_to}"><saml:Issuer>{base(app_id)}/metadata</saml:Issuer>'
        f'<samlp:Status><samlp:StatusCode Value="{STATUS}{status}"/></samlp:Status></samlp:LogoutResponse>'
    )


def slo_url(
    xml: str,
    parameter: str = "SAMLRequest",
    relay_state: str | None = None,
    *,
    sign: bool = True,
    key_name: str = "sp",
) -> str:
    """``/saml2/slo`` carrying ``xml``, signed (unless ``sign`` is false) over the raw query octets
    ``{parameter}=…&RelayState=…&SigAlg=…`` with ``key_pair(key_name)``, the test SPs' own key."""
    params = [(parameter, deflated(xml))]
    if relay_state is not None:
        params.append(("RelayState", relay_state))
    if sign:
        params.append(("SigAlg", RSA_SHA256))
    query = urlencode(params, quote_via=quote_plus)
    if sign:
        query += "&Signature=" + quote_plus(sign_redirect_query(query, key_pair(key_name).key))
    return f"/saml2/slo?{query}"


async def signed_in(idp: Idp, *apps: str) -> str:
    """An SSO session in the client's cookies that signed in to ``apps``; returns its sid."""
    sid = await idp.session()
    for app_id in apps:
        out = await idp.sp(app_id).authn_request_url()
        page = await idp.respond(await idp.read(out.url), sid=sid)
        form = post_form_of(page.text)
        assert form is not None
        idp.sp(app_id).consume(form.fields)
    return sid


def payroll_name_id(idp: Idp) -> str:
    return pairwise_sub(idp.rt.pairwise_salt, "payroll", USER_ID)


def status(root: etree._Element) -> list[str]:
    return [str(value) for value in root.xpath("//samlp:StatusCode/@Value", namespaces=NS)]


async def test_an_sp_logout_ends_the_session_and_gets_a_signed_logout_response(idp: Idp) -> None:
    sid = await signed_in(idp, "payroll")
    answer = await idp.client.get(
        slo_url(logout_request("payroll", payroll_name_id(idp), sid=sid), relay_state="rs")
    )
    message = redirected(idp, answer)
    assert (message.target, message.parameter, message.verified) == (
        base("payroll") + "/slo",
        "SAMLResponse",
        True,
    )
    assert message.root.tag == "{urn:oasis:names:tc:SAML:2.0:protocol}LogoutResponse"
    assert (message.root.get("InResponseTo"), message.root.get("Destination")) == (
        "_lr1",
        base("payroll") + "/slo",
    )
    assert status(message.root) == [STATUS + "Success"]
    assert message.relay_state == "rs"
    assert "gw_session=" in answer.headers["set-cookie"] and "Max-Age=0" in answer.headers["set-cookie"]
    assert idp.snapshot().count("session") == 0
    assert idp.snapshot().count(PARTICIPANT_KIND) == 0


async def test_the_other_saml_apps_are_asked_in_turn_then_the_sp_is_answered(idp: Idp) -> None:
    sid = await signed_in(idp, "payroll", "wiki", "quiet")
    first = redirected(
        idp, await idp.client.get(slo_url(logout_request("payroll", payroll_name_id(idp), sid=sid)))
    )
    assert (first.target, first.parameter, first.verified) == (base("wiki") + "/slo", "SAMLRequest", True)
    request = first.root
    assert request.xpath("saml:NameID/text()", namespaces=NS) == [USER["mail"]]
    assert request.xpath("samlp:SessionIndex/text()", namespaces=NS) == [sid]
    assert request.get("Destination") == base("wiki") + "/slo" and request.get("NotOnOrAfter")
    assert idp.snapshot().count("session") == 0, "the session ends with the first request"
    answer_url = slo_url(logout_response("wiki", str(request.get("ID"))), "SAMLResponse")
    final = redirected(idp, await idp.client.get(answer_url))
    assert (final.target, final.parameter, final.verified) == (base("payroll") + "/slo", "SAMLResponse", True)
    assert final.root.get("InResponseTo") == "_lr1" and status(final.root) == [STATUS + "Success"]
    assert await idp.rt.store.get(CHAIN_KIND, str(request.get("ID"))) is None
    replayed = await idp.client.get(answer_url)
    assert replayed.status_code == 200 and "location" not in replayed.headers, "the chain is used once"


async def test_an_app_that_fails_to_log_out_makes_it_a_partial_logout(idp: Idp) -> None:
    sid = await signed_in(idp, "payroll", "wiki")
    first = redirected(
        idp, await idp.client.get(slo_url(logout_request("payroll", payroll_name_id(idp), sid=sid)))
    )
    failed = logout_response("wiki", str(first.root.get("ID")), status="Responder")
    final = redirected(idp, await idp.client.get(slo_url(failed, "SAMLResponse")))
    assert status(final.root) == [STATUS + "Success", STATUS + "PartialLogout"]


async def test_a_logout_response_from_the_wrong_sp_or_answering_nothing_shows_the_signed_out_page(
    idp: Idp,
) -> None:
    sid = await signed_in(idp, "payroll", "wiki")
    first = redirected(
        idp, await idp.client.get(slo_url(logout_request("payroll", payroll_name_id(idp), sid=sid)))
    )
    wrong = await idp.client.get(slo_url(logout_response("vault", str(first.root.get("ID"))), "SAMLResponse"))
    assert wrong.status_code == 200 and "signed out" in wrong.text and "location" not in wrong.headers
    unknown = await idp.client.get(slo_url(logout_response("wiki", "_never-sent"), "SAMLResponse"))
    assert unknown.status_code == 200 and "signed out" in unknown.text


@pytest.mark.parametrize(
    ("name_id", "sid_override", "name_format"),
    [
        ("someone-else", None, PERSISTENT),
        (None, "another-sid", PERSISTENT),
        (None, None, EMAIL),
    ],
)
async def test_a_request_that_does_not_match_the_session_ends_nothing(
    idp: Idp, name_id: str | None, sid_override: str | None, name_format: str
) -> None:
    sid = await signed_in(idp, "payroll")
    xml = logout_request(
        "payroll", name_id or payroll_name_id(idp), sid=sid_override or sid, name_format=name_format
    )
    answer = await idp.client.get(slo_url(xml))
    message = redirected(idp, answer)
    assert status(message.root) == [STATUS + "Success"] and message.verified
    assert "set-cookie" not in answer.headers
    assert idp.snapshot().count("session") == 1 and idp.snapshot().count(PARTICIPANT_KIND) == 1


async def test_without_a_session_index_the_name_id_alone_identifies_the_session(idp: Idp) -> None:
    await signed_in(idp, "payroll")
    redirected(idp, await idp.client.get(slo_url(logout_request("payroll", payroll_name_id(idp), sid=None))))
    assert idp.snapshot().count("session") == 0


async def assert_refused(idp: Idp, url: str, text: str) -> None:
    before = idp.snapshot()
    answer = await idp.client.get(url)
    assert answer.status_code == 400 and text in answer.text and "location" not in answer.headers
    assert "SAMLResponse" not in answer.text
    assert idp.snapshot() == before


async def test_bad_logout_requests_are_refused_and_end_nothing(idp: Idp) -> None:
    sid = await signed_in(idp, "payroll", "strict", "quiet")
    strict_id = pairwise_sub(idp.rt.pairwise_salt, "strict", USER_ID)
    unsigned = slo_url(logout_request("strict", strict_id, sid=sid), sign=False)
    await assert_refused(idp, unsigned, "must sign its requests")
    await assert_refused(idp, slo_url(logout_request("stranger", "x", sid=sid)), "not registered")
    quiet_id = pairwise_sub(idp.rt.pairwise_salt, "quiet", USER_ID)
    await assert_refused(idp, slo_url(logout_request("quiet", quiet_id, sid=sid)), "no single logout URL")
    await assert_refused(idp, "/saml2/slo", "LogoutRequest or LogoutResponse")
    both = slo_url(logout_request("payroll", "x", sid=sid)) + "&SAMLResponse=x"
    await assert_refused(idp, both, "LogoutRequest or LogoutResponse")
    expired = logout_request("payroll", payroll_name_id(idp), sid=sid, request_id="_old").replace(
        'Version="2.0"', 'Version="2.0" NotOnOrAfter="2020-01-01T00:00:00Z"'
    )
    await assert_refused(idp, slo_url(expired), "expired")
    encrypted_id = (
        logout_request("payroll", "x", sid=sid, request_id="_enc")
        .replace("<saml:NameID", "<saml:EncryptedID><saml:NameID")
        .replace("</saml:NameID>", "</saml:NameID></saml:EncryptedID>")
    )
    await assert_refused(idp, slo_url(encrypted_id), "one plain NameID")
    doctype = '<!DOCTYPE x [<!ENTITY e "e">]>' + logout_request("payroll", "x", sid=sid)
    await assert_refused(idp, slo_url(doctype), "not an acceptable XML document")
    await assert_refused(
        idp, slo_url(logout_request("payroll", "x", sid=sid)) + "&RelayState=a&RelayState=b", "repeated"
    )


@pytest.mark.parametrize(
    ("signing", "text"),
    [
        ({"sign": False}, "must be signed by the service provider"),
        ({"key_name": "attacker"}, "does not verify"),
    ],
)
async def test_an_unsigned_or_badly_signed_logout_request_ends_nothing_even_when_it_matches(
    idp: Idp, signing: dict[str, Any], text: str
) -> None:
    """A guessable NameID (email) and the right SessionIndex are not enough: a cross-site forgery
    without the SP's signature ends no session and answers nothing."""
    sid = await signed_in(idp, "wiki")
    forged = logout_request("wiki", USER["mail"], sid=sid, request_id="_forged", name_format=EMAIL)
    await assert_refused(idp, slo_url(forged, relay_state="rs", **signing), text)
    assert idp.snapshot().count("session") == 1 and idp.snapshot().count(PARTICIPANT_KIND) == 1
    assert idp.snapshot().count(REPLAY_KIND) == 0, "its ID is not recorded"
    ended = redirected(idp, await idp.client.get(slo_url(forged)))
    assert (ended.parameter, ended.root.get("InResponseTo")) == ("SAMLResponse", "_forged")
    assert idp.snapshot().count("session") == 0, "the same request, signed, ends the session"


async def test_an_unsigned_logout_response_is_refused_and_the_chain_waits(idp: Idp) -> None:
    sid = await signed_in(idp, "payroll", "wiki")
    first = redirected(
        idp, await idp.client.get(slo_url(logout_request("payroll", payroll_name_id(idp), sid=sid)))
    )
    answer = logout_response("wiki", str(first.root.get("ID")))
    await assert_refused(idp, slo_url(answer, "SAMLResponse", sign=False), "must be signed")
    await assert_refused(idp, slo_url(answer, "SAMLResponse", key_name="attacker"), "does not verify")
    assert await idp.rt.store.get(CHAIN_KIND, str(first.root.get("ID"))) is not None
    final = redirected(idp, await idp.client.get(slo_url(answer, "SAMLResponse")))
    assert (final.target, final.root.get("InResponseTo")) == (base("payroll") + "/slo", "_lr1")


async def test_a_signed_logout_request_from_a_strict_sp_is_accepted(idp: Idp) -> None:
    sid = await signed_in(idp, "strict")
    sp = idp.sp("strict")
    xml = logout_request("strict", pairwise_sub(idp.rt.pairwise_salt, "strict", USER_ID), sid=sid)
    url = sp.redirect_url(xml, relay_state="s", sign=True, destination=SLO)
    assert redirected(idp, await idp.client.get(url.removeprefix(ISSUER))).verified
    assert idp.snapshot().count("session") == 0


async def test_a_replayed_logout_request_is_refused(idp: Idp) -> None:
    sid = await signed_in(idp, "payroll")
    url = slo_url(logout_request("payroll", "not-matching", sid=sid))
    redirected(idp, await idp.client.get(url))
    await assert_refused(idp, url, "already used")


async def test_logout_requests_lists_each_participating_app_with_an_slo_url_once(idp: Idp) -> None:
    sid = await signed_in(idp, "payroll", "wiki", "quiet")
    assert (
        await idp.client.post("/test/logout-requests", json={"user_id": "other", "sid": sid})
    ).json() == []
    urls = (await idp.client.post("/test/logout-requests", json={"user_id": USER_ID, "sid": sid})).json()
    assert sorted(urlsplit(url).netloc for url in urls) == ["payroll.example", "wiki.example"]
    for url in urls:
        message = redirected(idp, httpx.Response(303, headers={"location": url}))
        assert message.verified and message.parameter == "SAMLRequest"
        assert message.root.xpath("samlp:SessionIndex/text()", namespaces=NS) == [sid]
    payroll = next(url for url in urls if "payroll" in url)
    names = redirected(idp, httpx.Response(303, headers={"location": payroll})).root.xpath(
        "saml:NameID/text()", namespaces=NS
    )
    assert names == [payroll_name_id(idp)]
    again = await idp.client.post("/test/logout-requests", json={"user_id": USER_ID, "sid": sid})
    assert again.json() == []
