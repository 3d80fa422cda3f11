"""Admin API test helpers: configuration with automation apps and bootstrap admins, and ``Api``.

- ``Api.app_token(client_id)``: a ``client_credentials`` token over HTTP.
- ``Api.user_token(user, scopes)``: a user access token minted by ``gateway.oidc.minting.mint``
  (the code path of a real sign-in), for the ``portal`` client.
- ``Api.add_user(email, user_type)``: a directory user with a passcode identity.
- ``Api.state()`` / ``assert_unchanged(before)``: users, tickets and other artefacts, read
  straight from the SQLite file; ``assert_no_mail()``: nothing reached the SMTP server (proved by
  a sentinel sent through the same FIFO outbox afterwards).
- ``assert_error(response, status, code, reason)``: the Graph-shaped error; ``refused(...)``: that,
  and no guest, no ticket and no mail.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from gateway.directory.users import guest_upn, iso
from gateway.oidc.codes import new_grant_id
from gateway.oidc.minting import Authentication, mint
from gateway.runtime import Runtime
from idp_connectors.base import MailMessage
from tests.support.assertions import Clock
from tests.support.gateway_app import default_config
from tests.support.inspect_store import store_file
from tests.support.smtp_server import SmtpServer

TENANT_ID = "4f5c2b0e-6a71-4c3e-9a8e-2f1d7c9b1a00"
TENANT_DOMAIN = "contoso.example"
ISSUER = "http://127.0.0.1:8000"
SECRET = "automation-secret-0123456789"
ADMIN = "admin@contoso.example"
USER_ADMIN = "useradmin@contoso.example"
INVITER = "inviter@contoso.example"
MEMBER = "member@contoso.example"
REDIRECT = "https://myapp.contoso.example/welcome"
SENTINEL = "sentinel@test.example"

BAD_ADDRESSES = [  # refused by the user-name rules of b2b-concepts §2.1, or not addresses at all
    "a#b@partner.example", "a!b@partner.example", "a$b@partner.example", "a%b@partner.example",
    "a^b@partner.example", "a&b@partner.example", "a*b@partner.example", "a(b@partner.example",
    "a)b@partner.example", "a+b@partner.example", "a=b@partner.example", "a[b@partner.example",
    "a]b@partner.example", "a{b@partner.example", "a}b@partner.example", "a\\b@partner.example",
    "a/b@partner.example", "a|b@partner.example", "a;b@partner.example", "a:b@partner.example",
    'a"b@partner.example', "a<b@partner.example", "a>b@partner.example", "a?b@partner.example",
    "a,b@partner.example", "a~b@partner.example", ".ab@partner.example", "ab.@partner.example",
    "-ab@partner.example", "ab-@partner.example", "a..b@partner.example", "a b@partner.example",
    "jürgen@partner.example", "no-at-sign", "@partner.example", "a@b", "a@@partner.example",
    "a@partner..example", "a@-partner.example", "a\n@partner.example", "a" * 65 + "@partner.example",
]  # fmt: skip


def _confidential(app_id: str, permissions: list[str], scopes: list[str] | None = None) -> dict[str, Any]:
    oidc: dict[str, Any] = {
        "client_id": app_id,
        "client_secret": SECRET,
        "redirect_uris": [f"https://{app_id}.example/cb"],
    }
    if scopes is not None:
        oidc["scopes"] = scopes
    app: dict[str, Any] = {"id": app_id, "name": app_id.title(), "oidc": oidc}
    if permissions:
        app["api_permissions"] = permissions
    return app


def applications() -> list[dict[str, Any]]:
    return [
        *default_config()["applications"],
        _confidential("inviter-app", ["User.Invite.All"]),
        _confidential("admin-app", ["User.ReadWrite.All"]),
        _confidential("reader-app", ["User.Read.All"]),
        _confidential("portal", [], ["openid", "profile", "email", "offline_access", "directory.access"]),
        _confidential("plain", []),
    ]


def config(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "applications": applications(),
        "directory": {
            "administrators": [
                {"email": ADMIN, "roles": ["Global Administrator"]},
                {"email": USER_ADMIN.upper(), "roles": ["User Administrator"]},
                {"email": INVITER, "roles": ["Guest Inviter"]},
            ]
        },
    }
    base.update(overrides)
    return base


def body(email: Any = "guest@partner.example", **fields: Any) -> dict[str, Any]:
    return {"invitedUserEmailAddress": email, "inviteRedirectUrl": REDIRECT, **fields}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass(frozen=True)
class State:
    users: dict[str, dict[str, Any]]
    artefacts: dict[str, frozenset[str]]

    def ids(self, kind: str) -> frozenset[str]:
        return self.artefacts.get(kind, frozenset())


@dataclass
class Api:
    app: Any
    client: httpx.AsyncClient
    smtp: SmtpServer
    clock: Clock

    @property
    def rt(self) -> Runtime:
        runtime: Runtime = self.app.state.runtime
        return runtime

    async def app_token(self, client_id: str = "inviter-app") -> str:
        response = await self.client.post(
            "/oauth2/token", data={"grant_type": "client_credentials"}, auth=(client_id, SECRET)
        )
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token

    async def add_user(
        self, email: str, user_type: str = "Member", *, enabled: bool = True, **extra: Any
    ) -> dict[str, Any]:
        user = {
            "id": str(uuid.uuid4()),
            "userType": user_type,
            "creationType": None,
            "accountEnabled": enabled,
            "displayName": email.split("@")[0].title(),
            "mail": email,
            "otherMails": [],
            "userPrincipalName": email if user_type == "Member" else guest_upn(email, TENANT_DOMAIN),
            "identities": [{"signInType": "federated", "issuer": "mail", "issuerAssignedId": email}],
            "externalUserState": None,
            "externalUserStateChangeDateTime": None,
            "createdDateTime": iso(int(time.time())),
            **extra,
        }
        assert await self.rt.store.create_user(user, [("mail", email)])
        return user

    async def user_token(
        self,
        user: dict[str, Any],
        scopes: tuple[str, ...] = ("openid", "directory.access"),
        client: str = "portal",
    ) -> str:
        app = self.rt.settings.client(client)
        assert app is not None
        authn = Authentication(
            user["id"], "sid-1", self.rt.now(), ["otp"], "https://refeds.org/profile/sfa", "mail"
        )
        tokens = await mint(
            self.rt, app, user, authn, scopes=list(scopes), grant_id=new_grant_id(), nonce=None
        )
        token: str = tokens["access_token"]
        return token

    async def invite(self, token: str | None, payload: Any, **kwargs: Any) -> httpx.Response:
        headers = bearer(token) if token else {}
        return await self.client.post("/v1.0/invitations", json=payload, headers=headers, **kwargs)

    def state(self) -> State:
        with sqlite3.connect(f"file:{store_file(self.app)}?mode=ro", uri=True) as conn:
            users = {row[0]: json.loads(row[1]) for row in conn.execute("SELECT id, doc FROM users")}
            artefacts: dict[str, set[str]] = {}
            for kind, ident in conn.execute(
                "SELECT kind, id FROM artefacts WHERE expires_at > ?", (time.time(),)
            ):
                artefacts.setdefault(kind, set()).add(ident)
        conn.close()
        return State(users, {k: frozenset(v) for k, v in artefacts.items()})

    def assert_unchanged(self, before: State) -> None:
        """No user created or changed, no ticket and no token-like artefact issued since ``before``."""
        after = self.state()
        assert after.users == before.users, "the directory changed"
        for kind in ("invite-ticket", "invite-current", "access", "refresh", "session", "code"):
            assert after.ids(kind) == before.ids(kind), f"{kind} artefacts changed"

    async def assert_no_mail(self) -> None:
        """Nothing was mailed: once a sentinel queued now has arrived (the outbox is FIFO), every
        message received is a sentinel."""
        self.rt.outbox.send(MailMessage(to=SENTINEL, subject="sentinel", text="sentinel\n"))
        await self.smtp.wait_for(to=SENTINEL, timeout=10)
        assert {m["To"] for m in self.smtp.messages} == {SENTINEL}


REQUEST_ID = re.compile(r"^[0-9a-f-]{36}$")
DATE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$")


def assert_error(response: httpx.Response, status: int, code: str, reason: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code, error
    assert error["innerError"]["code"] == reason, error
    assert REQUEST_ID.match(error["innerError"]["request-id"])
    assert error["innerError"]["request-id"] == response.headers["request-id"]
    assert DATE.match(error["innerError"]["date"])
    assert isinstance(error["message"], str) and error["message"] and "\n" not in error["message"]
    return error


async def refused(api: Api, response: httpx.Response, status: int, code: str, reason: str) -> dict[str, Any]:
    """The error, no guest and no ticket in the store, and no mail."""
    error = assert_error(response, status, code, reason)
    state = api.state()
    assert not [u for u in state.users.values() if u.get("creationType") == "Invitation"], (
        "a guest was created"
    )
    assert not state.ids("invite-ticket") and not state.ids("invite-current"), "a ticket was issued"
    await api.assert_no_mail()
    return error
