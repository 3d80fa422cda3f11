"""The Redis forms of the ``store:`` URL, parsed and turned into ``redis.asyncio`` clients.

Standalone (handed to ``redis.asyncio.Redis.from_url`` as it is)::

    redis://[[username]:password@]host[:port][/db]          rediss:// for TLS

Sentinel: the sentinels (default port 26379), the name of the monitored master, the database::

    redis+sentinel://[[username]:password@]host1[:port][,host2[:port]...]/service_name[/db]
        [?sentinel_username=NAME&sentinel_password=SECRET]   rediss+sentinel:// for TLS

The user information authenticates to the master (and replicas); ``sentinel_username`` /
``sentinel_password`` authenticate to the sentinels themselves when they require it. Every
connection of a ``rediss+sentinel`` URL (sentinels and master) uses TLS. The master is looked up
through the sentinels on every (re)connection, so a fail-over is followed.

Cluster: one or more seed nodes (default port 6379); the client discovers the rest::

    redis+cluster://[[username]:password@]host1[:port][,host2[:port]...][/0]
                                                             rediss+cluster:// for TLS

A cluster has database 0 only. Every script and transaction of the store touches one hash slot
(``redis.py`` documents the key scheme), so the store runs unchanged on a cluster.

Hosts may be names, IPv4 addresses or bracketed IPv6 addresses (``[::1]:26379``); user
information and values are percent-decoded. Anything else (unknown query options, a missing
service name, a bad port) is a ``ValueError`` that names the URL part and the expected form.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote

from redis.maint_notifications import MaintNotificationsConfig

SENTINEL_FORM = (
    "redis+sentinel://[[username]:password@]host1:26379[,host2:26379...]/service_name[/db]"
    "[?sentinel_password=...]"
)
CLUSTER_FORM = "redis+cluster://[[username]:password@]host1:6379[,host2:6379...]"
SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
SENTINEL_OPTIONS = ("sentinel_username", "sentinel_password")
TIMEOUT_SECONDS = 5.0
CONNECTION_OPTIONS: dict[str, Any] = {
    "socket_timeout": TIMEOUT_SECONDS,
    "socket_connect_timeout": TIMEOUT_SECONDS,
    "maint_notifications_config": MaintNotificationsConfig(enabled=False),
}
"""Every store client's: no command waits on Redis longer than ``TIMEOUT_SECONDS`` (the request
then gets a 503, ``gateway.unavailable``), and no command is retried by the client (a retried
``INCR`` or consume could apply twice). Maintenance notifications (a Redis Enterprise feature,
"auto" by default in redis-py) are off: while on, the pool skips its check that a pooled
connection is still open, so the first command after a Redis restart would fail on a connection
the server had closed; off, that connection is replaced before use."""
_HOST = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<name>[A-Za-z0-9._-]+))(?::(?P<port>[0-9]{1,5}))?$")
_SERVICE = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


@dataclass(frozen=True, slots=True)
class RedisTarget:
    """A parsed Sentinel or Cluster URL."""

    mode: str
    """``sentinel`` or ``cluster``."""
    tls: bool
    hosts: tuple[tuple[str, int], ...]
    username: str | None
    password: str | None
    service_name: str | None = None
    db: int = 0
    sentinel_username: str | None = None
    sentinel_password: str | None = None


def is_redis_url(url: str) -> bool:
    """True for every Redis form (standalone, Sentinel, Cluster, with or without TLS)."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    return scheme in ("redis", "rediss", *SENTINEL_SCHEMES, *CLUSTER_SCHEMES)


def _hosts(url: str, text: str, default_port: int, form: str) -> tuple[tuple[str, int], ...]:
    if not text:
        raise ValueError(f"store URL {redact(url)!r}: name at least one host, e.g. {form}")
    found: list[tuple[str, int]] = []
    for item in text.split(","):
        match = _HOST.match(item)
        if match is None:
            raise ValueError(f"store URL {redact(url)!r}: {item!r} is not host[:port]; use {form}")
        port = int(match["port"]) if match["port"] else default_port
        if not 1 <= port <= 65535:
            raise ValueError(f"store URL {redact(url)!r}: port {port} of {item!r} is not 1-65535")
        host = match["v6"] or match["name"]
        if (host, port) in found:
            raise ValueError(f"store URL {redact(url)!r}: {item!r} is listed twice")
        found.append((host, port))
    return tuple(found)


