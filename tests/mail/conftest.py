"""Fixtures of the mail tests: outboxes stopped after each test, the ``gateway.mail`` log."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import pytest

from gateway.mail.outbox import SmtpOutbox
from gateway.mail.relay import RelayOutbox
from gateway.settings.models import Mail
from tests.mail.common import FAST

OutboxT = TypeVar("OutboxT", SmtpOutbox, RelayOutbox)


async def _outboxes(kind: type[OutboxT]) -> AsyncIterator[Callable[..., OutboxT]]:
    """A factory of ``kind`` outboxes (fast retries unless told), each stopped at the end."""
    made: list[OutboxT] = []

    def make(settings: Mail, **kw: Any) -> OutboxT:
        kw.setdefault("retry_delays", FAST)
        outbox = kind(settings, **kw)
        made.append(outbox)
        return outbox

    yield make
    for outbox in made:
        await outbox.stop()


@pytest.fixture(params=["thread", "relay"])
async def make_outbox(
    request: pytest.FixtureRequest,
) -> AsyncIterator[Callable[..., SmtpOutbox | RelayOutbox]]:
    """Each SMTP outbox: the relay process the gateway serves with, the thread the CLI uses."""
    factories = _outboxes(SmtpOutbox) if request.param == "thread" else _outboxes(RelayOutbox)
    async for make in factories:
        yield make


@pytest.fixture
async def make_thread_outbox() -> AsyncIterator[Callable[..., SmtpOutbox]]:
    """The thread outbox, for tests that look at its SMTP session from the inside."""
    async for make in _outboxes(SmtpOutbox):
        yield make


@pytest.fixture
async def make_relay() -> AsyncIterator[Callable[..., RelayOutbox]]:
    async for make in _outboxes(RelayOutbox):
        yield make


@pytest.fixture
def caplog_mail(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="gateway.mail")
    return caplog
