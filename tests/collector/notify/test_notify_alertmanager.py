"""Alertmanager: a real one (Debian's prometheus-alertmanager) whose webhook gets our alerts.

Alertmanager runs with 1 s group timers and one route to an HttpReceiver; the tests
push through AlertmanagerChannel and wait for Alertmanager's own webhook notification
(firing, then resolved). The registry and re-push rules are also checked against a
plain HTTP receiver, where the request bodies can be read exactly.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from notify_helpers import HttpReceiver, notification, ticket, wait_until
from services import Alertmanager

from collector.notify import Sender, build_channels, check_channels, load_notify
from collector.notify.alertmanager import AlertmanagerChannel
from collector.notify.errors import TemporaryFailure
from collector.notify.model import Event
from collector.notify.render import iso

MakeHttp = Callable[..., HttpReceiver]
MakeAm = Callable[..., Alertmanager]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _channel(
    url: str, clock_ms: Callable[[], int] = _now_ms, **options: Any
) -> AlertmanagerChannel:
    open_tickets = options.pop("open_tickets", None)
    settings = load_notify({
        "desk_url": "https://desk.example.com/desk",
        "channels": {"am": {"type": "alertmanager", "url": url, "timeout_s": 5, **options}},
        "routes": [{"levels": [["am"]]}],
    })
    channel = build_channels(settings, open_tickets=open_tickets, clock_ms=clock_ms)["am"]
    assert isinstance(channel, AlertmanagerChannel)
    return channel


def _notified(receiver: HttpReceiver) -> list[dict[str, Any]]:
    """Alertmanager's webhook notifications, one per group notification."""
    return [json.loads(r.body) for r in receiver.posts("/am")]


def _with_status(status: str) -> Callable[[HttpReceiver], list[dict[str, Any]]]:
    def find(receiver: HttpReceiver) -> list[dict[str, Any]]:
        return [n for n in _notified(receiver) if n["status"] == status]

    return find


@pytest.fixture
def am_pair(
    http_receiver: MakeHttp, fresh_alertmanager: MakeAm
) -> tuple[HttpReceiver, Alertmanager]:
    receiver = http_receiver()
    return receiver, fresh_alertmanager(webhook_url=receiver.url + "/am")


def test_firing_then_resolved_reaches_alertmanagers_receiver(
    am_pair: tuple[HttpReceiver, Alertmanager],
) -> None:
    receiver, am = am_pair
    channel = _channel(am.url, resend_s=60, labels={"env": "test"})
    assert check_channels(load_notify({"channels": {"am": {"type": "alertmanager",
                                                           "url": am.url}}})) == []
    t = ticket(opened_ms=_now_ms() - 5_000)
    channel.send(notification(Event.OPENED, channel="am", ticket=t, note="first report"))
    [held] = am.alerts()
    assert held["status"]["state"] == "active"
    firing = wait_until(lambda: _with_status("firing")(receiver), timeout_s=20)
    [alert] = firing[0]["alerts"]
    assert alert["status"] == "firing"
    assert alert["labels"] == {
        "alertname": "ledwatch_screen_dark", "site": "acme", "screen": "lobby",
        "component": "screen", "fault": "screen_dark", "priority": "P1", "ticket_id": "42",
        "env": "test",
    }
    assert alert["annotations"]["summary"] == "P1 acme/lobby screen screen_dark"
    assert alert["annotations"]["note"] == "first report"
    assert alert["annotations"]["desk_url"] == "https://desk.example.com/desk/tickets/42"
    assert alert["generatorURL"] == "https://desk.example.com/desk/tickets/42"
    assert alert["startsAt"].startswith(iso(t["opened_ms"])[:19])
    assert "42" in channel.active

    channel.send(notification(Event.RESOLVED, channel="am", n=2,
                              ticket=ticket(opened_ms=t["opened_ms"], state="resolved")))
    assert channel.active == {}
    resolved = wait_until(lambda: _with_status("resolved")(receiver), timeout_s=20)
    [ended] = resolved[0]["alerts"]
    assert ended["status"] == "resolved" and ended["labels"]["ticket_id"] == "42"
    assert am.alerts() == []  # ended alerts are no longer listed


def test_raised_priority_ends_the_alert_under_the_old_labels(
    am_pair: tuple[HttpReceiver, Alertmanager],
) -> None:
    _receiver, am = am_pair
    channel = _channel(am.url)
    channel.send(notification(Event.OPENED, channel="am", ticket=ticket(priority="P3")))
    assert [a["labels"]["priority"] for a in am.alerts()] == ["P3"]
    channel.send(notification(Event.PRIORITY_RAISED, channel="am", n=2,
                              ticket=ticket(priority="P1")))
    assert [a["labels"]["priority"] for a in am.alerts()] == ["P1"]


