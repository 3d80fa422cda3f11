"""Typed models of ``gateway.yaml``. Unknown keys are errors; cross-field rules live here too.

Key names follow DESIGN.md's configuration sketch (snake_case keys; enum values keep the
reference's spelling). Extend, don't rename.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from gateway.settings.branding import Branding, TranslationOverrides, branding_problems
from gateway.settings.clients import AssertionAlg, JwkSet, JwksUri, Origin, private_key_jwt_problem
from gateway.settings.conditional_access import (
    Agreement,
    ConditionalAccessPolicy,
    NamedLocation,
    conditional_access_problems,
)
from gateway.settings.directory import Directory, Invitations
from gateway.settings.federation import CrossTenantAccess, Redemption, cross_tenant_problems
from gateway.settings.http import Http
from gateway.settings.observability import Observability
from gateway.settings.reload_settings import Reload
from gateway.settings.saml_app import SamlApplication, saml_problems
from gateway.settings.signup import ApiConnector, UserFlow, signup_problems
from idp_connectors.base import check_domain
from idp_connectors.email_otp.config import PasscodePolicy
from idp_connectors.registry import ConnectorConfig
from idp_connectors.urls import is_loopback_host


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Identifier = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
Seconds = Annotated[int, Field(gt=0, le=10 * 365 * 86400)]


def check_domain_pattern(pattern: str) -> str:
    """A domain (`contoso.com`) or a subdomain wildcard (`*.contoso.com`), lower case."""
    check_domain(pattern[2:] if pattern.startswith("*.") else pattern)
    return pattern


DomainPattern = Annotated[str, AfterValidator(check_domain_pattern)]
ApiPermission = Literal[
    "User.Invite.All",
    "User.Read.All",
    "User.ReadWrite.All",
    "Group.Read.All",
    "Group.ReadWrite.All",
    "AppRoleAssignment.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
    "AuditLog.Read.All",
    "Policy.Read.All",
    "UserAuthenticationMethod.Read.All",
    "UserAuthenticationMethod.ReadWrite.All",
]


def check_absolute_url(url: str, *, allow_http_loopback: bool = True) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError("must be an absolute http(s) URL")
    if parts.fragment:
        raise ValueError("must not contain a fragment")
    if parts.scheme == "http" and not (allow_http_loopback and is_loopback_host(parts.hostname)):
        raise ValueError("must use https (http is allowed only for loopback addresses)")
    return url


AbsoluteUrl = Annotated[str, AfterValidator(check_absolute_url)]
"""An absolute http(s) URL without fragment; http only for loopback. Errors name the list item."""


Uuid = Annotated[str, Field(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]


class Tenant(Strict):
    id: Annotated[str, Field(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")] = (
        Field(description="The resource organisation's id (a lower-case UUID); the `tid` claim.")
    )
    domain: Annotated[
        str, Field(pattern=r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$")
    ] = Field(description="The initial domain, used in guest user principal names (#EXT#@domain).")
    name: str = Field(min_length=1, max_length=256)
    extensions_app_id: Uuid | None = Field(
        None,
        description="The app id in custom attribute names (extension_<id without dashes>_<name>); "
        "left out, a UUID derived from the tenant id.",
    )


class Secrets(Strict):
    key: str | list[str] = Field(
        description="Install secret(s), at least 32 characters each. A list rotates: the first "
        "derives keys for new data, all of them still decrypt and verify."
    )

    @field_validator("key")
    @classmethod
    def _long_enough(cls, value: str | list[str]) -> str | list[str]:
        keys = [value] if isinstance(value, str) else value
        if not keys:
            raise ValueError("at least one key is required")
        for key in keys:
            if len(key) < 32:
                raise ValueError("each secret key must be at least 32 characters")
        return value

    @property
    def keys(self) -> list[str]:
        return [self.key] if isinstance(self.key, str) else list(self.key)


class Keys(Strict):
    algorithm: Literal["ES256", "RS256"] = Field(
        "ES256", description="Default signing algorithm of ID tokens and logout tokens."
    )
    rotation_overlap_seconds: Seconds = Field(
        86400,
        description="How long a newly published key waits before it signs (so caches see it first).",
    )


class Smtp(Strict):
    host: str
    port: Annotated[int, Field(gt=0, lt=65536)] = 25
    starttls: bool = False
    ssl: bool = False
    username: str | None = None
    password: str | None = None
    timeout_seconds: Annotated[float, Field(gt=0, le=120)] = 10.0

    @model_validator(mode="after")
    def _tls_modes(self) -> Smtp:
        if self.starttls and self.ssl:
            raise ValueError("choose one of starttls and ssl")
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together")
        return self


class Mail(Strict):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    from_: str = Field(
        alias="from", description="The From header, e.g. `Contoso <no-reply@contoso.example>`."
    )
    console: bool = Field(False, description="Dev outbox: print mail to the log instead of sending it.")
    smtp: Smtp | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Mail:
        if self.console == (self.smtp is not None):
            raise ValueError("set exactly one of `console: true` and `smtp:`")
        return self


class OidcClient(Strict):
    client_id: Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[\x21-\x7e]+$")]
    client_secret: str | None = Field(
        None, description="null: a public client (token_endpoint_auth_method none, PKCE required)."
    )
    redirect_uris: list[AbsoluteUrl] = Field(min_length=1)
    post_logout_redirect_uris: list[AbsoluteUrl] = []
    backchannel_logout_uri: AbsoluteUrl | None = Field(
        None, description="OIDC Back-Channel Logout: where logout tokens go when a user's sessions end."
    )
    id_token_signed_response_alg: Literal["ES256", "RS256"] | None = None
    require_pkce: bool = False
    token_endpoint_auth_method: (
        Literal["client_secret_basic", "client_secret_post", "private_key_jwt", "none"] | None
    ) = None
    jwks: JwkSet | None = Field(None, description="private_key_jwt: the client's public keys, inline.")
    jwks_uri: JwksUri | None = Field(
        None, description="private_key_jwt: where the client publishes its keys."
    )
    token_endpoint_auth_signing_alg: AssertionAlg | None = Field(
        None, description="private_key_jwt: the one alg its assertions use; left out, RS256, ES256 or PS256."
    )
    allowed_origins: list[Origin] = Field(
        [], description="Browser origins (CORS) that may call the token and userinfo endpoints for this app."
    )
    scopes: list[str] = Field(
        ["openid", "profile", "email", "offline_access"], description="Scopes this client may be granted."
    )

    @field_validator("client_secret")
    @classmethod
    def _secret_strength(cls, value: str | None) -> str | None:
        if value is not None and len(value) < 16:
            raise ValueError("a client secret must be at least 16 characters")
        return value

    @model_validator(mode="after")
    def _auth_method_matches_secret(self) -> OidcClient:
        method = self.token_endpoint_auth_method
        if method == "private_key_jwt":
            private_key_jwt_problem(self.client_secret, self.jwks, self.jwks_uri)
            return self
        if self.jwks is not None or self.jwks_uri is not None or self.token_endpoint_auth_signing_alg:
            raise ValueError("jwks, jwks_uri and token_endpoint_auth_signing_alg need private_key_jwt")
        if self.client_secret is None and method not in (None, "none"):
            raise ValueError(f"token_endpoint_auth_method {method} needs a client_secret")
        if self.client_secret is not None and method == "none":
            raise ValueError("a client with a client_secret cannot use token_endpoint_auth_method none")
        return self

    @property
    def is_public(self) -> bool:
        return self.client_secret is None and self.token_endpoint_auth_method != "private_key_jwt"

    @property
    def pkce_required(self) -> bool:
        return self.is_public or self.require_pkce


class AppRole(Strict):
    """Graph ``appRole``: ``value`` is what the ``roles`` claim carries."""

    id: Annotated[str, Field(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
    value: Annotated[str, Field(pattern=r"^[\x21-\x7e]{1,120}$")]
    display_name: str = Field(min_length=1, max_length=256)


class TokenClaims(Strict):
    groups: bool = Field(False, description="Put the user's group ids in a `groups` claim.")
    roles: bool = Field(
        False, description="Put the user's app role values (direct and via groups) in `roles`."
    )


class Application(Strict):
    id: Identifier
    name: str = Field(min_length=1, max_length=256)
    oidc: OidcClient | None = None
    saml: SamlApplication | None = Field(
        None, description="A SAML 2.0 service provider registration (the gateway is its IdP)."
    )
    user_flow: Identifier | None = Field(
        None, description="The user flow whose identity providers this app offers for self-service sign-up."
    )
    allowed_connectors: list[Identifier] | None = Field(
        None, description="Connectors this app accepts; left out, every connector."
    )
    api_permissions: list[ApiPermission] = Field(
        [],
        description="Application permissions on the admin API (Graph names), granted to this app's "
        "client_credentials tokens. Needs a confidential `oidc` registration.",
    )
    app_roles: list[AppRole] = Field([], description="Roles users and groups can be assigned in this app.")
    assignment_required: bool = Field(
        False, description="Only users assigned to the app (directly or through a group) may sign in to it."
    )
    claims: TokenClaims = Field(default_factory=lambda: TokenClaims(), description="Opt-in claims.")

    @field_validator("app_roles")
    @classmethod
    def _unique_roles(cls, roles: list[AppRole]) -> list[AppRole]:
        if len({r.id for r in roles}) != len(roles) or len({r.value for r in roles}) != len(roles):
            raise ValueError("app role ids and values must be unique")
        return roles


class ExternalCollaboration(Strict):
    """The reference's external collaboration settings (b2b-concepts §6)."""

    self_service_sign_up: bool = Field(
        False,
        description="The tenant switch for self-service sign-up through user flows (reference default: off).",
    )
    guest_user_role: Literal["sameAsMembers", "limited", "restricted"] = Field(
        "limited", description="Guest access level (authorizationPolicy.guestUserRoleId)."
    )
    allow_invites_from: Literal[
        "everyone", "adminsGuestInvitersAndAllMembers", "adminsAndGuestInviters", "none"
    ] = Field("everyone", description="Who may invite guests (authorizationPolicy.allowInvitesFrom).")
    allowed_domains: list[DomainPattern] | None = Field(
        None,
        description="Allow-list of guest email domains: `contoso.com` matches that domain only, "
        "`*.contoso.com` any of its subdomains (not the domain itself). Exclusive with blocked_domains.",
    )
    blocked_domains: list[DomainPattern] | None = Field(
        None, description="Deny-list of guest email domains, same matching; exclusive with allowed_domains."
    )
    allow_guests_to_leave: bool = Field(True, description="Guests may leave the organisation themselves.")

    @model_validator(mode="after")
    def _one_list(self) -> ExternalCollaboration:
        if self.allowed_domains is not None and self.blocked_domains is not None:
            raise ValueError("set allowed_domains or blocked_domains, not both")
        return self


