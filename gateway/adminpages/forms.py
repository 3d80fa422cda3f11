"""The invite and reset forms of ``/admin``, validated by the admin API's own model.

A form becomes the body ``POST /v1.0/invitations`` would get and goes through
``InvitationCreate`` and ``to_request``, so the pages accept exactly what the API accepts.
Empty optional fields mean "not given". Errors name the form's field, never echo the input.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from starlette.datastructures import FormData

from gateway.admin.errors import ApiError
from gateway.admin.invitations import to_request
from gateway.admin.models import InvitationCreate, field_errors
from gateway.invitations.invite import InvitationRequest

FIELDS = ("email", "redirect_url", "display_name", "message", "send_mail")
LABELS = {
    "invitedUserEmailAddress": "Email",
    "inviteRedirectUrl": "Redirect URL",
    "invitedUserDisplayName": "Display name",
    "invitedUserMessageInfo.customizedMessageBody": "Message",
    "invitedUser.id": "Guest",
}


class FormInvalid(Exception):
    """The form is not valid; ``message`` says which field and why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def values(form: FormData) -> dict[str, str]:
    """The form's fields as the page shows them again (strings, first value of each)."""
    found = {name: form.get(name) for name in FIELDS}
    return {name: value for name, value in found.items() if isinstance(value, str)}


def invitation(form: FormData, *, reset_user_id: str | None = None) -> InvitationRequest:
    """The invitation (or, with ``reset_user_id``, the redemption reset) the form asks for."""
    fields = values(form)
    body: dict[str, Any] = {
        "invitedUserEmailAddress": fields.get("email", "").strip(),
        "inviteRedirectUrl": fields.get("redirect_url", "").strip(),
        "invitedUserType": "Guest",
        "sendInvitationMessage": fields.get("send_mail") == "yes",
    }
    if fields.get("display_name", "").strip():
        body["invitedUserDisplayName"] = fields["display_name"].strip()
    if fields.get("message", "").strip():
        body["invitedUserMessageInfo"] = {"customizedMessageBody": fields["message"].strip()}
    if reset_user_id is not None:
        body["resetRedemption"] = True
        body["invitedUser"] = {"id": reset_user_id}
    try:
        return to_request(InvitationCreate.model_validate(body))
    except ValidationError as exc:
        first = field_errors(exc)[0]
        raise FormInvalid(f"{LABELS.get(first['target'], first['target'])}: {first['message']}") from exc
    except ApiError as exc:
        raise FormInvalid(exc.message) from exc
