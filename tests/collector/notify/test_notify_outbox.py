"""The OutboxStore contract, run against every backend in conftest.OUTBOX_BACKENDS.

A backend is (store, add): `add(notification)` queues a row as the ticket transaction
would. The SQL outbox joins by adding a factory there; these tests then hold it to the
semantics the sender relies on (model.OutboxStore's docstring).
"""

from __future__ import annotations

from typing import Any

import pytest
from notify_helpers import T0, Backend, notification

from collector.notify.model import Event, Notification, Pending


def _ids(due: list[Pending]) -> list[str]:
    return [p.notification.id for p in due]


def test_a_new_row_is_due_at_once_and_round_trips(outbox: Backend) -> None:
    store, add = outbox
    note = notification(Event.ESCALATED, channel="mail", level=1, recipients=("a@example.com",),
                        note="50 % of the response time is gone")
    add(note)
    assert store.due(note.created_ms - 1, 10) == []
    [pending] = store.due(note.created_ms, 10)
    assert pending.attempts == 0
    assert pending.notification == note


def test_oldest_first_and_limited(outbox: Backend) -> None:
    store, add = outbox
    for n, tid in ((3, 1), (1, 2), (2, 3), (4, 4)):
        add(notification(ticket_id=tid, n=n))
    assert _ids(store.due(T0 + 100, 10)) == ["t2-1-opened-hook", "t3-2-opened-hook",
                                             "t1-3-opened-hook", "t4-4-opened-hook"]
    assert _ids(store.due(T0 + 100, 2)) == ["t2-1-opened-hook", "t3-2-opened-hook"]


def test_only_the_oldest_row_per_ticket_and_channel(outbox: Backend) -> None:
    store, add = outbox
    first = notification(Event.OPENED, n=1)
    second = notification(Event.ACKNOWLEDGED, n=2)
    other_channel = notification(Event.ACKNOWLEDGED, n=2, channel="mail")
    other_ticket = notification(Event.OPENED, n=3, ticket_id=7)
    for note in (first, second, other_channel, other_ticket):
        add(note)
    assert _ids(store.due(T0 + 100, 10)) == [first.id, other_channel.id, other_ticket.id]
    store.delivered(first.id, T0 + 200)
    assert _ids(store.due(T0 + 300, 10)) == [second.id, other_channel.id, other_ticket.id]


def test_a_retry_waits_and_blocks_its_tickets_later_rows(outbox: Backend) -> None:
    store, add = outbox
    first, second = notification(n=1), notification(Event.RESOLVED, n=2)
    add(first)
    add(second)
    store.failed(first.id, "HTTP 503", T0 + 10_000)
    assert store.due(T0 + 9_999, 10) == []  # the later row waits for the older one
    [pending] = store.due(T0 + 10_000, 10)
    assert (pending.notification.id, pending.attempts) == (first.id, 1)
    store.failed(first.id, "HTTP 503", T0 + 20_000)
    assert store.due(T0 + 20_000, 10)[0].attempts == 2


def test_given_up_is_kept_out_and_unblocks(outbox: Backend) -> None:
    store, add = outbox
    first, second = notification(n=1), notification(Event.RESOLVED, n=2)
    add(first)
    add(second)
    store.failed(first.id, "HTTP 400: bad", None)
    assert _ids(store.due(T0 + 100, 10)) == [second.id]
    store.delivered(second.id, T0 + 200)
    assert store.due(T0 + 10**9, 10) == []


def test_delivered_is_never_due_again(outbox: Backend) -> None:
    store, add = outbox
    note = notification()
    add(note)
    store.delivered(note.id, T0 + 5)
    store.delivered(note.id, T0 + 6)  # a second report (re-delivery) changes nothing
    assert store.due(T0 + 10**9, 10) == []


def test_a_notification_read_back_from_storage_gets_its_types() -> None:
    stored: list[Any] = ["n1", "escalated", {"id": 1}, T0, "mail", 1, ["a@example.com"]]
    note = Notification(*stored)
    assert note.event is Event.ESCALATED and note.recipients == ("a@example.com",)
    with pytest.raises(ValueError, match="'exploded' is not a valid Event"):
        Notification(*["n2", "exploded", {"id": 1}, T0, "mail", 0])
