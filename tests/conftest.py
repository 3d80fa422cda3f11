"""Shared fixtures: real services (redis-server, an SMTP server) started for the test run."""

pytest_plugins = [
    "tests.support.redis_server",
    "tests.support.smtp_server",
]
