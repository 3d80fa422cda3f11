"""Argument checks and JSON encoding shared by both store backends.

Every backend runs these before it touches storage, so a bad argument fails with the same
clear ``ValueError``/``TypeError`` on SQLite and Redis, and nothing is written.
"""

from __future__ import annotations

import re
from typing import Any, cast

from gateway.jsontext import loads, strict_text
from gateway.store.base import JSON

KIND_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MAX_ID_LENGTH = 1024
MAX_TTL = 10 * 366 * 86400
SCHEMA_VERSION = 3  # 1: first release; 2: users indexed by mail; 3: soft delete, groups, app links
MAX_USER_MAILS = 250
_GOOD_KINDS: set[str] = set()  # kinds that passed ``check_key`` (bounded)


def check_key(kind: str, id: str) -> None:
    """``kind`` names a family (letters, digits, ``. _ -``); ``id`` is any non-empty string."""
    if not isinstance(kind, str) or kind not in _GOOD_KINDS:  # a handful of constants: each matched once
        if not isinstance(kind, str) or not KIND_PATTERN.fullmatch(kind):
            raise ValueError(
                f"artefact kind {kind!r} is invalid: use 1-64 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            )
        if len(_GOOD_KINDS) < 1024:
            _GOOD_KINDS.add(kind)
    check_text("artefact id", id)


def check_text(what: str, value: str) -> None:
    """A non-empty string of at most ``MAX_ID_LENGTH`` characters."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string, got {value!r}")
    if len(value) > MAX_ID_LENGTH:
        raise ValueError(f"{what} is longer than {MAX_ID_LENGTH} characters")


def check_seconds(what: str, seconds: int) -> None:
    """A whole number of seconds between 1 and ten years."""
    if isinstance(seconds, bool) or not isinstance(seconds, int):
        raise TypeError(f"{what} must be an int number of seconds, got {type(seconds).__name__}")
    if not 1 <= seconds <= MAX_TTL:
        raise ValueError(f"{what} must be between 1 and {MAX_TTL} seconds, got {seconds}")


def check_limit(limit: int) -> None:
    """A counter limit: a whole number, at least 0."""
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise TypeError(f"limit must be an int, got {type(limit).__name__}")
    if limit < 0:
        raise ValueError(f"limit must be at least 0, got {limit}")


def check_counted(kind: str, id: str, counter: str, counter_id: str | None, window: int, limit: int) -> str:
    """The arguments of ``consume_counted`` checked; the id the counter is kept under (``counter_id``,
    else the artefact's ``id``)."""
    check_key(kind, id)
    counted_id = id if counter_id is None else counter_id
    check_key(counter, counted_id)
    check_seconds("window", window)
    check_limit(limit)
    return counted_id


def check_grant(grant_id: str | None) -> None:
    if grant_id is not None:
        check_text("grant_id", grant_id)


def encode(what: str, value: JSON) -> str:
    """Compact JSON text of a JSON object; TypeError/ValueError for anything else (NaN included)."""
    if not isinstance(value, dict):
        raise TypeError(f"{what} must be a JSON object (dict), got {type(value).__name__}")
    try:
        return strict_text(value)  # orjson where it writes what json does (docs/adr/0010)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{what} is not JSON-serialisable: {exc}") from exc


def decode(text: str | bytes) -> JSON:
    return cast(JSON, loads(text))


def check_user(user: JSON) -> str:
    """The user's ``id``: a user object must carry a non-empty string ``id``, and no
    ``deletedDateTime`` (the store keeps the deletion state; see ``soft_delete_user``)."""
    if not isinstance(user, dict):
        raise TypeError(f"user must be a JSON object (dict), got {type(user).__name__}")
    user_id: Any = user.get("id")
    check_text("user['id']", user_id)
    if user.get("deletedDateTime") is not None:
        raise ValueError(
            "user['deletedDateTime'] is set by soft_delete_user and cleared by restore_user, "
            "not written with the user"
        )
    return cast(str, user_id)


def user_mails(user: JSON) -> list[str]:
    """The addresses a user is found by, lower-cased, deduplicated and sorted: ``mail`` and every
    ``otherMails`` entry. Each is absent/null or (for ``otherMails``) a list of non-empty strings
    of at most ``MAX_ID_LENGTH`` characters; at most ``MAX_USER_MAILS`` in all."""
    found: set[str] = set()
    mail: Any = user.get("mail")
    if mail is not None:
        check_text("user['mail']", mail)
        found.add(mail.lower())
    others: Any = user.get("otherMails")
    if others is not None:
        if not isinstance(others, list):
            raise TypeError(f"user['otherMails'] must be a list of strings, got {type(others).__name__}")
        if len(others) > MAX_USER_MAILS:
            raise ValueError(f"user['otherMails'] has more than {MAX_USER_MAILS} addresses")
        for index, other in enumerate(others):
            check_text(f"user['otherMails'][{index}]", other)
            found.add(other.lower())
    return sorted(found)


def check_mail(mail: str) -> str:
    """The lower-cased form of a looked-up address (a non-empty string)."""
    check_text("mail", mail)
    return mail.lower()


def check_identities(identities: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Non-empty ``(issuer, issuerAssignedId)`` string pairs, none repeated."""
    if not isinstance(identities, list | tuple):
        raise TypeError("identities must be a list of (issuer, issuer_assigned_id) pairs")
    pairs: list[tuple[str, str]] = []
    for item in identities:
        if not isinstance(item, list | tuple) or len(item) != 2:
            raise ValueError(f"identity {item!r} is not an (issuer, issuer_assigned_id) pair")
        issuer, assigned = item
        check_text("identity issuer", issuer)
        check_text("identity issuer_assigned_id", assigned)
        pair = (issuer, assigned)
        if pair in pairs:
            raise ValueError(f"identity {pair!r} is listed twice")
        pairs.append(pair)
    return pairs


def check_identity(issuer: str, issuer_assigned_id: str, identity: JSON) -> JSON:
    """A copy of the Graph ``objectIdentity`` linked under ``(issuer, issuer_assigned_id)``: a JSON
    object with a non-empty string ``signInType`` whose ``issuer`` and ``issuerAssignedId`` equal
    the pair's, so that the user document and the identities index never disagree."""
    check_text("identity issuer", issuer)
    check_text("identity issuer_assigned_id", issuer_assigned_id)
    entry = decode(encode("identity", identity))
    sign_in_type: Any = entry.get("signInType")
    check_text("identity['signInType']", sign_in_type)
    if entry.get("issuer") != issuer or entry.get("issuerAssignedId") != issuer_assigned_id:
        raise ValueError(
            f"identity {identity!r} does not name the pair ({issuer!r}, {issuer_assigned_id!r}): "
            "its 'issuer' and 'issuerAssignedId' must equal them"
        )
    return entry


def append_identity(user: JSON, identity: JSON) -> JSON:
    """A stored user document with ``identity`` appended to its ``identities`` (a new list when
    absent or null); TypeError when the stored ``identities`` is not a list."""
    found: Any = user.get("identities")
    if found is None:
        found = []
    elif not isinstance(found, list):
        raise TypeError(
            f"user {user.get('id')!r} has an 'identities' field that is not a list "
            f"({type(found).__name__}); fix that user's document"
        )
    return {**user, "identities": [*found, identity]}


def check_signing_key(record: JSON) -> str:
    """The record's ``kid``: a signing-key record must carry a non-empty string ``kid``."""
    if not isinstance(record, dict):
        raise TypeError(f"signing-key record must be a JSON object (dict), got {type(record).__name__}")
    kid: Any = record.get("kid")
    check_text("signing-key record['kid']", kid)
    return cast(str, kid)


def check_meta_value(value: str) -> None:
    if not isinstance(value, str):
        raise TypeError(f"meta value must be a string, got {type(value).__name__}")


def check_schema_version(found: str | None) -> int | None:
    """The stored schema version (None for a new store); refuses a schema written by a newer
    gateway or a value that is not ours."""
    if found is None:
        return None
    if not (found.isascii() and found.isdigit()):
        raise RuntimeError(f"store schema_version {found!r} is not a number; the store is not ours")
    if int(found) > SCHEMA_VERSION:
        raise RuntimeError(
            f"store schema_version {found} is newer than this gateway supports ({SCHEMA_VERSION}); "
            "upgrade the gateway"
        )
    return int(found)
