"""When the gateway session ends at ``/oauth2/logout``, its SAML apps are signed out first.

The browser goes through a signed LogoutRequest to each SAML app of the session that has an
``slo_url`` (here ``wiki``); the app's LogoutResponse at ``/saml2/slo``, signed with its key over the
raw query (SAML Profiles 4.4.4.2), moves the chain on, and its end is the OIDC app's registered
post-logout redirect (with its ``state``).
"""

from __future__ import annotations

import base64
import time
import zlib
from urllib.parse import quote_plus, unquote_plus, urlencode

from lxml import etree

from gateway.oidc.claims import pairwise_sub
from gateway.saml_idp.certificates import signer
from idp_connectors.saml.xmltime import format_instant
from idp_connectors.xmlsecurity.gate import RSA_SHA256
from idp_connectors.xmlsecurity.signature import (
    redirect_signed_octets,
    sign_redirect_query,
    verify_redirect_query,
)
from tests.saml_idp_e2e.conftest import SamlEnv
from tests.support.gateway_app import ISSUER
from tests.support.saml_idp import key_pair

ALICE = "alice@fabrikam.example"
AFTER_LOGOUT = f"{ISSUER}/demo"
SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"


def deflated(xml: str) -> str:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return base64.b64encode(compressor.compress(xml.encode()) + compressor.flush()).decode()


def logout_response(in_response_to: str) -> str:
    return (
        f'<samlp:LogoutResponse xmlns:samlp="{SAMLP}" xmlns:saml="{SAML}" ID="_wiki-answer" Version="2.0" '
        f'IssueInstant="{format_instant(time.time())}" Destination="{ISSUER}/saml2/slo" '
        f'InResponseTo="{in_response_to}"><saml:Issuer>https://wiki.example/metadata</saml:Issuer>'
        f'<samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/>'
        "</samlp:Status></samlp:LogoutResponse>"
    )


def signed_response_query(xml: str) -> str:
    """``SAMLResponse=…&SigAlg=…&Signature=…`` signed with the key behind wiki's ``sp_certificate``."""
    query = urlencode([("SAMLResponse", deflated(xml)), ("SigAlg", RSA_SHA256)], quote_via=quote_plus)
    return query + "&Signature=" + quote_plus(sign_redirect_query(query, key_pair("sp").key))


async def test_an_oidc_logout_signs_the_saml_apps_out_then_follows_the_post_logout_redirect(
    saml_env: SamlEnv,
) -> None:
    env = saml_env
    await env.deliver(await env.sign_in("wiki", ALICE), "wiki")
    user = await env.user(ALICE)

    answer = await env.client.get(
        "/oauth2/logout",
        params={"client_id": "demo", "post_logout_redirect_uri": AFTER_LOGOUT, "state": "s1"},
    )
    assert answer.status_code == 303, answer.text
    location = answer.headers["location"]
    assert location.startswith("https://wiki.example/slo?SAMLRequest=")
    assert "gw_session=" in answer.headers["set-cookie"] and "Max-Age=0" in answer.headers["set-cookie"]
    query = location.split("?", 1)[1]
    octets, signature, sig_alg = redirect_signed_octets(query, "SAMLRequest")
    assert verify_redirect_query(octets, signature, sig_alg, [signer(env.rt)[1]])
    encoded = dict(pair.split("=", 1) for pair in query.split("&"))["SAMLRequest"]
    request = etree.fromstring(zlib.decompress(base64.b64decode(unquote_plus(encoded)), -15))
    assert request.tag == f"{{{SAMLP}}}LogoutRequest"
    assert request.findtext(f"{{{SAML}}}NameID") == pairwise_sub(env.rt.pairwise_salt, "wiki", user["id"])

    answer_query = signed_response_query(logout_response(str(request.get("ID"))))
    unsigned = await env.client.get(f"/saml2/slo?{answer_query.split('&', 1)[0]}")
    assert unsigned.status_code == 400 and "must be signed" in unsigned.text, "an unsigned answer is refused"
    back = await env.client.get(f"/saml2/slo?{answer_query}")
    assert back.status_code == 303, back.text
    assert back.headers["location"] == f"{AFTER_LOGOUT}?state=s1"


async def test_without_saml_apps_the_logout_goes_straight_to_the_post_logout_redirect(
    saml_env: SamlEnv,
) -> None:
    env = saml_env
    await env.deliver(await env.sign_in("payroll", ALICE), "payroll")  # payroll has no slo_url
    answer = await env.client.get(
        "/oauth2/logout",
        params={"client_id": "demo", "post_logout_redirect_uri": AFTER_LOGOUT, "state": "s2"},
    )
    assert answer.status_code == 303 and answer.headers["location"] == f"{AFTER_LOGOUT}?state=s2"
