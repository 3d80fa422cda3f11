"""A gateway with SAML apps, each with its own real pysaml2 SP (``tests/support/saml_sp.py``), in-process.

``saml_env`` runs the gateway (``running_app``, store in ``tmp_path``, mail to the session's SMTP
server, a ``Clock`` the test may move) with these apps, each answered to its ``SamlTestSP`` at
``https://{app}.example``:

- ``payroll``: persistent NameID, five released attributes (URI and basic names), signed assertion;
- ``wiki``: persistent NameID, ``sign: response``, single logout (signed with ``key_pair("sp")``);
  ``mail``: email NameID, ``sign: both``;
- ``upn``: UPN NameID, encrypted assertion (the SP's certificate);
- ``strict``: ``require_signed_requests``; ``portal``: IdP-initiated on, with a fixed target;
- ``blocked``: a conditional-access policy blocks guests; ``secure``: one requires MFA.

``SamlEnv`` plays the browser (``client``, cookies kept) and carries answers to the SPs: ``start``
sends an SP's AuthnRequest, ``sign_in`` completes a passcode sign-in, ``deliver`` POSTs the
gateway's auto-POST form to the SP named by its action, where pysaml2 checks it.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization

from gateway.runtime import Runtime
from tests.support import flows
from tests.support.assertions import Clock
from tests.support.gateway_app import ISSUER, default_config, make_settings, running_app
from tests.support.inspect_store import Snapshot, snapshot
from tests.support.saml_idp import key_pair
from tests.support.saml_sp import PostForm, Received, SamlTestSP, post_form_of
from tests.support.smtp_server import SmtpServer, extract_passcode
from tests.support.trust import GUESTS, policy

EMAIL_CLAIM = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress"
OBJECT_ID_CLAIM = "http://schemas.microsoft.com/identity/claims/objectidentifier"
PORTAL_TARGET = "https://portal.example/home"
PAYROLL_ATTRIBUTES = [
    {"name": EMAIL_CLAIM, "source": "mail"},
    {"name": "displayName", "source": "displayName", "name_format": "basic"},
    {"name": OBJECT_ID_CLAIM, "source": "id"},
    {"name": "tenantId", "source": "tenantId"},
    {"name": "userType", "source": "userType", "name_format": "unspecified"},
]
SP_CERTIFICATE = key_pair("sp").certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")
APPS: dict[str, dict[str, Any]] = {
    "payroll": {"attributes": PAYROLL_ATTRIBUTES},
    "wiki": {"sign": "response", "slo_url": "https://wiki.example/slo", "sp_certificate": SP_CERTIFICATE},
    "mail": {"name_id_format": "email", "sign": "both"},
    "upn": {"name_id_format": "upn", "encrypt_assertion": True, "sp_certificate": SP_CERTIFICATE},
    "strict": {"require_signed_requests": True, "sp_certificate": SP_CERTIFICATE},
    "portal": {"idp_initiated": {"enabled": True, "target": PORTAL_TARGET}},
    "blocked": {},
    "secure": {},
}
SP_KNOBS: dict[str, dict[str, Any]] = {
    "wiki": {"want_assertions_signed": False, "want_response_signed": True},
    "mail": {"want_response_signed": True},
    "strict": {"sign_requests": True},
    "portal": {"allow_unsolicited": True},
}
POLICIES = [
    policy("block-guests-on-blocked", "block", apps=("blocked",), users=GUESTS),
    policy("mfa-for-secure", "mfa", apps=("secure",), users=GUESTS),
]


def sp_base(app_id: str) -> str:
    return f"https://{app_id}.example"


def saml_app(app_id: str, **saml: Any) -> dict[str, Any]:
    """A SAML application entry answered to the SP at ``https://{app_id}.example``."""
    return {
        "id": app_id,
        "name": app_id.capitalize(),
        "user_flow": "default",
        "saml": {
            "entity_id": f"{sp_base(app_id)}/metadata",
            "acs_urls": [f"{sp_base(app_id)}/acs"],
            **saml,
        },
    }


def gateway_overrides() -> dict[str, Any]:
    demo = next(a for a in default_config()["applications"] if a["id"] == "demo")
    return {
        "applications": [demo, *(saml_app(app_id, **saml) for app_id, saml in APPS.items())],
        "passcode": {"resend_interval_seconds": 0, "max_sends_per_address_per_hour": 100},
        "conditional_access": POLICIES,
    }


