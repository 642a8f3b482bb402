"""The ticket store: SQL plumbing and the steps every other part of the service uses.

Threading: the ingest loop applies findings while API worker threads take steps, so
every write runs under one lock and in one transaction; listeners are called after the
commit, outside the transaction, and a failing listener is logged, never propagated.
Several collector processes may share one PostgreSQL database: the unique `open_key`
column then refuses a second open ticket for the same fault key.

The service is split by concern (FastAPI-template style): `core.py` (this file: the
store, creating tickets, one lifecycle step), `apply.py` (findings from detection:
root causes, effects, maintenance windows), `desk.py` (what people do), `service.py`
(reads, KPIs, and the `TicketService` that combines them).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

import orjson
from sqlalchemy import Connection, Engine, Row, and_, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from collector.detect.findings import Fault, Priority
from collector.tickets import db, schema
from collector.tickets.contracts import MS_PER_H, ContractBook, ContractTerms
from collector.tickets.errors import TicketConflict, TicketNotFound
from collector.tickets.lifecycle import NEW_CYCLE, State, Step, allowed_steps, next_state
from collector.tickets.models import (
    Effect,
    PartUsed,
    Source,
    Survey,
    Ticket,
    TicketChange,
    TicketEvent,
)
from collector.tickets.warranty import Warranty, warranty_status
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


# History step -> the notification event it is (collector/notify); other steps notify
# nobody (notes, effects, stage escalations that do not change the priority).
STEP_EVENT: Final[dict[str, str]] = {
    Step.OPEN.value: "opened",
    Step.PRIORITY.value: "priority_raised",
    Step.SLA_WARNING.value: "escalated",
    Step.RESPONSE_BREACHED.value: "response_breached",
    Step.ONSITE_BREACHED.value: "onsite_breached",
    Step.CLEAR.value: "cleared",
    Step.RESOLVE.value: "resolved",
    Step.RECUR.value: "reopened",
    Step.REOPEN.value: "reopened",
    Step.ACKNOWLEDGE.value: "acknowledged",
    Step.CLOSE.value: "closed",
}


class Router(Protocol):
    """Who hears of a ticket change: collector/notify's routing, bound to its settings."""

    def targets(
        self, site: str, screen: str, priority: str, event: str, level: int
    ) -> list[tuple[str, tuple[str, ...]]]: ...

    def levels(self, site: str, priority: str) -> int: ...


