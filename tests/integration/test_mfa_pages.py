"""The MFA and terms-of-use pages of the sign-in, driven over HTTP as a browser would.

A conditional-access policy asks for MFA (and/or terms) at the demo app; a passcode guest (never
trusted for MFA) signs in, the policy step sends the browser to ``/signin/{id}/mfa`` or ``/terms``.
Codes are computed from the secret the registration page shows, at the gateway's clock. Every
refusal is shown to persist nothing: no method, no acceptance, ``local_mfa_at`` unset.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.mfa import totp
from gateway.mfa.methods import ENROLMENT, METHODS_KEY
from gateway.runtime import Runtime
from gateway.signin import transaction
from gateway.signin.transaction import SignIn
from tests.support import flows
from tests.support.assertions import Clock
from tests.support.gateway_app import make_settings, running_app
from tests.support.smtp_server import SmtpServer, extract_passcode

EMAIL = "guest@fabrikam.example"
TERMS = {
    "id": "guest-terms",
    "display_name": "Guest terms",
    "url": "https://contoso.example/terms",
    "version": "2026-01",
}
SECRET_ON_PAGE = re.compile(r'<code id="secret" class="secret">([A-Z2-7 ]+)</code>')


def policy(policy_id: str, *, mfa: bool = False, terms: bool = False) -> dict[str, Any]:
    return {
        "id": policy_id,
        "display_name": policy_id,
        "state": "enabled",
        "conditions": {
            "users": {"include_users": ["All"]},
            "applications": {"include_applications": ["All"]},
        },
        "grant_controls": {
            "operator": "AND",
            "built_in_controls": ["mfa"] if mfa else [],
            "terms_of_use": [TERMS["id"]] if terms else [],
        },
    }


@dataclass
class Gateway:
    app: Any
    client: httpx.AsyncClient
    clock: Clock
    smtp: SmtpServer

    @property
    def rt(self) -> Runtime:
        runtime: Runtime = self.app.state.runtime
        return runtime

    def browser(self) -> httpx.AsyncClient:
        """Another browser: no cookies of ``client``."""
        return httpx.AsyncClient(transport=self.app.state.demo_transport, base_url=self.rt.settings.issuer)

    async def to_step(
        self, step: str, client: httpx.AsyncClient | None = None, email: str = EMAIL
    ) -> tuple[flows.AuthRequest, str]:
        """A passcode sign-in to the demo app up to the policy step's redirect to ``step``."""
        client = client or self.client
        req = flows.AuthRequest()
        path = await flows.start(client, req)
        sent = await flows.submit_email(client, path, email)
        assert sent.status_code == 200, sent.text  # the passcode page
        done = await flows.submit_passcode(client, path, extract_passcode(await self.smtp.wait_for(to=email)))
        assert done.status_code == 303 and done.headers["location"] == f"{path}/{step}", done.text
        return req, path

    async def signin(self, path: str) -> SignIn:
        found = await transaction.load(self.rt.store, path.rsplit("/", 1)[-1])
        assert found is not None
        return found

    async def user(self, email: str = EMAIL) -> dict[str, Any]:
        [found] = await self.rt.store.find_users_by_mail(email)
        return found

    def code(self, secret: str, offset: int = 0) -> str:
        return totp.code_at(secret, totp.time_step(self.rt.now()) + offset)


@asynccontextmanager
async def gateway_with(tmp_path: Path, smtp: SmtpServer, *policies: dict[str, Any]) -> AsyncIterator[Gateway]:
    settings = make_settings(
        tmp_path,
        smtp,
        passcode={"resend_interval_seconds": 0, "max_sends_per_address_per_hour": 100},
        terms_of_use=[TERMS],
        conditional_access=list(policies),
    )
    clock = Clock()
    async with running_app(settings, clock=clock) as (app, client):
        yield Gateway(app, client, clock, smtp)


@pytest.fixture
async def gw(tmp_path: Path, smtp_server: SmtpServer) -> AsyncIterator[Gateway]:
    async with gateway_with(tmp_path, smtp_server, policy("mfa", mfa=True)) as running:
        yield running


@pytest.fixture
def audit_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="gateway.audit")
    return caplog


def audit_records(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "gateway.audit"]


def secret_of(page: httpx.Response) -> str:
    match = SECRET_ON_PAGE.search(page.text)
    assert match, page.text[:500]
    return match.group(1).replace(" ", "")


