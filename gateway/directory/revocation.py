"""Ending every sign-in of a user at once (disable, delete, reset, leave, ``revokeSignInSessions``).

Three effects, in this order: the user's ``signInSessionsValidFromDateTime`` moves to now (refresh
tokens from an earlier authentication stop working at their next use — the refresh grant checks
it), every SSO session of the user is deleted (sessions are bound to the grant ``user:<id>``),
and relying parties with a ``backchannel_logout_uri`` are told (OIDC Back-Channel Logout).
Access tokens already issued stay valid until they expire (``tokens.access_token_seconds``), as
in Entra ID; relying parties that must react sooner listen on the back channel.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from gateway.directory.users import iso
from gateway.oidc.backchannel import notify_logout

if TYPE_CHECKING:
    from gateway.runtime import Runtime

VALID_FROM = "signInSessionsValidFromDateTime"


def sessions_valid_from(user: dict[str, Any]) -> int:
    """The Unix time before which this user's authentications no longer count (0: never revoked)."""
    value = user.get(VALID_FROM)
    if not isinstance(value, str):
        return 0
    return int(datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp())


async def revoke_sign_in_sessions(rt: Runtime, user: dict[str, Any]) -> dict[str, Any]:
    """Revoke everything; returns the updated user object (already stored)."""
    now = rt.now()
    # Times have one-second resolution: every authentication up to and including this second is
    # revoked (a sign-in racing the revocation within the same second is revoked too: fail closed).
    user = {**user, VALID_FROM: iso(now + 1)}
    await rt.store.update_user(user)
    await rt.store.revoke_grant(f"user:{user['id']}")
    await notify_logout(rt, user["id"], None)
    return user
