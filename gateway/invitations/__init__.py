"""Invitations (b2b-concepts §2): the guest object an invitation creates, its redeem ticket and its mail.

Independent of HTTP: ``invite.invite`` does the work of ``POST /v1.0/invitations``;
``check_ticket`` is what the redemption flow (``GET /redeem``) asks before it starts.
"""

from gateway.invitations.tickets import Invitation, check_ticket

__all__ = ["Invitation", "check_ticket"]