def test_restart_relearns_open_tickets_and_ends_closed_ones(
    am_pair: tuple[HttpReceiver, Alertmanager],
) -> None:
    receiver, am = am_pair
    open_now = [ticket(id=7, key="acme/lobby/psu/p1/psu_failed", component="psu/p1",
                       fault="psu_failed", priority="P2", state="acknowledged"),
                ticket(id=8, state="verifying")]  # cleared: not an active alert
    channel = _channel(am.url, open_tickets=lambda: list(open_now), resend_s=0.2)
    channel.refresh(_now_ms())
    assert [a["labels"]["ticket_id"] for a in am.alerts()] == ["7"]
    wait_until(lambda: _with_status("firing")(receiver), timeout_s=20)
    open_now.clear()  # ticket 7 closed while its notification was lost
    time.sleep(0.25)
    channel.refresh(_now_ms())
    assert am.alerts() == [] and channel.active == {}
    wait_until(lambda: _with_status("resolved")(receiver), timeout_s=20)


def test_check_of_a_down_alertmanager_names_the_key(free_port: Callable[[], int]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    [problem] = check_channels(load_notify({"channels": {"am": {
        "type": "alertmanager", "url": url, "timeout_s": 2}}}))
    assert problem.startswith(f"notify.channels.am: unreachable: GET {url}/-/healthy: ")


def test_check_wants_healthy(http_receiver: MakeHttp) -> None:
    sick = http_receiver(lambda _r: (503, {}, b"not ready"))
    [problem] = check_channels(load_notify({"channels": {"am": {
        "type": "alertmanager", "url": sick.url}}}))
    assert problem.endswith("HTTP 503, expected 200")


# -- the registry and re-push, read exactly off a plain receiver ---------------------------
def test_documents_registry_and_repush(http_receiver: MakeHttp) -> None:
    receiver = http_receiver()
    clock = [1_772_388_000_000]
    channel = _channel(receiver.url, clock_ms=lambda: clock[0], resend_s=30)

    def last() -> list[dict[str, Any]]:
        body: list[dict[str, Any]] = json.loads(receiver.posts("/api/v2/alerts")[-1].body)
        return body

    channel.send(notification(Event.OPENED, channel="am", ticket=ticket(priority="P2")))
    [alert] = last()
    assert alert["endsAt"] == iso(clock[0] + 4 * 30_000)  # valid for four re-push periods
    assert alert["annotations"]["event"] == "opened" and alert["annotations"]["state"] == "open"

    clock[0] += 1000
    channel.send(notification(Event.PRIORITY_RAISED, channel="am", n=2,
                              ticket=ticket(priority="P1")))
    old, new = last()
    assert (old["labels"]["priority"], old["endsAt"]) == ("P2", iso(clock[0]))
    assert new["labels"]["priority"] == "P1" and new["endsAt"] > iso(clock[0])

    posts = len(receiver.posts())
    channel.refresh(clock[0])  # first refresh: re-push at once
    channel.refresh(clock[0] + 29_000)  # not yet due
    assert len(receiver.posts()) == posts + 1
    channel.refresh(clock[0] + 30_000)
    assert len(receiver.posts()) == posts + 2
    [again] = last()
    assert again["labels"]["priority"] == "P1" and again["endsAt"] == iso(clock[0] + 150_000)

    channel.send(notification(Event.CLEARED, channel="am", n=3,
                              ticket=ticket(priority="P1", state="verifying")))
    [ended] = last()
    assert ended["endsAt"] == iso(clock[0]) and channel.active == {}
    posts = len(receiver.posts())
    channel.refresh(clock[0] + 90_000)
    assert len(receiver.posts()) == posts  # nothing firing: nothing re-pushed


def test_failed_repush_is_counted_and_retried_soon(
    http_receiver: MakeHttp, free_port: Callable[[], int]
) -> None:
    port = free_port()
    settings = load_notify({
        "retry_min_s": 5,
        "channels": {"am": {"type": "alertmanager", "url": f"http://127.0.0.1:{port}",
                            "resend_s": 60, "timeout_s": 2}},
    })
    channels = build_channels(settings)
    channel = channels["am"]
    assert isinstance(channel, AlertmanagerChannel)
    channel.active["42"] = channel_alert = _alert_for_test()
    sender = Sender(_NoStore(), channels, _now_ms, settings)
    sender.refresh(1_000_000)
    st = sender.stats()["channels"]["am"]
    assert st["refresh_failed"] == 1 and st["last_error"].startswith("refresh: POST")
    receiver = http_receiver(port=port)
    sender.refresh(1_004_000)  # within retry_min_s: not yet
    assert receiver.posts() == []
    sender.refresh(1_005_000)
    [pushed] = json.loads(receiver.posts()[0].body)
    assert pushed["labels"] == channel_alert.labels
    sender.stop()


def test_send_to_a_down_alertmanager_is_temporary(free_port: Callable[[], int]) -> None:
    channel = _channel(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(TemporaryFailure):
        channel.send(notification(channel="am"))
    assert channel.active == {}  # not firing until Alertmanager has it


def _alert_for_test() -> Any:
    from collector.notify.alertmanager import alert_for

    return alert_for(ticket(), None, {})


class _NoStore:
    def due(self, now_ms: int, limit: int) -> list[Any]:
        return []

    def delivered(self, notification_id: str, now_ms: int) -> None:
        raise AssertionError

    def failed(self, notification_id: str, error: str, retry_at_ms: int | None) -> None:
        raise AssertionError
