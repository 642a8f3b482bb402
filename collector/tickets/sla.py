"""SLA clocks between steps: escalation before a breach, breaches, pauses (pure SQL).

Each working ticket has two clocks that a step stops: response (until `acknowledge`, the
first offered solution) and on site (until `arrive`). At each share of a clock in the
contract's `escalate_at` (0.5 and 0.8 by default) that is gone without its step, the
ticket escalates one level of its notification route (`sla_warning`); when the clock
runs out the breach is recorded on the ticket (`response_breached_ms`,
`onsite_breached_ms`, at the deadline) and notified once. Clocks count service time when
the contract has business hours for the priority (contracts.py), and stand still while
the ticket is paused (waiting on the customer): resuming moves the deadlines by the
paused clock time. `check_sla(now)` runs from the collector's tick, every second.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Row, select, update

from collector.detect.findings import Priority
from collector.tickets import db
from collector.tickets.contracts import ContractTerms
from collector.tickets.core import TicketCore
from collector.tickets.lifecycle import WORKING, State, Step
from collector.tickets.models import TicketChange

SYSTEM = "sla"
# clock -> (deadline column, the step that stops it, warnings sent, breach column, step)
CLOCKS = {
    "response": ("response_due_ms", "acknowledged_ms", "response_warned",
                 "response_breached_ms", Step.RESPONSE_BREACHED),
    "onsite": ("onsite_due_ms", "arrived_ms", "onsite_warned", "onsite_breached_ms",
               Step.ONSITE_BREACHED),
}


def _minutes(ms: int) -> str:
    return f"{ms / 60_000:.0f} min" if ms < 5_400_000 else f"{ms / 3_600_000:.1f} h"


class SlaMixin(TicketCore):
    def check_sla(self, now_ms: int | None = None) -> list[TicketChange]:
        """Escalations and breaches due by `now_ms` (default: the service's clock)."""
        now = self._clock() if now_ms is None else now_ms
        return self._write(lambda conn: self._sla(conn, now))

    def _sla(self, conn: Connection, now: int) -> list[TicketChange]:
        t = db.tickets
        rows = conn.execute(
            select(t).where(
                t.c.state.in_([s.value for s in WORKING]),
                t.c.paused_ms.is_(None),
                (t.c.response_breached_ms.is_(None) & t.c.acknowledged_ms.is_(None))
                | (t.c.onsite_breached_ms.is_(None) & t.c.arrived_ms.is_(None)),
            )
        ).all()
        changes: list[TicketChange] = []
        for row in rows:
            terms = self.contracts.terms(row.site, row.screen)
            for clock in CLOCKS:
                changes += self._clock_due(conn, row, terms, clock, now)
                row = self._row(conn, row.id)
        return changes

    def _clock_due(
        self, conn: Connection, row: Row[Any], terms: ContractTerms, clock: str, now: int
    ) -> list[TicketChange]:
        due_col, done_col, warned_col, breach_col, breach_step = CLOCKS[clock]
        if getattr(row, done_col) is not None or getattr(row, breach_col) is not None:
            return []
        prio = Priority(row.priority)
        start = row.reopened_ms if row.reopened_ms is not None else row.opened_ms
        due = int(getattr(row, due_col))
        total = terms.elapsed(prio, start, due) - int(row.paused_total_ms or 0)
        used = terms.elapsed(prio, start, min(now, due)) - int(row.paused_total_ms or 0)
        share = used / total if total > 0 else 1.0
        warned = int(getattr(row, warned_col) or 0)
        passed = sum(1 for f in terms.escalate_at if share >= f)
        values: dict[str, Any] = {}
        changes: list[TicketChange] = []
        state = State(row.state)
        if passed > warned and now < due:
            values[warned_col] = passed
            levels = self.router.levels(row.site, row.priority) if self.router else passed + 1
            level = min(max(int(row.escalation_level or 0), passed), max(levels - 1, 0))
            values["escalation_level"] = level
            label = "response" if clock == "response" else "on-site"
            note = (f"{100 * terms.escalate_at[passed - 1]:.0f} % of the {label} time gone "
                    f"({_minutes(used)} of {_minutes(total)}); escalated to level {level}")
            t = db.tickets
            # Conditional on what was read: several collectors tick the same tickets, and
            # only the one whose update lands escalates (PostgreSQL re-checks the WHERE
            # after waiting for the other's row lock; SQLite serialises the writers).
            done = conn.execute(update(t).where(t.c.id == row.id, t.c[warned_col] == warned,
                                                t.c[breach_col].is_(None)).values(**values))
            if done.rowcount != 1:
                return []
            event_id = self._event(conn, row.id, now, SYSTEM, Step.SLA_WARNING, state, state,
                                   note)
            row = self._row(conn, row.id)
            changes.append(self._change(row, now, Step.SLA_WARNING.value, note,
                                        event_id=event_id))
        if now >= due:
            label = "response" if clock == "response" else "on-site"
            note = f"{label} deadline passed without the step ({_minutes(total)} allowed)"
            t = db.tickets
            done = conn.execute(update(t).where(t.c.id == row.id, t.c[breach_col].is_(None))
                                .values(**{breach_col: due, warned_col: len(terms.escalate_at)}))
            if done.rowcount != 1:
                return changes
            event_id = self._event(conn, row.id, now, SYSTEM, breach_step, state, state, note)
            changes.append(self._change(row, now, breach_step.value, note, event_id=event_id))
        return changes

    # -- pause and resume (the desk's steps) ---------------------------------------------

    def _pause(self, conn: Connection, row: Row[Any], actor: str, now: int, note: str
               ) -> TicketChange:
        state = State(row.state)
        conn.execute(update(db.tickets).where(db.tickets.c.id == row.id).values(paused_ms=now))
        event_id = self._event(conn, row.id, now, actor, Step.PAUSE, state, state, note)
        return self._change(row, now, Step.PAUSE.value, note, event_id=event_id)

    def _resume(self, conn: Connection, row: Row[Any], actor: str, now: int, note: str
                ) -> TicketChange:
        """Deadlines still ahead move by the paused clock time; passed ones stay."""
        terms = self.contracts.terms(row.site, row.screen)
        prio = Priority(row.priority)
        paused = terms.elapsed(prio, int(row.paused_ms), now)
        values: dict[str, Any] = {"paused_ms": None,
                                  "paused_total_ms": int(row.paused_total_ms or 0) + paused}
        for col in ("response_due_ms", "onsite_due_ms", "resolve_due_ms", "repair_due_ms"):
            due = getattr(row, col)
            if due is not None and due > int(row.paused_ms):
                values[col] = terms.add_time(prio, int(due), paused)
        state = State(row.state)
        conn.execute(update(db.tickets).where(db.tickets.c.id == row.id).values(**values))
        text = f"paused for {_minutes(paused)} of clock time" + (f": {note}" if note else "")
        event_id = self._event(conn, row.id, now, actor, Step.RESUME, state, state, text)
        return self._change(row, now, Step.RESUME.value, text, event_id=event_id)
