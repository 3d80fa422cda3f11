"""Redeem tickets: the unguessable part of an invitation's ``inviteRedeemUrl``.

A ticket is 256 random bits (43 base64url characters). The store never holds it, only its SHA-256
digest, as an artefact of kind ``invite-ticket`` that expires after ``invitations.ticket_lifetime_days``
and carries what the ticket is bound to: its single purpose (``invitation-redeem``), the tenant, the
guest's object id, the invited address and the ``inviteRedirectUrl``. A second artefact per user
(``invite-current``, keyed by the user id) names the digest of the user's *current* ticket: issuing a
new ticket (a reset redemption) replaces it, so every older ticket stops working at once even if it
has not expired. Tickets are never consumed here: a redemption may fail and be retried with the same
link; what redemption changes on the user object is the redemption flow's business.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlencode

from gateway.store.base import ArtefactStore

KIND = "invite-ticket"
CURRENT_KIND = "invite-current"
PURPOSE = "invitation-redeem"
_TICKET = re.compile(r"^[A-Za-z0-9_-]{43}$")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@dataclass(frozen=True, slots=True)
class Invitation:
    """What a live, current ticket was issued for."""

    id: str
    tenant_id: str
    user_id: str
    email: str
    redirect_url: str
    invited_by: str
    """``user:<object id>``, ``app:<application id>`` or ``operator:cli`` (the command line)."""
    created_at: int
    expires_at: int


def digest(ticket: str) -> str:
    return hashlib.sha256(ticket.encode("ascii")).hexdigest()


def redeem_url(issuer: str, tenant_id: str, user_id: str, ticket: str) -> str:
    return f"{issuer}/redeem?" + urlencode({"tenant": tenant_id, "user": user_id, "ticket": ticket})


async def issue_ticket(store: ArtefactStore, invitation: Invitation) -> str:
    """Store a new ticket for ``invitation`` and make it the user's only valid one; returns the ticket."""
    ticket = secrets.token_urlsafe(32)
    hashed = digest(ticket)
    ttl = invitation.expires_at - invitation.created_at
    previous = await store.get(CURRENT_KIND, invitation.user_id)
    await store.put(KIND, hashed, {"purpose": PURPOSE, **asdict(invitation)}, ttl)
    # Written second: until this pointer moves, the new ticket is not current (fails closed).
    pointer = {"ticket_hash": hashed, "invitation_id": invitation.id}
    await store.put(CURRENT_KIND, invitation.user_id, pointer, ttl)
    old = previous.get("ticket_hash") if previous else None
    if isinstance(old, str) and old != hashed:
        await store.delete(KIND, old)
    return ticket


def _same(a: Any, b: str) -> bool:
    return isinstance(a, str) and hmac.compare_digest(a.encode(), b.encode())


async def check_ticket(
    store: ArtefactStore, tenant_id: str, user_id: str, ticket: str, *, now: float | None = None
) -> Invitation | None:
    """The invitation behind a redeem link, or None when the ticket is unknown, expired, replaced by a
    newer one (reset), issued for another purpose, tenant or user, or malformed. Does not consume it."""
    if not (
        isinstance(ticket, str)
        and isinstance(tenant_id, str)
        and isinstance(user_id, str)
        and _TICKET.match(ticket)
        and _UUID.match(tenant_id)
        and _UUID.match(user_id)
    ):
        return None
    hashed = digest(ticket)
    record = await store.get(KIND, hashed)
    if record is None:
        return None
    bound = (
        _same(record.get("purpose"), PURPOSE)
        & _same(record.get("tenant_id"), tenant_id)
        & _same(record.get("user_id"), user_id)
    )
    current = await store.get(CURRENT_KIND, user_id)
    is_current = current is not None and _same(current.get("ticket_hash"), hashed)
    at = time.time() if now is None else now
    if not (bound and is_current) or not int(record.get("expires_at", 0)) > at:
        return None
    return Invitation(
        id=str(record["id"]),
        tenant_id=str(record["tenant_id"]),
        user_id=str(record["user_id"]),
        email=str(record["email"]),
        redirect_url=str(record["redirect_url"]),
        invited_by=str(record["invited_by"]),
        created_at=int(record["created_at"]),
        expires_at=int(record["expires_at"]),
    )
