"""The email one-time passcode connector, against the in-memory state and a recording mailer."""

from __future__ import annotations

import asyncio
import re
import secrets

import pytest
from pydantic import ValidationError

from gateway.secrets import SecretBox
from idp_connectors.base import ConnectorContext, ConnectorError, MailMessage, UpstreamIdentity
from idp_connectors.email_otp.config import EmailOtpConfig, PasscodePolicy
from idp_connectors.email_otp.connector import (
    ATTEMPT_WINDOW_SECONDS,
    EmailOtpConnector,
    InvalidEmail,
    InvalidPasscode,
    PasscodeExpired,
    RateLimited,
    TooManyAttempts,
    normalise_email,
)
from idp_connectors.email_otp.messages import describe_duration, passcode_message
from tests.support.memory_state import ManualClock, MemoryState

NOW = 1_700_000_000
ADDRESS = "guest@fabrikam.example"


class RecordingMailer:
    def __init__(self) -> None:
        self.sent: list[MailMessage] = []

    def send(self, message: MailMessage) -> None:
        self.sent.append(message)


class Harness:
    def __init__(self, policy: PasscodePolicy | None = None, tenant_name: str = "Contoso") -> None:
        self.clock = ManualClock(NOW)
        self.state = MemoryState(self.clock)
        self.mail = RecordingMailer()
        self.box = SecretBox(["x" * 40])
        self.policy = policy or PasscodePolicy()
        ctx = ConnectorContext(
            state=self.state, mail=self.mail, keyed_hash=self.box.keyed_hash, tenant_name=tenant_name
        )
        self.connector = EmailOtpConnector(EmailOtpConfig(id="email", type="email_otp"), self.policy, ctx)

    def last_code(self) -> str:
        match = re.search(r"^ {4}([0-9]+)$", self.mail.sent[-1].text, re.MULTILINE)
        assert match is not None
        return match.group(1)

    async def send(self, challenge: str = "c1", email: str = ADDRESS, **kw: bool) -> str:
        await self.connector.send_passcode(challenge, email, **kw)
        return self.last_code() if kw.get("deliver", True) else ""

    async def verify(self, code: str, challenge: str = "c1", email: str = ADDRESS) -> UpstreamIdentity:
        return await self.connector.verify_passcode(challenge, email, code, NOW)

    def wrong(self, code: str) -> str:
        return f"{(int(code) + 1) % 10 ** len(code):0{len(code)}d}"


@pytest.fixture
def h() -> Harness:
    return Harness()


async def test_sends_eight_digits_by_default_and_signs_in(h: Harness) -> None:
    code = await h.send()
    assert re.fullmatch(r"[0-9]{8}", code)
    [message] = h.mail.sent
    assert message.to == ADDRESS
    assert message.subject == "Your Contoso sign-in code"
    identity = await h.verify(code)
    assert identity.connector_id == "email"
    assert identity.issuer == "mail"
    assert identity.subject == identity.email == ADDRESS
    assert identity.email_verified is True
    assert identity.amr == ("otp",)
    assert identity.acr is None
    assert identity.auth_time == NOW
    assert dict(identity.raw_claims) == {"email": ADDRESS}


async def test_length_follows_policy() -> None:
    h = Harness(PasscodePolicy(length=6))
    assert re.fullmatch(r"[0-9]{6}", await h.send())


async def test_codes_use_every_digit_including_leading_zeros() -> None:
    h = Harness(PasscodePolicy(resend_interval_seconds=0, max_sends_per_address_per_hour=1000))
    codes = [await h.send(challenge=f"c{i}") for i in range(60)]
    assert set("".join(codes)) == set("0123456789")
    assert len(set(codes)) == len(codes)


