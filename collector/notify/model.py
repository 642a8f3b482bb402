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
    # Proactive care (collector/tickets/tasks.py): about a task, not a ticket.
    TASK_DUE = "task_due"
    TASK_OVERDUE = "task_overdue"
    REPORT_READY = "report_ready"


# Events after which the fault no longer needs anyone: Alertmanager ends the alert,
# PagerDuty resolves the incident.
ENDING_EVENTS = frozenset({Event.CLEARED, Event.RESOLVED, Event.CLOSED})
# Events whose `Notification.ticket` holds a task (task_due, task_overdue) or a written
# report (report_ready) instead of a ticket: see `Notification`.
TASK_EVENTS = frozenset({Event.TASK_DUE, Event.TASK_OVERDUE, Event.REPORT_READY})


@dataclass(frozen=True, slots=True)
class Notification:
    """One message for one channel about one ticket change.

    `id` is the idempotency key, unique per (ticket change, route target); `ticket` is the
    ticket as `GET /api/v1/tickets/{id}` returns it (JSON-ready); `recipients` are the
    route's e-mail addresses (empty: the channel's own `to`); `level` is the escalation
    level of the route that chose this channel (0 = first).

    For TASK_EVENTS `ticket` holds the task as `GET /api/v1/tasks` shows it, plus its
    `priority` (task_due, task_overdue), or the report (report_ready: site, screen,
    quarter, summary, paths, priority, and the inspection `task` or null).
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

    @property
    def about_task(self) -> bool:
        """A task or report notification (TASK_EVENTS), not a ticket's."""
        return self.event in TASK_EVENTS

    @property
    def ticket_id(self) -> object:
        """The ticket's id, for desk links and headers; None for TASK_EVENTS."""
        return None if self.about_task else self.ticket.get("id")

    @property
    def queue(self) -> str:
        """The unit kept in order (one ticket's or one task's rows per channel)."""
        if not self.about_task:
            return f"ticket:{self.ticket.get('id', self.ticket.get('key'))}"
        task = self.ticket if self.event is not Event.REPORT_READY else self.ticket.get("task")
        if isinstance(task, dict) and task.get("id") is not None:
            return f"task:{task['id']}"
        return f"notification:{self.id}"


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