def decoded(form: PostForm) -> bytes:
    """The SAMLResponse of an auto-POST form, as XML bytes."""
    return base64.b64decode(form.fields["SAMLResponse"])


@dataclass
class SamlEnv:
    app: Any
    client: httpx.AsyncClient
    smtp: SmtpServer
    clock: Clock
    sps: dict[str, SamlTestSP]
    sp_clients: dict[str, httpx.AsyncClient] = field(default_factory=dict)

    @property
    def rt(self) -> Runtime:
        runtime: Runtime = self.app.state.runtime
        return runtime

    def snapshot(self) -> Snapshot:
        return snapshot(self.app)

    async def start(self, app_id: str, **request: Any) -> httpx.Response:
        """The SP's AuthnRequest (``authn_request_url`` options) at the gateway: its first answer."""
        out = await self.sps[app_id].authn_request_url(**request)
        return await self.client.get(out.url)

    async def passcode(self, first: httpx.Response, email: str) -> httpx.Response:
        """From the email page the gateway answered with, through the passcode: the last answer."""
        path = flows.signin_path_of(first)
        sent = await flows.submit_email(self.client, path, email)
        assert sent.status_code == 200, sent.text  # the passcode page
        message = await self.smtp.wait_for(to=email, timeout=10)
        return await flows.submit_passcode(self.client, path, extract_passcode(message))

    async def sign_in(self, app_id: str, email: str, **request: Any) -> httpx.Response:
        """A whole passcode sign-in started by the SP of ``app_id``: the gateway's final answer."""
        return await self.passcode(await self.start(app_id, **request), email)

    def form_for(self, answer: httpx.Response, app_id: str) -> PostForm:
        """The auto-POST form of ``answer``, which must go to ``app_id``'s ACS with a SAMLResponse."""
        assert answer.status_code == 200, answer.text[:500]
        form = post_form_of(answer.text)
        assert form is not None, answer.text[:500]
        assert form.action == self.sps[app_id].acs_url, form.action
        assert form.fields.get("SAMLResponse"), form.fields
        return form

    async def post_to_sp(self, app_id: str, fields: dict[str, str]) -> httpx.Response:
        """POST ``fields`` to the SP's ACS as the browser would."""
        return await self.sp_clients[app_id].post("/acs", data=fields)

    async def deliver(self, answer: httpx.Response, app_id: str) -> Received:
        """The form to the SP; pysaml2 must accept it: what the SP received."""
        form = self.form_for(answer, app_id)
        page = await self.post_to_sp(app_id, form.fields)
        assert page.status_code == 200, (page.text[:500], self.sps[app_id].refused)
        return self.sps[app_id].received[-1]

    async def user(self, email: str) -> dict[str, Any]:
        [found] = await self.rt.store.find_users_by_mail(email)
        return found


def signin_audit(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    """The sign-in audit records logged so far (the caller set ``gateway.audit`` to INFO)."""
    found = [json.loads(r.getMessage()) for r in caplog.records if r.name == "gateway.audit"]
    return [record for record in found if record.get("event") == "signin"]


@pytest.fixture
async def saml_env(tmp_path: Path, smtp_server: SmtpServer) -> AsyncIterator[SamlEnv]:
    clock = Clock()
    settings = make_settings(tmp_path, smtp_server, **gateway_overrides())
    async with AsyncExitStack() as stack:
        app, client = await stack.enter_async_context(running_app(settings, clock=clock))
        sps: dict[str, SamlTestSP] = {}
        sp_clients: dict[str, httpx.AsyncClient] = {}
        for app_id in APPS:
            sp = SamlTestSP(sp_base(app_id), idp_metadata_url=f"{ISSUER}/saml2/metadata", http=client)
            sp.configure(**SP_KNOBS.get(app_id, {}))
            sps[app_id] = sp
            sp_clients[app_id] = await stack.enter_async_context(
                httpx.AsyncClient(transport=httpx.ASGITransport(app=sp.app), base_url=sp.base)
            )
        yield SamlEnv(app, client, smtp_server, clock, sps, sp_clients)
