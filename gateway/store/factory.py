"""``open_store(url)``: the backend named by the ``store:`` URL of the configuration.

``sqlite:///var/gateway.db`` is a file relative to the working directory (its parent
directories are created), ``sqlite:////srv/gateway.db`` an absolute one; ``redis://`` and
``rediss://`` URLs go to Redis unchanged; ``redis+sentinel://`` and ``redis+cluster://`` (and
their ``rediss+`` TLS forms) to Redis through Sentinel or a Cluster (``redis_urls`` documents
them). The store is opened lazily: call ``migrate()`` before serving.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from gateway.store.base import Store
from gateway.store.redis_urls import CLUSTER_SCHEMES, SENTINEL_SCHEMES, parse_target, redact

SUPPORTED = (
    "sqlite:///relative/or/absolute/path.db, redis[s]://host:port/db, "
    "redis[s]+sentinel://host1:26379,host2:26379/service_name/db or redis[s]+cluster://host1:6379,host2:6379"
)


def sqlite_path(url: str) -> Path:
    """The database file named by a ``sqlite:///`` URL, resolved against the working directory."""
    parts = urlsplit(url)
    if parts.scheme != "sqlite" or not url.startswith("sqlite:///"):
        raise ValueError(f"store URL {url!r}: a SQLite URL has three slashes, e.g. sqlite:///var/gateway.db")
    if parts.query or parts.fragment:
        raise ValueError(f"store URL {url!r}: a SQLite URL takes no query or fragment")
    relative = unquote(url[len("sqlite:///") :])
    if not relative or relative.endswith("/"):
        raise ValueError(f"store URL {url!r}: name a database file, e.g. sqlite:///var/gateway.db")
    if relative == ":memory:":
        raise ValueError(
            f"store URL {url!r}: in-memory SQLite is not shared between workers; name a file instead"
        )
    return Path.cwd() / relative


def open_store(url: str) -> Store:
    """The store for ``url``; ValueError naming the supported forms for anything else."""
    if not isinstance(url, str):
        raise TypeError(f"store URL must be a string, got {type(url).__name__}")
    scheme = urlsplit(url).scheme.lower()
    if scheme == "sqlite":
        from gateway.store.sqlite import SQLiteStore

        path = sqlite_path(url)
        path.parent.mkdir(parents=True, exist_ok=True)
        return SQLiteStore(path)
    if scheme in ("redis", "rediss"):
        if not urlsplit(url).hostname:
            raise ValueError(f"store URL {redact(url)!r}: a Redis URL names a host, e.g. redis://127.0.0.1:6379/0")
        from gateway.store.redis import RedisStore

        return RedisStore.from_url(url)
    if scheme in SENTINEL_SCHEMES or scheme in CLUSTER_SCHEMES:
        parse_target(url)  # a bad URL fails here, with its message, before anything connects
        from gateway.store.redis import RedisStore

        return RedisStore.from_url(url)
    raise ValueError(f"store URL {redact(url)!r}: unsupported scheme {scheme or '(none)'!r}; use {SUPPORTED}")
