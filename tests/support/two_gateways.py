"""Two instances of this gateway on loopback, each the other's partner organisation.

HOME (Fabrikam, ``127.0.0.2``) and RESOURCE (Contoso, ``127.0.0.1``) run as ``gateway serve``
subprocesses (``tests.support.live_server``) on distinct loopback addresses, so the browser keeps
their cookies apart (cookies ignore ports). Each has its own working directory, store, tenant and
secret, and sends mail to the given SMTP server. Each lists the other in
``cross_tenant_access.partners`` with an ``oidc`` connector at the other's issuer, and registers
the other's gateway as a confidential client whose redirect URI is the other's
``/callback/<connector id>``; both client secrets reach the servers as ``${ENV}`` variables.

HOME lets its own users sign up with a passcode and requires MFA of everyone on every app
(``HOME_POLICIES``): they register TOTP there. RESOURCE runs the demo app, lets guests sign up
through the connector to HOME, requires MFA of guests (``RESOURCE_POLICIES``) and trusts HOME's
MFA only when ``resource_trusts_home_mfa`` is true.

``two_gateways(workdir, smtp, resource_trusts_home_mfa=...)`` starts RESOURCE, then HOME (the
two configurations name each other, so both ports are chosen first), and yields ``TwoGateways``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

from tests.support.live_server import LiveServer, ServerExited, free_port, live_server


@dataclass(frozen=True)
class Organisation:
    name: str
    tenant_id: str
    domain: str
    host: str
    connector_id: str
    """The id of the other side's connector that reaches this organisation's gateway."""
    client_id: str
    """The client id this organisation's gateway is registered under at the other side."""
    secret_env: str
    """The environment variable holding that client's secret (both servers read it)."""

    def base_url(self, port: int) -> str:
        return f"http://{self.host}:{port}"


HOME = Organisation(
    name="Fabrikam",
    tenant_id="7d0b8a51-3f2e-4c1a-9b6d-0e5f4a3c2b10",
    domain="fabrikam.example",
    host="127.0.0.2",
    connector_id="fabrikam",
    client_id="fabrikam-gateway",
    secret_env="FABRIKAM_GATEWAY_CLIENT_SECRET",
)
RESOURCE = Organisation(
    name="Contoso",
    tenant_id="4f5c2b0e-6a71-4c3e-9a8e-2f1d7c9b1a00",
    domain="contoso.example",
    host="127.0.0.1",
    connector_id="contoso",
    client_id="contoso-gateway",
    secret_env="CONTOSO_GATEWAY_CLIENT_SECRET",
)

HOME_POLICIES: list[dict[str, Any]] = [
    {
        "id": "everyone-mfa",
        "display_name": "Everyone needs MFA",
        "conditions": {
            "users": {"include_users": ["All"]},
            "applications": {"include_applications": ["All"]},
        },
        "grant_controls": {"built_in_controls": ["mfa"]},
    }
]
RESOURCE_POLICIES: list[dict[str, Any]] = [
    {
        "id": "guests-mfa",
        "display_name": "Guests need MFA",
        "conditions": {
            "users": {
                "include_guests_or_external_users": {
                    "guest_or_external_user_types": ["b2bCollaborationGuest", "b2bCollaborationMember"],
                    "external_tenants": {"membership_kind": "all"},
                }
            },
            "applications": {"include_applications": ["All"]},
        },
        "grant_controls": {"built_in_controls": ["mfa"]},
    }
]


@dataclass(frozen=True)
class TwoGateways:
    home: LiveServer
    resource: LiveServer
    resource_trusts_home_mfa: bool


def _demo_app(base: str) -> dict[str, Any]:
    return {
        "id": "demo",
        "name": "Demo app",
        "oidc": {
            "client_id": "demo",
            "client_secret": None,
            "redirect_uris": [f"{base}/demo/callback"],
            "post_logout_redirect_uris": [f"{base}/demo"],
        },
        "user_flow": "default",
    }


def side_overrides(
    me: Organisation,
    other: Organisation,
    *,
    my_base: str,
    other_base: str,
    trust_other_mfa: bool,
    policies: list[dict[str, Any]],
    demo: bool,
) -> dict[str, Any]:
    """One side's configuration overrides: its tenant, its partner (the other side) and policies."""
    connector = {
        "id": other.connector_id,
        "type": "oidc",
        "issuer": other_base,
        "client_id": me.client_id,
        "client_secret": "${" + me.secret_env + "}",
        "allowed_algorithms": ["ES256"],
        "display_name": other.name,
    }
    other_gateway = {
        "id": other.client_id,
        "name": f"{other.name}'s federation gateway",
        "oidc": {
            "client_id": other.client_id,
            "client_secret": "${" + other.secret_env + "}",
            "redirect_uris": [f"{other_base}/callback/{me.connector_id}"],
        },
        "user_flow": "default",
    }
    partner = {
        "tenant_id": other.tenant_id,
        "name": other.name,
        "domains": [other.domain],
        "connector": other.connector_id,
        "inbound_trust": {"mfa_accepted": trust_other_mfa},
    }
    return {
        "tenant": {"id": me.tenant_id, "domain": me.domain, "name": me.name},
        "mail": {"from": f"{me.name} <no-reply@{me.domain}>"},
        "connectors": [{"id": "email", "type": "email_otp"}, connector],
        "applications": [*([_demo_app(my_base)] if demo else []), other_gateway],
        "user_flows": [{"id": "default", "identity_providers": ["email", other.connector_id]}],
        "external_collaboration": {"self_service_sign_up": True},
        "demo": {"enabled": demo},
        "cross_tenant_access": {"partners": [partner]},
        "conditional_access": policies,
    }


@contextmanager
def two_gateways(
    workdir: Path, smtp: tuple[str, int], *, resource_trusts_home_mfa: bool, timeout: float = 90.0
) -> Iterator[TwoGateways]:
    """RESOURCE and HOME running until the block ends (see the module docstring)."""
    client_secrets = {org.secret_env: secrets.token_urlsafe(32) for org in (HOME, RESOURCE)}
    for attempt in range(3):  # a port chosen here can be taken before its server binds it
        home_port, resource_port = free_port(HOME.host), free_port(RESOURCE.host)
        home_base, resource_base = HOME.base_url(home_port), RESOURCE.base_url(resource_port)
        resource_config = side_overrides(
            RESOURCE, HOME, my_base=resource_base, other_base=home_base,
            trust_other_mfa=resource_trusts_home_mfa, policies=RESOURCE_POLICIES, demo=True,
        )  # fmt: skip
        home_config = side_overrides(
            HOME, RESOURCE, my_base=home_base, other_base=resource_base,
            trust_other_mfa=False, policies=HOME_POLICIES, demo=False,
        )  # fmt: skip
        started = False
        try:
            with ExitStack() as servers:
                with mock.patch.dict(os.environ, client_secrets):  # live_server passes the environment on
                    resource = servers.enter_context(live_server(
                        workdir / f"resource-{attempt}", smtp=smtp, host=RESOURCE.host, port=resource_port,
                        overrides=resource_config, timeout=timeout,
                    ))  # fmt: skip
                    home = servers.enter_context(live_server(
                        workdir / f"home-{attempt}", smtp=smtp, host=HOME.host, port=home_port,
                        overrides=home_config, timeout=timeout,
                    ))  # fmt: skip
                started = True
                yield TwoGateways(home, resource, resource_trusts_home_mfa)
                return
        except ServerExited as exc:
            if started or "cannot listen" not in exc.output or attempt == 2:
                raise
