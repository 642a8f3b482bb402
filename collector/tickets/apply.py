"""Findings in, tickets out: one ticket per root cause, maintenance windows honoured.

Per finding, in order, in one transaction (docs/detection.md has the whole table):

```
 cause, active   no open ticket of its root cause -> a new ticket (or, while a
                 maintenance window covers it, a `suppressed` row instead)
                 an open ticket of the same component and family -> joins it:
                 `recur` if it was verifying/resolved, `escalate` to the later
                 stage, `priority` raised, `flapping` marked
 cause, cleared  its membership ends; the ticket clears (-> verifying) when no
                 cause of it is active any more
 effect          recorded on the root's ticket (`effect`), which takes the
 (root set)      effect's priority if that is more urgent
```

The ticket of a root cause is found by its members (`ticket_members`) or, for a later
stage of the same family (psu_degrading -> voltage_low -> psu_failed), by component.
When a maintenance window ends, the findings it held that are still active open their
tickets then (`tick`, also run after every batch of findings).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Row, and_, select, update
from sqlalchemy.exc import IntegrityError

from collector.detect.findings import (
    PREDICTIVE,
    Fault,
    Finding,
    Priority,
    family,
    split_key,
    stage,
)
from collector.tickets import db
from collector.tickets.contracts import MS_PER_DAY
from collector.tickets.core import DETECTOR
from collector.tickets.lifecycle import WORKING, State, Step
from collector.tickets.models import MaintenanceWindow, Source, TicketChange
from collector.tickets.sla import SlaMixin

CAUSE, EFFECT = "cause", "effect"


def window_of(row: Row[Any]) -> MaintenanceWindow:
    return MaintenanceWindow(**{c.name: getattr(row, c.name) for c in db.maintenance.columns})


class FindingsMixin(SlaMixin):
    def apply_findings(self, findings: Iterable[Finding]) -> list[TicketChange]:
        """Open, join, re-open or mark for verification the tickets the findings concern."""
        batch = list(findings)
        if not batch:
            return []

        def work(conn: Connection) -> list[TicketChange]:
            changes: list[TicketChange] = []
            for finding in batch:
                changes += self._end_windows(conn, finding.ts_ms)
                changes += self._apply_shared(conn, finding)
            return changes

        return self._write(work)

    def _apply_shared(self, conn: Connection, f: Finding) -> list[TicketChange]:
        """`_apply_one`, safe against another collector on the same PostgreSQL: if it
        opened the ticket first (the unique open_key refuses ours), join that one."""
        if conn.dialect.name != "postgresql":
            return self._apply_one(conn, f)  # one process per SQLite file
        for attempt in range(3):
            try:
                with conn.begin_nested():
                    return self._apply_one(conn, f)
            except IntegrityError:
                if attempt == 2:
                    raise
        return []

    def tick(self, now_ms: int | None = None) -> list[TicketChange]:
        """Time passed: open the tickets that maintenance windows ended by now held back,
        escalate and record breaches (sla.py)."""
        now = self._clock() if now_ms is None else now_ms
        return self._write(lambda conn: self._end_windows(conn, now) + self._sla(conn, now))

    # -- lookups ------------------------------------------------------------------------

    def _open_for(self, conn: Connection, key: str) -> Row[Any] | None:
        """The not-closed ticket whose cause `key` is: its own ticket, or the one of an
        earlier stage of the same root cause on the same component. (A finding that
        was an effect of another ticket once is a cause of its own later.)"""
        t, m = db.tickets, db.ticket_members
        row = conn.execute(
            select(t)
            .join(m, m.c.ticket_id == t.c.id)
            .where(m.c.key == key, m.c.role == CAUSE, t.c.open_key.is_not(None))
            .order_by(t.c.id.desc())
        ).first()
        if row is not None:
            return row
        site, screen, component, fault = split_key(key)
        stages = [f.value for f in family(fault)]
        return conn.execute(
            select(t)
            .where(
                t.c.site == site,
                t.c.screen == screen,
                t.c.component == component,
                t.c.fault.in_(stages),
                t.c.open_key.is_not(None),
                t.c.source == Source.AUTO.value,
            )
            .order_by(t.c.id.desc())
        ).first()

    def _member(
        self, conn: Connection, ticket_id: int, f: Finding, role: str, active: bool
    ) -> None:
        m = db.ticket_members
        where = and_(m.c.ticket_id == ticket_id, m.c.key == f.key)
        if conn.execute(select(m.c.id).where(where)).first() is None:
            conn.execute(
                m.insert().values(
                    ticket_id=ticket_id, key=f.key, component=f.component,
                    fault=f.fault.value, role=role, active=active,
                    first_ms=f.ts_ms, last_ms=f.ts_ms,
                )
            )
        else:
            conn.execute(update(m).where(where).values(active=active, last_ms=f.ts_ms))

    def _window(self, conn: Connection, f: Finding, ts_ms: int) -> MaintenanceWindow | None:
        mt = db.maintenance
        rows = conn.execute(
            select(mt).where(mt.c.site == f.site, mt.c.start_ms <= ts_ms, mt.c.end_ms > ts_ms)
        )
        for row in rows:
            window = window_of(row)
            if window.covers(f.site, f.screen, f.component, ts_ms):
                return window
        return None

    # -- one finding --------------------------------------------------------------------

    def _apply_one(self, conn: Connection, f: Finding) -> list[TicketChange]:
        if f.root is not None:
            return self._effect(conn, f)
        if f.active:
            return self._cause_active(conn, f)
        return self._cause_cleared(conn, f)

    def _suppress(
        self, conn: Connection, f: Finding, window: MaintenanceWindow, root: str | None
    ) -> None:
        s = db.suppressed
        held = conn.execute(
            select(s.c.id).where(s.c.key == f.key, s.c.cleared_ms.is_(None),
                                 s.c.ticket_id.is_(None))
        ).first()
        if held is None:
            terms = self.contracts.terms(f.site, f.screen)
            prio = terms.priority_for(f.fault, f.screen, f.ts_ms, f.rule_priority)
            conn.execute(
                s.insert().values(
                    maintenance_id=window.id, key=f.key, site=f.site, screen=f.screen,
                    component=f.component, fault=f.fault.value, priority=prio.value,
                    detail=f.detail, root=root, first_ms=f.ts_ms,
                )
            )

    def _open(self, conn: Connection, f: Finding, note: str = "") -> TicketChange:
        """A new ticket for cause `f` (a repeat service if the same fault closed lately)."""
        t = db.tickets
        last = conn.execute(
            select(t.c.id, t.c.closed_ms).where(t.c.key == f.key).order_by(t.c.id.desc())
        ).first()
        repeat_of = None
        if last is not None and last.closed_ms is not None:
            window = self.contracts.terms(f.site, f.screen).repeat_window_days * MS_PER_DAY
            if f.ts_ms - last.closed_ms <= window:
                repeat_of = last.id
        extra = {
            "flapping": f.flapping,
            "predicted_failure_ms": f.predicted_failure_ms,
            "evidence": None if f.evidence is None else json.dumps(f.evidence),
        }
        change = self._create(
            conn,
            site=f.site,
            screen=f.screen,
            component=f.component,
            fault=f.fault,
            priority=None,
            source=Source.AUTO,
            detail=f"{f.detail} {note}".strip(),
            reporter=None,
            ts_ms=f.ts_ms,
            actor=DETECTOR,
            repeat_of=repeat_of,
            rule_priority=f.rule_priority,
            extra=extra,
        )
        self._member(conn, change.ticket_id, f, CAUSE, True)
        return change

    def _cause_active(self, conn: Connection, f: Finding) -> list[TicketChange]:
        row = self._open_for(conn, f.key)
        if row is None:
            window = self._window(conn, f, f.ts_ms)
            if window is not None:
                self._suppress(conn, f, window, None)
                return []
            return [self._open(conn, f)]
        changes: list[TicketChange] = []
        self._member(conn, row.id, f, CAUSE, True)
        old = Fault(row.fault)
        if State(row.state) in (State.VERIFYING, State.RESOLVED):
            if f.fault in PREDICTIVE and stage(f.fault) < stage(old):
                # A forecast after the worse stage was fixed (the peer comparison still
                # remembers the sag): recorded, but it re-opens nothing.
                note = f"{f.fault.value} while {old.value} is {row.state}: {f.detail}"
                return [self._note(conn, row, f.ts_ms, Step.NOTE, note)]
            changes.append(self._transition(conn, row, Step.RECUR, DETECTOR, f.ts_ms, f.detail, {}))
            row = self._row(conn, row.id)
        values: dict[str, Any] = {}
        if f.fault is not old and family(f.fault) == family(old) and stage(f.fault) > stage(old):
            values["fault"] = f.fault.value
            note = f"{old.value} -> {f.fault.value}: {f.detail}"
            changes.append(self._note(conn, row, f.ts_ms, Step.ESCALATE, note, fault=f.fault))
        changes += self._raise(conn, row, f, values)
        if f.flapping and not row.flapping:
            values["flapping"] = True
            note = "the fault comes and goes: kept open until it stays away"
            changes.append(self._note(conn, row, f.ts_ms, Step.FLAPPING, note))
        if f.predicted_failure_ms is not None:
            values["predicted_failure_ms"] = f.predicted_failure_ms
        if values:
            conn.execute(update(db.tickets).where(db.tickets.c.id == row.id).values(**values))
        return changes

    def _raise(
        self, conn: Connection, row: Row[Any], f: Finding, values: dict[str, Any]
    ) -> list[TicketChange]:
        """Raise `row`'s priority to `f`'s if that is more urgent (resolve deadline too)."""
        terms = self.contracts.terms(row.site, row.screen)
        wanted = terms.priority_for(f.fault, row.screen, f.ts_ms, f.rule_priority)
        have = Priority(row.priority)
        if wanted.rank >= have.rank:
            return []
        start = row.reopened_ms if row.reopened_ms is not None else row.opened_ms
        values["priority"] = wanted.value
        values["resolve_due_ms"] = terms.deadlines(wanted, start)["resolve_due_ms"]
        note = f"{have.value} -> {wanted.value}: {f.component} {f.fault.value}"
        return [self._note(conn, row, f.ts_ms, Step.PRIORITY, note, priority=wanted)]

    def _note(
        self,
        conn: Connection,
        row: Row[Any],
        ts_ms: int,
        step: Step,
        note: str,
        *,
        priority: Priority | None = None,
        fault: Fault | None = None,
    ) -> TicketChange:
        state = State(row.state)
        event_id = self._event(conn, row.id, ts_ms, DETECTOR, step, state, state, note)
        return self._change(row, ts_ms, step.value, note,
                            priority=None if priority is None else priority.value,
                            fault=None if fault is None else fault.value, event_id=event_id)

    def _cause_cleared(self, conn: Connection, f: Finding) -> list[TicketChange]:
        row = self._open_for(conn, f.key)
        if row is None:
            s = db.suppressed
            conn.execute(
                update(s)
                .where(s.c.key == f.key, s.c.cleared_ms.is_(None), s.c.ticket_id.is_(None))
                .values(cleared_ms=f.ts_ms)
            )
            return []
        self._member(conn, row.id, f, CAUSE, False)
        m = db.ticket_members
        still = conn.execute(
            select(m.c.key).where(m.c.ticket_id == row.id, m.c.role == CAUSE, m.c.active)
        ).first()
        if still is not None or State(row.state) not in WORKING:
            return []
        return [self._transition(conn, row, Step.CLEAR, DETECTOR, f.ts_ms, f.detail, {})]

    def _effect(self, conn: Connection, f: Finding) -> list[TicketChange]:
        assert f.root is not None
        row = self._open_for(conn, f.root)
        if row is None:
            s = db.suppressed
            held = conn.execute(
                select(s.c.maintenance_id).where(s.c.key == f.root, s.c.ticket_id.is_(None))
            ).first()
            if held is not None:
                if f.active:
                    mt = db.maintenance
                    w = conn.execute(select(mt).where(mt.c.id == held.maintenance_id)).one()
                    self._suppress(conn, f, window_of(w), f.root)
                else:
                    conn.execute(update(s).where(s.c.key == f.key, s.c.cleared_ms.is_(None))
                                 .values(cleared_ms=f.ts_ms))
                return []
            if not f.active:
                return []
            # The root's ticket was closed by hand while the root is still active: the
            # root cause gets a ticket again, opened for this effect.
            site, screen, component, fault = split_key(f.root)
            root = Finding(site, screen, component, fault, True, f.ts_ms,
                           f"opened for its effect {f.component} {f.fault.value}")
            changes = [self._open(conn, root)]
            row = self._row(conn, changes[0].ticket_id)
        else:
            changes = []
        self._member(conn, row.id, f, EFFECT, f.active)
        what = f"{f.component} {f.fault.value}"
        note = f"effect: {what} ({f.detail})" if f.active else f"effect cleared: {what}"
        changes.append(self._note(conn, row, f.ts_ms, Step.EFFECT, note))
        if f.active:
            values: dict[str, Any] = {}
            changes += self._raise(conn, row, f, values)
            if values:
                conn.execute(update(db.tickets).where(db.tickets.c.id == row.id).values(**values))
        return changes

    # -- maintenance windows ending -----------------------------------------------------

    def _end_windows(self, conn: Connection, now_ms: int) -> list[TicketChange]:
        s, mt = db.suppressed, db.maintenance
        rows = conn.execute(
            select(s, mt.c.end_ms.label("window_end"))
            .join(mt, mt.c.id == s.c.maintenance_id)
            .where(s.c.cleared_ms.is_(None), s.c.ticket_id.is_(None), mt.c.end_ms <= now_ms)
            .order_by(s.c.root.is_not(None), s.c.id)  # causes before their effects
        ).all()
        changes: list[TicketChange] = []
        for r in rows:
            # It opens when the window ended (a replay ticks only as findings come).
            at = max(int(r.window_end), int(r.first_ms))
            f = Finding(r.site, r.screen, r.component, Fault(r.fault), True, at,
                        r.detail, root=r.root, rule_priority=Priority(r.priority))
            later = self._window(conn, f, at)
            if later is not None:  # another window still covers it: it holds the row now
                conn.execute(update(s).where(s.c.id == r.id).values(maintenance_id=later.id))
                continue
            note = (f"(active since {r.first_ms}, held by maintenance window "
                    f"#{r.maintenance_id}, which ended)")
            ticket_id: int | None
            if r.root is None:
                existing = self._open_for(conn, f.key)
                if existing is None:
                    change = self._open(conn, f, note)
                    changes.append(change)
                    ticket_id = change.ticket_id
                    self._event(conn, ticket_id, at, DETECTOR, Step.UNSUPPRESS,
                                State.OPEN, State.OPEN, note)
                else:
                    ticket_id = existing.id
                    self._member(conn, ticket_id, f, CAUSE, True)
            else:
                changes += self._effect(conn, f)
                found = self._open_for(conn, r.root)
                ticket_id = None if found is None else int(found.id)
            conn.execute(update(s).where(s.c.id == r.id).values(ticket_id=ticket_id))
        return changes
