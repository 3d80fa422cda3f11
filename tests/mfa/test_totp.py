"""``gateway.mfa.totp``: RFC 6238 codes, the ±1-step window and the matched step."""

from __future__ import annotations

import base64

import pytest

from gateway.mfa import totp

RFC_SEED = base64.b32encode(b"12345678901234567890").decode().rstrip("=")  # RFC 6238 Appendix B, SHA-1
SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
NOW = 1_700_000_015  # step 56_666_667, 5 s into it


@pytest.mark.parametrize(
    ("unix_time", "expected"),
    [
        (59, "94287082"),
        (1111111109, "07081804"),
        (1111111111, "14050471"),
        (1234567890, "89005924"),
        (2000000000, "69279037"),
        (20000000000, "65353130"),
    ],
    ids=["59", "1111111109", "1111111111", "1234567890", "2000000000", "20000000000"],
)
def test_rfc_6238_appendix_b_sha1_vectors(unix_time: int, expected: str) -> None:
    assert totp.code_at(RFC_SEED, totp.time_step(unix_time), digits=8) == expected


def test_six_digit_codes_are_the_last_six_digits_of_the_rfc_vectors() -> None:
    # Dynamic truncation then mod 10^6 (RFC 4226 §5.3): the 8-digit vector's low six digits.
    assert totp.code_at(RFC_SEED, totp.time_step(1111111109)) == "081804"
    assert totp.code_at(RFC_SEED, totp.time_step(59)) == "287082"


@pytest.mark.parametrize(("unix_time", "step"), [(0, 0), (29, 0), (30, 1), (59, 1), (60, 2), (59.9, 1)])
def test_time_steps_are_30_seconds_from_the_epoch(unix_time: float, step: int) -> None:
    assert totp.time_step(unix_time) == step


@pytest.mark.parametrize("offset", [-1, 0, 1], ids=["previous", "current", "next"])
def test_a_code_of_the_window_matches_and_names_its_step(offset: int) -> None:
    step = totp.time_step(NOW) + offset
    assert totp.match(SECRET, totp.code_at(SECRET, step), NOW) == step


@pytest.mark.parametrize("offset", [-3, -2, 2, 3])
def test_a_code_outside_the_window_does_not_match(offset: int) -> None:
    code = totp.code_at(SECRET, totp.time_step(NOW) + offset)
    window = {totp.code_at(SECRET, totp.time_step(NOW) + d) for d in (-1, 0, 1)}
    assert code not in window  # (true for this secret and time; a collision would make the case moot)
    assert totp.match(SECRET, code, NOW) is None


def test_the_window_follows_the_clock() -> None:
    code = totp.code_at(SECRET, totp.time_step(NOW))
    assert totp.match(SECRET, code, NOW + totp.PERIOD) == totp.time_step(NOW)  # one step later: still
    assert totp.match(SECRET, code, NOW + 2 * totp.PERIOD) is None  # two steps later: gone


def test_a_wrong_code_does_not_match() -> None:
    window = {totp.code_at(SECRET, totp.time_step(NOW) + d) for d in (-1, 0, 1)}
    wrong = next(f"{n:06d}" for n in range(1_000_000) if f"{n:06d}" not in window)
    assert totp.match(SECRET, wrong, NOW) is None


def test_another_secret_s_codes_do_not_match() -> None:
    other = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
    window = {totp.code_at(SECRET, totp.time_step(NOW) + d) for d in (-1, 0, 1)}
    code = totp.code_at(other, totp.time_step(NOW))
    assert code not in window
    assert totp.match(SECRET, code, NOW) is None


@pytest.mark.parametrize(
    "typed",
    [
        "",
        "12345",
        "1234567",
        "12345a",
        "abcdef",
        "١٢٣٤٥٦",
        "\uff11\uff12\uff13\uff14\uff15\uff16",  # fullwidth digits
        "123-456",
        "+12345",
        "-12345",
        "12 34 5",
    ],
    ids=[
        "empty",
        "five",
        "seven",
        "letter",
        "letters",
        "arabic-indic",
        "fullwidth",
        "dash",
        "plus",
        "minus",
        "spaced-5",
    ],
)
def test_anything_but_six_ascii_digits_never_matches(typed: str) -> None:
    assert totp.normalise(typed) is None
    assert totp.match(SECRET, typed, NOW) is None


def test_spaces_people_type_are_ignored() -> None:
    code = totp.code_at(SECRET, totp.time_step(NOW))
    assert totp.normalise(f" {code[:3]} {code[3:]}\t") == code
    assert totp.match(SECRET, f"{code[:3]} {code[3:]}", NOW) == totp.time_step(NOW)


def test_two_steps_sharing_a_code_match_the_later_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(totp, "code_at", lambda secret, step, digits=6: "123456")
    assert totp.match(SECRET, "123456", NOW) == totp.time_step(NOW) + 1


def test_new_secrets_are_160_random_bits_in_base32() -> None:
    secrets = {totp.new_secret() for _ in range(50)}
    assert len(secrets) == 50
    for secret in secrets:
        assert len(secret) == 32 and totp.is_secret(secret)
        assert len(base64.b32decode(secret)) == totp.SECRET_BYTES == 20


@pytest.mark.parametrize("text", ["", "JBSWY3DP", "0" * 32, "jbswy3dpehpk3pxpjbswy3dpehpk3pxp!", "É" * 32])
def test_is_secret_refuses_what_is_not_a_160_bit_base32_secret(text: str) -> None:
    assert not totp.is_secret(text)
