"""The ticket service: findings and desk actions in, tickets with SLA clocks out.

Threading: the ingest loop calls `apply_findings` while API worker threads take steps, so
every write runs under one lock and in one transaction; listeners are called after the
commit, outside the transaction, and a failing listener is logged, never propagated.
Several collector processes may share one PostgreSQL database: the unique `open_key`
column then refuses a second open ticket for the same fault key.
"""

from __future__ import annotations

import builtins
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Connection, Row, and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from collector.detect.findings import Fault, Finding, Priority
from collector.tickets import db
from collector.tickets.contracts import MS_PER_DAY, MS_PER_H, ContractBook, ContractTerms
from collector.tickets.errors import TicketConflict, TicketInputError, TicketNotFound
from collector.tickets.kpis import Downtime, Kpis, compute_kpis, month_bounds
from collector.tickets.lifecycle import NEW_CYCLE, WORKING, State, Step, allowed_steps, next_state
from collector.tickets.models import (
    Resolution,
    Source,
    Survey,
    Ticket,
    TicketChange,
    TicketEvent,
)
from collector.tickets.warranty import Warranty, warranty_status
from ledwatch.contract import check_id
from ledwatch.errors import ConfigError

log = logging.getLogger(__name__)

DETECTOR: Final = "detector"
# Step -> timestamp column it sets (first time only: a flapping fault keeps the first ack).
STEP_STAMP: Final[dict[Step, str]] = {
    Step.ACKNOWLEDGE: "acknowledged_ms",
    Step.DISPATCH: "dispatched_ms",
    Step.ARRIVE: "arrived_ms",
    Step.RESOLVE: "resolved_ms",
    Step.CLOSE: "closed_ms",
    Step.CLEAR: "cleared_ms",
}
CYCLE_STAMPS: Final = (
    "acknowledged_ms",
    "dispatched_ms",
    "arrived_ms",
    "cleared_ms",
    "resolved_ms",
    "closed_ms",
    "repair_due_ms",
)
MAX_ID: Final = 2**31 - 1  # INTEGER on PostgreSQL
DARK_STATES: Final = frozenset({State.VERIFYING, State.RESOLVED, State.CLOSED})


