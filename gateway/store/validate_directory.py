"""Argument checks for the directory's listings, soft delete, groups and app links.

Shared by both backends (``sqlite_directory``, ``redis_directory``), which run them before they
touch storage, so a bad argument fails the same way on SQLite and Redis with nothing written.
Field limits follow Microsoft Graph where it sets one (group ``displayName`` 256,
``description`` 1024, ``mailNickname`` 64 characters); every stored object is also capped at
``MAX_OBJECT_CHARS`` of JSON text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from gateway.store.base import JSON
from gateway.store.validate import check_text, encode

MAX_PAGE = 999
MAX_OBJECT_CHARS = 64 * 1024
MAX_EPOCH = 253_402_300_799  # 9999-12-31T23:59:59Z
PRINCIPAL_TYPES = ("User", "Group")
# (field, required, kind, max length) of a Graph group; kind "text" = non-empty string.
GROUP_FIELDS: tuple[tuple[str, bool, str, int], ...] = (
    ("displayName", True, "text", 256),
    ("description", False, "optional-string", 1024),
    ("mailNickname", False, "text", 64),
    ("securityEnabled", False, "bool", 0),
    ("mailEnabled", False, "bool", 0),
    ("createdDateTime", False, "optional-string", 64),
)


@dataclass(frozen=True, slots=True)
class UserQuery:
    """A checked ``list_users`` request; ``fetch`` is one more than the page, to see the next."""

    mail: str | None
    external_user_state: str | None
    user_type: str | None
    deleted: bool
    limit: int
    after: str | None

    @property
    def fetch(self) -> int:
        return self.limit + 1


@dataclass(frozen=True, slots=True)
class Assignment:
    """A checked ``appRoleAssignment``: its keys and its JSON text."""

    id: str
    principal_id: str
    principal_type: str
    resource_id: str
    app_role_id: str
    doc: str


MAX_USER_IDS = 1000


def check_user_ids(user_ids: Sequence[str]) -> list[str]:
    """``get_users``'s ids, each once, in their first order: at most ``MAX_USER_IDS`` non-empty strings."""
    if isinstance(user_ids, str):
        raise TypeError("user_ids is a sequence of ids, not one string")
    unique = list(dict.fromkeys(user_ids))
    if len(unique) > MAX_USER_IDS:
        raise ValueError(f"at most {MAX_USER_IDS} user ids a call, got {len(unique)}")
    for user_id in unique:
        check_text("user id", user_id)
    return unique


def check_page(limit: int, after: str | None) -> None:
    """``limit`` an int in 1..``MAX_PAGE``; ``after`` None or a cursor (a non-empty string)."""
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise TypeError(f"limit must be an int, got {type(limit).__name__}")
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be between 1 and {MAX_PAGE}, got {limit}")
    if after is not None:
        check_text("after (page cursor)", after)


def check_user_query(
    mail: str | None,
    external_user_state: str | None,
    user_type: str | None,
    deleted: bool,
    limit: int,
    after: str | None,
) -> UserQuery:
    """A ``list_users`` request; ``mail`` comes back lower-cased (the mail index's form)."""
    for what, value in (
        ("mail", mail),
        ("external_user_state", external_user_state),
        ("user_type", user_type),
    ):
        if value is not None:
            check_text(what, value)
    if not isinstance(deleted, bool):
        raise TypeError(f"deleted must be a bool, got {type(deleted).__name__}")
    check_page(limit, after)
    return UserQuery(
        None if mail is None else mail.lower(), external_user_state, user_type, deleted, limit, after
    )


def page_of(found: list[tuple[str, JSON]], limit: int) -> tuple[list[JSON], str | None]:
    """``(id, object)`` pairs in id order, up to ``limit + 1`` of them -> the page and the next
    cursor (the page's last id when more were found, else None)."""
    page = found[:limit]
    more = len(found) > limit
    return [item for _, item in page], (page[-1][0] if more and page else None)