async def test_a_small_draw_is_zero_padded_to_the_full_length(monkeypatch: pytest.MonkeyPatch) -> None:
    drawn: list[int] = []

    def randbelow(limit: int) -> int:
        drawn.append(limit)
        return 42

    monkeypatch.setattr(secrets, "randbelow", randbelow)  # the module the connector draws from
    h = Harness(PasscodePolicy(length=6))
    assert await h.send() == "000042"
    assert drawn == [10**6]  # one uniform draw over every 6-digit code


async def test_address_is_normalised_for_mail_and_identity(h: Harness) -> None:
    code = await h.send(email="  Guest@Fabrikam.EXAMPLE ")
    assert h.mail.sent[0].to == ADDRESS
    identity = await h.verify(code, email="GUEST@fabrikam.example")
    assert identity.subject == ADDRESS


async def test_stored_value_is_a_keyed_hash_not_the_code(h: Harness) -> None:
    code = await h.send()
    stored = h.state.live("passcode")["c1"]
    assert code not in repr(stored)
    assert stored["hash"] == h.box.keyed_hash("passcode", f"c1:{code}")
    assert await h.state.ttl("passcode", "c1") == h.policy.validity_seconds
    assert stored["address"] == h.box.keyed_hash("passcode-address", ADDRESS)
    # The address is never a key in clear text, neither for artefacts nor for counters.
    keys = [key for _, key in [*h.state.entries, *h.state.counters]]
    assert keys and all(ADDRESS not in key for key in keys)


async def test_only_newest_passcode_is_valid_after_resend(h: Harness) -> None:
    first = await h.send()
    h.clock.advance(h.policy.resend_interval_seconds)
    second = await h.send()
    if first == second:
        pytest.skip("two identical random codes in a row")
    with pytest.raises(InvalidPasscode):
        await h.verify(first)
    assert (await h.verify(second)).email == ADDRESS


async def test_resend_too_soon_is_rate_limited_and_changes_nothing(h: Harness) -> None:
    await h.send()
    stored = h.state.live("passcode")["c1"]
    h.clock.advance(20)
    with pytest.raises(RateLimited) as caught:
        await h.connector.send_passcode("c1", ADDRESS)
    assert caught.value.code == "rate_limited"
    assert caught.value.retry_after == h.policy.resend_interval_seconds - 20
    assert h.state.live("passcode") == {"c1": stored}
    assert len(h.mail.sent) == 1
    # Another sign-in for the same address is throttled too: the limit is per address.
    with pytest.raises(RateLimited):
        await h.connector.send_passcode("c2", ADDRESS)
    assert "c2" not in h.state.live("passcode")
    h.clock.advance(40)
    await h.send()
    assert len(h.mail.sent) == 2


async def test_hourly_cap_per_address(h: Harness) -> None:
    for _ in range(h.policy.max_sends_per_address_per_hour):
        await h.send()
        h.clock.advance(h.policy.resend_interval_seconds)
    stored = h.state.live("passcode")["c1"]
    with pytest.raises(RateLimited) as caught:
        await h.connector.send_passcode("c1", ADDRESS)
    elapsed = h.policy.max_sends_per_address_per_hour * h.policy.resend_interval_seconds
    assert caught.value.retry_after == 3600 - elapsed
    assert h.state.live("passcode") == {"c1": stored}
    assert len(h.mail.sent) == h.policy.max_sends_per_address_per_hour
    # The refusal left no resend marker behind: the answer stays "wait for the hour".
    assert h.state.live("passcode-resend") == {}
    # Other addresses are not affected.
    await h.send(email="other@fabrikam.example")
    h.clock.advance(3600 - elapsed)
    await h.send()


async def test_wrong_attempts_then_even_the_right_code_fails(h: Harness) -> None:
    code = await h.send()
    for left in range(h.policy.max_attempts - 1, -1, -1):
        with pytest.raises(InvalidPasscode) as caught:
            await h.verify(h.wrong(code))
        assert caught.value.code == "invalid_passcode"
        assert caught.value.attempts_left == left
    assert h.state.live("passcode") == {}
    with pytest.raises(TooManyAttempts) as locked:
        await h.verify(code)
    assert locked.value.code == "too_many_attempts"
    with pytest.raises(TooManyAttempts):
        await h.verify(code)


