"""``POST /v1.0/invitations`` (b2b-concepts §2.1): authenticate, validate, invite, answer ``201``.

Order: the caller (401/403), whether it may invite at all (403, before the body is read), the body
(415/413/400), then ``gateway.invitations.invite`` (403 policy, 404/400/409 for resets). Every call
that reaches this endpoint leaves one audit record (``event: admin``, ``action: invite``).
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from gateway import audit
from gateway.admin.body import read_json_object
from gateway.admin.caller import AdminCaller, authenticate
from gateway.admin.errors import ApiError, api_endpoint
from gateway.admin.models import InvitationCreate, field_errors
from gateway.directory.revocation import revoke_sign_in_sessions
from gateway.http import json_response
from gateway.invitations.invite import (
    Context,
    InvitationRefused,
    InvitationRequest,
    Inviter,
    Outcome,
    check_caller,
    invite,
)
from gateway.runtime import Runtime

STATUS = {"forbidden": 403, "not_found": 404, "invalid": 400, "conflict": 409}


def _invalid(details: list[dict[str, str]]) -> ApiError:
    first = details[0]
    return ApiError(400, "invalid_field", f"{first['target']}: {first['message']}", details=details)


def to_request(model: InvitationCreate) -> InvitationRequest:
    reset = bool(model.resetRedemption)
    user_id = model.invitedUser.id if model.invitedUser is not None else None
    if reset and user_id is None:
        message = "invitedUser.id is required when resetRedemption is true"
        raise _invalid([{"code": "invalid_field", "message": message, "target": "invitedUser.id"}])
    info = model.invitedUserMessageInfo
    cc = info.ccRecipients[0].emailAddress.address if info is not None and info.ccRecipients else None
    return InvitationRequest(
        email=model.invitedUserEmailAddress,
        redirect_url=model.inviteRedirectUrl,
        display_name=model.invitedUserDisplayName,
        user_type=model.invitedUserType or "Guest",
        send_message=bool(model.sendInvitationMessage),
        cc=cc,
        custom_message=info.customizedMessageBody if info is not None else None,
        message_language=info.messageLanguage if info is not None else None,
        reset=reset,
        reset_user_id=user_id if reset else None,
    )


def response_body(model: InvitationCreate, req: InvitationRequest, outcome: Outcome) -> dict[str, Any]:
    info = model.invitedUserMessageInfo
    cc = [
        {"emailAddress": {"name": r.emailAddress.name, "address": r.emailAddress.address}}
        for r in (info.ccRecipients or [] if info is not None else [])
    ]
    user_type = outcome.user.get("userType")
    return {
        "id": outcome.invitation_id,
        "inviteRedeemUrl": outcome.redeem_url,
        "invitedUserDisplayName": req.display_name,
        "invitedUserType": user_type if user_type in ("Guest", "Member") else "Guest",
        "invitedUserEmailAddress": req.email,
        "sendInvitationMessage": outcome.mailed,
        "resetRedemption": req.reset,
        "inviteRedirectUrl": req.redirect_url,
        "status": outcome.status,
        "invitedUserMessageInfo": {
            "messageLanguage": req.message_language,
            "customizedMessageBody": req.custom_message,
            "ccRecipients": cc,
        },
        "invitedUser": {"id": outcome.user["id"]},
    }


async def _invite(rt: Runtime, request: Request, caller: AdminCaller) -> tuple[dict[str, Any], Outcome]:
    inviter = Inviter(caller.policy, caller.user, caller.app_id)
    check_caller(inviter, rt.settings)
    body = await read_json_object(request)
    try:
        model = InvitationCreate.model_validate(body)
    except ValidationError as exc:
        raise _invalid(field_errors(exc)) from exc
    req = to_request(model)
    request.state.audit_target = req.reset_user_id
    outcome = await invite(Context(rt.settings, rt.store, rt.outbox, rt.now()), inviter, req)
    if outcome.reset:
        # §2.3 + issue 4: a redemption reset ends the guest's sign-ins everywhere.
        await revoke_sign_in_sessions(rt, outcome.user)
        outcome.reasons.append("sessions_revoked")
    return response_body(model, req, outcome), outcome


def _refusal(refused: InvitationRefused) -> ApiError:
    details = None
    if refused.target:
        details = [{"code": refused.reason, "message": refused.message, "target": refused.target}]
    return ApiError(STATUS[refused.kind], refused.reason, refused.message, details=details)


@api_endpoint
async def create_invitation(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    caller: AdminCaller | None = None
    request.state.audit_target = None
    try:
        caller = await authenticate(rt, request)
        body, outcome = await _invite(rt, request, caller)
    except (ApiError, InvitationRefused) as exc:
        error = _refusal(exc) if isinstance(exc, InvitationRefused) else exc
        audit.admin_action(
            rt, request, action="invite", result="failure", actor=caller.actor if caller else None,
            target=request.state.audit_target, reasons=[error.reason], detail=error.message,
        )  # fmt: skip
        raise error from None
    audit.admin_action(
        rt, request, action="invite", result="success", actor=caller.actor,
        target=outcome.user["id"], reasons=outcome.reasons,
    )  # fmt: skip
    return json_response(body, 201)
