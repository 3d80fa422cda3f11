"""Home-realm discovery: which connector a guest signs in through (b2b-concepts §3.1, §3.2).

Pure: ``build_index`` turns the settings into a domain index once (O(1) per lookup, however
many partner domains), ``discover`` picks a route with a stable reason code. Order:

1. ``idp_hint`` naming a connector the app accepts;
2. the email's domain (or ``domain_hint``), tried against ``redemption.primary_order``:
   ``azureActiveDirectory`` (partner OIDC tenants, `oidc`/`microsoft` connectors with domains),
   ``externalFederation`` (SAML / WS-Fed connectors and partners), ``socialIdentityProviders``
   (Google for gmail.com / googlemail.com);
3. ``redemption.fallback``: the passcode, a personal Microsoft account, or ``defaultConfiguredIdp``
   (the passcode when an `email_otp` connector exists, else a Microsoft account).

A domain that an organisation claims is never silently rerouted: if the app does not accept
that connector the route is refused (``connector_not_allowed_for_app``), so a partner's users
cannot sidestep their own IdP with a passcode. Google for Gmail is skipped when not accepted.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from gateway.settings.models import Settings

CATEGORY_OF_TYPE = {
    "oidc": "azureActiveDirectory",
    "microsoft": "azureActiveDirectory",
    "saml": "externalFederation",
    "wsfed": "externalFederation",
    "google": "socialIdentityProviders",
    "facebook": "socialIdentityProviders",
}
GMAIL_DOMAINS = frozenset({"gmail.com", "googlemail.com"})


@dataclass(frozen=True)
class Claim:
    category: str
    connector_id: str
    partner_tenant_id: str | None


@dataclass(frozen=True)
class RealmIndex:
    domains: Mapping[str, Claim]
    connector_types: Mapping[str, str]
    google: str | None
    passcode: str | None
    microsoft_account: str | None
    primary_order: tuple[str, ...]
    fallback: str


@dataclass(frozen=True)
class Route:
    connector_id: str | None
    reason: str
    partner_tenant_id: str | None = None

    @property
    def found(self) -> bool:
        return self.connector_id is not None


def build_index(settings: Settings) -> RealmIndex:
    types = {c.id: str(c.type) for c in settings.connectors}
    domains: dict[str, Claim] = {}
    for connector in settings.connectors:
        category = CATEGORY_OF_TYPE.get(types[connector.id])
        for domain in connector.domains:
            if category is not None:
                domains[domain] = Claim(category, connector.id, None)
    for partner in settings.cross_tenant_access.partners:
        if partner.connector is None:
            continue
        category = CATEGORY_OF_TYPE.get(types[partner.connector], "azureActiveDirectory")
        for domain in partner.domains:
            domains[domain] = Claim(category, partner.connector, partner.tenant_id)

    def first(kind: str) -> str | None:
        return next((cid for cid, t in types.items() if t == kind), None)

    return RealmIndex(
        domains=domains,
        connector_types=types,
        google=first("google"),
        passcode=first("email_otp"),
        microsoft_account=next(
            (c.id for c in settings.connectors if getattr(c, "accounts", None) in ("personal", "both")), None
        ),
        primary_order=tuple(settings.redemption.primary_order),
        fallback=settings.redemption.fallback,
    )


def email_domain(email: str | None) -> str | None:
    if not email or "@" not in email:
        return None
    return email.rsplit("@", 1)[1].strip().lower() or None


def discover(
    index: RealmIndex,
    *,
    email: str | None = None,
    idp_hint: str | None = None,
    domain_hint: str | None = None,
    allowed: Collection[str] | None = None,
) -> Route:
    def accepted(connector_id: str) -> bool:
        return allowed is None or connector_id in allowed

    if idp_hint and idp_hint in index.connector_types and accepted(idp_hint):
        return Route(idp_hint, "idp_hint")
    domain = email_domain(email) or (domain_hint.strip().lower() if domain_hint else None)
    if domain is not None:
        claim = index.domains.get(domain)
        for category in index.primary_order:
            if claim is not None and claim.category == category:
                if not accepted(claim.connector_id):
                    return Route(None, "connector_not_allowed_for_app", claim.partner_tenant_id)
                reason = "partner_domain" if claim.partner_tenant_id else "connector_domain"
                return Route(claim.connector_id, reason, claim.partner_tenant_id)
            if (
                category == "socialIdentityProviders"
                and domain in GMAIL_DOMAINS
                and index.google is not None
                and accepted(index.google)
            ):
                return Route(index.google, "gmail_address")
    return _fallback(index, accepted)


def _fallback(index: RealmIndex, accepted: Callable[[str], bool]) -> Route:
    passcode = index.passcode if index.passcode and accepted(index.passcode) else None
    msa = index.microsoft_account if index.microsoft_account and accepted(index.microsoft_account) else None
    if index.fallback == "emailOneTimePasscode":
        choice = passcode
    elif index.fallback == "microsoftAccount":
        choice = msa
    else:
        choice = passcode or msa
    if choice is None:
        return Route(None, "no_identity_provider")
    return Route(choice, "fallback_passcode" if choice == passcode else "fallback_microsoft_account")