class Demo(Strict):
    enabled: bool = False


class TokenLifetimes(Strict):
    authorization_code_seconds: Annotated[int, Field(gt=0, le=600)] = 60
    access_token_seconds: Seconds = 3600
    id_token_seconds: Seconds = 3600
    refresh_token_idle_seconds: Seconds = 14 * 86400
    refresh_token_absolute_seconds: Seconds = 90 * 86400
    session_seconds: Seconds = Field(86400, description="SSO session lifetime after a passcode sign-in.")
    signin_seconds: Annotated[int, Field(gt=0, le=86400)] = Field(
        1800, description="How long a started sign-in (transaction) may take."
    )


class Limits(Strict):
    """Abuse limits, counted in the store (so shared by every replica) in fixed windows; past one,
    429 with Retry-After. Passcodes per address: ``passcode.max_sends_per_address_per_hour``."""

    passcode_sends_per_ip_per_hour: Annotated[int, Field(gt=0)] = Field(
        30,
        description="Passcodes one client IP address may request in an hour (429 with Retry-After past it).",
    )
    signin_failures_per_ip_per_hour: Annotated[int, Field(gt=0)] = Field(
        50, description="Failed passcode checks from one client IP address in an hour before it must wait."
    )
    signin_failures_per_address_per_hour: Annotated[int, Field(gt=0)] = Field(
        10, description="Failed passcode checks for one email address in an hour before it must wait."
    )
    token_requests_per_client_per_minute: Annotated[int, Field(gt=0)] = Field(
        3000, description="Token requests one authenticated client may make in a minute (all its users)."
    )


