"""Email channel over SMTP (``smtplib``): one message per notification (or digest), to
the rule's recipient address.

Plain SMTP, STARTTLS (``starttls = true``, port 587) or SMTPS (``ssl = true``, port 465),
with a login when ``username`` is given. A recipient the server refuses (5xx) gives the
message up; a server that cannot be reached, a temporary refusal (4xx) or another
refusal is retried. The ``Message-ID`` is derived from the message id, so a retried message has
the same one.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import format_datetime

from sipantau_core.access import Classification
from sipantau_core.notify import Channel, DeliveryError, Message

__all__ = ["EmailChannel"]


class EmailChannel(Channel):
    """Sends each message as a plain-text email from ``sender`` to its recipient."""

    kind = "email"

    def __init__(
        self,
        name: str,
        *,
        host: str,
        sender: str,
        clearance: Classification | str,
        port: int = 25,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        use_ssl: bool = False,
        timeout: float = 30.0,
        context: ssl.SSLContext | None = None,
        max_items: int = 100,
        max_chars: int = 50000,
    ):
        super().__init__(name, clearance=clearance, max_items=max_items, max_chars=max_chars)
        self.host = host
        self.port = port
        self.sender = sender
        self._username = username
        self._password = password
        self.starttls = starttls
        self.use_ssl = use_ssl
        self.timeout = timeout
        self._context = context

    def _email(self, message: Message) -> EmailMessage:
        mail = EmailMessage()
        mail["Subject"] = message.subject
        mail["From"] = self.sender
        mail["To"] = message.recipient
        mail["Date"] = format_datetime(message.created_at)
        mail["Message-ID"] = f"<{message.id}@sipantau>"
        mail["X-Sipantau-Clearance"] = message.clearance.name.lower()
        mail.set_content(message.text)
        return mail

    def _connect(self) -> smtplib.SMTP:
        if self.use_ssl:
            return smtplib.SMTP_SSL(
                self.host, self.port, timeout=self.timeout, context=self._context
            )
        return smtplib.SMTP(self.host, self.port, timeout=self.timeout)

    def send(self, message: Message) -> None:
        if "@" not in message.recipient:
            raise DeliveryError(
                f"email {self.name}: the rule's target needs 'channel:address'", permanent=True
            )
        mail = self._email(message)
        try:
            with self._connect() as smtp:
                if self.starttls:
                    smtp.starttls(context=self._context or ssl.create_default_context())
                if self._username:
                    smtp.login(self._username, self._password or "")
                smtp.send_message(mail)
        except smtplib.SMTPRecipientsRefused as e:
            codes = sorted({code for code, _ in e.recipients.values()})
            raise DeliveryError(
                f"email {self.name}: recipient refused ({', '.join(map(str, codes))})",
                permanent=all(code >= 500 for code in codes),
            ) from None
        except smtplib.SMTPAuthenticationError as e:
            raise DeliveryError(f"email {self.name}: login refused ({e.smtp_code})") from None
        except smtplib.SMTPResponseException as e:
            # the sender, the login or the message refused: the desk's configuration (or
            # the server) may change, so retried until the queue gives it up
            raise DeliveryError(f"email {self.name}: server answered {e.smtp_code}") from None
        except (TimeoutError, smtplib.SMTPException, OSError) as e:
            raise DeliveryError(f"email {self.name}: {type(e).__name__}") from None
