"""One message's delivery: compose it, try it up to ``len(retry_delays) + 1`` times, log what happened.

Shared by the two places that deliver mail: the relay process (``relay_process``), which serves
the gateway, and ``outbox.SmtpOutbox``'s thread, which the CLI uses. It logs on ``gateway.mail``
(masked addresses, never settings), so the same records come out of both; the relay process hands
its records to the gateway, which logs them as its own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from gateway.mail.client import SmtpClient
from gateway.mail.smtp import Composer, Envelope, Outgoing, check_transport, is_permanent, mask_address
from gateway.observability.logs import log

if TYPE_CHECKING:  # the relay process reads no settings models
    from gateway.settings.models import Mail, Smtp

logger = logging.getLogger("gateway.mail")

# What both outboxes read when one is built (tests shorten them here):
RETRY_DELAYS_SECONDS = (1.0, 4.0)  # waits between the 3 attempts
DRAIN_TIMEOUT_SECONDS = 10.0  # how long stopping an outbox waits for its mail to go
MAX_QUEUED = 1000  # messages an outbox holds for delivery; past that it drops and logs


def checked_smtp(settings: Mail) -> tuple[Smtp, Composer]:
    """``mail:``'s SMTP transport and the composer of its ``From``, as an outbox is built from them;
    ValueError naming the key for a transport or address that cannot be used."""
    if settings.smtp is None:
        raise ValueError("mail.smtp is not configured")
    check_transport(settings.smtp)
    try:
        composer = Composer(settings.from_)
    except ValueError as exc:
        raise ValueError(f"mail.from: {exc}") from exc
    return settings.smtp, composer


def deliver(
    message: Outgoing,
    composer: Composer,
    client: SmtpClient,
    retry_delays: Sequence[float],
    wait: Callable[[float], bool],
) -> bool:
    """Deliver ``message``; ``wait(seconds)`` sleeps between attempts and returns True when the
    delivery should be given up (the outbox is stopping). True when the server took the message."""
    to = mask_address(message.to)
    try:
        envelope: Envelope = composer.compose(message)
    except ValueError as exc:
        logger.error("mail to %s not delivered: cannot build it: %s", to, exc)
        return False
    attempts = len(retry_delays) + 1
    for attempt in range(1, attempts + 1):
        try:
            client.send(envelope)
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            if is_permanent(exc) or attempt == attempts:
                logger.error(
                    "mail to %s not delivered after %d attempt(s): %s",
                    to,
                    attempt,
                    reason,
                    extra={"mail_to": to, "message_id": envelope.message_id},
                )
                return False
            delay = retry_delays[attempt - 1]
            logger.warning(
                "mail to %s: attempt %d of %d failed (%s); retrying in %.1fs",
                to,
                attempt,
                attempts,
                reason,
                delay,
            )
            if wait(delay):  # stopped meanwhile: the message is given up
                return False
        else:
            log(
                logger,
                logging.INFO,
                "mail to %s delivered",
                to,
                extra={"mail_to": to, "message_id": envelope.message_id, "attempts": attempt},
            )
            return True
    return False  # pragma: no cover - the loop returns on its last attempt
