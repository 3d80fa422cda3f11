"""The email one-time passcode connector: send a passcode, check it, say who signed in.

A passcode is ``policy.length`` decimal digits drawn with ``secrets`` (uniform; leading
zeros allowed), bound to one sign-in (the gateway's transaction id, ``challenge_id``)
and to one address. Only a keyed hash of it is stored, under ``("passcode",
challenge_id)`` for ``policy.validity_seconds``; sending again replaces it, so only the
newest passcode works.

State kept through ``ConnectorContext.state`` (addresses appear only as keyed hashes):

- ``passcode`` / challenge id: ``{"hash", "address"}``, lives ``validity_seconds``.
- ``passcode-attempts`` / challenge id: counter of checks for this sign-in. It is never
  reset by a resend and lives ``ATTEMPT_WINDOW_SECONDS`` (the longest a sign-in may
  last), so no passcode of a sign-in outlives its count.
- ``passcode-lock`` / challenge id: set when the attempts are used up; from then on the
  sign-in can neither check nor be sent a passcode (the guest starts a new sign-in).
- ``passcode-resend`` / address hash: marker that lives ``resend_interval_seconds``.
- ``passcode-sends`` / address hash: hourly send counter.

Every check is counted atomically *before* its outcome is decided (a matching passcode is
consumed only within the count, in the same store call), so parallel guesses cannot exceed
``policy.max_attempts``.
"""

from __future__ import annotations

import hmac
import re
import secrets
from collections.abc import Mapping

from idp_connectors.base import ConnectorContext, ConnectorError, Consumed, Counter, UpstreamIdentity
from idp_connectors.email_otp.config import EmailOtpConfig, PasscodePolicy
from idp_connectors.email_otp.messages import ENGLISH, passcode_message

ISSUER = "mail"
AMR = ("otp",)  # RFC 8176: one-time password
ATTEMPT_WINDOW_SECONDS = 86400
SEND_WINDOW_SECONDS = 3600

KIND_PASSCODE = "passcode"
KIND_ATTEMPTS = "passcode-attempts"
KIND_LOCK = "passcode-lock"
KIND_RESEND = "passcode-resend"
KIND_SENDS = "passcode-sends"

_ATEXT = r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_ADDR_SPEC = re.compile(rf"(?P<local>{_ATEXT}(?:\.{_ATEXT})*)@(?P<domain>(?:{_LABEL}\.)+{_LABEL})", re.ASCII)
_DIGITS = re.compile(r"[0-9]+", re.ASCII)


class InvalidEmail(ConnectorError):
    code = "invalid_email"


class RateLimited(ConnectorError):
    """Too many passcodes for one address; ``retry_after`` is in seconds."""

    code = "rate_limited"

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many passcodes for this address; try again in {retry_after} seconds")
        self.retry_after = retry_after


class InvalidPasscode(ConnectorError):
    """A wrong passcode; ``attempts_left`` more tries are allowed for this sign-in."""

    code = "invalid_passcode"

    def __init__(self, attempts_left: int) -> None:
        super().__init__(f"the passcode is not right; {attempts_left} attempts left")
        self.attempts_left = attempts_left


class PasscodeExpired(ConnectorError):
    """No live passcode for this sign-in: never sent, expired, replaced or already used."""

    code = "expired"


class TooManyAttempts(ConnectorError):
    code = "too_many_attempts"


def normalise_email(value: str) -> str:
    """The address, stripped and lower-cased; ``InvalidEmail`` unless it is a plausible addr-spec.

    Accepted: an ASCII dot-atom local part (at most 64 characters) ``@`` a domain name of
    at least two labels whose last label is not all digits (no IP literals, no quoted
    local parts, no internationalised addresses), at most 254 characters in all.
    """
    address = value.strip()
    if not address.isascii() or len(address) > 254:
        raise InvalidEmail("enter a valid email address")
    address = address.lower()
    match = _ADDR_SPEC.fullmatch(address)
    if match is None or len(match["local"]) > 64 or match["domain"].rsplit(".", 1)[1].isdigit():
        raise InvalidEmail("enter a valid email address")
    return address