@dataclass(frozen=True, slots=True)
class ApplicationIndex:
    """``Settings.applications`` by id and by OIDC client id; the first listed wins, as a scan
    finds it (the validators refuse repeated ids and client ids anyway)."""

    applications: list[Application]
    by_id: dict[str, Application]
    by_client_id: dict[str, Application]

    @classmethod
    def of(cls, applications: list[Application]) -> ApplicationIndex:
        by_id: dict[str, Application] = {}
        by_client_id: dict[str, Application] = {}
        for app in applications:
            by_id.setdefault(app.id, app)
            if app.oidc:
                by_client_id.setdefault(app.oidc.client_id, app)
        return cls(applications, by_id, by_client_id)


class Settings(Strict):
    issuer: str = Field(description="Public base URL and OIDC issuer: no path, https unless loopback.")
    tenant: Tenant
    secrets: Secrets | None = Field(
        None,
        description="Left out: generated under var/ when the issuer is loopback; a config error otherwise.",
    )
    store: str = Field(
        "sqlite:///var/gateway.db", description="sqlite:///relative/path.db or redis://host:port/db"
    )
    keys: Keys = Keys()
    mail: Mail
    connectors: list[ConnectorConfig] = Field(min_length=1)
    applications: list[Application] = []
    user_flows: list[UserFlow] = Field(
        [], description="Self-service sign-up flows: identity providers, attributes, API connectors."
    )
    api_connectors: list[ApiConnector] = Field(
        [], description="REST endpoints a user flow calls during sign-up (b2b-concepts §7)."
    )
    external_collaboration: ExternalCollaboration = ExternalCollaboration()
    demo: Demo = Demo()
    tokens: TokenLifetimes = TokenLifetimes()
    passcode: PasscodePolicy = PasscodePolicy()
    limits: Limits = Limits()
    http: Http = Field(Http(), description="Reverse proxies in front of the gateway (client address).")
    reload: Reload = Field(Reload(), description="Hot reload of this file: watch it, and on SIGHUP.")
    cross_tenant_access: CrossTenantAccess = CrossTenantAccess()
    redemption: Redemption = Redemption()
    directory: Directory = Directory()
    invitations: Invitations = Invitations()
    named_locations: list[NamedLocation] = Field(
        [], description="IP address ranges that conditional-access location conditions name."
    )
    terms_of_use: list[Agreement] = Field(
        [], description="Agreements a conditional-access grant can require (accepted once per version)."
    )
    conditional_access: list[ConditionalAccessPolicy] = Field(
        [], description="Conditional-access policies, evaluated at every sign-in to an app."
    )
    observability: Observability = Field(Observability(), description="Metrics, sign-in log, request ids.")
    branding: Branding = Field(Branding(), description="Name, logo, colours and links of pages and mails.")
    translations: TranslationOverrides = Field(
        {}, description="Per language tag, catalogue texts that override English (en.yaml keys only)."
    )

    @field_validator("issuer")
    @classmethod
    def _issuer_shape(cls, value: str) -> str:
        check_absolute_url(value)
        parts = urlsplit(value)
        if parts.path not in ("", "/") or parts.query:
            raise ValueError("the issuer has no path or query")
        return value.rstrip("/")

    @field_validator("store")
    @classmethod
    def _store_url(cls, value: str) -> str:
        from gateway.store.redis_urls import parse_target  # Sentinel/Cluster forms: gateway.store.redis_urls

        if re.match(r"^rediss?\+(sentinel|cluster)://", value, re.IGNORECASE):
            parse_target(value)  # ValueError naming the bad part and the expected form
        elif not re.match(r"^(sqlite:///.+|rediss?://.+)$", value):
            raise ValueError(
                "use sqlite:///path/to/file.db, redis://host:port/db, "
                "redis+sentinel://host1:26379,host2:26379/service_name/db or redis+cluster://host1:6379,host2:6379"
            )
        return value

    @model_validator(mode="after")
    def _cross_references(self) -> Settings:
        problems: list[tuple[tuple[str | int, ...], str]] = []
        problems += _duplicates("connectors", [c.id for c in self.connectors], "id")
        problems += _duplicates("applications", [a.id for a in self.applications], "id")
        problems += _duplicates("user_flows", [f.id for f in self.user_flows], "id")
        problems += _duplicates(
            "applications",
            [a.oidc.client_id if a.oidc else None for a in self.applications],
            "oidc",
            "client_id",
        )
        connector_ids = {c.id for c in self.connectors}
        flow_ids = {f.id for f in self.user_flows}
        for i, app in enumerate(self.applications):
            if app.user_flow is not None and app.user_flow not in flow_ids:
                problems.append((("applications", i, "user_flow"), f"unknown user flow {app.user_flow!r}"))
            if app.api_permissions and (app.oidc is None or app.oidc.is_public):
                problems.append(
                    (
                        ("applications", i, "api_permissions"),
                        "needs a confidential oidc registration (a client_secret)",
                    )
                )
            for j, allowed in enumerate(app.allowed_connectors or []):
                if allowed not in connector_ids:
                    problems.append(
                        (("applications", i, "allowed_connectors", j), f"unknown connector {allowed!r}")
                    )
        for i, partner in enumerate(self.cross_tenant_access.partners):
            if partner.connector is not None and partner.connector not in connector_ids:
                problems.append(
                    (
                        ("cross_tenant_access", "partners", i, "connector"),
                        f"unknown connector {partner.connector!r}",
                    )
                )
        problems += _domain_claims(self)
        problems += cross_tenant_problems(self)
        problems += conditional_access_problems(self)
        problems += saml_problems(self)
        problems += signup_problems(self)
        problems += branding_problems(self)
        if self.redemption.fallback == "microsoftAccount" and not any(
            getattr(c, "accounts", None) in ("personal", "both") for c in self.connectors
        ):
            problems.append(
                (
                    ("redemption", "fallback"),
                    "microsoftAccount needs a connector of type microsoft with accounts personal or both",
                )
            )
        if self.secrets is None and not is_loopback_host(urlsplit(self.issuer).hostname or ""):
            problems.append(
                (("issuer",), "secrets.key is required when the issuer is not a loopback address")
            )
        if self.demo.enabled:
            demo = self.application("demo")
            if demo is None or demo.oidc is None:
                problems.append(
                    (("demo", "enabled"), "needs an application with id `demo` and an `oidc` registration")
                )
        if problems:
            raise ValidationError.from_exception_data(
                "Settings",
                [
                    InitErrorDetails(type=PydanticCustomError("reference", message), loc=loc, input=None)
                    for loc, message in problems
                ],
            )
        return self

    def application(self, app_id: str) -> Application | None:
        return self._application_index().by_id.get(app_id)

    def client(self, client_id: str) -> Application | None:
        return self._application_index().by_client_id.get(client_id)

    def _application_index(self) -> ApplicationIndex:
        """Looked up several times a request: indexed once, not scanned each time. Kept beside the
        fields and rebuilt when ``applications`` is another list than the one indexed, so a
        ``model_copy(update={"applications": ...})`` never answers from the old list (a
        ``cached_property`` would: the copy takes it along)."""
        index: ApplicationIndex | None = self.__dict__.get("_application_index_cache")
        if index is None or index.applications is not self.applications:
            index = ApplicationIndex.of(self.applications)
            self.__dict__["_application_index_cache"] = index  # not a field: frozen models allow it
        return index

    def user_flow(self, flow_id: str | None) -> UserFlow | None:
        return next((f for f in self.user_flows if f.id == flow_id), None)