async def submit(client: httpx.AsyncClient, path: str, step: str, **fields: str) -> httpx.Response:
    page = await client.get(f"{path}/{step}")
    assert page.status_code == 200, page.text
    return await client.post(f"{path}/{step}", data={"csrf": flows.csrf_of(page), **fields})


def assert_page_headers(response: httpx.Response) -> None:
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp and "frame-ancestors 'none'" in csp
    assert "form-action 'self' http://127.0.0.1:8000" in csp  # the app's callback, where the code goes
    assert response.headers["cache-control"] == "no-store"
    assert "<script" not in response.text and "style=" not in response.text


async def register(
    gw: Gateway, path: str, client: httpx.AsyncClient | None = None
) -> tuple[str, httpx.Response]:
    """Register from the page's secret; returns the secret and the POST's response."""
    client = client or gw.client
    page = await client.get(f"{path}/mfa")
    secret = secret_of(page)
    done = await client.post(f"{path}/mfa", data={"csrf": flows.csrf_of(page), "code": gw.code(secret)})
    return secret, done


async def id_token_claims(gw: Gateway, req: flows.AuthRequest, location: str) -> dict[str, Any]:
    query = flows.query_of(location)
    assert query["state"] == req.state
    tokens = await flows.exchange(gw.client, req, query["code"])
    assert tokens.status_code == 200, tokens.text
    payload = tokens.json()["id_token"].split(".")[
        1
    ]  # minted by this gateway; signatures are tested elsewhere
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return claims


# -- registration --------------------------------------------------------------------------------


async def test_the_registration_page_shows_a_qr_code_and_the_secret(gw: Gateway) -> None:
    _, path = await gw.to_step("mfa")
    page = await gw.client.get(f"{path}/mfa")
    assert page.status_code == 200
    assert_page_headers(page)
    assert re.search(r'<figure class="qr" role="img" aria-label="[^"]+">\s*<svg ', page.text)
    secret = secret_of(page)
    assert totp.is_secret(secret)
    link = re.search(r'<a id="otpauth" href="([^"]+)"', page.text)
    assert link and link.group(1).replace("&amp;", "&").startswith(
        f"otpauth://totp/Contoso:{EMAIL}?secret={secret}&issuer=Contoso"
    )
    field = re.search(r'<input id="code"[^>]*>', page.text, re.S)
    assert field is not None
    for attribute in ('autocomplete="one-time-code"', 'inputmode="numeric"', 'name="code"', "required"):
        assert attribute in field.group(0)
    assert '<label for="code">' in page.text
    # A reload shows the same secret; the store holds it sealed only.
    assert secret_of(await gw.client.get(f"{path}/mfa")) == secret
    user = await gw.user()
    offer = await gw.rt.store.get(ENROLMENT, f"{path.rsplit('/', 1)[-1]}:{user['id']}")
    assert offer is not None and secret not in json.dumps(offer)


async def test_a_right_code_registers_the_app_and_signs_in_with_mfa(gw: Gateway) -> None:
    req, path = await gw.to_step("mfa")
    secret, done = await register(gw, path)
    assert done.status_code == 303, done.text
    assert done.headers["location"].startswith(flows.DEMO_REDIRECT + "?")
    user = await gw.user()
    [method] = user[METHODS_KEY]
    assert set(method) == {"id", "createdDateTime", "secret"}
    assert secret not in json.dumps(user)  # sealed at rest
    assert gw.rt.box.unseal("totp", method["secret"]).decode() == secret
    assert await gw.rt.store.get(ENROLMENT, f"{path.rsplit('/', 1)[-1]}:{user['id']}") is None
    claims = await id_token_claims(gw, req, done.headers["location"])
    assert "mfa" in claims["amr"]


async def test_a_wrong_code_is_refused_on_the_same_page_and_saves_nothing(
    gw: Gateway, audit_log: pytest.LogCaptureFixture
) -> None:
    _, path = await gw.to_step("mfa")
    page = await gw.client.get(f"{path}/mfa")
    secret = secret_of(page)
    window = {gw.code(secret, d) for d in (-1, 0, 1)}
    wrong = next(f"{n:06d}" for n in range(1_000_000) if f"{n:06d}" not in window)
    audit_log.clear()
    refused = await gw.client.post(f"{path}/mfa", data={"csrf": flows.csrf_of(page), "code": wrong})
    assert refused.status_code == 400
    assert_page_headers(refused)
    assert 'role="alert" id="error"' in refused.text and "That code is not right" in refused.text
    assert 'aria-invalid="true" aria-describedby="error"' in refused.text
    assert secret_of(refused) == secret  # the same registration, shown again
    assert METHODS_KEY not in await gw.user()
    assert (await gw.signin(path)).local_mfa_at is None
    [record] = audit_records(audit_log)
    assert (record["result"], record["reason"]) == ("failure", "mfa_code_invalid")
    assert record["decisions"][-1] == {"step": "mfa", "outcome": "failed", "reason": "mfa_code_invalid"}