@dataclass(frozen=True, slots=True)
class TicketFilter:
    state: State | None = None
    site: str | None = None
    screen: str | None = None
    priority: Priority | None = None
    open_only: bool = False  # every state but closed


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class TicketService:
    def __init__(
        self,
        db_url: str,
        contracts: Mapping[str, Any] | ContractBook | None = None,
        clock: Callable[[], int] | None = None,
    ) -> None:
        self.contracts = (
            contracts
            if isinstance(contracts, ContractBook)
            else ContractBook.from_config(dict(contracts or {}))
        )
        self._clock = clock or _now_ms
        self._engine = db.make_engine(db_url)
        try:
            db.metadata.create_all(self._engine)
        except SQLAlchemyError as exc:
            self._engine.dispose()
            first = str(exc).splitlines()[0]
            raise ConfigError(f"database.url: cannot open the ticket database: {first}") from exc
        self._lock = threading.RLock()
        self._listeners: list[Callable[[TicketChange], None]] = []

    # -- plumbing ---------------------------------------------------------------------
    def add_listener(self, fn: Callable[[TicketChange], None]) -> None:
        """`fn` is called after commit for every state change (findings and API alike)."""
        self._listeners.append(fn)

    def close(self) -> None:
        self._engine.dispose()

    def now_ms(self) -> int:
        """The service's clock (injected in tests)."""
        return self._clock()

    def ping(self) -> None:
        """Raise if the database cannot be reached (health check)."""
        with self._engine.connect() as conn:
            conn.execute(select(1))

    def _notify(self, changes: Iterable[TicketChange]) -> None:
        for change in changes:
            for fn in self._listeners:
                try:
                    fn(change)
                except Exception:
                    log.exception("ticket listener %r failed on %r", fn, change)

    def _write(self, work: Callable[[Connection], list[TicketChange]]) -> list[TicketChange]:
        with self._lock:
            try:
                with self._engine.begin() as conn:
                    changes = work(conn)
            except IntegrityError as exc:
                raise TicketConflict(
                    "another ticket for the same fault is already open (closed it first)"
                ) from exc
        self._notify(changes)
        return changes

    # -- findings ---------------------------------------------------------------------
    def apply_findings(self, findings: Iterable[Finding]) -> list[TicketChange]:
        """Open, re-open or mark for verification the tickets the findings concern."""
        batch = list(findings)
        if not batch:
            return []

        def work(conn: Connection) -> list[TicketChange]:
            changes: list[TicketChange] = []
            for finding in batch:
                change = self._apply_one(conn, finding)
                if change is not None:
                    changes.append(change)
            return changes

        return self._write(work)

    def _apply_one(self, conn: Connection, f: Finding) -> TicketChange | None:
        last = conn.execute(
            select(db.tickets).where(db.tickets.c.key == f.key).order_by(db.tickets.c.id.desc())
        ).first()
        state = State(last.state) if last is not None else None
        if f.active:
            if last is None or state is State.CLOSED:
                terms = self.contracts.terms(f.site, f.screen)
                repeat_of = None
                if last is not None and last.closed_ms is not None:
                    window = terms.repeat_window_days * MS_PER_DAY
                    if f.ts_ms - last.closed_ms <= window:
                        repeat_of = last.id
                return self._create(
                    conn,
                    site=f.site,
                    screen=f.screen,
                    component=f.component,
                    fault=f.fault,
                    priority=None,
                    source=Source.AUTO,
                    detail=f.detail,
                    reporter=None,
                    ts_ms=f.ts_ms,
                    actor=DETECTOR,
                    repeat_of=repeat_of,
                )
            if state in (State.VERIFYING, State.RESOLVED):
                return self._transition(conn, last, Step.RECUR, DETECTOR, f.ts_ms, f.detail, {})
            return None
        if last is not None and state in WORKING:
            return self._transition(conn, last, Step.CLEAR, DETECTOR, f.ts_ms, f.detail, {})
        return None

    def _create(
        self,
        conn: Connection,
        *,
        site: str,
        screen: str,
        component: str,
        fault: Fault,
        priority: Priority | None,
        source: Source,
        detail: str,
        reporter: str | None,
        ts_ms: int,
        actor: str,
        repeat_of: int | None,
    ) -> TicketChange:
        terms = self.contracts.terms(site, screen)
        prio = terms.priority_for(fault, screen, ts_ms)
        if priority is not None and not terms.in_major_event(screen, ts_ms):
            prio = priority
        warranty = self._warranty(conn, terms, site, screen, ts_ms)
        key = f"{site}/{screen}/{component}/{fault.value}"
        values: dict[str, Any] = {
            "key": key,
            "open_key": key,
            "site": site,
            "screen": screen,
            "component": component,
            "fault": fault.value,
            "priority": prio.value,
            "state": State.OPEN.value,
            "source": source.value,
            "detail": detail,
            "reporter": reporter,
            "opened_ms": ts_ms,
            "in_warranty": None if warranty is None else warranty.covers(ts_ms),
            "reopen_count": 0,
            "repeat_of": repeat_of,
            "product_fault": True,
            **terms.deadlines(prio, ts_ms),
        }
        insert = db.tickets.insert().values(**values).returning(db.tickets.c.id)
        ticket_id = int(conn.execute(insert).scalar_one())
        note = detail if repeat_of is None else f"repeat of ticket {repeat_of}. {detail}".strip()
        self._event(conn, ticket_id, ts_ms, actor, Step.OPEN, None, State.OPEN, note)
        if source is Source.AUTO and fault in terms.downtime_faults:
            conn.execute(
                db.downtime.insert().values(
                    site=site,
                    screen=screen,
                    ticket_id=ticket_id,
                    start_ms=ts_ms,
                    product_fault=True,
                )
            )
        return TicketChange(
            ticket_id,
            site,
            screen,
            component,
            fault.value,
            prio.value,
            State.OPEN.value,
            ts_ms,
            True,
        )

    def _event(
        self,
        conn: Connection,
        ticket_id: int,
        ts_ms: int,
        actor: str,
        step: Step,
        from_state: State | None,
        to_state: State,
        note: str,
    ) -> None:
        conn.execute(
            db.ticket_events.insert().values(
                ticket_id=ticket_id,
                ts_ms=ts_ms,
                actor=actor,
                step=step.value,
                from_state=None if from_state is None else from_state.value,
                to_state=to_state.value,
                note=note,
            )
        )

    def _transition(
        self,
        conn: Connection,
        row: Row[Any],
        step: Step,
        actor: str,
        ts_ms: int,
        note: str,
        extra: dict[str, Any],
    ) -> TicketChange:
        """Apply one lifecycle step to `row` (validated against the transition table)."""
        old = State(row.state)
        new = next_state(old, step)
        terms = self.contracts.terms(row.site, row.screen)
        values: dict[str, Any] = {"state": new.value, **extra}
        stamp = STEP_STAMP.get(step)
        if stamp is not None and getattr(row, stamp) is None:
            values[stamp] = ts_ms
        if step is Step.ARRIVE:
            values["repair_due_ms"] = ts_ms + round(terms.repair_h * MS_PER_H)
        if (old, step) in NEW_CYCLE:
            values |= dict.fromkeys(CYCLE_STAMPS)
            values |= terms.deadlines(Priority(row.priority), ts_ms)
            values["reopened_ms"] = ts_ms
            values["reopen_count"] = row.reopen_count + 1
            values["resolution"] = None
        values["open_key"] = None if new is State.CLOSED else row.key
        conn.execute(update(db.tickets).where(db.tickets.c.id == row.id).values(**values))
        self._event(conn, row.id, ts_ms, actor, step, old, new, note)
        self._track_downtime(conn, row, terms, step, new, ts_ms)
        return TicketChange(
            row.id,
            row.site,
            row.screen,
            row.component,
            row.fault,
            row.priority,
            new.value,
            ts_ms,
            False,
        )

    def _track_downtime(
        self,
        conn: Connection,
        row: Row[Any],
        terms: ContractTerms,
        step: Step,
        new: State,
        ts_ms: int,
    ) -> None:
        if row.source != Source.AUTO.value or Fault(row.fault) not in terms.downtime_faults:
            return
        dt = db.downtime
        is_open = and_(dt.c.ticket_id == row.id, dt.c.end_ms.is_(None))
        if new in DARK_STATES:
            conn.execute(update(dt).where(is_open).values(end_ms=ts_ms))
        elif step is Step.RECUR and conn.execute(select(dt.c.id).where(is_open)).first() is None:
            conn.execute(
                dt.insert().values(
                    site=row.site,
                    screen=row.screen,
                    ticket_id=row.id,
                    start_ms=ts_ms,
                    product_fault=row.product_fault,
                )
            )

    # -- desk actions -----------------------------------------------------------------
    def create_manual(
        self,
        site: str,
        screen: str,
        component: str,
        description: str,
        reporter: str,
        priority: Priority | str | None = None,
        actor: str | None = None,
    ) -> tuple[Ticket, bool]:
        """A fault reported by phone or e-mail -> (ticket, created). A second report of a
        fault that is still open goes into that ticket's history instead of a new ticket."""
        check_id(site, "site")
        check_id(screen, "screen")
        if not component or len(component) > 128 or component.strip() != component:
            raise TicketInputError("component must be 1..128 characters, e.g. 'card/c12'")
        try:
            prio = None if priority is None else Priority(priority)
        except ValueError:
            raise TicketInputError(f"priority must be one of P1..P4, got {priority!r}") from None
        who = actor or reporter
        key = f"{site}/{screen}/{component}/{Fault.MANUAL.value}"
        created: list[int] = []

        def work(conn: Connection) -> list[TicketChange]:
            ts = self._clock()
            existing = conn.execute(
                select(db.tickets.c.id, db.tickets.c.state).where(db.tickets.c.open_key == key)
            ).first()
            if existing is not None:
                state = State(existing.state)
                note = f"reported again by {reporter}: {description}"
                self._event(conn, existing.id, ts, who, Step.NOTE, state, state, note)
                created.append(-existing.id)
                return []
            change = self._create(
                conn,
                site=site,
                screen=screen,
                component=component,
                fault=Fault.MANUAL,
                priority=prio,
                source=Source.MANUAL,
                detail=description,
                reporter=reporter,
                ts_ms=ts,
                actor=who,
                repeat_of=None,
            )
            created.append(change.ticket_id)
            return [change]

        self._write(work)
        return self.get(abs(created[0])), created[0] > 0

    def _step(
        self, ticket_id: int, actor: str, step: Step, note: str, extra: dict[str, Any] | None = None
    ) -> Ticket:
        def work(conn: Connection) -> list[TicketChange]:
            row = self._row(conn, ticket_id)
            return [self._transition(conn, row, step, actor, self._clock(), note, extra or {})]

        self._write(work)
        return self.get(ticket_id)

    def acknowledge(self, ticket_id: int, actor: str, note: str = "") -> Ticket:
        return self._step(ticket_id, actor, Step.ACKNOWLEDGE, note)

    def dispatch(self, ticket_id: int, actor: str, engineer: str, note: str = "") -> Ticket:
        if not engineer.strip():
            raise TicketInputError("engineer must name the person sent on site")
        text = f"dispatched {engineer}" + (f": {note}" if note else "")
        return self._step(ticket_id, actor, Step.DISPATCH, text, {"engineer": engineer})

    def arrive(self, ticket_id: int, actor: str, note: str = "") -> Ticket:
        return self._step(ticket_id, actor, Step.ARRIVE, note)

    def resolve(
        self,
        ticket_id: int,
        actor: str,
        resolution: Resolution | str | None = None,
        root_cause: str = "",
        product_fault: bool = True,
        note: str = "",
    ) -> Ticket:
        """Record the fix. `resolution` defaults to onsite after an arrival, else remote;
        `product_fault=False` (misuse) keeps the downtime out of the warranty extension."""
        try:
            chosen = None if resolution is None else Resolution(resolution)
        except ValueError:
            raise TicketInputError(
                f"resolution must be remote or onsite, got {resolution!r}"
            ) from None

        def work(conn: Connection) -> list[TicketChange]:
            row = self._row(conn, ticket_id)
            res = chosen or (Resolution.ONSITE if row.arrived_ms is not None else Resolution.REMOTE)
            extra = {
                "resolution": res.value,
                "root_cause": root_cause or row.root_cause,
                "product_fault": product_fault,
            }
            change = self._transition(conn, row, Step.RESOLVE, actor, self._clock(), note, extra)
            conn.execute(
                update(db.downtime)
                .where(db.downtime.c.ticket_id == ticket_id)
                .values(product_fault=product_fault)
            )
            return [change]

        self._write(work)
        return self.get(ticket_id)

    def close_ticket(self, ticket_id: int, actor: str, note: str = "") -> Ticket:
        """The `close` step (`close()` without arguments shuts the service down)."""
        return self._step(ticket_id, actor, Step.CLOSE, note)

    def reopen(self, ticket_id: int, actor: str, reason: str) -> Ticket:
        if not reason.strip():
            raise TicketInputError("reason must say why the ticket is reopened")
        return self._step(ticket_id, actor, Step.REOPEN, reason)

    def survey(self, ticket_id: int, actor: str, score: int, comment: str = "") -> Ticket:
        """Record the customer's rating (1..5); a later rating replaces the earlier one."""
        if not isinstance(score, int) or isinstance(score, bool) or not 1 <= score <= 5:
            raise TicketInputError(f"score must be an integer 1..5, got {score!r}")

        def work(conn: Connection) -> list[TicketChange]:
            row = self._row(conn, ticket_id)
            ts = self._clock()
            terms = self.contracts.terms(row.site, row.screen)
            satisfied = terms.satisfied(score)
            note = f"score {score} ({'satisfied' if satisfied else 'not satisfied'}) {comment}"
            change = self._transition(conn, row, Step.SURVEY, actor, ts, note.strip(), {})
            values = dict(score=score, satisfied=satisfied, comment=comment, ts_ms=ts, actor=actor)
            s = db.surveys
            if conn.execute(select(s.c.id).where(s.c.ticket_id == ticket_id)).first() is None:
                conn.execute(s.insert().values(ticket_id=ticket_id, **values))
            else:
                conn.execute(update(s).where(s.c.ticket_id == ticket_id).values(**values))
            return [change]

        self._write(work)
        return self.get(ticket_id)

    # -- reads ------------------------------------------------------------------------
    def _row(self, conn: Connection, ticket_id: int) -> Row[Any]:
        if not 0 < ticket_id <= MAX_ID:  # beyond the column type: cannot exist
            raise TicketNotFound(ticket_id)
        row = conn.execute(select(db.tickets).where(db.tickets.c.id == ticket_id)).first()
        if row is None:
            raise TicketNotFound(ticket_id)
        return row

    def _ticket(
        self,
        row: Row[Any],
        now_ms: int,
        history: tuple[TicketEvent, ...] = (),
        survey: Survey | None = None,
    ) -> Ticket:
        data = {c.name: getattr(row, c.name) for c in db.tickets.columns if c.name != "open_key"}
        state = State(row.state)
        spare_due = row.repair_due_ms is not None and (
            (row.resolved_ms or now_ms) > row.repair_due_ms
        )
        data["product_fault"] = bool(data["product_fault"])
        data["in_warranty"] = None if data["in_warranty"] is None else bool(data["in_warranty"])
        return Ticket(
            **data,
            allowed_steps=tuple(s.value for s in allowed_steps(state)),
            spare_due=spare_due,
            history=history,
            survey=survey,
        )

    def get(self, ticket_id: int) -> Ticket:
        """One ticket with its full history and survey."""
        with self._engine.connect() as conn:
            row = self._row(conn, ticket_id)
            ev = db.ticket_events
            history = tuple(
                TicketEvent(e.ts_ms, e.actor, e.step, e.from_state, e.to_state, e.note)
                for e in conn.execute(
                    select(ev).where(ev.c.ticket_id == ticket_id).order_by(ev.c.id)
                )
            )
            s = conn.execute(select(db.surveys).where(db.surveys.c.ticket_id == ticket_id)).first()
        survey = (
            None
            if s is None
            else Survey(s.ticket_id, s.score, bool(s.satisfied), s.comment, s.ts_ms, s.actor)
        )
        return self._ticket(row, self._clock(), history, survey)

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

    def _warranty(
        self, conn: Connection, terms: ContractTerms, site: str, screen: str, now_ms: int
    ) -> Warranty | None:
        if terms.acceptance_date is None:
            return None
        dt = db.downtime
        rows = conn.execute(
            select(dt.c.start_ms, dt.c.end_ms).where(
                dt.c.site == site,
                dt.c.screen == screen,
                dt.c.product_fault.is_(True),
                dt.c.end_ms.is_not(None),
            )
        )
        return warranty_status(terms, [(r.start_ms, r.end_ms) for r in rows], now_ms)

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
        return compute_kpis(month, tickets, surveys, downtimes, known, now, site)