def _domain_claims(settings: Settings) -> list[tuple[tuple[str | int, ...], str]]:
    """A domain routes to one place: claimed twice (by connectors or partners) is an error."""
    claims: dict[str, str] = {}
    found: list[tuple[tuple[str | int, ...], str]] = []
    places: list[tuple[tuple[str | int, ...], str, list[str]]] = [
        (("connectors", i), f"connector {c.id!r}", c.domains) for i, c in enumerate(settings.connectors)
    ]
    places += [
        (("cross_tenant_access", "partners", i), f"partner {p.tenant_id}", p.domains)
        for i, p in enumerate(settings.cross_tenant_access.partners)
    ]
    for loc, owner, domains in places:
        for j, domain in enumerate(domains):
            if domain in claims:
                found.append(
                    ((*loc, "domains", j), f"domain {domain!r} is already claimed by {claims[domain]}")
                )
            else:
                claims[domain] = owner
    return found


def _duplicates(section: str, ids: list[str | None], *key: str) -> list[tuple[tuple[str | int, ...], str]]:
    seen: set[str] = set()
    found: list[tuple[tuple[str | int, ...], str]] = []
    for index, item in enumerate(ids):
        if item is None:
            continue
        if item in seen:
            found.append(((section, index, *key), f"duplicate {key[-1]} {item!r}"))
        seen.add(item)
    return found
