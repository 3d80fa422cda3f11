"""Outgoing mail: the passcode and invitation emails leave the gateway through here.

``outbox.open_outbox(settings.mail)`` gives an ``Outbox``: the dev ``ConsoleOutbox``
(``mail.console: true``, mail printed to the terminal and the log) or the ``SmtpOutbox``
(``mail.smtp:``), which queues in memory and delivers from a background task, so a
request never waits for a mail server. ``smtp`` composes the RFC 5322 message and holds the
transport rules; ``client`` is the (blocking, smtplib) SMTP session that carries it.
"""
