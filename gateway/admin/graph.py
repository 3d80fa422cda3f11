"""Graph views of stored objects: what the admin API shows of a user.

Only the ``user`` properties the API documents (``models.UserOut``) leave the store; anything else a
stored object holds (internal fields added by other parts of the gateway) is never shown.
"""

from __future__ import annotations

from typing import Any

from gateway.admin.models import UserOut

USER_PROPERTIES = tuple(UserOut.model_fields)


def graph_user(user: dict[str, Any]) -> dict[str, Any]:
    return {name: user[name] for name in USER_PROPERTIES if name in user}
