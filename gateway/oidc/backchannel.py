"""OpenID Connect Back-Channel Logout 1.0: logout tokens POSTed to relying parties, off the request path.

When an SSO session ends (RP-initiated logout) every client that registered a
``backchannel_logout_uri`` gets a logout token with the session's ``sid`` and the user's
pairwise ``sub`` for that client. When all of a user's sessions are revoked (disabled,
deleted, reset, left, ``revokeSignInSessions``) the token carries ``sub`` only (section 2.4:
``sub`` or ``sid``, at least one). Tokens are signed like ID tokens, ``typ: logout+jwt``, with
a ``jti``, the back-channel ``events`` member and no ``nonce`` (section 2.4). Deliveries run on
a background task with a bounded queue and three attempts; a failure is logged, never raised
into the request that caused it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from gateway.oidc.claims import pairwise_sub

if TYPE_CHECKING:
    from gateway.runtime import Runtime

EVENT = "http://schemas.openid.net/event/backchannel-logout"
LIFETIME_SECONDS = 120
RETRY_DELAYS = (1.0, 5.0)
logger = logging.getLogger("gateway.backchannel")


@dataclass(frozen=True)
class Delivery:
    uri: str
    token: str
    client_id: str


async def logout_tokens(rt: Runtime, user_id: str, sid: str | None) -> list[Delivery]:
    now = rt.now()
    deliveries: list[Delivery] = []
    for app in rt.settings.applications:
        if app.oidc is None or app.oidc.backchannel_logout_uri is None:
            continue
        claims: dict[str, Any] = {
            "iss": rt.settings.issuer,
            "aud": app.oidc.client_id,
            "iat": now,
            "exp": now + LIFETIME_SECONDS,
            "jti": secrets.token_urlsafe(16),
            "sub": pairwise_sub(rt.pairwise_salt, app.id, user_id),
            "events": {EVENT: {}},
        }
        if sid is not None:
            claims["sid"] = sid
        alg = app.oidc.id_token_signed_response_alg or rt.settings.keys.algorithm
        token = await rt.keys.sign(claims, alg, typ="logout+jwt")
        deliveries.append(Delivery(app.oidc.backchannel_logout_uri, token, app.oidc.client_id))
    return deliveries


class BackchannelSender:
    """A bounded queue of logout-token deliveries and the task that posts them."""

    def __init__(self, http: httpx.AsyncClient, *, max_queued: int = 10_000) -> None:
        self._http = http
        self._queue: asyncio.Queue[Delivery] = asyncio.Queue(max_queued)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="backchannel-logout")

    async def stop(self, drain_seconds: float = 5.0) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), drain_seconds)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def send(self, deliveries: list[Delivery]) -> None:
        for delivery in deliveries:
            try:
                self._queue.put_nowait(delivery)
            except asyncio.QueueFull:
                logger.error("back-channel logout queue full; dropped the token for %s", delivery.client_id)

    async def idle(self) -> None:
        """Wait until every queued delivery was attempted (for tests and shutdown)."""
        await self._queue.join()

    async def _run(self) -> None:
        while True:
            delivery = await self._queue.get()
            try:
                await self._deliver(delivery)
            finally:
                self._queue.task_done()

    async def _deliver(self, delivery: Delivery) -> None:
        for attempt, delay in enumerate((0.0, *RETRY_DELAYS)):
            if delay:
                await asyncio.sleep(delay)
            try:
                response = await self._http.post(
                    delivery.uri, data={"logout_token": delivery.token}, timeout=5.0, follow_redirects=False
                )
            except httpx.HTTPError as exc:
                logger.warning(
                    "back-channel logout to %s failed (attempt %d): %s",
                    delivery.client_id,
                    attempt + 1,
                    type(exc).__name__,
                )
                continue
            if response.status_code in (200, 204):
                return
            if 400 <= response.status_code < 500:  # the RP refused the token: retrying will not help
                logger.warning(
                    "back-channel logout refused by %s: HTTP %d", delivery.client_id, response.status_code
                )
                return
        logger.error(
            "back-channel logout to %s failed after %d attempts", delivery.client_id, len(RETRY_DELAYS) + 1
        )


async def notify_logout(rt: Runtime, user_id: str, sid: str | None) -> None:
    rt.backchannel.send(await logout_tokens(rt, user_id, sid))
