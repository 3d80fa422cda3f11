"""Graph views of stored objects: what the admin API shows of a user.

Only the ``user`` properties the API documents (``models.UserOut``) leave the store; anything else a
stored object holds (internal fields added by other parts of the gateway) is never shown.
"""

from __future__ import annotations

import re
from typing import Any

from gateway.admin.errors import ApiError
from gateway.admin.models import UUID_PATTERN, UserOut
from gateway.runtime import Runtime

USER_PROPERTIES = tuple(UserOut.model_fields)


def graph_user(user: dict[str, Any]) -> dict[str, Any]:
    return {name: user[name] for name in USER_PROPERTIES if name in user}


_UUID = re.compile(UUID_PATTERN)


def reference_id(rt: Runtime, value: str) -> str:
    """The user id an ``@odata.id`` reference names (``{issuer}/v1.0/directoryObjects|users/<uuid>``)."""
    for prefix in ("directoryObjects", "users"):
        base = f"{rt.settings.issuer}/v1.0/{prefix}/"
        if value.startswith(base) and _UUID.match(value[len(base) :]):
            return value[len(base) :]
    raise ApiError(
        400, "invalid_reference",
        f"@odata.id must be {rt.settings.issuer}/v1.0/directoryObjects/<user id>.",
    )  # fmt: skip