async def test_a_locked_sign_in_cannot_be_sent_a_new_passcode(h: Harness) -> None:
    code = await h.send()
    for _ in range(h.policy.max_attempts):
        with pytest.raises(InvalidPasscode):
            await h.verify(h.wrong(code))
    h.clock.advance(h.policy.resend_interval_seconds)
    with pytest.raises(TooManyAttempts):
        await h.connector.send_passcode("c1", ADDRESS)
    assert h.state.live("passcode") == {}
    assert len(h.mail.sent) == 1


async def test_resend_does_not_reset_attempts(h: Harness) -> None:
    code = await h.send()
    for _ in range(h.policy.max_attempts - 1):
        with pytest.raises(InvalidPasscode):
            await h.verify(h.wrong(code))
    h.clock.advance(h.policy.resend_interval_seconds)
    fresh = await h.send()
    with pytest.raises(InvalidPasscode) as caught:
        await h.verify(h.wrong(fresh))
    assert caught.value.attempts_left == 0
    with pytest.raises(TooManyAttempts):
        await h.verify(fresh)


async def test_malformed_codes_count_as_wrong_attempts(h: Harness) -> None:
    code = await h.send()
    for bad, left in [("123", 4), ("abcdefgh", 3), ("١٢٣٤٥٦٧٨", 2), (code + "0", 1)]:
        with pytest.raises(InvalidPasscode) as caught:
            await h.verify(bad)
        assert caught.value.attempts_left == left
    assert (await h.verify(f" {code[:4]} {code[4:]} ")).email == ADDRESS


async def test_passcode_from_another_challenge_fails(h: Harness) -> None:
    code = await h.send(challenge="c1")
    with pytest.raises(PasscodeExpired):
        await h.verify(code, challenge="c2")
    h.clock.advance(h.policy.resend_interval_seconds)
    other = await h.send(challenge="c2")
    if other != code:
        with pytest.raises(InvalidPasscode):
            await h.verify(code, challenge="c2")
    assert (await h.verify(code, challenge="c1")).email == ADDRESS


async def test_passcode_is_bound_to_the_address(h: Harness) -> None:
    code = await h.send()
    with pytest.raises(InvalidPasscode):
        await h.verify(code, email="victim@contoso.example")
    assert (await h.verify(code)).email == ADDRESS


async def test_passcode_expires_after_validity(h: Harness) -> None:
    code = await h.send()
    h.clock.advance(h.policy.validity_seconds - 1)
    assert await h.state.get("passcode", "c1") is not None
    h.clock.advance(1)
    with pytest.raises(PasscodeExpired) as caught:
        await h.verify(code)
    assert caught.value.code == "expired"


async def test_never_sent_is_expired(h: Harness) -> None:
    with pytest.raises(PasscodeExpired):
        await h.verify("12345678")
    assert h.state.counters == {}


async def test_single_use(h: Harness) -> None:
    code = await h.send()
    await h.verify(code)
    with pytest.raises(PasscodeExpired):
        await h.verify(code)


async def test_concurrent_verifies_let_only_one_through(h: Harness) -> None:
    code = await h.send()
    results = await asyncio.gather(*(h.verify(code) for _ in range(4)), return_exceptions=True)
    winners = [r for r in results if not isinstance(r, BaseException)]
    assert len(winners) == 1
    assert all(isinstance(r, PasscodeExpired) for r in results if isinstance(r, BaseException))


async def test_parallel_guesses_cannot_exceed_the_attempt_limit(h: Harness) -> None:
    code = await h.send()
    guesses = [h.wrong(code)] * 20
    results = await asyncio.gather(*(h.verify(g) for g in guesses), return_exceptions=True)
    assert sum(isinstance(r, InvalidPasscode) for r in results) == h.policy.max_attempts
    assert all(isinstance(r, InvalidPasscode | TooManyAttempts) for r in results)


