"""The ticket service: findings and desk actions in, tickets with SLA clocks out.

`TicketService` combines the parts (core.py: store and steps; apply.py: findings;
desk.py: people; maintenance.py: windows; tasks.py: proactive-care tasks; parts.py:
installed base, parts used, spares) and adds the reads: lists and KPIs.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable

from sqlalchemy import Connection, and_, func, or_, select

from collector.detect.findings import Priority
from collector.tickets import db
from collector.tickets.core import DETECTOR, TicketFilter
from collector.tickets.desk import DeskMixin
from collector.tickets.errors import TicketInputError
from collector.tickets.kpis import Downtime, Kpis, compute_kpis, month_bounds
from collector.tickets.lifecycle import State
from collector.tickets.maintenance import MaintenanceMixin
from collector.tickets.models import Survey, Ticket, TicketChange
from collector.tickets.parts import PartsMixin
from collector.tickets.tasks import TasksMixin
from collector.tickets.warranty import Warranty

__all__ = ["DETECTOR", "TicketFilter", "TicketService"]


class TicketService(MaintenanceMixin, DeskMixin, TasksMixin, PartsMixin):
    def list(
        self, filters: TicketFilter | None = None, limit: int = 100, offset: int = 0
    ) -> tuple[builtins.list[Ticket], int]:
        """Tickets matching `filters`, newest first, plus the total count for paging."""
        if limit < 0 or offset < 0:
            raise TicketInputError("limit and offset must be >= 0")
        f = filters or TicketFilter()
        t = db.tickets
        conds = []
        if f.state is not None:
            conds.append(t.c.state == State(f.state).value)
        if f.open_only:
            conds.append(t.c.state != State.CLOSED.value)
        if f.site is not None:
            conds.append(t.c.site == f.site)
        if f.screen is not None:
            conds.append(t.c.screen == f.screen)
        if f.priority is not None:
            conds.append(t.c.priority == Priority(f.priority).value)
        where = and_(*conds) if conds else None
        query = select(t).order_by(t.c.id.desc()).limit(limit).offset(offset)
        counter = select(func.count()).select_from(t)
        if where is not None:
            query, counter = query.where(where), counter.where(where)
        now = self._clock()
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
            total = int(conn.execute(counter).scalar_one())
        return [self._ticket(r, now) for r in rows], total

    def screens(self) -> set[tuple[str, str]]:
        """Every (site, screen) that ever had a ticket (the KPI screen count uses it)."""
        with self._engine.connect() as conn:
            rows = conn.execute(select(db.tickets.c.site, db.tickets.c.screen).distinct())
            return {(r.site, r.screen) for r in rows}

    def warranty(self, site: str, screen: str) -> Warranty | None:
        """The screen's warranty now; None when its contract has no acceptance date."""
        with self._engine.connect() as conn:
            terms = self.contracts.terms(site, screen)
            return self._warranty(conn, terms, site, screen, self._clock())

    def kpis(
        self, month: str, site: str | None = None, screens: Iterable[tuple[str, str]] = ()
    ) -> Kpis:
        """Monthly KPIs (docs/tickets.md). `screens` adds screens known elsewhere (the live
        directory) to those seen in tickets, for the availability denominator."""
        start, end = month_bounds(month)
        t = db.tickets
        conds = [
            t.c.opened_ms < end,
            or_(t.c.closed_ms.is_(None), t.c.closed_ms >= start),
        ]
        if site is not None:
            conds.append(t.c.site == site)
        now = self._clock()
        dt, sv = db.downtime, db.surveys
        with self._engine.connect() as conn:
            rows = conn.execute(select(t).where(*conds)).all()
            survey_q = (
                select(sv)
                .join(t, t.c.id == sv.c.ticket_id)
                .where(sv.c.ts_ms >= start, sv.c.ts_ms < end)
            )
            if site is not None:
                survey_q = survey_q.where(t.c.site == site)
            surveys = [
                Survey(s.ticket_id, s.score, bool(s.satisfied), s.comment, s.ts_ms, s.actor)
                for s in conn.execute(survey_q)
            ]
            down_q = select(dt).where(
                dt.c.start_ms < end, or_(dt.c.end_ms.is_(None), dt.c.end_ms > start)
            )
            if site is not None:
                down_q = down_q.where(dt.c.site == site)
            downtimes = [
                Downtime(d.site, d.screen, d.start_ms, d.end_ms) for d in conn.execute(down_q)
            ]
        known = self.screens() | set(screens)
        tickets = [self._ticket(r, now) for r in rows]
        # Tasks due in the month (compliance) and the installed base (MTBF per model);
        # through TasksMixin/PartsMixin directly, whatever a subclass makes of the reads.
        tasks = TasksMixin.tasks(self, site=site, due_before=end)
        return compute_kpis(month, tickets, surveys, downtimes, known, now, site,
                            tasks=[t for t in tasks if t.due_ms >= start],
                            components=PartsMixin.components(self, site))

    # -- detection's rolling state ----------------------------------------------------
    def save_detector_state(self, name: str, blob: bytes) -> None:
        """Keep `blob` (Detector.dump_state) under `name`, replacing an earlier one."""
        ds = db.detector_state

        def work(conn: Connection) -> list[TicketChange]:
            conn.execute(ds.delete().where(ds.c.name == name))
            conn.execute(ds.insert().values(name=name, saved_ms=self._clock(), blob=blob))
            return []

        self._write(work)

    def load_detector_state(self, name: str) -> tuple[int, bytes] | None:
        """(saved_ms, blob) saved under `name`, or None."""
        ds = db.detector_state
        with self._engine.connect() as conn:
            row = conn.execute(select(ds.c.saved_ms, ds.c.blob).where(ds.c.name == name)).first()
        return None if row is None else (int(row.saved_ms), bytes(row.blob))
