"""Checks of upstream URLs shared by the connectors: https everywhere, http only to a loopback host."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit


def is_loopback_host(host: str | None) -> bool:
    """``localhost`` or a loopback IP address (127.0.0.0/8, ::1), an IPv6 one with or without its
    URL brackets (``[::1]``)."""
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_problem(url: str, *, allow_query: bool = True) -> str | None:
    """Why ``url`` cannot be an upstream endpoint, or None when it can.

    Allowed: ``https://host...``, or ``http://`` to a loopback host; no user info, no
    fragment (and no query when ``allow_query`` is false, as for an issuer).
    """
    if any(ch.isspace() for ch in url):
        return "must not contain white space"
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return "is not a valid URL"
    if parts.scheme not in ("https", "http") or not host:
        return "must be an absolute https URL"
    if parts.scheme == "http" and not is_loopback_host(host):
        return "must use https (http is allowed only for a loopback host)"
    if "@" in parts.netloc:
        return "must not contain user information"
    if parts.fragment or url.endswith("#"):
        return "must not contain a fragment"
    if not allow_query and (parts.query or url.endswith("?")):
        return "must not contain a query"
    return None
