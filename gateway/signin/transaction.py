"""The sign-in transaction: everything an authorization request asked for, kept server-side."""

from __future__ import annotations

import secrets
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any

from gateway.store.base import ArtefactStore

KIND = "signin"


def new_id() -> str:
    return secrets.token_urlsafe(24)


@dataclass
class SignIn:
    id: str
    app_id: str
    client_id: str
    redirect_uri: str
    scopes: list[str]
    browser: str
    created_at: int
    state: str | None = None
    nonce: str | None = None
    code_challenge: str | None = None
    prompt: list[str] = field(default_factory=list)
    max_age: int | None = None
    login_hint: str | None = None
    email: str | None = None
    connector_id: str | None = None
    acr_values: list[str] = field(default_factory=list)
    idp_hint: str | None = None
    domain_hint: str | None = None
    hints_used: bool = False
    ui_locales: list[str] = field(default_factory=list)
    """The app's ``ui_locales`` (OIDC Core 3.1.2.1), most preferred first: the pages' language."""
    partner_tenant_id: str | None = None
    redeem_user_id: str | None = None
    """Set for a redemption: the invited guest this sign-in redeems (from a ticket, or just in time)."""
    invited_email: str | None = None
    """The address the redeem link's invitation was sent to (a reset's new address)."""
    pending_identity: dict[str, Any] | None = None
    """The upstream identity waiting on the consent or sign-up attribute page (raw claims live only here)."""
    signup: dict[str, Any] | None = None
    """A self-service sign-up in progress: ``{"flow": <user flow id>, "values": {<attribute>: value}}``."""
    policy_user_id: str | None = None
    """Set once the user is known and the policy step asks for more (MFA, terms): whose sign-in waits."""
    standing: dict[str, Any] | None = None
    """What authentication established (``gateway.signin.standing``), kept while MFA or terms are pending."""
    required: list[str] = field(default_factory=list)
    """What the policy step still needs from the user: ``mfa``, ``terms:<agreement id>``."""
    local_mfa_at: int | None = None
    """When the user completed MFA here (TOTP) during this sign-in."""
    home_step_up: bool = False
    """True once the home IdP was asked for MFA (``acr_values``/``prompt=login``): it is asked only once."""
    decisions: list[dict[str, str]] = field(default_factory=list)
    """The audit decisions so far, carried across the pages the policy step asks for."""
    protocol: str = "oidc"
    """How the app is answered: ``oidc`` (a code to ``redirect_uri``) or ``saml`` (a POSTed assertion)."""
    saml: dict[str, Any] | None = None
    """The checked AuthnRequest (``gateway.saml_idp.request.SamlRequest``) a SAML sign-in answers."""

    def to_json(self) -> dict[str, Any]:
        """The stored form: the required fields and every other field that differs from its
        default (``from_json`` restores the rest), about half the JSON to write and read back.
        A shallow copy: ``dataclasses.asdict`` deep-copies every value (~40 µs a call)."""
        data = {name: getattr(self, name) for name in _REQUIRED}
        for name, default in _DEFAULTS:
            value = getattr(self, name)
            if value != default:
                data[name] = value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SignIn:
        return cls(**data)


def _default(f: Field[Any]) -> Any:
    """A field's default value (what its ``default_factory`` makes, if it has one)."""
    factory = f.default_factory
    return factory() if callable(factory) else f.default


_REQUIRED = tuple(f.name for f in fields(SignIn) if f.default is MISSING and f.default_factory is MISSING)
_DEFAULTS = tuple((f.name, _default(f)) for f in fields(SignIn) if f.name not in _REQUIRED)


async def save(store: ArtefactStore, signin: SignIn, ttl: int) -> None:
    await store.put(KIND, signin.id, signin.to_json(), ttl)


async def load(store: ArtefactStore, signin_id: str) -> SignIn | None:
    if not signin_id or len(signin_id) > 64:
        return None
    data = await store.get(KIND, signin_id)
    return SignIn.from_json(data) if data is not None else None


async def finish(store: ArtefactStore, signin_id: str) -> None:
    await store.delete(KIND, signin_id)
