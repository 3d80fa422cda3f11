from __future__ import annotations

import httpx

from tests.support import flows
from tests.support.smtp_server import SmtpServer


async def test_passcode_sign_in_end_to_end(client: httpx.AsyncClient, smtp_server: SmtpServer) -> None:
    _, tokens = await flows.signed_in_tokens(client, smtp_server, "guest@fabrikam.example")
    assert tokens["token_type"] == "Bearer"
    info = await client.get("/oauth2/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert info.status_code == 200, info.text
    assert info.json()["email"] == "guest@fabrikam.example"
