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

from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class _Reading:
    """One running clock of one ticket at `now`: `passed` of the contract's escalate_at
    shares are gone, `warned` of them were escalated."""

    due: int
    total: int  # clock time from the start of the service cycle to the deadline
    used: int  # clock time gone by now
    passed: int
    warned: int

    def acts(self, now: int) -> bool:
        return now >= self.due or self.passed > self.warned

    def quiet_until(self, terms: ContractTerms, now: int) -> int:
        """A moment this clock cannot act before, the row unchanged: clock time passes
        no faster than wall time (a calendar only leaves hours out), so the next share
        is at least its clock time away; the breach is at `due`."""
        if self.warned >= len(terms.escalate_at) or self.total <= 0:
            return self.due
        need = terms.escalate_at[self.warned] * self.total - self.used
        return min(self.due, now + int(need) - 1)  # 1 ms below: float rounding


def _reading(row: Row[Any], terms: ContractTerms, clock: str, now: int) -> _Reading | None:
    """The clock's reading, or None when its step was taken or its breach recorded."""
    due_col, done_col, warned_col, breach_col, _ = CLOCKS[clock]
    if getattr(row, done_col) is not None or getattr(row, breach_col) is not None:
        return None
    prio = Priority(row.priority)
    start = row.reopened_ms if row.reopened_ms is not None else row.opened_ms
    due = int(getattr(row, due_col))
    total = terms.elapsed(prio, start, due) - int(row.paused_total_ms or 0)
    used = terms.elapsed(prio, start, min(now, due)) - int(row.paused_total_ms or 0)
    share = used / total if total > 0 else 1.0
    passed = sum(1 for f in terms.escalate_at if share >= f)
    return _Reading(due, total, used, passed, int(getattr(row, warned_col) or 0))


class SlaMixin(TicketCore):
    # ticket id -> (its row as last read, a moment none of its clocks acts before): each
    # tick reads every working ticket, but judges only those changed or due, so a tick
    # costs ~a row per open ticket rather than two clock readings and two re-reads.
    _sla_quiet: dict[int, tuple[tuple[Any, ...], int]]
    _sla_book: object = None  # the ContractBook the quiet moments were computed with

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
        if self._sla_book is not self.contracts:
            self._sla_quiet, self._sla_book = {}, self.contracts
        known, quiet = self._sla_quiet, {}
        changes: list[TicketChange] = []
        for row in rows:
            seen, key = known.get(row.id), tuple(row)
            if seen is not None and seen[0] == key and now < seen[1]:
                quiet[row.id] = seen
                continue
            terms = self.contracts.terms(row.site, row.screen)
            until, acted = None, False
            for clock in CLOCKS:
                reading = _reading(row, terms, clock, now)
                if reading is None:
                    continue
                if reading.acts(now):
                    changes += self._clock_due(conn, row, terms, clock, reading, now)
                    row, acted = self._row(conn, row.id), True
                elif not acted:
                    wake = reading.quiet_until(terms, now)
                    until = wake if until is None else min(until, wake)
            if not acted and until is not None and until > now:
                quiet[row.id] = (key, until)
        self._sla_quiet = quiet  # only the rows still working: bounded by them
        return changes

    def _clock_due(
        self, conn: Connection, row: Row[Any], terms: ContractTerms, clock: str,
        reading: _Reading, now: int,
    ) -> list[TicketChange]:
        _, _, warned_col, breach_col, breach_step = CLOCKS[clock]
        due, total, used, passed, warned = (reading.due, reading.total, reading.used,
                                            reading.passed, reading.warned)
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