def redact(url: str) -> str:
    """``url`` fit to print or log: its user information (everything before the last ``@`` ahead of
    the query) and any ``password`` / ``sentinel_password`` query value replaced by ``***``. Also for
    malformed URLs (``redis:/:pw@host``, a ``/`` in an unencoded password), which error messages
    quote most often."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    head, question, query = rest.partition("?")
    if "@" in head:
        head = "***@" + head.rsplit("@", 1)[1]
    query = re.sub(r"((?:^|&)(?:sentinel_)?password=)[^&]*", r"\1***", query)
    return f"{scheme}{sep}{head}{question}{query}"


def parse_target(url: str) -> RedisTarget:
    """The parts of a ``redis[s]+sentinel://`` or ``redis[s]+cluster://`` URL (see the module
    docstring); ValueError naming the problem and the expected form."""
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in (*SENTINEL_SCHEMES, *CLUSTER_SCHEMES):
        raise ValueError(f"store URL {redact(url)!r} is neither a Sentinel nor a Cluster URL")
    sentinel = scheme in SENTINEL_SCHEMES
    form = SENTINEL_FORM if sentinel else CLUSTER_FORM
    if "#" in rest:
        raise ValueError(f"store URL {redact(url)!r}: a Redis URL takes no fragment")
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    username: str | None = None
    password: str | None = None
    if "@" in netloc:
        userinfo, netloc = netloc.rsplit("@", 1)
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
        if password == "":
            password = None
    hosts = _hosts(url, netloc, 26379 if sentinel else 6379, form)
    options = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=False)) if query else {}
    allowed = SENTINEL_OPTIONS if sentinel else ()
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        what = ", ".join(allowed) if allowed else "none"
        raise ValueError(f"store URL {redact(url)!r}: unknown option(s) {unknown}; allowed: {what}")
    segments = [unquote(part) for part in path.split("/")] if path else []
    if sentinel:
        if not segments or not segments[0]:
            raise ValueError(f"store URL {redact(url)!r}: name the master after the hosts, e.g. {form}")
        if not _SERVICE.match(segments[0]):
            raise ValueError(f"store URL {redact(url)!r}: master name {segments[0]!r} is not valid")
        if len(segments) > 2:
            raise ValueError(f"store URL {redact(url)!r}: the path is /service_name[/db]; use {form}")
        db = _db(url, segments[1] if len(segments) == 2 else "")
        return RedisTarget(
            "sentinel", scheme.startswith("rediss"), hosts, username, password, segments[0], db,
            options.get("sentinel_username") or None, options.get("sentinel_password") or None,
        )  # fmt: skip
    if len(segments) > 1 or (segments and segments[0] not in ("", "0")):
        raise ValueError(f"store URL {redact(url)!r}: a Redis Cluster has database 0 only; use {form}")
    return RedisTarget("cluster", scheme.startswith("rediss"), hosts, username, password)


def _db(url: str, text: str) -> int:
    if text == "":
        return 0
    if not (text.isascii() and text.isdigit()) or int(text) > 15:
        raise ValueError(f"store URL {redact(url)!r}: database {text!r} is not a number from 0 to 15")
    return int(text)


def open_client(target: RedisTarget) -> tuple[Any, list[Any]]:
    """A ``decode_responses`` client for ``target`` (the Sentinel-managed master, or a cluster
    client) and the other clients to close with it (the sentinels'). Nothing connects until the
    first command."""
    options: dict[str, Any] = {
        "username": target.username,
        "password": target.password,
        **CONNECTION_OPTIONS,
        "ssl": target.tls,
    }
    if target.mode == "cluster":
        from redis.asyncio.cluster import ClusterNode, RedisCluster

        nodes = [ClusterNode(host, port) for host, port in target.hosts]
        return RedisCluster(startup_nodes=nodes, decode_responses=True, **options), []
    from redis.asyncio.sentinel import Sentinel

    sentinel_kwargs: dict[str, Any] = {
        "socket_timeout": TIMEOUT_SECONDS,
        "socket_connect_timeout": TIMEOUT_SECONDS,
        "ssl": target.tls,
    }
    if target.sentinel_password is not None:
        sentinel_kwargs["password"] = target.sentinel_password
        sentinel_kwargs["username"] = target.sentinel_username
    manager: Any = Sentinel(list(target.hosts), sentinel_kwargs=sentinel_kwargs)  # type: ignore[no-untyped-call]
    master = manager.master_for(target.service_name or "", db=target.db, decode_responses=True, **options)
    return master, list(manager.sentinels)
