"""A real SMTP server for the tests (aiosmtpd, in-process, on a free 127.0.0.1 port), keeping every mail."""

from __future__ import annotations

import contextlib
import email
import email.policy
from collections.abc import Iterator
from email.message import EmailMessage

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from devstack.process import free_port


class Mailbox:
    """An aiosmtpd handler keeping every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[tuple[Envelope, EmailMessage]] = []
        self.port = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        message = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append((envelope, message))
        return "250 Message accepted for delivery"

    @property
    def smarthost(self) -> str:
        return f"127.0.0.1:{self.port}"


@contextlib.contextmanager
def smtp_server() -> Iterator[Mailbox]:
    """A running SMTP server; always stopped."""
    mailbox = Mailbox()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    mailbox.port = smtp.port
    try:
        yield mailbox
    finally:
        smtp.stop()
