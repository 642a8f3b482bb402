"""E-mail against a real SMTP server (aiosmtpd on 127.0.0.1): plain, STARTTLS, TLS, AUTH."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from notify_helpers import Certs, SmtpReceiver, notification, ticket

from collector.notify import build_channels, check_channels, load_notify
from collector.notify.errors import DeliveryFailed, PermanentFailure, TemporaryFailure
from collector.notify.model import Event
from collector.notify.smtp import SmtpChannel, message_id

MakeSmtp = Callable[..., SmtpReceiver]


def _channel(port: int, **options: Any) -> SmtpChannel:
    data: dict[str, Any] = {
        "desk_url": "https://desk.example.com/desk",
        "channels": {
            "mail": {"type": "smtp", "host": "127.0.0.1", "port": port, "timeout_s": 5,
                     "sender": "ledwatch@example.com", "to": ["desk@example.com"], **options}
        },
    }
    channel = build_channels(load_notify(data))["mail"]
    assert isinstance(channel, SmtpChannel)
    return channel


def test_plain_mail_has_subject_body_and_ids(smtp_receiver: MakeSmtp) -> None:
    server = smtp_receiver()
    note = notification(Event.OPENED, channel="mail", note="80 % of the response time is gone")
    _channel(server.port).send(note)
    [mail] = server.mails
    msg = mail.message
    assert msg["Subject"] == "[LEDwatch P1] acme/lobby screen screen_dark: opened"
    assert mail.mail_from == "ledwatch@example.com"
    assert mail.rcpt_tos == ("desk@example.com",)
    assert msg["Message-ID"] == "<ledwatch.t42-1-opened-mail@example.com>"
    assert msg["X-LEDwatch-Notification-Id"] == "t42-1-opened-mail"
    assert msg["X-LEDwatch-Event"] == "opened" and msg["X-LEDwatch-Ticket"] == "42"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["References"] == "<ledwatch.ticket.42.1772388000000@example.com>"
    body = re.sub(r" +", " ", msg.get_content())  # the column width is the renderer's
    for fact in (
        "80 % of the response time is gone",
        "Priority: P1",
        "Fault: screen_dark",
        "Opened: 2026-03-01 18:00:00 UTC",
        "Response due: 2026-03-01 18:20:00 UTC",
        "On site due: 2026-03-03 18:00:00 UTC",
        "card/p0c3 card_offline (active)",
        "Desk: https://desk.example.com/desk/tickets/42",
        "notification t42-1-opened-mail (level 0)",
    ):
        assert fact in body, (fact, body)
    assert not mail.tls and mail.login is None


def test_route_recipients_replace_the_channel_default(smtp_receiver: MakeSmtp) -> None:
    server = smtp_receiver()
    note = notification(Event.ESCALATED, channel="mail", level=1,
                        recipients=("night@example.com", "boss@example.com"))
    _channel(server.port).send(note)
    [mail] = server.mails
    assert mail.rcpt_tos == ("night@example.com", "boss@example.com")
    assert mail.message["To"] == "night@example.com, boss@example.com"
    assert mail.message["Subject"].endswith("screen_dark: escalated (level 1)")


@pytest.mark.parametrize("mechanism", ["LOGIN", "PLAIN"])
def test_starttls_and_auth(
    smtp_receiver: MakeSmtp, certs: Certs, mechanism: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = "PLAIN" if mechanism == "LOGIN" else "LOGIN"
    server = smtp_receiver(starttls=certs.server_context(), users={"ledwatch": "s3cret pw"},
                           exclude_auth=(other,))
    monkeypatch.setenv("SMTP_PW", "s3cret pw")
    channel = _channel(server.port, starttls=True, ca_file=str(certs.ca), username="ledwatch",
                       password_env="SMTP_PW")
    channel.check()
    channel.send(notification(Event.OPENED, channel="mail"))
    [mail] = server.mails
    assert mail.tls and mail.login == "ledwatch"
    assert (mechanism, "ledwatch") in server.auth_seen


def test_implicit_tls(smtp_receiver: MakeSmtp, certs: Certs) -> None:
    server = smtp_receiver(implicit_tls=certs.server_context())
    channel = _channel(server.port, ssl=True, ca_file=str(certs.ca))
    channel.send(notification(Event.RESOLVED, channel="mail"))
    [mail] = server.mails
    assert mail.tls and mail.message["Subject"].endswith(": resolved")


def test_unverified_certificate_is_retried_not_sent(smtp_receiver: MakeSmtp, certs: Certs) -> None:
    server = smtp_receiver(starttls=certs.server_context())
    channel = _channel(server.port, starttls=True)  # system CAs do not know the dev CA
    with pytest.raises(TemporaryFailure, match="CERTIFICATE_VERIFY_FAILED"):
        channel.send(notification(channel="mail"))
    assert server.mails == []


def test_wrong_password_is_refused_for_good(
    smtp_receiver: MakeSmtp, certs: Certs, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = smtp_receiver(starttls=certs.server_context(), users={"ledwatch": "right"})
    monkeypatch.setenv("SMTP_PW", "wrong")
    channel = _channel(server.port, starttls=True, ca_file=str(certs.ca), username="ledwatch",
                       password_env="SMTP_PW")
    with pytest.raises(PermanentFailure, match="SMTP 535"):
        channel.send(notification(channel="mail"))
    with pytest.raises(DeliveryFailed, match="535"):
        channel.check()


def test_replies_decide_retry_or_give_up(smtp_receiver: MakeSmtp) -> None:
    refused = smtp_receiver(rcpt_reply="550 5.1.1 no such mailbox")
    with pytest.raises(PermanentFailure, match="every recipient refused"):
        _channel(refused.port).send(notification(channel="mail"))
    busy = smtp_receiver(data_reply="451 4.3.0 try again later")
    with pytest.raises(TemporaryFailure, match="SMTP 451"):
        _channel(busy.port).send(notification(channel="mail"))
    greylisted = smtp_receiver(rcpt_reply="450 4.2.0 greylisted")
    with pytest.raises(TemporaryFailure, match="every recipient refused"):
        _channel(greylisted.port).send(notification(channel="mail"))


def test_server_down_is_temporary_and_check_names_the_key(free_port: Callable[[], int]) -> None:
    port = free_port()
    channel = _channel(port)
    with pytest.raises(TemporaryFailure, match="ConnectionRefused"):
        channel.send(notification(channel="mail"))
    settings = load_notify({"channels": {"mail": {
        "type": "smtp", "port": port, "sender": "a@example.com", "to": ["b@example.com"]}}})
    [problem] = check_channels(settings)
    assert problem.startswith(f"notify.channels.mail: unreachable: SMTP 127.0.0.1:{port}: ")


def test_message_id_of_an_odd_id_is_a_hash() -> None:
    assert message_id("t1-opened", "example.com") == "<ledwatch.t1-opened@example.com>"
    odd = message_id("ticket 1 <opened>@x", "example.com")
    assert odd.startswith("<ledwatch.h") and " " not in odd and odd.count("@") == 1
    assert odd == message_id("ticket 1 <opened>@x", "example.com")  # stable: dedupe works


def test_reopened_ticket_threads_under_its_new_cycle(smtp_receiver: MakeSmtp) -> None:
    server = smtp_receiver()
    again = notification(Event.REOPENED, channel="mail",
                         ticket=ticket(reopened_ms=1_772_400_000_000, state="open"))
    _channel(server.port).send(again)
    msg = server.mails[0].message
    assert msg["References"] == "<ledwatch.ticket.42.1772400000000@example.com>"
    assert "Reopened: 2026-03-01 21:20:00 UTC" in re.sub(r" +", " ", msg.get_content())
