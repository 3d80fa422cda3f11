"""Request and response models of the admin API (Graph names, camelCase). They validate bodies and
generate the OpenAPI schemas, so the document and the checks cannot drift apart.

Request bodies are strict (no coercion: ``"true"`` is not a boolean) and every string has a maximum
length. Fields the API does not take (read-only ones such as ``id``, ``status``, ``inviteRedeemUrl``,
and anything unknown such as ``role`` or ``tenant_id``) are ignored, never assigned, in an
invitation; ``PATCH``/``POST`` bodies of users, groups and ``$ref`` refuse them instead
(``extra="forbid"``). ``null`` means "not given" for optional fields of an invitation.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from gateway.invitations.addresses import ADDRESS_PATTERN, MAX_ADDRESS, check_address
from gateway.settings.models import check_absolute_url

MAX_NAME = 256
MAX_URL = 2048
MAX_MESSAGE = 4000
UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
LANGUAGE_PATTERN = r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$"
LINE_PATTERN = r"^[^\x00-\x1f\x7f]*$"
TEXT_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
REDIRECT_PATTERN = (
    r"^(https://[A-Za-z0-9.-]+|http://(localhost|127\.0\.0\.1|\[::1\]))(:[0-9]{1,5})?"
    r"([/?][^#\s\x00-\x1f\x7f]*)?$"
)
_REDIRECT = re.compile(REDIRECT_PATTERN)


def _text(value: str, *, multiline: bool = False) -> str:
    allowed = "\n\t" if multiline else ""
    if any((ord(c) < 32 and c not in allowed) or ord(c) == 127 or 0xD800 <= ord(c) <= 0xDFFF for c in value):
        raise ValueError("control characters are not allowed" + ("" if multiline else " (no line breaks)"))
    return value


def _line(value: str) -> str:
    return _text(value)


def _paragraphs(value: str) -> str:
    return _text(value.replace("\r\n", "\n").replace("\r", "\n"), multiline=True)


def _redirect(value: str) -> str:
    if _REDIRECT.match(value) is None:
        raise ValueError(
            "must be an absolute https URL without a fragment (http only for localhost, 127.0.0.1 or [::1]); "
            "an international host name goes in its xn-- form"
        )
    check_absolute_url(value)
    return _text(value)


Address = Annotated[
    str,
    Field(max_length=MAX_ADDRESS, json_schema_extra={"pattern": ADDRESS_PATTERN}),
    AfterValidator(check_address),
]
Name = Annotated[
    str, Field(max_length=MAX_NAME, json_schema_extra={"pattern": LINE_PATTERN}), AfterValidator(_line)
]
Message = Annotated[
    str,
    Field(max_length=MAX_MESSAGE, json_schema_extra={"pattern": TEXT_PATTERN}),
    AfterValidator(_paragraphs),
]
Language = Annotated[str, Field(max_length=35, pattern=LANGUAGE_PATTERN)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)


class EmailAddress(_Body):
    address: Address
    name: Name | None = None


class Recipient(_Body):
    emailAddress: EmailAddress


class MessageInfo(_Body):
    ccRecipients: list[Recipient] | None = Field(
        None, max_length=1, description="At most one extra recipient; it gets its own copy of the mail."
    )
    customizedMessageBody: Message | None = Field(
        None, description="Plain text; dropped when an app invites or the inviter has no address."
    )
    messageLanguage: Language | None = Field(
        None, description="ISO 639 language tag (default en-US). Every mail is English for now."
    )


class InvitedUserRef(_Body):
    id: Annotated[str, Field(pattern=UUID_PATTERN)] | None = None


class InvitationCreate(_Body):
    """The body of ``POST /v1.0/invitations``."""

    invitedUserEmailAddress: Address
    inviteRedirectUrl: Annotated[
        str,
        Field(
            max_length=MAX_URL,
            description="Absolute https URL (http only for loopback hosts), no fragment.",
            json_schema_extra={"pattern": REDIRECT_PATTERN},
        ),
        AfterValidator(_redirect),
    ]
    invitedUserDisplayName: Name | None = None
    invitedUserType: Literal["Guest", "Member"] | None = Field(
        None, description="Default Guest; only administrators may invite a Member."
    )
    sendInvitationMessage: bool | None = None
    invitedUserMessageInfo: MessageInfo | None = None
    resetRedemption: bool | None = None
    invitedUser: InvitedUserRef | None = Field(
        None, description="Only `id` is read, and only with resetRedemption (where it is required)."
    )


class UserPatch(_Body):
    """The body of ``PATCH /v1.0/users/{id}``: only these properties are writable (``WRITABLE``);
    the endpoint refuses any other key before this model sees the body."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    displayName: Name | None = None
    givenName: Name | None = None
    surname: Name | None = None
    accountEnabled: bool | None = Field(None, description="false ends every sign-in of the user at once.")
    otherMails: list[Address] | None = Field(None, max_length=250)


MAX_DESCRIPTION = 1024
NICKNAME_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"
Description = Annotated[
    str,
    Field(max_length=MAX_DESCRIPTION, json_schema_extra={"pattern": LINE_PATTERN}),
    AfterValidator(_line),
]
Nickname = Annotated[str, Field(pattern=NICKNAME_PATTERN)]


