"""What the rest of the gateway reports: a sign-in audit record, tokens issued. Each goes to the
hub of the request being handled (``context``); outside a request (the CLI) nothing is counted."""

from __future__ import annotations

from typing import Any

from gateway.observability.context import CURRENT


def signin_recorded(record: dict[str, Any]) -> None:
    found = CURRENT.get()
    if found is not None:
        found.hub.signin(record)


def tokens_issued(app_id: str, *kinds: str) -> None:
    """``kinds``: ``id``, ``access``, ``refresh`` (OIDC) or ``saml`` (an assertion)."""
    found = CURRENT.get()
    if found is not None:
        found.hub.tokens(app_id, kinds)