class TicketCore:
    def __init__(
        self,
        db_url: str,
        contracts: Mapping[str, Any] | ContractBook | None = None,
        clock: Callable[[], int] | None = None,
        router: Router | None = None,
        auto_upgrade: bool = True,
    ) -> None:
        self.contracts = (
            contracts
            if isinstance(contracts, ContractBook)
            else ContractBook.from_config(dict(contracts or {}))
        )
        self._clock = clock or _now_ms
        self._engine = db.make_engine(db_url)
        try:
            schema.prepare(self._engine, auto_upgrade)
        except SQLAlchemyError as exc:
            self._engine.dispose()
            first = str(exc).splitlines()[0]
            raise ConfigError(f"database.url: cannot open the ticket database: {first}") from exc
        except ConfigError:
            self._engine.dispose()
            raise
        self._lock = threading.RLock()
        self._listeners: list[Callable[[TicketChange], None]] = []
        self.router = router

    # -- plumbing ---------------------------------------------------------------------
    @property
    def engine(self) -> Engine:
        """The database engine (the notification outbox shares it)."""
        return self._engine

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
                    if self.router is not None and changes:
                        self._enqueue(conn, changes)
            except IntegrityError as exc:
                raise TicketConflict(
                    "another ticket for the same fault is already open (closed it first)"
                ) from exc
        self._notify(changes)
        return changes

    def _enqueue(self, conn: Connection, changes: list[TicketChange]) -> None:
        """Outbox rows for the changes that notify someone, in this same transaction: a
        crash before the commit loses the change and its notifications together."""
        assert self.router is not None
        tickets: dict[int, bytes] = {}
        nt = db.notifications
        for change in changes:
            event = STEP_EVENT.get(change.step)
            if event is None:
                continue
            row = self._row(conn, change.ticket_id)
            if change.ticket_id not in tickets:
                tickets[change.ticket_id] = orjson.dumps(self._get(conn, change.ticket_id))
            for level in self._levels(row, event):
                for channel, recipients in self.router.targets(
                        row.site, row.screen, change.priority, event, level):
                    conn.execute(nt.insert().values(
                        id=f"lw-{change.event_id}-{channel}-{level}",
                        ticket_id=change.ticket_id, event=event, channel=channel, level=level,
                        recipients=orjson.dumps(list(recipients)).decode(), note=change.note,
                        payload=tickets[change.ticket_id].decode(), created_ms=change.ts_ms,
                        attempts=0, next_attempt_ms=change.ts_ms,
                    ))

    @staticmethod
    def _levels(row: Row[Any], event: str) -> range:
        """An escalation goes to the level it reached; everything else to every level
        up to there (whoever was called in hears how it ends)."""
        level = int(row.escalation_level or 0)
        return range(level, level + 1) if event == "escalated" else range(level + 1)

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
        rule_priority: Priority | None = None,
        extra: dict[str, Any] | None = None,
    ) -> TicketChange:
        """Insert an open ticket; `priority` is a person's explicit choice, `rule_priority`
        the detection rule's default (a contract's `priority_overrides` win over it)."""
        terms = self.contracts.terms(site, screen)
        prio = terms.priority_for(fault, screen, ts_ms, rule_priority)
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
            "flapping": False,
            **terms.deadlines(prio, ts_ms),
            **(extra or {}),
        }
        insert = db.tickets.insert().values(**values).returning(db.tickets.c.id)
        ticket_id = int(conn.execute(insert).scalar_one())
        note = detail if repeat_of is None else f"repeat of ticket {repeat_of}. {detail}".strip()
        event_id = self._event(conn, ticket_id, ts_ms, actor, Step.OPEN, None, State.OPEN, note)
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
            Step.OPEN.value,
            note,
            event_id,
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
    ) -> int:
        """One history entry; returns its id (a notification's idempotency key uses it)."""
        result = conn.execute(
            db.ticket_events.insert().values(
                ticket_id=ticket_id,
                ts_ms=ts_ms,
                actor=actor,
                step=step.value,
                from_state=None if from_state is None else from_state.value,
                to_state=to_state.value,
                note=note,
            ).returning(db.ticket_events.c.id)
        )
        return int(result.scalar_one())

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
        event_id = self._event(conn, row.id, ts_ms, actor, step, old, new, note)
        self._track_downtime(conn, row, terms, step, new, ts_ms)
        return self._change(row, ts_ms, step.value, note, state=new.value, event_id=event_id)

    @staticmethod
    def _change(
        row: Row[Any],
        ts_ms: int,
        step: str,
        note: str,
        *,
        state: str | None = None,
        priority: str | None = None,
        fault: str | None = None,
        event_id: int = 0,
    ) -> TicketChange:
        """A change of `row` for listeners (values not given are the row's)."""
        return TicketChange(
            row.id,
            row.site,
            row.screen,
            row.component,
            fault or row.fault,
            priority or row.priority,
            state or row.state,
            ts_ms,
            False,
            step,
            note,
            event_id,
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
        effects: tuple[Effect, ...] = (),
        parts: tuple[PartUsed, ...] = (),
    ) -> Ticket:
        data = {c.name: getattr(row, c.name) for c in db.tickets.columns if c.name != "open_key"}
        state = State(row.state)
        spare_due = row.repair_due_ms is not None and (
            (row.resolved_ms or now_ms) > row.repair_due_ms
        )
        data["product_fault"] = bool(data["product_fault"])
        data["in_warranty"] = None if data["in_warranty"] is None else bool(data["in_warranty"])
        data["flapping"] = bool(data["flapping"])
        data["evidence"] = json.loads(data["evidence"]) if data["evidence"] else None
        return Ticket(
            **data,
            allowed_steps=tuple(s.value for s in allowed_steps(state, row.paused_ms is not None)),
            spare_due=spare_due,
            history=history,
            survey=survey,
            effects=effects,
            parts_used=parts,
        )

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

    def get(self, ticket_id: int) -> Ticket:
        """One ticket with its full history, survey and effects."""
        with self._engine.connect() as conn:
            return self._get(conn, ticket_id)

    def _get(self, conn: Connection, ticket_id: int) -> Ticket:
        row = self._row(conn, ticket_id)
        ev = db.ticket_events
        history = tuple(
            TicketEvent(e.ts_ms, e.actor, e.step, e.from_state, e.to_state, e.note)
            for e in conn.execute(select(ev).where(ev.c.ticket_id == ticket_id).order_by(ev.c.id))
        )
        s = conn.execute(select(db.surveys).where(db.surveys.c.ticket_id == ticket_id)).first()
        m = db.ticket_members
        effects = tuple(
            Effect(e.component, e.fault, e.first_ms, e.last_ms, bool(e.active))
            for e in conn.execute(
                select(m).where(m.c.ticket_id == ticket_id, m.c.role == "effect").order_by(m.c.id)
            )
        )
        survey = (
            None
            if s is None
            else Survey(s.ticket_id, s.score, bool(s.satisfied), s.comment, s.ts_ms, s.actor)
        )
        pu = db.parts_used
        parts = tuple(
            PartUsed(p.ticket_id, p.site, p.screen, p.component, p.model, p.quantity, p.ts_ms)
            for p in conn.execute(select(pu).where(pu.c.ticket_id == ticket_id).order_by(pu.c.id))
        )
        return self._ticket(row, self._clock(), history, survey, effects, parts)