class GroupCreate(_Body):
    """The body of ``POST /v1.0/groups`` (and, all optional, of ``PATCH``)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    displayName: Annotated[Name, Field(min_length=1)]
    description: Description | None = None
    mailNickname: Nickname | None = None
    securityEnabled: bool | None = None
    mailEnabled: bool | None = None


class GroupPatch(_Body):
    """The body of ``PATCH /v1.0/groups/{id}``: the same properties, all optional."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    displayName: Annotated[Name, Field(min_length=1)] | None = None
    description: Description | None = None
    mailNickname: Nickname | None = None
    securityEnabled: bool | None = None
    mailEnabled: bool | None = None


class DirectoryObjectRef(_Body):
    """``{"@odata.id": "<issuer>/v1.0/directoryObjects/<user id>"}`` (``/users/<id>`` too)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)

    odata_id: str = Field(alias="@odata.id", max_length=MAX_URL)


DEFAULT_ACCESS_ROLE_ID = "00000000-0000-0000-0000-000000000000"
APP_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class AppRoleAssignmentCreate(_Body):
    """The body of ``POST /v1.0/servicePrincipals/{id}/appRoleAssignedTo``."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    principalId: Annotated[str, Field(pattern=UUID_PATTERN, description="A user's or a group's object id.")]
    resourceId: Annotated[
        str, Field(pattern=APP_ID_PATTERN, description="The application's id, as in the path.")
    ]
    appRoleId: Annotated[
        str,
        Field(
            pattern=UUID_PATTERN,
            description=f"One of the app's app_roles, or {DEFAULT_ACCESS_ROLE_ID} for default access.",
        ),
    ]


# -- responses (documentation and OpenAPI schemas) ---------------------------------------------


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EmailAddressOut(_Out):
    address: str | None
    name: str | None


class RecipientOut(_Out):
    emailAddress: EmailAddressOut


class MessageInfoOut(_Out):
    messageLanguage: str | None
    customizedMessageBody: str | None
    ccRecipients: list[RecipientOut]


class InvitedUserOut(_Out):
    id: str


class InvitationOut(_Out):
    id: str
    inviteRedeemUrl: str | None = Field(
        description="null when the address already belonged to a user (nothing was sent)."
    )
    invitedUserDisplayName: str | None
    invitedUserType: Literal["Guest", "Member"]
    invitedUserEmailAddress: str
    sendInvitationMessage: bool
    resetRedemption: bool
    inviteRedirectUrl: str
    status: Literal["PendingAcceptance", "Completed", "InProgress", "Error"]
    invitedUserMessageInfo: MessageInfoOut
    invitedUser: InvitedUserOut


class ObjectIdentityOut(_Out):
    signInType: str
    issuer: str
    issuerAssignedId: str


class UserOut(BaseModel):
    """A Graph ``user``; properties the object does not have are left out."""

    model_config = ConfigDict(extra="forbid")

    id: str
    userType: Literal["Member", "Guest"] | None = None
    userPrincipalName: str | None = None
    displayName: str | None = None
    givenName: str | None = None
    surname: str | None = None
    mail: str | None = None
    otherMails: list[str] | None = None
    identities: list[ObjectIdentityOut] | None = None
    externalUserState: Literal["PendingAcceptance", "Accepted"] | None = None
    externalUserStateChangeDateTime: str | None = None
    creationType: str | None = None
    accountEnabled: bool | None = None
    createdDateTime: str | None = None
    sponsors: list[str] | None = Field(None, description="Object ids of the guest's sponsors.")
    deletedDateTime: str | None = Field(None, description="Only on soft-deleted users.")


class GroupOut(_Out):
    """A Graph ``group``."""

    id: str
    displayName: str
    description: str | None = None
    mailNickname: str | None = None
    securityEnabled: bool | None = None
    mailEnabled: bool | None = None
    createdDateTime: str | None = None


class AppRoleAssignmentOut(_Out):
    """A Graph ``appRoleAssignment``."""

    id: str
    appRoleId: str
    principalId: str
    principalType: Literal["User", "Group"]
    principalDisplayName: str | None = None
    resourceId: str
    resourceDisplayName: str | None = None
    createdDateTime: str | None = None


class _Page(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    context: str = Field(alias="@odata.context")
    next_link: str | None = Field(None, alias="@odata.nextLink")


class UserCollection(_Page):
    value: list[UserOut]


class GroupCollection(_Page):
    value: list[GroupOut]


class AppRoleAssignmentCollection(_Page):
    value: list[AppRoleAssignmentOut]


class ErrorDetail(_Out):
    code: str
    message: str
    target: str


class InnerError(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    code: str
    request_id: str = Field(alias="request-id")
    date: str
    client_request_id: str | None = Field(None, alias="client-request-id")


class ErrorInfo(_Out):
    code: str
    message: str
    innerError: InnerError
    details: list[ErrorDetail] | None = None


class ErrorOut(_Out):
    error: ErrorInfo


def field_errors(exc: ValidationError) -> list[dict[str, str]]:
    """Pydantic errors as Graph ``details``: one per field, never echoing the input."""
    details = []
    for error in exc.errors(include_input=False, include_url=False):
        target = ".".join(str(part) for part in error["loc"]) or "body"
        message = str(error["msg"]).removeprefix("Value error, ")
        details.append({"code": "invalid_field", "message": message, "target": target})
    return details
