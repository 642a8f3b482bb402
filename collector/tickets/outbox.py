"""The notification outbox on the ticket database: `collector.notify.model.OutboxStore`.

Rows are written by the ticket service in the transaction of the change they announce
(core.py `_enqueue`), so a change and its notifications commit or vanish together. The
sender takes them from here:
- `due` hands out, per (ticket, channel), only the oldest row that is neither delivered
  nor given up, once its next attempt is due: a ticket's news arrive in order (a task's
  rows, task_due before task_overdue, likewise per task);
- handing a row out claims it for this store's owner for `LEASE_MS` (`claimed_by`,
  `claimed_until`), so several collectors on one PostgreSQL do not send the same row at
  once; a collector that dies holding a claim lets it lapse and another sends the row
  again (at least once: receivers dedupe on the id);
- `delivered` marks it; `failed` counts the attempt and sets the next one, or gives up
  (`next_attempt_ms` NULL, kept and counted).
"""

from __future__ import annotations

import os
import socket
import uuid
from typing import Any

import orjson
from sqlalchemy import Engine, func, or_, select, update

from collector.notify.model import Event, Notification, Pending
from collector.tickets import db

LEASE_MS = 60_000
SCAN = 5_000  # open rows looked at per call; more wait for the next call


def _notification(row: Any) -> Notification:
    return Notification(
        id=row.id,
        event=Event(row.event),
        ticket=orjson.loads(row.payload),
        created_ms=int(row.created_ms),
        channel=row.channel,
        level=int(row.level),
        recipients=tuple(orjson.loads(row.recipients)),
        note=row.note,
    )


def _queue(row: Any) -> str:
    """The ordering unit of a row: its ticket, else its task, else the row alone."""
    if row.ticket_id is not None:
        return f"ticket:{row.ticket_id}"
    return f"task:{row.task_id}" if row.task_id is not None else f"notification:{row.id}"


class SqlOutbox:
    def __init__(self, engine: Engine, owner: str | None = None) -> None:
        self._engine = engine
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    def due(self, now_ms: int, limit: int) -> list[Pending]:
        nt = db.notifications
        with self._engine.begin() as conn:
            rows = conn.execute(
                select(nt)
                .where(nt.c.delivered_ms.is_(None), nt.c.next_attempt_ms.is_not(None))
                .order_by(nt.c.created_ms, nt.c.id)
                .limit(SCAN)
            ).all()
            seen: set[tuple[str, str]] = set()
            out: list[Pending] = []
            for row in rows:
                key = (_queue(row), row.channel)
                if key in seen:
                    continue  # an older row of this ticket and channel is still on its way
                seen.add(key)
                if row.next_attempt_ms > now_ms:
                    continue
                free = or_(nt.c.claimed_by.is_(None), nt.c.claimed_by == self.owner,
                           nt.c.claimed_until < now_ms)
                claimed = conn.execute(
                    update(nt)
                    .where(nt.c.id == row.id, nt.c.delivered_ms.is_(None), free)
                    .values(claimed_by=self.owner, claimed_until=now_ms + LEASE_MS)
                ).rowcount
                if claimed == 1:
                    out.append(Pending(_notification(row), int(row.attempts)))
                if len(out) >= limit:
                    break
            return out

    def delivered(self, notification_id: str, now_ms: int) -> None:
        nt = db.notifications
        with self._engine.begin() as conn:
            conn.execute(update(nt).where(nt.c.id == notification_id,
                                          nt.c.delivered_ms.is_(None))
                         .values(delivered_ms=now_ms, last_error=None, claimed_by=None,
                                 claimed_until=None))

    def failed(self, notification_id: str, error: str, retry_at_ms: int | None) -> None:
        nt = db.notifications
        with self._engine.begin() as conn:
            conn.execute(update(nt).where(nt.c.id == notification_id)
                         .values(attempts=nt.c.attempts + 1, last_error=error[:2000],
                                 next_attempt_ms=retry_at_ms, claimed_by=None,
                                 claimed_until=None))

    # -- for tests and the status ---------------------------------------------------------

    def add(self, n: Notification) -> bool:
        """Queue a notification directly (the ticket service writes its own rows)."""
        nt = db.notifications
        with self._engine.begin() as conn:
            if conn.execute(select(nt.c.id).where(nt.c.id == n.id)).first() is not None:
                return False
            kind, _, ident = n.queue.partition(":")
            conn.execute(nt.insert().values(
                id=n.id, ticket_id=int(ident) if kind == "ticket" else None,
                task_id=int(ident) if kind == "task" else None, event=n.event.value,
                channel=n.channel, level=n.level, recipients=orjson.dumps(list(n.recipients))
                .decode(), note=n.note, payload=orjson.dumps(n.ticket).decode(),
                created_ms=n.created_ms, attempts=0, next_attempt_ms=n.created_ms))
            return True

    def counts(self) -> dict[str, int]:
        """Rows waiting, delivered and given up (for /health)."""
        nt = db.notifications
        undelivered = nt.c.delivered_ms.is_(None)
        with self._engine.connect() as conn:
            def count(*where: Any) -> int:
                return int(conn.execute(select(func.count()).select_from(nt).where(*where))
                           .scalar_one())

            return {
                "waiting": count(undelivered, nt.c.next_attempt_ms.is_not(None)),
                "delivered": count(nt.c.delivered_ms.is_not(None)),
                "given_up": count(undelivered, nt.c.next_attempt_ms.is_(None)),
            }
