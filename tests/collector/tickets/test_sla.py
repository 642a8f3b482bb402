"""SLA clocks driven by the injected service clock: escalation at 50/80 %, breaches once,
pause/resume, business hours; the notification outbox written with the change."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select
from ticket_helpers import HOUR, MIN, Clock, ms

from collector.detect.findings import Fault, Finding
from collector.tickets import InvalidTransition, TicketService, db
from collector.tickets.calendar import Calendar, parse_hours

T = ms("2026-03-02T10:00")  # a Monday


class Router:
    """Two levels for every site: the desk, then the on-call engineer."""

    def targets(self, site: str, screen: str, priority: str, event: str, level: int
                ) -> list[tuple[str, tuple[str, ...]]]:
        return [[("desk-mail", ("desk@x",))], [("pager", ())]][level] if level < 2 else []

    def levels(self, site: str, priority: str) -> int:
        return 2


@pytest.fixture
def sla(make_service: Callable[..., TicketService], clock: Clock) -> TicketService:
    svc = make_service({"default": {"escalate_at": [0.5, 0.8]}})
    svc.router = Router()
    clock.ms = T
    return svc


def outbox(svc: TicketService) -> list[dict[str, Any]]:
    with svc._engine.connect() as conn:
        rows = conn.execute(select(db.notifications).order_by(db.notifications.c.created_ms,
                                                              db.notifications.c.id))
        return [dict(r._mapping) for r in rows]


def open_one(svc: TicketService, ts: int = T) -> int:
    svc.apply_findings([Finding("acme", "main", "controller", Fault.SIGNAL_LOST, True, ts,
                                "no picture")])
    [t], _ = svc.list()
    return t.id


def test_escalates_at_half_and_four_fifths_then_breaches_once(sla: TicketService,
                                                              clock: Clock) -> None:
    tid = open_one(sla)
    assert [(n["event"], n["channel"], n["level"]) for n in outbox(sla)] == [
        ("opened", "desk-mail", 0)]
    assert sla.tick(T + 9 * MIN) == []  # 20 min response time: 45 % gone
    [warn] = sla.tick(T + 10 * MIN)
    assert warn.step == "sla_warning" and "50 % of the response time" in warn.note
    assert sla.tick(T + 11 * MIN) == []  # once per share
    sla.tick(T + 16 * MIN)
    got = sla.get(tid)
    assert (got.response_warned, got.escalation_level) == (2, 1)  # only two levels exist
    [breach] = sla.tick(T + 21 * MIN)
    assert breach.step == "response_breached"
    assert sla.tick(T + 60 * MIN) == []
    got = sla.get(tid)
    assert got.response_breached_ms == T + 20 * MIN and got.onsite_breached_ms is None
    events = [(n["event"], n["channel"], n["level"]) for n in outbox(sla)]
    assert events == [("opened", "desk-mail", 0), ("escalated", "pager", 1),
                      ("escalated", "pager", 1), ("response_breached", "desk-mail", 0),
                      ("response_breached", "pager", 1)]
    first = outbox(sla)[0]
    assert first["id"].startswith("lw-") and json.loads(first["recipients"]) == ["desk@x"]
    assert json.loads(first["payload"])["fault"] == "signal_lost"
    assert len({n["id"] for n in outbox(sla)}) == len(events)  # idempotency keys unique
    kpis = sla.kpis("2026-03")
    assert (kpis.response_breaches, kpis.onsite_breaches) == (1, 0)


def test_the_step_stops_its_clock(sla: TicketService, clock: Clock) -> None:
    tid = open_one(sla)
    clock.ms = T + 5 * MIN
    sla.acknowledge(tid, "desk")
    assert sla.tick(T + 30 * MIN) == []  # response answered in time; on-site has 48 h
    changes = sla.tick(T + 24 * HOUR)
    assert [c.step for c in changes] == ["sla_warning"] and "on-site" in changes[0].note
    assert sla.get(tid).response_breached_ms is None


def test_paused_time_does_not_count(sla: TicketService, clock: Clock) -> None:
    tid = open_one(sla)
    clock.ms = T + 5 * MIN
    paused = sla.pause(tid, "desk", "customer closes the venue until 14:00")
    assert paused.paused_ms == T + 5 * MIN and "resume" in paused.allowed_steps
    assert sla.tick(T + 3 * HOUR) == []  # no warning, no breach while paused
    with pytest.raises(InvalidTransition):
        sla.pause(tid, "desk", "again")
    clock.ms = T + 4 * HOUR + 5 * MIN
    resumed = sla.resume(tid, "desk")
    assert resumed.response_due_ms == T + 20 * MIN + 4 * HOUR
    assert resumed.paused_total_ms == 4 * HOUR and resumed.paused_ms is None
    assert [h.step for h in resumed.history][-2:] == ["pause", "resume"]
    assert sla.tick(T + 4 * HOUR + 9 * MIN) == []  # 9 of 20 min used
    assert [c.step for c in sla.tick(T + 4 * HOUR + 10 * MIN)] == ["sla_warning"]


def test_business_hours_move_the_deadlines_for_the_priorities_they_name(
    make_service: Callable[..., TicketService], clock: Clock
) -> None:
    svc = make_service({"default": {"business_hours": {
        "timezone": "Europe/Berlin", "hours": {"mon": ["08:00-18:00"], "tue": ["08:00-18:00"]},
        "holidays": ["2026-03-03"], "priorities": ["P3"]}}})
    friday_evening = ms("2026-03-06T16:50")  # 17:50 in Berlin, 10 min before closing
    svc.apply_findings([
        Finding("acme", "main", "card/c1", Fault.MODULE_FAULT, True, friday_evening, "P3"),
        Finding("acme", "main", "controller", Fault.SIGNAL_LOST, True, friday_evening, "P1"),
    ])
    tickets = {t.priority: t for t in svc.list()[0]}
    # P3: 10 min on Friday... Friday is not a service day here: Monday 08:00 + 20 min
    assert tickets["P3"].response_due_ms == ms("2026-03-09T07:20")
    assert tickets["P1"].response_due_ms == friday_evening + 20 * MIN  # P1 stays 7 x 24


def test_calendar_arithmetic() -> None:
    cal = Calendar("UTC", parse_hours({"mon": ["08:00-12:00", "13:00-17:00"]}),
                   frozenset())
    monday = ms("2026-03-02T11:30")
    assert cal.add(monday, 60 * MIN) == ms("2026-03-02T13:30")  # lunch does not count
    assert cal.add(monday, 6 * HOUR) == ms("2026-03-09T09:30")  # 4.5 h today, 1.5 next Monday
    assert cal.open_between(ms("2026-03-02T07:00"), ms("2026-03-02T20:00")) == 8 * HOUR
    with pytest.raises(ValueError, match="mon"):
        parse_hours({"mon": ["8-18"]})


def test_bad_business_hours_name_the_key(make_service: Callable[..., TicketService]) -> None:
    from ledwatch.errors import ConfigError

    with pytest.raises(ConfigError, match=r"contracts\.default\.business_hours"):
        make_service({"default": {"business_hours": {"timezone": "Mars/Base"}}})
    with pytest.raises(ConfigError, match=r"contracts\.default\.escalate_at"):
        make_service({"default": {"escalate_at": [0.9, 0.5]}})


def test_agent_events_go_on_the_history_of_their_ticket(sla: TicketService) -> None:
    sla.apply_findings([Finding("acme", "main", "card/p0c1", Fault.DOOR_OPEN, True, T, "open")])
    doc = {"schema": "ledwatch.event/1", "site": "acme", "screen": "main", "agent": "pc1",
           "ts": T + MIN, "event": "door_opened", "component": "card/p0c1",
           "detail": {"switch": 1}}
    change = sla.record_event(doc)
    assert change is not None
    [t], _ = sla.list()
    last = sla.get(t.id).history[-1]
    assert (last.step, last.actor, last.ts_ms) == ("event", "agent:pc1", T + MIN)
    assert "door_opened" in last.note
    assert sla.record_event({**doc, "component": "card/p9c9"}) is None  # no ticket: skipped
    assert sla.record_event({"site": 3}) is None


def test_a_tick_that_skips_quiet_tickets_acts_as_one_that_reads_every_clock(
    make_service: Callable[..., TicketService], clock: Clock
) -> None:
    """A tick judges only the tickets changed or due (a quiet moment per ticket, sla.py).
    Against a service that forgets those moments before every tick, over a week of
    business hours with a change to summer time, pauses and steps: the same changes,
    at the same ticks."""
    contract = {"default": {"escalate_at": [0.3, 0.5, 0.8], "business_hours": {
        "timezone": "Europe/Berlin", "hours": {d: ["08:00-12:00", "13:00-18:00"]
                                               for d in ("mon", "tue", "wed", "thu", "fri")},
        "priorities": ["P1", "P2", "P3", "P4"]}}}
    quiet, full = make_service(contract, "quiet.db"), make_service(contract, "full.db")
    for svc in (quiet, full):
        svc.router = Router()
    start = ms("2026-03-26T09:00")  # a Thursday; summer time begins on Sunday the 29th
    faults = [("controller", Fault.SIGNAL_LOST), ("card/c1", Fault.MODULE_FAULT),
              ("psu/p1", Fault.PSU_FAILED), ("card/c2", Fault.MODULE_FAULT)]
    steps: dict[int, Callable[[TicketService], object]] = {
        40: lambda s: s.acknowledge(2, "desk"),
        60: lambda s: s.pause(3, "desk", "venue closed"),
        140: lambda s: s.resume(3, "desk"),
    }
    times = [start + i * 3 * MIN for i in range(80)] + \
        [start + 4 * HOUR + i * 37 * MIN for i in range(300)]
    got: dict[str, list[tuple[int, int, str, str]]] = {"quiet": [], "full": []}
    for i, now in enumerate(times):
        clock.ms = now
        if i < len(faults):
            component, fault = faults[i]
            for svc in (quiet, full):
                svc.apply_findings([Finding("acme", "main", component, fault, True, now)])
        for svc in (quiet, full):
            if i in steps:
                steps[i](svc)
        full._sla_book = None  # forget every quiet moment: each clock is read
        for name, svc in (("quiet", quiet), ("full", full)):
            got[name] += [(i, c.ticket_id, c.step, c.note) for c in svc.tick(now)]
    assert got["quiet"] == got["full"]
    made = {step for _, _, step, _ in got["full"]}
    assert {"sla_warning", "response_breached", "onsite_breached"} <= made
    assert len(quiet._sla_quiet) > 0  # some tickets were skipped, not all judged