class EmailOtpConnector:
    """Sends and checks email one-time passcodes (identities issuer ``mail``)."""

    def __init__(self, config: EmailOtpConfig, policy: PasscodePolicy, ctx: ConnectorContext) -> None:
        self.id = config.id
        self.config = config
        self.policy = policy
        self.ctx = ctx

    def _passcode_hash(self, challenge_id: str, code: str) -> str:
        return self.ctx.keyed_hash("passcode", f"{challenge_id}:{code}")

    def _address_key(self, email: str) -> str:
        return self.ctx.keyed_hash("passcode-address", email)

    def _new_code(self) -> str:
        """``length`` uniform decimal digits: a uniform number below 10**length, zero-padded."""
        length = self.policy.length
        return str(secrets.randbelow(10**length)).zfill(length)

    async def _lock(self, challenge_id: str) -> None:
        await self.ctx.state.put(KIND_LOCK, challenge_id, {}, ATTEMPT_WINDOW_SECONDS)
        await self.ctx.state.delete(KIND_PASSCODE, challenge_id)

    async def _throttle(self, address_key: str) -> None:
        """Claim one send for the address, or raise ``RateLimited`` leaving no new claim."""
        state = self.ctx.state
        interval = self.policy.resend_interval_seconds
        if interval > 0 and not await state.add(KIND_RESEND, address_key, {}, interval):
            left = await state.ttl(KIND_RESEND, address_key)
            raise RateLimited(max(1, left or 1))
        sends = await state.incr(KIND_SENDS, address_key, SEND_WINDOW_SECONDS)
        if sends.value > self.policy.max_sends_per_address_per_hour:
            if interval > 0:
                await state.delete(KIND_RESEND, address_key)
            raise RateLimited(max(1, int(sends.expires_in)))

    async def send_passcode(
        self, challenge_id: str, email: str, *, deliver: bool = True, language: str | None = None
    ) -> None:
        """Create a passcode for this sign-in and queue it to ``email``.

        With ``deliver=False`` every step runs except queuing the mail, so a caller that
        refuses an address answers exactly as for one it accepts. ``language`` is the mail's
        (a tag of ``ctx.mail_texts``); left out, or unknown there, ``ctx.mail_language``'s.
        """
        address = normalise_email(email)
        if await self.ctx.state.get(KIND_LOCK, challenge_id) is not None:
            raise TooManyAttempts("too many wrong passcodes; start the sign-in again")
        address_key = self._address_key(address)
        await self._throttle(address_key)
        code = self._new_code()
        payload = {"hash": self._passcode_hash(challenge_id, code), "address": address_key}
        await self.ctx.state.put(KIND_PASSCODE, challenge_id, payload, self.policy.validity_seconds)
        lang, texts = self._mail_texts(language)
        message = passcode_message(
            to=address,
            code=code,
            tenant_name=self.ctx.tenant_name,
            validity_seconds=self.policy.validity_seconds,
            texts=texts,
            lang=lang,
            branding=self.ctx.mail_branding,
        )
        if deliver:
            self.ctx.mail.send(message)

    def _mail_texts(self, language: str | None) -> tuple[str, Mapping[str, str]]:
        """The mail's language tag and texts: ``language``'s, else the context's default, else English."""
        for lang in (language, self.ctx.mail_language):
            texts = self.ctx.mail_texts.get(lang) if lang else None
            if texts is not None:
                return lang or "en", texts
        return "en", ENGLISH

    def _matches(self, stored: object, address_key: str, candidate_hash: str, well_formed: bool) -> bool:
        """Constant-time: the stored passcode hash and address both match (and the candidate was
        well formed); ``candidate_hash`` is ``_passcode_hash`` of the candidate, computed once."""
        if not isinstance(stored, dict):
            return False
        code_ok = hmac.compare_digest(candidate_hash.encode(), str(stored.get("hash", "")).encode())
        address_ok = hmac.compare_digest(address_key.encode(), str(stored.get("address", "")).encode())
        return well_formed and code_ok and address_ok

    async def _count_attempt(self, challenge_id: str, *, consume: bool) -> tuple[Counter, Consumed | None]:
        """Count this check and, for a passcode that matched (``consume``), use it up if the count
        allows. The comparison was made before the count, but nothing is decided before it. A match
        is counted and consumed in one store call (one SQLite transaction instead of two)."""
        if not consume:
            return await self.ctx.state.incr(KIND_ATTEMPTS, challenge_id, ATTEMPT_WINDOW_SECONDS), None
        counted: tuple[Counter, Consumed | None] = await self.ctx.state.consume_counted(
            KIND_PASSCODE, challenge_id, KIND_ATTEMPTS, ATTEMPT_WINDOW_SECONDS, self.policy.max_attempts
        )
        return counted

    async def verify_passcode(self, challenge_id: str, email: str, code: str, now: int) -> UpstreamIdentity:
        """Check ``code`` for this sign-in and address; on success the passcode is used up."""
        address = normalise_email(email)
        address_key = self._address_key(address)
        state = self.ctx.state
        stored = await state.get(KIND_PASSCODE, challenge_id)
        if stored is None:
            if await state.get(KIND_LOCK, challenge_id) is not None:
                raise TooManyAttempts("too many wrong passcodes; start the sign-in again")
            raise PasscodeExpired("this passcode has expired or was already used; ask for a new one")
        candidate = "".join(code.split())
        well_formed = len(candidate) == self.policy.length and _DIGITS.fullmatch(candidate) is not None
        candidate_hash = self._passcode_hash(challenge_id, candidate)
        matched = self._matches(stored, address_key, candidate_hash, well_formed)
        attempts, consumed = await self._count_attempt(challenge_id, consume=matched)
        if attempts.value > self.policy.max_attempts:
            await self._lock(challenge_id)
            raise TooManyAttempts("too many wrong passcodes; start the sign-in again")
        if not matched:
            left = self.policy.max_attempts - attempts.value
            if left <= 0:
                await self._lock(challenge_id)
            raise InvalidPasscode(max(0, left))
        # The passcode may have been used or replaced by a resend since it was read.
        if (
            consumed is None
            or not consumed.first
            or not self._matches(consumed.payload, address_key, candidate_hash, well_formed)
        ):
            raise PasscodeExpired("this passcode has expired or was already used; ask for a new one")
        return UpstreamIdentity(
            connector_id=self.config.id,
            issuer=ISSUER,
            subject=address,
            email=address,
            email_verified=True,
            amr=AMR,
            acr=None,
            auth_time=now,
            raw_claims={"email": address},
        )
