"""Proactive-care tasks on a real ticket database (SQLite and PostgreSQL): due dates from
acceptance, idempotent scheduling with back-fill, the done step, task notifications
through the SQL outbox, and the compliance and MTBF KPIs.

acme/main is accepted 2026-01-10 (follow-ups every 2 months, inspections every 3):
  follow-ups due 03-10, 05-10, 07-10, 09-10, 11-10, ...; inspections 04-10, 07-10, 10-10
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import orjson
import pytest
from sqlalchemy import select
from ticket_helpers import DAY, Clock, ms

from collector.detect.findings import Fault, Finding
from collector.notify import load_notify
from collector.notify.routing import Router
from collector.tickets import TicketService, db
from collector.tickets.errors import TicketConflict, TicketInputError, TicketNotFound
from collector.tickets.inventory import ComponentRow
from collector.tickets.outbox import SqlOutbox
from collector.tickets.tasks import series_due

CONTRACTS = {"sites": {
    "acme": {"screens": {"main": {"acceptance_date": "2026-01-10"},
                         "side": {}}},  # no acceptance date: nothing owed
    "bravo": {"acceptance_date": "2025-12-31", "followup_months": 0},  # site-wide date
}}


def days(*texts: str) -> list[int]:
    return [ms(f"{t}T00:00") for t in texts]


def test_due_dates_do_not_drift_and_back_fill_is_bounded() -> None:
    accepted = date(2026, 1, 31)
    # Counted from acceptance each time: Feb 28 (clamped), then Mar 31, not Mar 28.
    assert series_due(accepted, 1, None, ms("2026-02-01T00:00")) == days("2026-02-28")
    assert series_due(accepted, 1, ms("2026-02-28T00:00"), ms("2026-03-05T00:00")) == days(
        "2026-03-31")
    # After a long outage: what was missed since the newest task, then the next one.
    assert series_due(accepted, 1, ms("2026-02-28T00:00"), ms("2026-05-05T00:00")) == days(
        "2026-03-31", "2026-04-30", "2026-05-31")
    assert len(series_due(accepted, 1, ms("2026-02-28T00:00"), ms("2030-01-01T00:00"))) == 12
    # A series without tasks starts at the next due date; nothing before.
    assert series_due(accepted, 3, None, ms("2027-01-01T00:00")) == days("2027-01-31")
    assert series_due(accepted, 0, None, ms("2027-01-01T00:00")) == []


def test_scheduling_is_idempotent_and_catches_up(
    make_service: Callable[..., TicketService], clock: Clock
) -> None:
    svc = make_service(CONTRACTS)
    clock.set("2026-03-01T00:00")
    svc.record_inventory("bravo", "hall", [ComponentRow("controller", "controller", "X")])
    made = svc.schedule_tasks()
    assert [(t.site, t.screen, t.kind, t.due_ms) for t in made] == [
        ("acme", "main", "follow_up", ms("2026-03-10T00:00")),
        ("bravo", "hall", "inspection", ms("2026-03-31T00:00")),  # known from its inventory
        ("acme", "main", "inspection", ms("2026-04-10T00:00")),
    ]
    assert svc.schedule_tasks() == []
    other = make_service(CONTRACTS)  # a second collector on the same database
    assert other.schedule_tasks() == [] and svc.count_tasks() == 3

    clock.set("2026-03-11T00:00")  # the follow-up's date passed: the next one is scheduled
    assert [(t.kind, t.due_ms) for t in svc.schedule_tasks(screens=[("acme", "main")])] == [
        ("follow_up", ms("2026-05-10T00:00"))]
    clock.set("2026-09-20T00:00")  # the collector was off all summer
    caught = [(t.site, t.kind, t.due_ms) for t in svc.schedule_tasks() if t.site == "acme"]
    assert caught == [
        ("acme", "follow_up", ms("2026-07-10T00:00")),
        ("acme", "inspection", ms("2026-07-10T00:00")),
        ("acme", "follow_up", ms("2026-09-10T00:00")),
        ("acme", "inspection", ms("2026-10-10T00:00")),
        ("acme", "follow_up", ms("2026-11-10T00:00")),
    ]
    assert svc.tasks(site="acme", screen="side") == []
    assert svc.tasks(site="bravo", kind="follow_up") == []  # followup_months = 0
    listed = svc.tasks(site="acme", kind="follow_up", open_only=True,
                       due_before=ms("2026-09-11T00:00"))
    assert [t.due_ms for t in listed] == days("2026-03-10", "2026-05-10", "2026-07-10",
                                             "2026-09-10")
    assert [t.due_ms for t in svc.tasks(site="acme", limit=2, offset=1)] == days(
        "2026-04-10", "2026-05-10")
    with pytest.raises(TicketInputError, match="kind must be inspection or follow_up"):
        svc.tasks(kind="visit")


def test_doing_a_task_is_recorded_once(
    make_service: Callable[..., TicketService], clock: Clock
) -> None:
    service = make_service(CONTRACTS)
    clock.set("2026-03-01T00:00")
    follow_up = next(t for t in service.schedule_tasks() if t.kind == "follow_up")
    assert follow_up.state(clock.ms) == "open" and follow_up.on_time is None
    clock.set("2026-03-10T17:00")  # on the due date: on time
    done = service.complete_task(follow_up.id, "Ann (engineer)", "called the venue")
    assert (done.done_ms, done.done_by, done.note, done.on_time) == (
        clock.ms, "Ann (engineer)", "called the venue", True)
    assert done.state(clock.ms) == "done"
    with pytest.raises(TicketConflict, match="already done by Ann"):
        service.complete_task(follow_up.id, "Bob")
    with pytest.raises(TicketNotFound, match="task 999999 does not exist"):
        service.complete_task(999999, "Bob")
    with pytest.raises(TicketNotFound):
        service.get_task(2**40)
    inspection = next(t for t in service.tasks(kind="inspection"))
    clock.set("2026-04-11T00:00")
    assert service.get_task(inspection.id).state(clock.ms) == "overdue"
    late = service.complete_task(inspection.id, "Bob", report="/r/2026-Q1/acme/main.pdf")
    assert (late.on_time, late.report) == (False, "/r/2026-Q1/acme/main.pdf")


def _router(monkeypatch: pytest.MonkeyPatch, routes: list[dict[str, object]]) -> Router:
    monkeypatch.setenv("HOOK_SECRET", "s" * 24)
    return Router(load_notify({
        "channels": {"hook": {"type": "webhook", "url": "http://127.0.0.1:9/hook",
                              "secret_env": "HOOK_SECRET"}},
        "routes": routes,
    }))


def test_due_and_overdue_go_through_the_outbox_once(
    make_service: Callable[..., TicketService], clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    svc = make_service(CONTRACTS)
    svc.router = _router(monkeypatch, [{"events": ["task_due", "task_overdue"],
                                        "levels": [["hook"]]}])
    outbox = SqlOutbox(svc.engine)
    clock.set("2026-03-01T00:00")
    svc.schedule_tasks()
    assert svc.notify_tasks(priority="P4", notice_ms=7 * DAY) == (0, 0)  # 9 days ahead
    clock.set("2026-03-03T00:00")
    assert svc.notify_tasks(priority="P4", notice_ms=7 * DAY) == (1, 0)
    assert svc.notify_tasks(priority="P4", notice_ms=7 * DAY) == (0, 0)  # once
    [pending] = outbox.due(clock.ms, 10)
    n = pending.notification
    follow_up = svc.tasks(kind="follow_up", site="acme")[0]
    assert (n.id, n.event, n.channel) == (f"lw-task-{follow_up.id}-task_due-hook-0",
                                          "task_due", "hook")
    assert (n.ticket["id"], n.ticket["kind"], n.ticket["due_ms"], n.ticket["priority"]) == (
        follow_up.id, "follow_up", ms("2026-03-10T00:00"), "P4")
    assert n.ticket_id is None and n.queue == f"task:{follow_up.id}"
    assert n.note == "the follow-up due 2026-03-10 is due"
    assert svc.get_task(follow_up.id).notified_ms == ms("2026-03-03T00:00")

    # Not done by the end of its due date: overdue, once; queued behind task_due, which
    # the receiver has not taken yet (one task's rows go out in order).
    clock.set("2026-03-11T00:00")
    assert svc.notify_tasks(priority="P4", notice_ms=7 * DAY) == (0, 1)
    assert [p.notification.event for p in outbox.due(clock.ms, 10)] == ["task_due"]
    outbox.delivered(n.id, clock.ms)
    [overdue] = outbox.due(clock.ms, 10)
    assert overdue.notification.event == "task_overdue"
    assert overdue.notification.ticket["state"] == "overdue"
    assert svc.get_task(follow_up.id).overdue_notified_ms == clock.ms

    # A task done before its notice gets nothing; one created late gets only overdue.
    clock.set("2026-04-01T00:00")
    inspection = svc.tasks(kind="inspection", site="acme")[0]
    svc.complete_task(inspection.id, "Ann")
    clock.set("2026-06-01T00:00")  # nobody scheduled since March: May 10 is owed, and late
    svc.schedule_tasks()
    assert svc.notify_tasks(priority="P4", notice_ms=7 * DAY) == (0, 1)
    events = {(r.task_id, r.event) for r in _rows(svc)}
    assert (inspection.id, "task_due") not in events
    may = next(t for t in svc.tasks(kind="follow_up") if t.due_ms == ms("2026-05-10T00:00"))
    assert {e for tid, e in events if tid == may.id} == {"task_overdue"}


def _rows(svc: TicketService) -> list[object]:
    with svc.engine.connect() as conn:
        return list(conn.execute(select(db.notifications)).all())


def test_routes_decide_who_hears_of_tasks(
    make_service: Callable[..., TicketService], clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    svc = make_service(CONTRACTS)
    svc.router = _router(monkeypatch, [{"priorities": ["P1", "P2"], "levels": [["hook"]]}])
    clock.set("2026-03-09T00:00")
    svc.schedule_tasks()
    assert svc.notify_tasks(priority="P4") == (1, 0)  # marked ...
    assert _rows(svc) == []  # ... but the route takes only P1/P2
    clock.set("2026-03-09T01:00")
    svc.router = _router(monkeypatch, [{"sites": ["acme"], "levels": [["hook"]]}])
    assert svc.notify_tasks(priority="P2") == (0, 0)  # already marked: not sent later
    assert svc.notify_report("acme", "main", "2026-Q1", "acme/main 2026-Q1: ...",
                             ["/r/a.pdf"]) == 1
    assert svc.notify_report("acme", "main", "2026-Q1", "again", ["/r/a.pdf"]) == 0  # once
    [row] = _rows(svc)
    assert (row.event, row.ticket_id, row.task_id, row.note) == (  # type: ignore[attr-defined]
        "report_ready", None, None, "acme/main 2026-Q1: ...")
    assert orjson.loads(row.payload)["paths"] == ["/r/a.pdf"]  # type: ignore[attr-defined]


def test_compliance_and_mtbf_kpis(make_service: Callable[..., TicketService],
                                  clock: Clock) -> None:
    """March 2026 for acme/main, worked by hand:
    follow-up due 03-10 done 03-10 17:00 (on time); follow-up tasks due in March: 1 -> 1/1.
    inspections due in March: 2 (03-05 done 03-07: late; 03-20 not done, overdue) -> 0/2;
    one due 03-31 not done and not yet late at now = 03-31 12:00: not judged.
    MTBF: 10 PSUs LRS recorded 02-20 (all March up to now: 30.5 days = 732 h each, 7320
    unit-hours), 2 psu_failed tickets opened in March, one of them misuse -> 7320 / 1;
    20 receiving cards recorded 03-16 00:00 (15.5 days = 372 h each: 7440), no failure."""
    svc = make_service({"sites": {"acme": {"screens": {"main": {
        "acceptance_date": "2025-12-05", "inspection_months": 0, "followup_months": 0}}}}})
    with svc.engine.begin() as conn:
        for kind, due, done in (("follow_up", "2026-03-10", "2026-03-10T17:00"),
                                ("inspection", "2026-03-05", "2026-03-07T09:00"),
                                ("inspection", "2026-03-20", None),
                                ("inspection", "2026-03-31", None),
                                ("inspection", "2026-04-05", None)):
            conn.execute(db.tasks.insert().values(
                site="acme", screen="main", kind=kind, due_ms=ms(f"{due}T00:00"), note="",
                done_ms=None if done is None else ms(done)))
    clock.set("2026-02-20T00:00")
    svc.record_inventory("acme", "main",
                         [ComponentRow(f"psu/p{i}", "psu", "LRS") for i in range(10)])
    for psu, when in (("psu/p1", "2026-03-02T00:00"), ("psu/p2", "2026-03-03T00:00")):
        clock.set(when)
        svc.apply_findings([Finding("acme", "main", psu, Fault.PSU_FAILED, True, ms(when), "")])
    clock.set("2026-03-04T00:00")
    misuse = next(t for t in svc.list()[0] if t.component == "psu/p2")
    svc.acknowledge(misuse.id, "desk")
    svc.resolve(misuse.id, "desk", product_fault=False)
    clock.set("2026-03-16T00:00")
    svc.record_inventory("acme", "main",
                         [ComponentRow(f"psu/p{i}", "psu", "LRS") for i in range(10)]
                         + [ComponentRow(f"card/c{i}", "receiving_card", "A8s")
                            for i in range(20)])
    clock.set("2026-03-31T12:00")
    k = svc.kpis("2026-03")
    assert (k.followup_compliance_rate, k.followups_due) == (1.0, 1)
    assert (k.inspection_compliance_rate, k.inspections_due) == (0.0, 2)
    assert k.mtbf_h_by_model == {"psu": {"LRS": 7320.0}, "receiving_card": {"A8s": None}}
    assert svc.kpis("2026-03", site="bravo").mtbf_h_by_model == {}
    feb = svc.kpis("2026-02")  # 9 days of 10 PSUs, no failure; the cards came later
    assert feb.inspection_compliance_rate is None  # nothing due: null, never 0
    assert feb.mtbf_h_by_model == {"psu": {"LRS": None}}
