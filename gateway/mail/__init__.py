"""Outgoing mail: the passcode and invitation emails leave the gateway through here.

``outbox.open_outbox(settings.mail)`` gives an ``Outbox``: the dev ``ConsoleOutbox``
(``mail.console: true``, mail printed to the terminal and the log) or, with ``mail.smtp:``, the
``relay.RelayOutbox``, which writes each message to a relay process (``relay_process``) that
delivers it, so a request never waits for a mail server and SMTP never shares the worker's
interpreter. The CLI delivers from a thread instead (``outbox.SmtpOutbox``). Both deliver with
``delivery.deliver`` (attempts, retries, the ``gateway.mail`` records); ``smtp`` composes the
RFC 5322 message and holds the transport rules; ``client`` is the (blocking, smtplib) SMTP
session that carries it.
"""
