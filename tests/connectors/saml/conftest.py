"""Fixtures for the ``saml`` connector tests: a respx router, the harness, and response surgery."""

from __future__ import annotations

import base64
import copy
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import pytest
import respx
from lxml import etree

from idp_connectors.base import Callback, ConnectorError
from tests.support.saml_idp import ServiceProvider

NS = {
    "samlp": "urn:oasis:names:tc:SAML:2.0:protocol",
    "saml": "urn:oasis:names:tc:SAML:2.0:assertion",
    "ds": "http://www.w3.org/2000/09/xmldsig#",
    "xenc": "http://www.w3.org/2001/04/xmlenc#",
    "md": "urn:oasis:names:tc:SAML:2.0:metadata",
}


@pytest.fixture
async def router() -> AsyncIterator[respx.MockRouter]:
    async with respx.mock(assert_all_called=False) as mock:
        yield mock


@pytest.fixture
async def sp(router: respx.MockRouter) -> AsyncIterator[ServiceProvider]:
    harness = ServiceProvider(router)
    yield harness
    await harness.http.aclose()


def response_of(callback: Callback) -> bytes:
    return base64.b64decode(callback.params["SAMLResponse"])


def with_response(callback: Callback, xml: bytes | str) -> Callback:
    """``callback`` carrying another SAMLResponse document."""
    data = xml.encode("utf-8") if isinstance(xml, str) else xml
    params = {**callback.params, "SAMLResponse": base64.b64encode(data).decode("ascii")}
    return replace(callback, params=params)


def edited(callback: Callback, edit: Callable[[etree._Element], None]) -> Callback:
    """``callback`` with its (genuinely signed) Response parsed by plain lxml, edited, re-serialised."""
    root = etree.fromstring(response_of(callback))
    edit(root)
    return with_response(callback, etree.tostring(root))


def snapshot(sp: ServiceProvider) -> tuple[dict[Any, Any], dict[Any, Any]]:
    return copy.deepcopy(sp.state.entries), copy.deepcopy(sp.state.counters)


async def refused(sp: ServiceProvider, callback: Callback, code: str) -> ConnectorError:
    """``complete`` refuses with ``code`` and writes nothing; returns the error for further checks."""
    before = snapshot(sp)
    with pytest.raises(ConnectorError) as caught:
        await sp.connector.complete(callback)
    assert caught.value.code == code, (
        caught.value.code,
        getattr(caught.value, "detail", None),
        str(caught.value),
    )
    assert snapshot(sp) == before
    return caught.value


async def rejected(sp: ServiceProvider, callback: Callback, detail: str) -> None:
    """Refused by the XML layer (one generic message) with this ``detail``; nothing written."""
    error = await refused(sp, callback, "xml_rejected")
    assert getattr(error, "detail", None) == detail
    assert str(error) == "The identity provider's response could not be accepted."
