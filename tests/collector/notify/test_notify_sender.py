"""The sender against real HTTP receivers: outages, refusals, ordering, crashes, the thread.

Most tests drive `run_once(now_ms)` with a stepped clock, so an outage of minutes takes
milliseconds while every attempt still goes to a real socket on 127.0.0.1.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from notify_helpers import T0, HttpReceiver, Reply, Request, notification, wait_until

from collector.notify import MemoryOutbox, Sender, build_channels, load_notify
from collector.notify.channel import Channel
from collector.notify.model import Event, Notification, Pending
from collector.notify.sender import DOWN_AFTER_ROWS, backoff_s
from collector.notify.settings import NotifySettings

MakeHttp = Callable[..., HttpReceiver]


def _settings(url: str, monkeypatch: pytest.MonkeyPatch, **extra: Any) -> NotifySettings:
    monkeypatch.setenv("HOOK_SECRET", "s" * 24)
    return load_notify({
        "retry_min_s": 5.0, "retry_max_s": 60.0,
        "channels": {"hook": {"type": "webhook", "url": url, "secret_env": "HOOK_SECRET",
                              "timeout_s": 2}},
        "routes": [{"levels": [["hook"]]}],
        **extra,
    })


def _sender(store: MemoryOutbox, settings: NotifySettings, clock: list[int]) -> Sender:
    return Sender(store, build_channels(settings), lambda: clock[0], settings)


def _received_ids(receiver: HttpReceiver) -> list[str]:
    return [r.headers["x-ledwatch-notification-id"] for r in receiver.posts()]


def test_backoff_doubles_with_jitter_within_bounds() -> None:
    assert backoff_s(1, 5, 600, rand=lambda: 0.0) == 5.0  # never under the minimum
    assert backoff_s(2, 5, 600, rand=lambda: 1.0) == 10.0
    assert backoff_s(4, 5, 600, rand=lambda: 0.0) == 20.0  # 40 x 0.5
    assert backoff_s(30, 5, 600, rand=lambda: 1.0) == 600.0
    assert backoff_s(10**6, 5, 600, rand=lambda: 0.0) == 300.0
    spread = {backoff_s(6, 5, 600) for _ in range(50)}
    assert len(spread) > 1 and all(80 <= s <= 160 for s in spread)


def test_receiver_down_then_up_loses_nothing_and_retries_are_bounded(
    http_receiver: MakeHttp, free_port: Callable[[], int], monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    settings = _settings(f"http://127.0.0.1:{port}/hook", monkeypatch)
    store = MemoryOutbox()
    notes = [notification(Event.OPENED, ticket_id=t, n=t) for t in range(1, 6)]
    notes += [notification(Event.RESOLVED, ticket_id=t, n=10 + t) for t in range(1, 6)]
    for note in notes:
        store.add(note)
    clock = [T0 + 100]
    sender = _sender(store, settings, clock)
    for _ in range(600):  # ten minutes down, one round a second
        sender.run_once(clock[0])
        clock[0] += 1000
    stats = sender.stats()
    # Real connection attempts: two per channel backoff period (5, 10, 20, 40, 60, ... s).
    assert stats["failed"] <= 2 * 16, stats
    assert stats["sent"] == 0 and stats["down"] == ["hook"]
    assert stats["channels"]["hook"]["up"] is False
    assert "ConnectError" in stats["channels"]["hook"]["last_error"]
    assert len(store.undelivered()) == 10

    receiver = http_receiver(port=port)  # the receiver comes back on its port
    for _ in range(180):
        if not store.undelivered():
            break
        sender.run_once(clock[0])
        clock[0] += 1000
    assert store.undelivered() == []
    got = _received_ids(receiver)
    assert sorted(set(got)) == sorted(n.id for n in notes)  # every one, none lost
    assert len(got) == len(notes)  # and none twice: nothing delivered was sent again
    for t in range(1, 6):  # each ticket's opened before its resolved
        assert got.index(f"t{t}-{t}-opened-hook") < got.index(f"t{t}-{10 + t}-resolved-hook")
    after = sender.stats()
    assert after["sent"] == 10 and after["down"] == [] and after["retrying"] == 0
    assert after["channels"]["hook"]["up"] is True


def test_a_down_channel_costs_two_attempts_not_one_per_row(
    free_port: Callable[[], int], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings(f"http://127.0.0.1:{free_port()}/", monkeypatch)
    store = MemoryOutbox()
    for t in range(50):
        store.add(notification(ticket_id=t, n=t))
    sender = _sender(store, settings, [T0 + 100])
    assert sender.run_once(T0 + 100) == 50
    st = sender.stats()["channels"]["hook"]
    assert (st["failed"], st["deferred"], st["retrying"]) == (DOWN_AFTER_ROWS, 48, 50)
    assert st["down_until_ms"] >= T0 + 100 + 5000


def test_permanent_refusal_is_given_up_counted_and_does_not_block(
    http_receiver: MakeHttp, monkeypatch: pytest.MonkeyPatch
) -> None:
    def respond(request: Request) -> Reply:
        if json.loads(request.body)["event"] == "opened":
            return 400, {}, b'{"error": "unknown site"}'
        return 200, {}, b""

    receiver = http_receiver(respond)
    settings = _settings(receiver.url, monkeypatch)
    store = MemoryOutbox()
    bad, later = notification(Event.OPENED, n=1), notification(Event.RESOLVED, n=2)
    store.add(bad)
    store.add(later)
    clock = [T0 + 100]
    sender = _sender(store, settings, clock)
    sender.run_once(clock[0])
    sender.run_once(clock[0])
    assert store.row(bad.id).given_up and store.row(bad.id).attempts == 1
    assert "HTTP 400" in store.row(bad.id).errors[0]
    assert store.row(later.id).delivered_ms == clock[0]
    stats = sender.stats()
    assert (stats["given_up"], stats["sent"], stats["failed"]) == (1, 1, 0)
    assert "HTTP 400" in stats["channels"]["hook"]["last_error"]
    for _ in range(5):
        clock[0] += 600_000
        sender.run_once(clock[0])
    assert len(receiver.posts()) == 2  # given up means never again


def test_ticket_order_is_kept_while_other_tickets_flow(
    http_receiver: MakeHttp, monkeypatch: pytest.MonkeyPatch
) -> None:
    refusals = {"t1-1-opened-hook": 1}  # ticket 1's first row fails once

    def respond(request: Request) -> Reply:
        nid = request.headers["x-ledwatch-notification-id"]
        if refusals.get(nid, 0) > 0:
            refusals[nid] -= 1
            return 503, {}, b"busy"
        return 200, {}, b""

    receiver = http_receiver(respond)
    settings = _settings(receiver.url, monkeypatch)
    store = MemoryOutbox()
    for note in (notification(Event.OPENED, ticket_id=1, n=1),
                 notification(Event.OPENED, ticket_id=2, n=2),
                 notification(Event.ACKNOWLEDGED, ticket_id=1, n=3),
                 notification(Event.ACKNOWLEDGED, ticket_id=2, n=4)):
        store.add(note)
    clock = [T0 + 100]
    sender = _sender(store, settings, clock)
    for _ in range(3):
        sender.run_once(clock[0])
    # Ticket 2 went through; ticket 1's acknowledged waits behind its failed opened.
    assert _received_ids(receiver) == [
        "t1-1-opened-hook", "t2-2-opened-hook", "t2-4-acknowledged-hook"
    ]
    clock[0] += 10_000
    for _ in range(2):
        sender.run_once(clock[0])
    assert _received_ids(receiver)[3:] == ["t1-1-opened-hook", "t1-3-acknowledged-hook"]
    assert store.undelivered() == []


def test_one_poison_row_does_not_starve_the_channel(
    http_receiver: MakeHttp, monkeypatch: pytest.MonkeyPatch
) -> None:
    def respond(request: Request) -> Reply:
        poison = request.headers["x-ledwatch-notification-id"] == "t1-1-opened-hook"
        return (500, {}, b"bug") if poison else (200, {}, b"")

    receiver = http_receiver(respond)
    settings = _settings(receiver.url, monkeypatch)
    store = MemoryOutbox()
    store.add(notification(ticket_id=1, n=1))
    clock = [T0 + 100]
    sender = _sender(store, settings, clock)
    for step in range(120):
        store.add(notification(ticket_id=100 + step, n=100 + step, created_ms=clock[0]))
        sender.run_once(clock[0])
        clock[0] += 1000
    assert [r.notification.id for r in store.undelivered()] == ["t1-1-opened-hook"]
    stats = sender.stats()
    assert stats["sent"] == 120 and stats["deferred"] == 0
    assert 3 <= stats["failed"] <= 10  # 5, 10, 20, 40 s ... of backoff over two minutes


def test_retry_after_is_honoured(http_receiver: MakeHttp, monkeypatch: pytest.MonkeyPatch) -> None:
    receiver = http_receiver(lambda _r: (429, {"Retry-After": "45"}, b"slow down"))
    settings = _settings(receiver.url, monkeypatch)
    store = MemoryOutbox()
    note = notification()
    store.add(note)
    sender = _sender(store, settings, [T0 + 100])
    sender.run_once(T0 + 100)
    assert store.row(note.id).next_ms == T0 + 100 + 45_000


def test_crash_between_send_and_delivered_sends_again_with_the_same_id(
    http_receiver: MakeHttp, monkeypatch: pytest.MonkeyPatch
) -> None:
    class CrashingStore(MemoryOutbox):
        crash = True

        def delivered(self, notification_id: str, now_ms: int) -> None:
            if self.crash:
                self.crash = False
                raise SystemExit("collector killed")  # the process dies right here
            super().delivered(notification_id, now_ms)

    receiver = http_receiver()
    settings = _settings(receiver.url, monkeypatch)
    store = CrashingStore()
    note = notification()
    store.add(note)
    with pytest.raises(SystemExit):
        _sender(store, settings, [T0 + 100]).run_once(T0 + 100)
    restarted = _sender(store, settings, [T0 + 200])  # a new process, the same outbox
    restarted.run_once(T0 + 200)
    assert _received_ids(receiver) == [note.id, note.id]  # at least once; receivers dedupe
    assert store.undelivered() == []
    restarted.run_once(T0 + 10**7)
    assert len(receiver.posts()) == 2


def test_unknown_channel_and_channel_bugs(
    http_receiver: MakeHttp, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Broken(Channel):
        kind = "broken"

        def send(self, notification: Notification) -> None:
            raise KeyError("a bug")

        def check(self) -> None:
            pass

    settings = _settings("http://127.0.0.1:9/", monkeypatch)
    store = MemoryOutbox()
    gone, buggy = notification(channel="removed", n=1), notification(channel="broken", n=2)
    store.add(gone)
    store.add(buggy)
    sender = Sender(store, {"broken": Broken("broken", 1.0)}, lambda: T0, settings)
    sender.run_once(T0 + 100)
    assert store.row(gone.id).given_up
    assert "channel 'removed' is not configured" in store.row(gone.id).errors[0]
    assert not store.row(buggy.id).given_up and store.row(buggy.id).next_ms >= T0 + 5100
    stats = sender.stats()["channels"]
    assert stats["removed"]["type"] == "unknown" and stats["removed"]["given_up"] == 1
    assert stats["broken"]["last_error"] == "KeyError: 'a bug'"


def test_thread_delivers_woken_rows_survives_store_errors_and_stops(
    http_receiver: MakeHttp, monkeypatch: pytest.MonkeyPatch
) -> None:
    class FlakyStore(MemoryOutbox):
        failures = 3

        def due(self, now_ms: int, limit: int) -> list[Pending]:
            if self.failures:
                self.failures -= 1
                raise ConnectionError("database is down")
            return super().due(now_ms, limit)

    receiver = http_receiver()
    settings = _settings(receiver.url, monkeypatch, interval_s=0.05)
    store = FlakyStore()
    sender = Sender(store, build_channels(settings), lambda: time.time_ns() // 1_000_000,
                    settings)
    sender.start()
    try:
        wait_until(lambda: store.failures == 0, timeout_s=5)
        now = time.time_ns() // 1_000_000
        for n in range(5):
            store.add(notification(ticket_id=n, n=n, created_ms=now))
        sender.wake()
        wait_until(lambda: not store.undelivered(), timeout_s=10)
        stats = sender.stats()
        assert stats["running"] and stats["sent"] == 5
        assert stats["store_errors"] == 3 and "database is down" in stats["last_error"]
    finally:
        started = time.monotonic()
        sender.stop()
        assert time.monotonic() - started < 5
    assert not sender.stats()["running"]
    assert not [t for t in threading.enumerate() if t.name == "ledwatch-notify"]


def test_metrics_and_status_line(
    http_receiver: MakeHttp, monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver = http_receiver()
    settings = _settings(receiver.url, monkeypatch)
    store = MemoryOutbox()
    store.add(notification())
    sender = _sender(store, settings, [T0 + 100])
    sender.run_once(T0 + 100)
    text = sender.metrics_text()
    assert 'ledwatch_collector_notify_sent_total{channel="hook",type="webhook"} 1' in text
    assert 'ledwatch_collector_notify_up{channel="hook",type="webhook"} 1' in text
    assert "# TYPE ledwatch_collector_notify_retrying gauge" in text
    assert "ledwatch_collector_notify_store_errors_total 0" in text
    assert sender.status_text() == (
        "notify_sent=1 notify_retrying=0 notify_given_up=0 notify_down=-"
    )
    stats = sender.stats()
    assert "ok" not in stats and "status" not in stats and "state" not in stats
