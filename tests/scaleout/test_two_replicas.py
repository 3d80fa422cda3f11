"""Two ``gateway serve`` processes sharing one real Redis (same configuration, same secret) on
loopback: a passcode sign-in alternates between them request by request, and a key rotation made
with ``gateway keys rotate`` is published by both and verifies on both."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from ruamel.yaml import YAML

from gateway.cli import main
from tests.support.flows import AuthRequest, csrf_of, query_of, signin_path_of
from tests.support.live_server import LiveServer, live_server
from tests.support.smtp_server import SmtpServer, extract_passcode

pytestmark = pytest.mark.redis
KEY_REFRESH_WAIT_SECONDS = 40  # gateway.runtime.KEY_REFRESH_SECONDS (30) and a margin


@contextmanager
def two_replicas(tmp_path: Path, smtp: SmtpServer, redis_url: str) -> Iterator[tuple[LiveServer, LiveServer]]:
    overrides = {"store": redis_url, "keys": {"rotation_overlap_seconds": 1}}
    with live_server(tmp_path / "a", smtp=(smtp.host, smtp.port), overrides=overrides) as a:
        config: dict[str, Any] = YAML(typ="safe", pure=True).load(a.config_path.read_text())
        with live_server(tmp_path / "b", smtp=(smtp.host, smtp.port), overrides=config) as b:
            yield a, b


def on(server: LiveServer, url: str) -> str:
    """``url`` (a path or an absolute URL of the shared issuer) sent to ``server``."""
    parts = urlsplit(url)
    return f"{server.base_url}{parts.path}" + (f"?{parts.query}" if parts.query else "")


async def alternating_sign_in(
    client: httpx.AsyncClient, a: LiveServer, b: LiveServer, smtp: SmtpServer, email: str
) -> tuple[AuthRequest, dict[str, Any]]:
    req = AuthRequest(redirect_uri=f"{a.base_url}/demo/callback")
    path = signin_path_of(await client.get(on(a, f"/oauth2/authorize?{req.query()}")))
    page = await client.get(on(b, path))
    sent = await client.post(on(b, f"{path}/email"), data={"csrf": csrf_of(page), "email": email})
    assert sent.status_code == 200, sent.text  # the passcode page
    code = extract_passcode(await smtp.wait_for(to=email, timeout=10))
    page = await client.get(on(a, f"{path}/passcode"))
    done = await client.post(on(a, f"{path}/passcode"), data={"csrf": csrf_of(page), "passcode": code})
    assert done.status_code == 303, done.text
    query = query_of(done.headers["location"])
    data = {"grant_type": "authorization_code", "code": query["code"], "redirect_uri": req.redirect_uri,
            "client_id": req.client_id, "code_verifier": req.verifier}  # fmt: skip
    tokens = await client.post(on(b, "/oauth2/token"), data=data)
    assert tokens.status_code == 200, tokens.text
    return req, tokens.json()


async def kids(client: httpx.AsyncClient, server: LiveServer) -> set[str]:
    response = await client.get(on(server, "/oauth2/jwks"))
    return {key["kid"] for key in response.json()["keys"]}


async def test_a_sign_in_and_a_key_rotation_span_two_replicas(
    tmp_path: Path, smtp_server: SmtpServer, fresh_redis_url: str
) -> None:
    with two_replicas(tmp_path, smtp_server, fresh_redis_url) as (a, b):
        async with httpx.AsyncClient(timeout=10) as client:
            _, tokens = await alternating_sign_in(client, a, b, smtp_server, "guest@fabrikam.example")
            bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
            info = await client.get(on(a, "/oauth2/userinfo"), headers=bearer)
            assert info.status_code == 200, info.text
            sub = info.json()["sub"]
            assert (await client.get(on(b, "/oauth2/userinfo"), headers=bearer)).status_code == 200

            before = await kids(client, a)
            assert before == await kids(client, b)
            assert await asyncio.to_thread(main, ["keys", "rotate", "--config", str(a.config_path)]) == 0
            deadline = time.monotonic() + KEY_REFRESH_WAIT_SECONDS
            while True:  # each replica picks the new key up on its own refresh
                now_a, now_b = await kids(client, a), await kids(client, b)
                if len(now_a - before) == 1 and now_a == now_b:
                    break
                assert time.monotonic() < deadline, f"replicas did not publish the new key: {now_a}, {now_b}"
                await asyncio.sleep(1)
            new_kid = (now_a - before).pop()

            async with httpx.AsyncClient(timeout=10) as browser:  # a new browser: no SSO session
                _, tokens = await alternating_sign_in(browser, a, b, smtp_server, "second@fabrikam.example")
            header = tokens["id_token"].split(".")[0]
            import base64, json  # noqa: E401, I001 - local: only this check reads the JOSE header

            assert json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"] == new_kid
            bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
            subs = set()
            for server in (a, b):  # a token signed with the new key verifies on both
                info = await client.get(on(server, "/oauth2/userinfo"), headers=bearer)
                assert info.status_code == 200, info.text
                subs.add(info.json()["sub"])
            assert len(subs) == 1 and sub not in subs  # the second guest, the same on both replicas