async def test_a_registration_whose_offer_expired_starts_over_without_counting(gw: Gateway) -> None:
    _, path = await gw.to_step("mfa")
    page = await gw.client.get(f"{path}/mfa")
    secret = secret_of(page)
    user = await gw.user()
    await gw.rt.store.delete(ENROLMENT, f"{path.rsplit('/', 1)[-1]}:{user['id']}")
    again = await gw.client.post(f"{path}/mfa", data={"csrf": flows.csrf_of(page), "code": gw.code(secret)})
    assert again.status_code == 303 and again.headers["location"] == f"{path}/mfa"
    assert METHODS_KEY not in await gw.user()
    assert (await gw.signin(path)).local_mfa_at is None
    assert secret_of(await gw.client.get(f"{path}/mfa")) != secret  # a new offer
    assert await gw.rt.store.get("totp-attempt", f"{user['id']}:0") is None  # nothing counted


@pytest.mark.parametrize("typed", ["", "12345", "abcdef", "1234567", "\uff11\uff12\uff13\uff14\uff15\uff16"])
async def test_malformed_codes_are_refused(gw: Gateway, typed: str) -> None:
    _, path = await gw.to_step("mfa")
    refused = await submit(gw.client, path, "mfa", code=typed)
    assert refused.status_code == 400 and "That code is not right" in refused.text
    assert METHODS_KEY not in await gw.user()
    assert (await gw.signin(path)).local_mfa_at is None


# -- verification, replay, attempts --------------------------------------------------------------


async def test_the_next_sign_in_asks_for_a_code_and_accepts_a_fresh_one(gw: Gateway) -> None:
    _, first = await gw.to_step("mfa")
    secret, done = await register(gw, first)
    assert done.status_code == 303
    other = gw.browser()
    async with other:
        _, path = await gw.to_step("mfa", other)
        page = await other.get(f"{path}/mfa")
        assert page.status_code == 200
        assert_page_headers(page)
        assert "<svg" not in page.text and 'id="secret"' not in page.text  # no second registration
        assert 'autocomplete="one-time-code"' in page.text and 'inputmode="numeric"' in page.text
        gw.clock.advance(totp.PERIOD)  # the registration's code is spent: wait for the next one
        accepted = await other.post(
            f"{path}/mfa", data={"csrf": flows.csrf_of(page), "code": gw.code(secret)}
        )
        assert accepted.status_code == 303 and accepted.headers["location"].startswith(flows.DEMO_REDIRECT)
    assert len((await gw.user())[METHODS_KEY]) == 1


async def test_a_used_code_is_refused_in_another_sign_in(
    gw: Gateway, audit_log: pytest.LogCaptureFixture
) -> None:
    _, first = await gw.to_step("mfa")
    secret, done = await register(gw, first)
    assert done.status_code == 303
    other = gw.browser()
    async with other:
        _, path = await gw.to_step("mfa", other)
        audit_log.clear()
        replayed = await submit(other, path, "mfa", code=gw.code(secret))
        assert replayed.status_code == 400 and "That code was used already" in replayed.text
        assert (await gw.signin(path)).local_mfa_at is None
    [record] = audit_records(audit_log)
    assert record["reason"] == "mfa_code_reused"


