"""E-mail over SMTP (stdlib smtplib): plain, STARTTLS or implicit TLS, optional AUTH.

One connection per notification: notifications are rare, and a fresh connection never
trips over a server that dropped an idle one. The mail is plain text (render.body);
`Message-ID` is derived from the notification id, so a mail system that deduplicates
on it drops a re-delivery, and `X-LEDwatch-Notification-Id` carries the id itself.
All mails of one ticket cycle share a `References` root, so mail clients thread them.

Errors: an SMTP reply 5xx (recipient, sender, data or login refused) gives the row up;
4xx replies, refused connections, timeouts and TLS failures are retried.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import smtplib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime

from collector.notify import render
from collector.notify.channel import Channel, tls_context
from collector.notify.errors import DeliveryFailed, PermanentFailure, TemporaryFailure
from collector.notify.model import Notification
from collector.notify.settings import SmtpChannelSettings

log = logging.getLogger(__name__)

_SAFE_ID = re.compile(r"^[A-Za-z0-9._+=-]{1,200}$")


def message_id(notification_id: str, domain: str) -> str:
    """`<ledwatch.<id>@<domain>>`; an id with characters a Message-ID cannot hold is hashed."""
    local = notification_id
    if not _SAFE_ID.fullmatch(local):
        local = "h" + hashlib.sha256(notification_id.encode()).hexdigest()[:40]
    return f"<ledwatch.{local}@{domain}>"


def build_message(
    notification: Notification,
    sender: str,
    recipients: Sequence[str],
    desk_link: str | None,
) -> EmailMessage:
    """The whole mail for one notification (pure: the tests read it back from the server)."""
    ticket = notification.ticket
    domain = sender.rpartition("@")[2]
    msg = EmailMessage()
    msg["Subject"] = render.subject(notification)
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Date"] = format_datetime(datetime.fromtimestamp(notification.created_ms / 1000, UTC))
    msg["Message-ID"] = message_id(notification.id, domain)
    if notification.about_task:  # one thread per task (or report)
        msg["References"] = f"<ledwatch.{notification.queue.replace(':', '.')}@{domain}>"
    else:
        cycle = ticket.get("reopened_ms") or ticket.get("opened_ms") or 0
        msg["References"] = f"<ledwatch.ticket.{ticket.get('id')}.{cycle}@{domain}>"
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to this
    msg["X-LEDwatch-Notification-Id"] = notification.id
    msg["X-LEDwatch-Event"] = str(notification.event)
    if notification.about_task:
        msg["X-LEDwatch-Task"] = notification.queue.partition(":")[2]
    else:
        msg["X-LEDwatch-Ticket"] = str(ticket.get("id"))
    msg["X-LEDwatch-Priority"] = str(ticket.get("priority"))
    msg.set_content(render.body(notification, desk_link))
    return msg


def _reply_failure(exc: smtplib.SMTPResponseException, what: str) -> DeliveryFailed:
    error = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else ""
    message = f"{what}: SMTP {exc.smtp_code} {error}".strip()
    return PermanentFailure(message) if exc.smtp_code >= 500 else TemporaryFailure(message)


def _quit(smtp: smtplib.SMTP) -> None:
    with contextlib.suppress(smtplib.SMTPException, OSError):
        smtp.quit()
    smtp.close()


class SmtpChannel(Channel):
    kind = "smtp"

    def __init__(
        self,
        name: str,
        settings: SmtpChannelSettings,
        password: str | None,
        desk_link: Callable[[object], str | None],
    ) -> None:
        super().__init__(name, settings.timeout_s)
        self.settings = settings
        self._password = password
        self._desk_link = desk_link

    @property
    def address(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"

    def _connect(self) -> smtplib.SMTP:
        """Connected, EHLO done, TLS and login as configured; the caller quits it."""
        s = self.settings
        context = tls_context(s.ca_file) if (s.ssl or s.starttls) else None
        smtp: smtplib.SMTP
        if s.ssl:
            smtp = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout_s, context=context)
        else:
            smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout_s)
        try:
            smtp.ehlo()
            if s.starttls:
                smtp.starttls(context=context)
                smtp.ehlo()
            if s.username is not None:
                smtp.login(s.username, self._password or "")
        except BaseException:
            smtp.close()
            raise
        return smtp

    def send(self, notification: Notification) -> None:
        recipients = list(notification.recipients or self.settings.to)
        if not recipients:
            raise PermanentFailure("no recipients: neither the route nor the channel gives `to`")
        link = self._desk_link(notification.ticket_id)
        msg = build_message(notification, self.settings.sender, recipients, link)
        what = f"SMTP {self.address}"
        try:
            smtp = self._connect()
            try:
                refused = smtp.send_message(
                    msg, from_addr=self.settings.sender, to_addrs=recipients
                )
            finally:
                _quit(smtp)  # the mail is accepted once DATA got 250: QUIT's answer is moot
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            text = ", ".join(f"{r}: {c}" for r, (c, _) in exc.recipients.items())
            failure = PermanentFailure if all(c >= 500 for c in codes) else TemporaryFailure
            raise failure(f"{what}: every recipient refused ({text})") from None
        except smtplib.SMTPResponseException as exc:
            raise _reply_failure(exc, what) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise TemporaryFailure(f"{what}: {type(exc).__name__}: {exc}") from None
        if refused:  # the others got it; resending would duplicate their mail
            log.warning("%s: %s: some recipients refused: %s", self.key, notification.id, refused)

    def check(self) -> None:
        try:
            _quit(self._connect())
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryFailed(f"SMTP {self.address}: {type(exc).__name__}: {exc}") from None
