"""May an unknown identity sign itself up for this application? (b2b-concepts §7, user flows.)"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.settings.models import Application, Settings


@dataclass(frozen=True)
class SignUpDecision:
    allowed: bool
    reason: str


def self_service_sign_up(settings: Settings, app: Application, connector_id: str) -> SignUpDecision:
    if not settings.external_collaboration.self_service_sign_up:
        return SignUpDecision(False, "signup_disabled_for_tenant")
    flow = settings.user_flow(app.user_flow)
    if flow is None:
        return SignUpDecision(False, "app_has_no_user_flow")
    if connector_id not in flow.identity_providers:
        return SignUpDecision(False, "identity_provider_not_in_user_flow")
    return SignUpDecision(True, "user_flow_allows_signup")
