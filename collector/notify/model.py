"""What the ticket side hands the sender: notifications, outbox rows and the store contract.

The ticket service writes one `Notification` per (ticket change, route target) into its
outbox table in the same transaction as the change; the sender reads them back through
`OutboxStore` and marks each one delivered only after the receiver accepted it. So a
crash between "sent" and "marked" sends that row again: delivery is at-least-once and
every receiver gets `Notification.id` to deduplicate on.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol


class Event(StrEnum):
    """What happened to a ticket. The values are stored in the outbox: never rename one."""

    OPENED = "opened"
    PRIORITY_RAISED = "priority_raised"
    ESCALATED = "escalated"
    RESPONSE_BREACHED = "response_breached"
    ONSITE_BREACHED = "onsite_breached"
    CLEARED = "cleared"
    RESOLVED = "resolved"
    REOPENED = "reopened"
    ACKNOWLEDGED = "acknowledged"
    CLOSED = "closed"


# Events after which the fault no longer needs anyone: Alertmanager ends the alert,
# PagerDuty resolves the incident.
ENDING_EVENTS = frozenset({Event.CLEARED, Event.RESOLVED, Event.CLOSED})


@dataclass(frozen=True, slots=True)
class Notification:
    """One message for one channel about one ticket change.

    `id` is the idempotency key, unique per (ticket change, route target); `ticket` is the
    ticket as `GET /api/v1/tickets/{id}` returns it (JSON-ready); `recipients` are the
    route's e-mail addresses (empty: the channel's own `to`); `level` is the escalation
    level of the route that chose this channel (0 = first).
    """

    id: str
    event: Event
    ticket: dict[str, Any]
    created_ms: int
    channel: str
    level: int
    recipients: tuple[str, ...] = ()
    note: str = ""

    def __post_init__(self) -> None:
        # A row read back from SQL holds the stored strings: make them the types the
        # channels compare against, and refuse an event that does not exist.
        object.__setattr__(self, "event", Event(self.event))
        object.__setattr__(self, "recipients", tuple(self.recipients))


@dataclass(frozen=True, slots=True)
class Pending:
    """An undelivered outbox row as `OutboxStore.due` returns it."""

    notification: Notification
    attempts: int  # deliveries tried so far


class OutboxStore(Protocol):
    """The outbox as the sender sees it. Only the sender thread calls these.

    Semantics every backend keeps (tests/collector/notify/test_notify_outbox.py checks them):
    - `due(now_ms, limit)`: undelivered rows that are not given up and whose next attempt
      is at or before `now_ms`, oldest first (created_ms, then insertion order), at most
      `limit`. Per (ticket id, channel) only the oldest such row is a candidate: a row is
      never returned while an older row of the same ticket and channel is undelivered
      and not given up, so receivers see one ticket's changes in order.
    - `delivered(id, now_ms)`: the receiver accepted it; `due` never returns it again.
    - `failed(id, error, retry_at_ms)`: one more attempt is counted and the error kept;
      `retry_at_ms` None gives the row up (kept and counted, never returned by `due`,
      no longer blocking later rows of its ticket and channel).
    """

    def due(self, now_ms: int, limit: int) -> list[Pending]: ...

    def delivered(self, notification_id: str, now_ms: int) -> None: ...

    def failed(self, notification_id: str, error: str, retry_at_ms: int | None) -> None: ...