def check_epoch(what: str, value: int) -> int:
    """Whole epoch seconds between 0 and the end of year 9999."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int number of epoch seconds, got {type(value).__name__}")
    if not 0 <= value <= MAX_EPOCH:
        raise ValueError(f"{what} must be between 0 and {MAX_EPOCH} epoch seconds, got {value}")
    return value


def graph_time(epoch: int) -> str:
    """Epoch seconds as Graph's UTC ``DateTimeOffset``: ``%Y-%m-%dT%H:%M:%SZ``."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def deleted_view(user: JSON, deleted_at: int) -> JSON:
    """What callers see of a soft-deleted user: ``deletedDateTime`` set, sign-in disabled."""
    return {**user, "deletedDateTime": graph_time(deleted_at), "accountEnabled": False}


def _object_text(what: str, value: JSON) -> str:
    text = encode(what, value)
    if len(text) > MAX_OBJECT_CHARS:
        raise ValueError(f"{what} is larger than {MAX_OBJECT_CHARS} characters of JSON")
    return text


def check_group(group: JSON) -> tuple[str, str]:
    """A Graph ``group`` -> its id and JSON text. ``id`` and ``displayName`` are required
    non-empty strings; the other ``GROUP_FIELDS``, when present, have their kind and length."""
    if not isinstance(group, dict):
        raise TypeError(f"group must be a JSON object (dict), got {type(group).__name__}")
    group_id: Any = group.get("id")
    check_text("group['id']", group_id)
    for name, required, kind, longest in GROUP_FIELDS:
        what = f"group[{name!r}]"
        if name not in group:
            if required:
                raise ValueError(f"{what} is required")
            continue
        value: Any = group[name]
        if kind == "bool":
            if not isinstance(value, bool):
                raise TypeError(f"{what} must be true or false, got {type(value).__name__}")
            continue
        if value is None and kind == "optional-string":
            continue
        if not isinstance(value, str):
            raise TypeError(f"{what} must be a string, got {type(value).__name__}")
        if kind == "text" and not value:
            raise ValueError(f"{what} must not be empty")
        if len(value) > longest:
            raise ValueError(f"{what} is longer than {longest} characters")
    return cast(str, group_id), _object_text("group", group)


def check_assignment(assignment: JSON) -> Assignment:
    """A Graph ``appRoleAssignment``: non-empty string ``id``, ``appRoleId``, ``principalId`` and
    ``resourceId``; ``principalType`` ``User`` or ``Group``."""
    if not isinstance(assignment, dict):
        raise TypeError(f"app role assignment must be a JSON object (dict), got {type(assignment).__name__}")
    fields: dict[str, str] = {}
    for name in ("id", "appRoleId", "principalId", "resourceId"):
        value: Any = assignment.get(name)
        check_text(f"appRoleAssignment[{name!r}]", value)
        fields[name] = value
    principal_type: Any = assignment.get("principalType")
    if principal_type not in PRINCIPAL_TYPES:
        raise ValueError(
            f"appRoleAssignment['principalType'] must be one of {', '.join(PRINCIPAL_TYPES)}, "
            f"got {principal_type!r}"
        )
    created: Any = assignment.get("createdDateTime")
    if created is not None and not isinstance(created, str):
        raise TypeError(
            f"appRoleAssignment['createdDateTime'] must be a string, got {type(created).__name__}"
        )
    return Assignment(
        id=fields["id"],
        principal_id=fields["principalId"],
        principal_type=principal_type,
        resource_id=fields["resourceId"],
        app_role_id=fields["appRoleId"],
        doc=_object_text("app role assignment", assignment),
    )


def check_link(what: str, container_id: str, user_id: str) -> None:
    """The ids of a membership / ownership: ``what`` names the container (``group``, ``app``)."""
    check_text(f"{what} id", container_id)
    check_text("user id", user_id)
