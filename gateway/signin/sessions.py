"""The SSO session: a small server-side record behind an opaque HttpOnly cookie.

The cookie holds 256 random bits; the store keys the record by their SHA-256, so a store
dump yields no usable cookie. The record holds ids, times and satisfied factors only.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.http import set_cookie
from gateway.signin.standing import Standing
from gateway.store.base import ArtefactStore

KIND = "session"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class SsoSession:
    user_id: str
    sid: str
    auth_time: int
    expires_at: int
    amr: list[str]
    acr: str
    idp: str
    connector_id: str
    standing: dict[str, Any] = field(default_factory=dict)
    """``gateway.signin.standing.Standing`` as JSON: the trusted facts later sign-ins are evaluated on."""

    def to_json(self) -> dict[str, Any]:
        # A shallow copy of the fields: ``dataclasses.asdict`` deep-copies every value.
        return {name: getattr(self, name) for name in _FIELDS}


_FIELDS = tuple(f.name for f in fields(SsoSession))
_STANDING_DEFAULTS = {f.name: f.default for f in fields(Standing) if f.default is not MISSING}


def _at_default(name: str, value: Any) -> bool:
    if name not in _STANDING_DEFAULTS:
        return False
    default = _STANDING_DEFAULTS[name]
    if isinstance(default, tuple):  # a tuple field is a JSON list in ``Standing.to_json``
        return isinstance(value, list | tuple) and tuple(value) == default
    return type(value) is type(default) and value == default


def compact_standing(standing: dict[str, Any]) -> dict[str, Any]:
    """``standing`` without the entries at their ``Standing`` default, which ``Standing.from_json``
    restores: for a passcode sign-in that is more than half of it, and the session record stays
    under 1 KiB in Redis (``bench/load.py``)."""
    return {name: value for name, value in standing.items() if not _at_default(name, value)}


class Sessions:
    def __init__(self, store: ArtefactStore, *, secure: bool) -> None:
        self._store = store
        self.secure = secure
        self.cookie_name = "__Host-gw_session" if secure else "gw_session"

    async def current(self, request: Request, now: int) -> SsoSession | None:
        token = request.cookies.get(self.cookie_name)
        if token is None or not (20 <= len(token) <= 64):
            return None
        data = await self._store.get(KIND, _hash(token))
        if data is None:
            return None
        session = SsoSession(**data)
        return session if session.expires_at > now else None

    async def create(
        self,
        *,
        user_id: str,
        auth_time: int,
        lifetime: int,
        amr: list[str],
        acr: str,
        idp: str,
        connector_id: str,
        standing: dict[str, Any],
    ) -> tuple[SsoSession, str]:
        """Store a new session; returns it and the cookie value to ``attach``."""
        token = secrets.token_urlsafe(32)
        session = SsoSession(
            user_id=user_id,
            sid=secrets.token_urlsafe(16),
            auth_time=auth_time,
            expires_at=auth_time + lifetime,
            amr=amr,
            acr=acr,
            idp=idp,
            connector_id=connector_id,
            standing=standing,
        )
        record = {**session.to_json(), "standing": compact_standing(standing)}
        await self._store.put(KIND, _hash(token), record, lifetime, grant_id=f"user:{user_id}")
        return session, token

    def attach(self, response: Response, token: str, lifetime: int) -> None:
        """Set the session cookie (HttpOnly, SameSite=lax, Secure on https)."""
        set_cookie(response, self.cookie_name, token, max_age=lifetime, secure=self.secure)

    async def forget(self, request: Request) -> None:
        """Delete the record behind this browser's session cookie, if any."""
        token = request.cookies.get(self.cookie_name)
        if token is not None and len(token) <= 64:
            await self._store.delete(KIND, _hash(token))

    async def end(self, request: Request, response: Response) -> None:
        await self.forget(request)
        response.delete_cookie(self.cookie_name, path="/", secure=self.secure, httponly=True, samesite="lax")
