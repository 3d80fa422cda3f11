"""What the ``wsfed`` connector refuses about the callback itself, before any XML is read."""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from unittest import mock

import pytest

from idp_connectors.base import Callback, ConnectorError
from idp_connectors.wsfed import connector as connector_module
from idp_connectors.xmlsecurity.gate import parse_inbound
from tests.support.wsfed_sts import CALLBACK, WsFedRelyingParty


async def refused(rp: WsFedRelyingParty, callback: Callback, code: str) -> None:
    gate = mock.patch("idp_connectors.wsfed.connector.parse_inbound", wraps=parse_inbound)
    with gate as parse, pytest.raises(ConnectorError) as caught:
        await rp.connector.complete(callback)
    assert caught.value.code == code, f"{caught.value.code}: {caught.value}"
    assert str(caught.value)
    assert parse.call_count == 0  # refused before the XML was parsed
    rp.assert_nothing_persisted()


def with_params(callback: Callback, **changes: Any) -> Callback:
    params = {k: v for k, v in {**callback.params, **changes}.items() if v is not None}
    return replace(callback, params=params)


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"wa": None}, "wa_unsupported"),
        ({"wa": "wsignout1.0"}, "wa_unsupported"),
        ({"wresult": None}, "wresult_missing"),
        ({"wresult": ""}, "wresult_missing"),
        ({"wresult": "<" + "x" * 256 * 1024}, "wresult_too_large"),
        ({"wctx": None}, "wctx_mismatch"),
        ({"wctx": "another-sign-in"}, "wctx_mismatch"),
    ],
)
async def test_bad_callback_parameters(rp: WsFedRelyingParty, changes: dict[str, Any], code: str) -> None:
    await refused(rp, with_params(await rp.callback(), **changes), code)


async def test_another_wreply(rp: WsFedRelyingParty) -> None:
    callback = await rp.callback()
    await refused(
        rp, replace(callback, callback_url=CALLBACK.replace("fabrikam", "other")), "wreply_mismatch"
    )


@pytest.mark.parametrize(
    "state",
    [
        None,
        [],
        {},
        {"realm": "r", "issued_at": "1", "wreply": CALLBACK, "wctx": "x", "max_age": None},
        {"realm": "r", "issued_at": True, "wreply": CALLBACK, "wctx": "x", "max_age": None},
        {"realm": "", "issued_at": 1, "wreply": CALLBACK, "wctx": "x", "max_age": None},
        {"realm": "r", "issued_at": 1, "wreply": CALLBACK, "wctx": "x", "max_age": "60"},
    ],
)
async def test_unusable_state(rp: WsFedRelyingParty, state: Any) -> None:
    await refused(rp, replace(await rp.callback(), state=state), "invalid_state")


async def test_a_realm_changed_since_begin(rp: WsFedRelyingParty) -> None:
    callback = await rp.callback()
    rp.configure(realm="urn:contoso:new-realm")
    await refused(rp, callback, "invalid_state")


async def test_a_sign_in_that_took_too_long(rp: WsFedRelyingParty) -> None:
    callback = await rp.callback()
    rp.clock.advance(connector_module.STATE_LIFETIME_SECONDS + 1)
    await refused(rp, callback, "state_expired")