async def test_the_sixth_attempt_is_refused_with_retry_after_whatever_the_sign_in(
    gw: Gateway, audit_log: pytest.LogCaptureFixture
) -> None:
    _, first = await gw.to_step("mfa")
    secret, done = await register(gw, first)
    assert done.status_code == 303
    window = {gw.code(secret, d) for d in (-1, 0, 1, 2)}
    wrong = next(f"{n:06d}" for n in range(1_000_000) if f"{n:06d}" not in window)
    browsers = [gw.browser(), gw.browser()]
    paths = [(await gw.to_step("mfa", b))[1] for b in browsers]
    for attempt in range(5):  # spread over two sign-ins: the limit is the user's
        browser, path = browsers[attempt % 2], paths[attempt % 2]
        assert (await submit(browser, path, "mfa", code=wrong)).status_code == 400
    before = await gw.user()
    audit_log.clear()
    gw.clock.advance(totp.PERIOD)
    refused = await submit(browsers[0], paths[0], "mfa", code=gw.code(secret))  # right, but unchecked
    assert refused.status_code == 429
    retry = int(refused.headers["retry-after"])
    assert 15 * 60 - 60 <= retry <= 15 * 60
    assert "Too many wrong codes" in refused.text and "15 minutes" in refused.text
    assert await gw.user() == before
    assert (await gw.signin(paths[0])).local_mfa_at is None
    [record] = audit_records(audit_log)
    assert record["reason"] == "mfa_attempts_exceeded"
    assert record["decisions"][-1]["outcome"] == "refused"
    for browser in browsers:
        await browser.aclose()


# -- what the pages refuse -----------------------------------------------------------------------


async def test_a_sign_in_that_needs_no_mfa_has_no_mfa_page(tmp_path: Path, smtp_server: SmtpServer) -> None:
    async with gateway_with(tmp_path, smtp_server, policy("terms", terms=True)) as gw:
        _, path = await gw.to_step("terms")
        page = await gw.client.get(f"{path}/mfa")
        assert page.status_code == 400 and "not part of your sign-in" in page.text
        refused = await gw.client.post(f"{path}/mfa", data={"csrf": "x", "code": "123456"})
        assert refused.status_code == 400
        assert (await gw.signin(path)).local_mfa_at is None
        # Nor before the policy step asked for anything.
        fresh = await flows.start(gw.client, flows.AuthRequest())
        assert (await gw.client.get(f"{fresh}/mfa")).status_code == 400
        assert (await gw.client.get(f"{fresh}/terms")).status_code == 400


async def test_another_browser_is_refused(gw: Gateway) -> None:
    _, path = await gw.to_step("mfa")
    page = await gw.client.get(f"{path}/mfa")
    stranger = gw.browser()
    async with stranger:
        assert (await stranger.get(f"{path}/mfa")).status_code == 403
        posted = await stranger.post(f"{path}/mfa", data={"csrf": flows.csrf_of(page), "code": "123456"})
        assert posted.status_code == 403
    assert METHODS_KEY not in await gw.user()
    assert (await gw.signin(path)).local_mfa_at is None


@pytest.mark.parametrize("csrf", ["", "forged", "x" * 200], ids=["missing", "forged", "long"])
async def test_a_bad_csrf_token_is_refused_before_the_code_is_checked(gw: Gateway, csrf: str) -> None:
    _, path = await gw.to_step("mfa")
    secret = secret_of(await gw.client.get(f"{path}/mfa"))
    data = {"code": gw.code(secret)} | ({"csrf": csrf} if csrf else {})
    refused = await gw.client.post(f"{path}/mfa", data=data)
    assert refused.status_code == 403
    assert METHODS_KEY not in await gw.user()
    assert (await gw.signin(path)).local_mfa_at is None
    # The code was not spent: it still registers.
    ok = await submit(gw.client, path, "mfa", code=gw.code(secret))
    assert ok.status_code == 303


async def test_an_unknown_or_expired_sign_in_is_refused(gw: Gateway) -> None:
    assert (await gw.client.get("/signin/unknown-id/mfa")).status_code == 400
    assert (await gw.client.get(f"/signin/{'x' * 80}/terms")).status_code == 400
    _, path = await gw.to_step("mfa")
    page = await gw.client.get(f"{path}/mfa")
    secret = secret_of(page)
    gw.clock.advance(gw.rt.settings.tokens.signin_seconds + 1)
    expired = await gw.client.post(f"{path}/mfa", data={"csrf": flows.csrf_of(page), "code": gw.code(secret)})
    assert expired.status_code == 400 and "expired" in expired.text
    assert METHODS_KEY not in await gw.user()


async def test_a_user_deleted_meanwhile_is_refused(gw: Gateway) -> None:
    _, path = await gw.to_step("mfa")
    page = await gw.client.get(f"{path}/mfa")
    secret = secret_of(page)
    user = await gw.user()
    assert await gw.rt.store.soft_delete_user(user["id"], gw.rt.now()) is not None
    refused = await gw.client.post(f"{path}/mfa", data={"csrf": flows.csrf_of(page), "code": gw.code(secret)})
    assert refused.status_code == 403
    assert await transaction.load(gw.rt.store, path.rsplit("/", 1)[-1]) is None  # the sign-in ended
    deleted = await gw.rt.store.get_deleted_user(user["id"])
    assert deleted is not None and METHODS_KEY not in deleted


