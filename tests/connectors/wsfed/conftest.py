"""Fixtures for the ``wsfed`` connector tests: a respx router and the connector wired to a test STS."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import respx

from tests.support.wsfed_sts import WsFedRelyingParty


@pytest.fixture
async def router() -> AsyncIterator[respx.MockRouter]:
    async with respx.mock(assert_all_called=False) as mock:
        yield mock


@pytest.fixture
async def rp(router: respx.MockRouter) -> AsyncIterator[WsFedRelyingParty]:
    harness = WsFedRelyingParty(router)
    yield harness
    await harness.http.aclose()
