"""An in-memory OutboxStore: the reference for the semantics the SQL outbox keeps.

Used by the unit tests and as the executable statement of the contract in
`model.OutboxStore`: `due` hands out, per (ticket id, channel), only the oldest row
that is neither delivered nor given up, and only once its next attempt is due. It
survives nothing, so a real collector never uses it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from collector.notify.model import Notification, Pending


@dataclass(slots=True)
class OutboxRow:
    notification: Notification
    seq: int
    next_ms: int
    attempts: int = 0
    delivered_ms: int | None = None
    given_up: bool = False
    errors: list[str] = field(default_factory=list)

    @property
    def open(self) -> bool:
        return self.delivered_ms is None and not self.given_up


def queue_key(notification: Notification) -> tuple[str, str]:
    """The ordering unit: one ticket's (or task's) rows for one channel go out oldest first."""
    return notification.queue, notification.channel


class MemoryOutbox:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[str, OutboxRow] = {}
        self._seq = 0

    def add(self, notification: Notification) -> bool:
        """Queue a notification, due at once; False (and no change) if its id is known."""
        with self._lock:
            if notification.id in self._rows:
                return False
            self._seq += 1
            self._rows[notification.id] = OutboxRow(
                notification, self._seq, notification.created_ms
            )
            return True

    def due(self, now_ms: int, limit: int) -> list[Pending]:
        with self._lock:
            rows = sorted(self._rows.values(), key=lambda r: (r.notification.created_ms, r.seq))
            seen: set[tuple[str, str]] = set()
            out: list[Pending] = []
            for row in rows:
                if not row.open:
                    continue
                key = queue_key(row.notification)
                if key in seen:
                    continue  # an older row of this ticket and channel is still undelivered
                seen.add(key)
                if row.next_ms <= now_ms:
                    out.append(Pending(row.notification, row.attempts))
                    if len(out) >= limit:
                        break
            return out

    def delivered(self, notification_id: str, now_ms: int) -> None:
        with self._lock:
            row = self._rows[notification_id]
            if row.delivered_ms is None:
                row.delivered_ms = now_ms

    def failed(self, notification_id: str, error: str, retry_at_ms: int | None) -> None:
        with self._lock:
            row = self._rows[notification_id]
            row.attempts += 1
            row.errors.append(error)
            if retry_at_ms is None:
                row.given_up = True
            else:
                row.next_ms = retry_at_ms

    # -- inspection (tests) ---------------------------------------------------------------
    def row(self, notification_id: str) -> OutboxRow:
        with self._lock:
            return self._rows[notification_id]

    def rows(self) -> list[OutboxRow]:
        with self._lock:
            return sorted(self._rows.values(), key=lambda r: r.seq)

    def undelivered(self) -> list[OutboxRow]:
        return [r for r in self.rows() if r.open]
