"""The store fixtures of ``tests/store`` (``backend``: SQLite and a real Redis) for the sign-in log
contract tests."""

from tests.store.conftest import backend, clock, redis_store, sqlite_store

__all__ = ["backend", "clock", "redis_store", "sqlite_store"]