# -- terms of use --------------------------------------------------------------------------------


async def test_terms_are_accepted_once_per_version(tmp_path: Path, smtp_server: SmtpServer) -> None:
    async with gateway_with(tmp_path, smtp_server, policy("terms", terms=True)) as gw:
        _, path = await gw.to_step("terms")
        page = await gw.client.get(f"{path}/terms")
        assert page.status_code == 200
        assert_page_headers(page)
        box = re.search(
            r'<input type="checkbox" name="accept_guest-terms" id="accept-guest-terms"[^>]*>', page.text
        )
        assert box and f'value="{TERMS["version"]}"' in box.group(0)
        assert '<label for="accept-guest-terms">' in page.text and f'href="{TERMS["url"]}"' in page.text
        accepted = await gw.client.post(
            f"{path}/terms",
            data={"csrf": flows.csrf_of(page), "decision": "accept", "accept_guest-terms": TERMS["version"]},
        )
        assert accepted.status_code == 303 and accepted.headers["location"].startswith(flows.DEMO_REDIRECT)
        entry = (await gw.user())["termsOfUseAcceptances"]["guest-terms"]
        assert entry["version"] == TERMS["version"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", entry["acceptedDateTime"])
        # The next sign-in (another browser: no SSO) goes straight to the app.
        other = gw.browser()
        async with other:
            req = flows.AuthRequest()
            start = await flows.start(other, req)
            assert (await flows.submit_email(other, start, EMAIL)).status_code == 200
            code = extract_passcode(await gw.smtp.wait_for(to=EMAIL))
            done = await flows.submit_passcode(other, start, code)
            assert done.status_code == 303 and done.headers["location"].startswith(flows.DEMO_REDIRECT)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"decision": "accept"}, "tick the box to accept Guest terms"),
        ({"decision": "accept", "accept_guest-terms": "2025-01"}, "Guest terms changed"),
    ],
    ids=["unticked", "old-version"],
)
async def test_terms_not_ticked_are_asked_again_and_nothing_is_recorded(
    tmp_path: Path, smtp_server: SmtpServer, fields: dict[str, str], message: str
) -> None:
    async with gateway_with(tmp_path, smtp_server, policy("terms", terms=True)) as gw:
        _, path = await gw.to_step("terms")
        refused = await submit(gw.client, path, "terms", **fields)
        assert refused.status_code == 400 and message in refused.text
        assert 'role="alert" id="error"' in refused.text
        assert "termsOfUseAcceptances" not in await gw.user()
        assert (await gw.signin(path)).required == [f"terms:{TERMS['id']}"]  # still waiting


async def test_declining_the_terms_ends_the_sign_in(
    tmp_path: Path, smtp_server: SmtpServer, audit_log: pytest.LogCaptureFixture
) -> None:
    async with gateway_with(tmp_path, smtp_server, policy("terms", terms=True)) as gw:
        _, path = await gw.to_step("terms")
        audit_log.clear()
        declined = await submit(gw.client, path, "terms", decision="decline")
        assert declined.status_code == 403 and "Guest terms" in declined.text
        assert "termsOfUseAcceptances" not in await gw.user()
        assert await transaction.load(gw.rt.store, path.rsplit("/", 1)[-1]) is None
        [record] = audit_records(audit_log)
        assert record["reason"] == "terms_declined"


async def test_mfa_comes_before_the_terms(tmp_path: Path, smtp_server: SmtpServer) -> None:
    async with gateway_with(tmp_path, smtp_server, policy("both", mfa=True, terms=True)) as gw:
        _, path = await gw.to_step("mfa")
        early = await gw.client.get(f"{path}/terms")
        assert early.status_code == 303 and early.headers["location"] == f"{path}/mfa"
        _, done = await register(gw, path)
        assert done.status_code == 303 and done.headers["location"] == f"{path}/terms"
        accepted = await submit(
            gw.client, path, "terms", decision="accept", **{"accept_guest-terms": "2026-01"}
        )
        assert accepted.status_code == 303 and accepted.headers["location"].startswith(flows.DEMO_REDIRECT)
        user = await gw.user()
        assert len(user[METHODS_KEY]) == 1 and "guest-terms" in user["termsOfUseAcceptances"]