def test_attempt_counter_outlives_any_passcode() -> None:
    PasscodePolicy(validity_seconds=ATTEMPT_WINDOW_SECONDS)
    with pytest.raises(ValidationError):
        PasscodePolicy(validity_seconds=ATTEMPT_WINDOW_SECONDS + 1)


async def test_deliver_false_stores_state_identically_but_queues_no_mail() -> None:
    real, silent = Harness(), Harness()
    await real.send()
    await silent.send(deliver=False)
    assert silent.mail.sent == []
    assert silent.state.live("passcode").keys() == real.state.live("passcode").keys()
    silent_stored, real_stored = silent.state.live("passcode")["c1"], real.state.live("passcode")["c1"]
    assert silent_stored.keys() == real_stored.keys()
    assert silent_stored["address"] == real_stored["address"]
    assert await silent.state.ttl("passcode", "c1") == await real.state.ttl("passcode", "c1")
    assert silent.state.entries.keys() == real.state.entries.keys()
    assert silent.state.counters.keys() == real.state.counters.keys()
    silent.clock.advance(1)
    with pytest.raises(RateLimited):
        await silent.connector.send_passcode("c1", ADDRESS, deliver=False)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "   ",
        "guest",
        "guest@",
        "@fabrikam.example",
        "guest@fabrikam",
        "guest@@fabrikam.example",
        "gu est@fabrikam.example",
        "guest@fabrikam.example\r\nBcc: x@y.example",
        "guest@-fabrikam.example",
        "guest@fabrikam..example",
        ".guest@fabrikam.example",
        "guest.@fabrikam.example",
        '"guest"@fabrikam.example',
        "guest@[127.0.0.1]",
        "guest@127.0.0.1",
        "gäst@fabrikam.example",
        "\u212aelvin@fabrikam.example",
        "a" * 65 + "@fabrikam.example",
        "guest@" + "a" * 64 + ".example",
        "guest@" + ".".join(["a" * 60] * 5) + ".example",
    ],
)
async def test_invalid_email_is_refused_and_nothing_is_stored(h: Harness, bad: str) -> None:
    with pytest.raises(InvalidEmail) as caught:
        await h.connector.send_passcode("c1", bad)
    assert caught.value.code == "invalid_email"
    assert isinstance(caught.value, ConnectorError)
    assert h.state.entries == {} and h.state.counters == {}
    assert h.mail.sent == []
    with pytest.raises(InvalidEmail):
        await h.verify("12345678", email=bad)
    assert h.state.counters == {}


@pytest.mark.parametrize(
    "good",
    ["a@b.co", "first.last+tag@sub.fabrikam.example", "o'brien@xn--bcher-kva.example", "x_y-z@a-b.c1"],
)
def test_plausible_addresses_are_accepted(good: str) -> None:
    assert normalise_email(good.upper()) == good.lower()


def test_message_text_and_html() -> None:
    message = passcode_message(
        to=ADDRESS, code="01234567", tenant_name="<Contoso & Co>\r\nBcc: x", validity_seconds=1800
    )
    assert message.subject == "Your <Contoso & Co> Bcc: x sign-in code"
    assert "\n" not in message.subject
    assert "01234567" in message.text and "30 minutes" in message.text
    assert "ignore this email" in message.text
    assert message.html is not None
    assert "&lt;Contoso &amp; Co&gt;" in message.html and "<Contoso" not in message.html
    assert "01234567" in message.html and "30 minutes" in message.html


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (1800, "30 minutes"),
        (3600, "1 hour"),
        (7200, "2 hours"),
        (90, "1 minute"),
        (60, "1 minute"),
        (45, "45 seconds"),
        (1, "1 second"),
        (5400, "90 minutes"),
    ],
)
def test_validity_is_described_without_overstating(seconds: int, text: str) -> None:
    assert describe_duration(seconds) == text
