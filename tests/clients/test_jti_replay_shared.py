"""The client-assertion ``jti`` replay cache lives in the shared store: an assertion used at one
gateway instance is refused at another on the same SQLite file or the same Redis."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.clients.keys import assertion, form
from tests.clients.test_private_key_jwt import APPS, RS_KEY
from tests.support.assertions import assert_oauth_error
from tests.support.gateway_app import make_settings, running_app
from tests.support.smtp_server import SmtpServer


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
async def test_an_assertion_used_at_one_instance_is_refused_at_the_other(
    tmp_path: Path, smtp_server: SmtpServer, fresh_redis_url: str, backend: str
) -> None:
    overrides = {"applications": APPS}
    if backend == "redis":
        overrides["store"] = fresh_redis_url  # type: ignore[assignment]
    settings = make_settings(tmp_path, smtp_server, **overrides)
    token = assertion(RS_KEY, "rs")
    data = {"grant_type": "client_credentials", **form(token)}
    async with running_app(settings) as (_, first), running_app(settings) as (_, second):
        assert (await first.post("/oauth2/token", data=data)).status_code == 200
        replay = await second.post("/oauth2/token", data=data)
        assert_oauth_error(replay, "invalid_client", 401)
        fresh = await second.post("/oauth2/token", data={"grant_type": "client_credentials",
                                                        **form(assertion(RS_KEY, "rs"))})  # fmt: skip
        assert fresh.status_code == 200
