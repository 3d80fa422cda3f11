"""The request being handled, in a context variable: its id (for logs, the audit record and the
``X-Request-Id`` response header), its ASGI scope and the app's observability hub."""

from __future__ import annotations

import os
import re
from collections.abc import MutableMapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.observability.hub import Hub

REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


@dataclass(slots=True)
class RequestContext:
    request_id: str
    scope: MutableMapping[str, Any]
    hub: Hub


CURRENT: ContextVar[RequestContext | None] = ContextVar("gateway_request", default=None)


def current() -> RequestContext | None:
    return CURRENT.get()


def request_id() -> str | None:
    """The id of the request being handled here, or None outside a request."""
    found = CURRENT.get()
    return None if found is None else found.request_id


def choose_request_id(offered: bytes | None, trusted: bool) -> str:
    """``offered`` (an incoming ``X-Request-Id``) when trusted and well-formed (<= 64 of
    ``[A-Za-z0-9._-]``), else a fresh random one (32 hex digits)."""
    if trusted and offered is not None and len(offered) <= 64:
        text = offered.decode("latin-1")
        if REQUEST_ID.match(text):
            return text
    return os.urandom(16).hex()  # ``secrets.token_hex(16)``, without its two Python-level calls
