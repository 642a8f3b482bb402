"""Proactive care as tasks: follow-up contacts and remote inspections with due dates.

DOMAIN.md promises a follow-up contact at most every two months after acceptance and a
remote inspection four times a year. Per screen whose contract has an
`acceptance_date`, the due dates are acceptance + n x `followup_months` (kind
`follow_up`) and acceptance + n x `inspection_months` (kind `inspection`), n = 1, 2, ...
(calendar months, day clamped: Jan 31 + 1 month = Feb 28).

- `schedule_tasks(now)` keeps the next due task of every series in the `tasks` table:
  the first due date after now, plus any due dates missed since the series' newest task
  (a collector that was down still owes them; at most `MAX_BACKFILL`). A series without
  any task yet starts at the next due date: nothing before LEDwatch knew the screen is
  owed. The unique key (site, screen, kind, due_ms) makes it idempotent, also with
  several collectors on one database.
- A task is due on its due date (UTC) and late from the next day: `on_time` = done
  before `due_ms + 1 day`; `overdue` = not done at that time.
- `notify_tasks(now)` queues `task_due` (from `notice` before the due date) and
  `task_overdue` (once late) through the notification outbox, in the transaction that
  sets `notified_ms` / `overdue_notified_ms`, so each is queued once.
- `complete_task` is the recorded step (done_ms, done_by, note, the report's path).
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any, Final

import orjson
from sqlalchemy import Connection, Row, and_, func, or_, select, update

from collector.detect.findings import AGENT_SCREEN
from collector.tickets import db
from collector.tickets.contracts import MS_PER_DAY, ContractTerms, add_months_ms, date_ms
from collector.tickets.core import MAX_ID, TicketCore
from collector.tickets.errors import TicketConflict, TicketError, TicketInputError, TicketNotFound
from collector.tickets.models import TicketChange

MAX_BACKFILL: Final = 12  # missed due dates created per series and call, newest first
NOTIFY_BATCH: Final = 500  # tasks notified per call; the rest on the next


class TaskKind(StrEnum):
    INSPECTION = "inspection"
    FOLLOW_UP = "follow_up"


class TaskNotFound(TicketNotFound):
    """An unknown task id (a TicketNotFound, so the API answers 404 like for tickets)."""

    def __init__(self, task_id: int) -> None:
        TicketError.__init__(self, f"task {task_id} does not exist")
        self.ticket_id = task_id


@dataclass(frozen=True, slots=True)
class Task:
    id: int
    site: str
    screen: str
    kind: str
    due_ms: int
    done_ms: int | None
    done_by: str | None
    note: str
    report: str | None
    notified_ms: int | None
    overdue_notified_ms: int | None

    @property
    def late_ms(self) -> int:
        """The task is due on its due date; from this moment it is late."""
        return self.due_ms + MS_PER_DAY

    @property
    def on_time(self) -> bool | None:
        """Done by the end of its due date (None: not done)."""
        return None if self.done_ms is None else self.done_ms < self.late_ms

    def state(self, now_ms: int) -> str:
        """`done`, `overdue` (not done by its due date) or `open`."""
        if self.done_ms is not None:
            return "done"
        return "overdue" if now_ms >= self.late_ms else "open"

    def document(self, now_ms: int, priority: str | None = None) -> dict[str, Any]:
        """The task as the API shows it (also a notification's payload, with priority)."""
        doc = asdict(self) | {"state": self.state(now_ms), "on_time": self.on_time}
        return doc if priority is None else doc | {"priority": priority}


def _task(row: Row[Any]) -> Task:
    return Task(**{c.name: getattr(row, c.name) for c in db.tasks.columns})


def months_of(terms: ContractTerms, kind: TaskKind) -> int:
    return terms.inspection_months if kind is TaskKind.INSPECTION else terms.followup_months


def due_ms(acceptance: date, months: int, n: int) -> int:
    """The n-th due date (n >= 1) of a series, 00:00 UTC; counted from acceptance each
    time, so a clamped day (Jan 31 -> Feb 28) does not drift the later ones."""
    return add_months_ms(date_ms(acceptance), n * months)


def next_index(acceptance: date, months: int, after_ms: int) -> int:
    """The smallest n >= 1 whose due date is after `after_ms`."""
    at = datetime.fromtimestamp(after_ms / 1000, UTC)
    elapsed = (at.year - acceptance.year) * 12 + at.month - acceptance.month
    n = max(1, elapsed // months - 1)
    while due_ms(acceptance, months, n) <= after_ms:
        n += 1
    return n


def series_due(acceptance: date, months: int, newest_ms: int | None, now_ms: int) -> list[int]:
    """Due dates to create for one series (see the module docstring), oldest first."""
    if months <= 0:
        return []
    upcoming = next_index(acceptance, months, now_ms)
    first = upcoming if newest_ms is None else next_index(acceptance, months, newest_ms)
    first = max(first, upcoming - MAX_BACKFILL + 1)
    return [due_ms(acceptance, months, n) for n in range(first, upcoming + 1)]


class TasksMixin(TicketCore):
    # -- scheduling ----------------------------------------------------------------------
    def schedule_tasks(
        self, now_ms: int | None = None, screens: Iterable[tuple[str, str]] = ()
    ) -> builtins.list[Task]:
        """Create the due tasks of every screen with an acceptance date: the contracts'
        screens, those seen in tickets and the installed base, and `screens` (the live
        directory). Returns the tasks created (none on a second call)."""
        now = self._clock() if now_ms is None else now_ms
        created: list[Task] = []

        def work(conn: Connection) -> list[TicketChange]:
            t = db.tasks
            newest = {
                (r.site, r.screen, r.kind): int(r.newest)
                for r in conn.execute(select(t.c.site, t.c.screen, t.c.kind,
                                             func.max(t.c.due_ms).label("newest"))
                                      .group_by(t.c.site, t.c.screen, t.c.kind))
            }
            rows = []
            for site, screen in sorted(self._care_screens(conn, screens)):
                terms = self.contracts.terms(site, screen)
                if terms.acceptance_date is None:
                    continue
                for kind in TaskKind:
                    for due in series_due(terms.acceptance_date, months_of(terms, kind),
                                          newest.get((site, screen, kind.value)), now):
                        rows.append(dict(site=site, screen=screen, kind=kind.value,
                                         due_ms=due, note=""))
            for r in rows:
                if db.insert_ignore(conn, t, [r]):
                    created.append(_task(conn.execute(select(t).where(
                        t.c.site == r["site"], t.c.screen == r["screen"],
                        t.c.kind == r["kind"], t.c.due_ms == r["due_ms"])).one()))
            return []

        self._write(work)
        return sorted(created, key=lambda k: (k.due_ms, k.site, k.screen, k.kind))

    def _care_screens(self, conn: Connection, extra: Iterable[tuple[str, str]]
                      ) -> set[tuple[str, str]]:
        t, c = db.tickets, db.components
        found = self.contracts.screens() | set(extra)
        found |= {(r.site, r.screen) for r in conn.execute(select(t.c.site, t.c.screen).distinct())}
        found |= {(r.site, r.screen) for r in conn.execute(select(c.c.site, c.c.screen).distinct())}
        return {s for s in found if s[1] != AGENT_SCREEN}

    # -- reads ---------------------------------------------------------------------------
    def _task_where(
        self, site: str | None, screen: str | None, kind: str | None,
        due_before: int | None, open_only: bool,
    ) -> list[Any]:
        t = db.tasks
        conds: list[Any] = []
        if kind is not None:
            try:
                conds.append(t.c.kind == TaskKind(kind).value)
            except ValueError:
                raise TicketInputError(
                    f"kind must be inspection or follow_up, got {kind!r}") from None
        for col, value in ((t.c.site, site), (t.c.screen, screen)):
            if value is not None:
                conds.append(col == value)
        if due_before is not None:
            conds.append(t.c.due_ms < due_before)
        if open_only:
            conds.append(t.c.done_ms.is_(None))
        return conds

    def tasks(
        self,
        site: str | None = None,
        screen: str | None = None,
        kind: str | None = None,
        due_before: int | None = None,
        open_only: bool = False,
        limit: int | None = None,
        offset: int = 0,
    ) -> builtins.list[Task]:
        """Tasks matching the filters, earliest due first (the report and the API)."""
        t = db.tasks
        query = (select(t).where(*self._task_where(site, screen, kind, due_before, open_only))
                 .order_by(t.c.due_ms, t.c.id).offset(offset))
        if limit is not None:
            query = query.limit(limit)
        with self._engine.connect() as conn:
            return [_task(r) for r in conn.execute(query)]

    def count_tasks(
        self,
        site: str | None = None,
        screen: str | None = None,
        kind: str | None = None,
        due_before: int | None = None,
        open_only: bool = False,
    ) -> int:
        conds = self._task_where(site, screen, kind, due_before, open_only)
        with self._engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(db.tasks).where(*conds))
                       .scalar_one())

    def _task_row(self, conn: Connection, task_id: int) -> Row[Any]:
        if not 0 < task_id <= MAX_ID:
            raise TaskNotFound(task_id)
        row = conn.execute(select(db.tasks).where(db.tasks.c.id == task_id)).first()
        if row is None:
            raise TaskNotFound(task_id)
        return row

    def get_task(self, task_id: int) -> Task:
        with self._engine.connect() as conn:
            return _task(self._task_row(conn, task_id))

    # -- steps ---------------------------------------------------------------------------
    def complete_task(
        self, task_id: int, actor: str, note: str = "", report: str | None = None
    ) -> Task:
        """Record the follow-up contact or inspection as done (once: 409 after that)."""

        def work(conn: Connection) -> list[TicketChange]:
            row = self._task_row(conn, task_id)
            values: dict[str, Any] = {"done_ms": self._clock(), "done_by": actor, "note": note}
            if report is not None:
                values["report"] = report
            done = row.done_ms is None and conn.execute(
                update(db.tasks).where(db.tasks.c.id == task_id, db.tasks.c.done_ms.is_(None))
                .values(**values)).rowcount == 1
            if not done:  # done before, or by another collector a moment ago
                row = self._task_row(conn, task_id)
                raise TicketConflict(
                    f"task {task_id} was already done by {row.done_by} at "
                    f"{datetime.fromtimestamp(row.done_ms / 1000, UTC):%Y-%m-%d %H:%M} UTC")
            return []

        self._write(work)
        return self.get_task(task_id)

    def attach_report(self, task_id: int, report: str) -> Task:
        """Note where the inspection report is, leaving the task for a person to do."""

        def work(conn: Connection) -> list[TicketChange]:
            self._task_row(conn, task_id)
            conn.execute(update(db.tasks).where(db.tasks.c.id == task_id).values(report=report))
            return []

        self._write(work)
        return self.get_task(task_id)

    # -- notifications -------------------------------------------------------------------
    def notify_tasks(
        self,
        now_ms: int | None = None,
        *,
        priority: str = "P4",
        notice_ms: int = 7 * MS_PER_DAY,
        limit: int = NOTIFY_BATCH,
    ) -> tuple[int, int]:
        """Queue `task_due` / `task_overdue` for the tasks that reached that point;
        returns (due, overdue) counts. Without routes the tasks are marked all the same
        (nobody is owed the old news when routes are added later)."""
        now = self._clock() if now_ms is None else now_ms
        counts = [0, 0]

        def work(conn: Connection) -> list[TicketChange]:
            t = db.tasks
            rows = conn.execute(
                select(t).where(
                    t.c.done_ms.is_(None),
                    or_(and_(t.c.notified_ms.is_(None), t.c.due_ms - notice_ms <= now),
                        and_(t.c.overdue_notified_ms.is_(None),
                             t.c.due_ms + MS_PER_DAY <= now)))
                .order_by(t.c.due_ms, t.c.id).limit(limit)
            ).all()
            for row in rows:
                task = _task(row)
                late = now >= task.late_ms
                event = "task_overdue" if late else "task_due"
                values = {"notified_ms": task.notified_ms or now}
                if late:
                    values["overdue_notified_ms"] = now
                conn.execute(update(t).where(t.c.id == task.id).values(**values))
                counts[late] += 1
                doc = _task(conn.execute(select(t).where(t.c.id == task.id)).one()).document(
                    now, priority)
                note = (f"the {task.kind.replace('_', '-')} due {doc_day(task.due_ms)} is "
                        + ("overdue" if late else "due"))
                self._enqueue_care(conn, f"lw-task-{task.id}-{event}", event, task.site,
                                   task.screen, priority, doc, note, now, task_id=task.id)
            return []

        self._write(work)
        return counts[0], counts[1]

    def notify_report(
        self,
        site: str,
        screen: str,
        quarter: str,
        summary: str,
        paths: Sequence[str],
        task_id: int | None = None,
        priority: str = "P4",
    ) -> int:
        """Queue `report_ready` for a written inspection report (once per screen and
        quarter: the ids are fixed); returns the rows queued."""
        now = self._clock()
        queued = [0]

        def work(conn: Connection) -> list[TicketChange]:
            task = None if task_id is None else _task(self._task_row(conn, task_id))
            doc = {"site": site, "screen": screen, "quarter": quarter, "summary": summary,
                   "paths": list(paths), "priority": priority,
                   "task": None if task is None else task.document(now)}
            queued[0] = self._enqueue_care(conn, f"lw-report-{site}-{screen}-{quarter}",
                                           "report_ready", site, screen, priority, doc,
                                           summary, now, task_id=task_id)
            return []

        self._write(work)
        return queued[0]

    def _enqueue_care(
        self, conn: Connection, base_id: str, event: str, site: str, screen: str,
        priority: str, doc: dict[str, Any], note: str, now: int, task_id: int | None,
    ) -> int:
        """Outbox rows for a task or report event at level 0 of its route, in `conn`'s
        transaction (the same at-least-once path as ticket changes)."""
        if self.router is None:
            return 0
        nt = db.notifications
        created = now
        if task_id is not None:
            # The outbox sends a task's rows by (created_ms, id): keep them strictly
            # increasing so task_due goes before a report_ready of the same moment.
            newest = conn.execute(select(func.max(nt.c.created_ms))
                                  .where(nt.c.task_id == task_id)).scalar()
            created = max(now, int(newest) + 1) if newest is not None else now
        payload = orjson.dumps(doc).decode()
        rows = [
            dict(id=f"{base_id}-{channel}-0", ticket_id=None, task_id=task_id, event=event,
                 channel=channel, level=0, recipients=orjson.dumps(list(recipients)).decode(),
                 note=note, payload=payload, created_ms=created, attempts=0,
                 next_attempt_ms=now)
            for channel, recipients in self.router.targets(site, screen, priority, event, 0)
        ]
        return db.insert_ignore(conn, nt, rows)


def doc_day(ms: int) -> str:
    return f"{datetime.fromtimestamp(ms / 1000, UTC):%Y-%m-%d}"
