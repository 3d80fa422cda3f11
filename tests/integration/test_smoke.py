"""The whole passcode sign-in on each store backend: embedded SQLite and a real redis-server."""

from __future__ import annotations

from pathlib import Path

from gateway.settings.models import Settings
from tests.support import flows
from tests.support.gateway_app import make_settings, running_app
from tests.support.smtp_server import SmtpServer


async def sign_in_and_call_userinfo(settings: Settings, smtp_server: SmtpServer) -> None:
    async with running_app(settings) as (_, client):
        _, tokens = await flows.signed_in_tokens(client, smtp_server, "guest@fabrikam.example")
        assert tokens["token_type"] == "Bearer"
        info = await client.get(
            "/oauth2/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}
        )
        assert info.status_code == 200, info.text
        assert info.json()["email"] == "guest@fabrikam.example"
        again = await flows.exchange(client, flows.AuthRequest(), "not-a-code")
        assert again.status_code == 400


async def test_passcode_sign_in_on_sqlite(tmp_path: Path, smtp_server: SmtpServer) -> None:
    await sign_in_and_call_userinfo(make_settings(tmp_path, smtp_server), smtp_server)


async def test_passcode_sign_in_on_redis(
    tmp_path: Path, smtp_server: SmtpServer, fresh_redis_url: str
) -> None:
    await sign_in_and_call_userinfo(make_settings(tmp_path, smtp_server, store=fresh_redis_url), smtp_server)
