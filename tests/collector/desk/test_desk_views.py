"""The desk's pure parts: deadlines and queue order, cabinet colours, sessions, formats."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from desk_helpers import lobby_snapshot

from collector.api.deps import Principal, Role
from collector.api.desk import views
from collector.api.desk.pages import safe_next
from collector.api.desk.session import SessionStore
from collector.detect.findings import Fault, Finding
from collector.tickets import TicketService
from collector.tickets.models import Effect

T0 = 1_772_323_200_000  # 2026-03-01T00:00Z
MIN = 60_000


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[tuple[TicketService, list[int]]]:
    clock = [T0]
    service = TicketService(f"sqlite:///{tmp_path / 't.db'}", {}, clock=lambda: clock[0])
    yield service, clock
    service.close()


def _open(svc: TicketService, component: str, fault: Fault, **kw: Any) -> int:
    svc.apply_findings([Finding("acme", "lobby", component, fault, True, svc.now_ms(), **kw)])
    tickets, _ = svc.list(limit=1)
    return tickets[0].id


def test_durations_read_like_the_countdown_script() -> None:
    # desk.js writes the same text; the browser test sees it tick.
    assert views.fmt_duration(0) == "0 min 00 s"
    assert views.fmt_duration(19 * MIN + 56_999) == "19 min 56 s"
    assert views.fmt_duration(3 * 3600_000 + 5 * MIN) == "3 h 05 min"
    assert views.fmt_duration(47 * 3600_000 + 59 * MIN) == "47 h 59 min"
    assert views.fmt_duration(52 * 3600_000) == "2 d 04 h"
    assert views.fmt_remaining(-5 * MIN) == "overdue 5 min 00 s"
    assert views.fmt_remaining(MIN) == "in 1 min 00 s"
    assert views.fmt_ts(T0) == "2026-03-01 00:00:00 UTC"
    assert views.fmt_value([True, None]) == "[true, null]"
    assert views.fmt_value(4.5200001) == "4.52"


def test_the_next_deadline_follows_the_lifecycle(svc: tuple[TicketService, list[int]]) -> None:
    service, clock = svc
    tid = _open(service, "card/p0c2", Fault.CARD_OFFLINE)  # P2: resolve 24 h, on site 48 h
    t = service.get(tid)
    first = views.next_deadline(t, T0 + 5 * MIN)
    assert first is not None and (first.name, first.remaining_ms) == ("response", 15 * MIN)
    clock[0] += 30 * MIN
    late = views.next_deadline(service.get(tid), clock[0])
    assert late is not None and late.name == "response" and late.late
    service.acknowledge(tid, "desk")
    after = views.next_deadline(service.get(tid), clock[0])
    assert after is not None and after.name == "resolve"  # 24 h comes before 48 h on site
    response = views.clocks(service.get(tid), clock[0])[0]
    assert response.met_ms == T0 + 30 * MIN and response.late  # met, but after the deadline


def test_a_paused_ticket_s_countdown_stands_still(svc: tuple[TicketService, list[int]]) -> None:
    service, clock = svc
    tid = _open(service, "psu/u5", Fault.VOLTAGE_LOW)
    clock[0] += 5 * MIN
    service.pause(tid, "desk", "customer: no access")
    clock[0] += 60 * MIN
    c = views.next_deadline(service.get(tid), clock[0])
    assert c is not None and c.paused and c.remaining_ms == 15 * MIN


def test_queue_order_overdue_first_nothing_due_last(svc: tuple[TicketService, list[int]]) -> None:
    service, clock = svc
    old = _open(service, "controller", Fault.CONTROLLER_LOST)
    clock[0] += 10 * MIN
    p3 = _open(service, "psu/u5", Fault.VOLTAGE_LOW)
    p2 = _open(service, "card/p0c2", Fault.CARD_OFFLINE)
    done = _open(service, "card/p1c1", Fault.MODULE_FAULT)
    service.acknowledge(done, "desk")
    service.resolve(done, "desk", root_cause="module swapped")
    clock[0] += 15 * MIN
    rows = views.queue([service.get(i) for i in (done, p3, p2, old)], clock[0])
    # old is overdue; p2 and p3 are due together: P2 first; the resolved one has nothing due.
    assert [r.ticket.id for r in rows] == [old, p2, p3, done]
    assert rows[-1].deadline is None
    service.close_ticket(done, "desk")
    assert done not in [r.ticket.id for r in views.queue([service.get(done)], clock[0])]


def test_cabinet_colours_and_their_reasons(svc: tuple[TicketService, list[int]]) -> None:
    service, _ = svc
    sag = _open(service, "psu/u5", Fault.VOLTAGE_LOW)  # P3 on p1c1's PSU
    grid = views.cabinet_grid(lobby_snapshot(T0), [service.get(sag)])
    by_card = {c.card: c for c in grid.cabinets}
    assert grid.placement == "row/col"
    assert [[c.card if c else None for c in row] for row in grid.rows][1] == [
        "p1c0", "p1c1", "p1c2", "p1c3",
    ]
    assert by_card["p1c1"].state == "warning"
    assert any("ticket #" in w for w in by_card["p1c1"].why)
    assert any("vout_v 4.52 (voltage_low)" in w for w in by_card["p1c1"].why)
    assert by_card["p1c0"].why == ("temp_c 72.5 (card_temp_high)",)
    assert by_card["p2c1"].state == "fault" and by_card["p2c1"].why == ("module_faults 3",)
    assert by_card["p2c0"].state == "unknown" and by_card["p0c2"].state == "dark"
    assert grid.counts == {"dark": 2, "fault": 1, "warning": 2, "unknown": 1, "ok": 6}
    assert [p.id for p in by_card["p1c1"].psus] == ["u5"]


def test_urgent_tickets_effects_and_cleared_tickets(svc: tuple[TicketService, list[int]]) -> None:
    service, _ = svc
    failed = _open(service, "psu/u2", Fault.PSU_FAILED)  # P2 on p0c2's PSU
    link = _open(service, "controller", Fault.CONTROLLER_LOST)
    snap = lobby_snapshot(T0)
    snap["cards"]["online"][2] = True  # p0c2 back on, its PSU ticket still open
    tickets = [service.get(failed), service.get(link)]
    grid = views.cabinet_grid(snap, tickets)
    p0c2 = next(c for c in grid.cabinets if c.card == "p0c2")
    assert p0c2.state == "fault" and [t.id for t in p0c2.tickets] == [failed]
    assert [t.id for t in grid.screen_tickets] == [link]
    # Cleared by the detector (verifying): the fault went away, the cabinet is not red.
    service.apply_findings([Finding("acme", "lobby", "psu/u2", Fault.PSU_FAILED, False, T0)])
    verifying = service.get(failed)
    assert verifying.state == "verifying"
    grid = views.cabinet_grid(snap, [verifying])
    assert next(c for c in grid.cabinets if c.card == "p0c2").state == "ok"
    # An effect of another root colours its cabinet too.
    effect = replace(verifying, state="open", component="psu/u9",
                     effects=(Effect("card/p0c3", "card_offline", T0, T0, True),))
    grid = views.cabinet_grid(snap, [effect])
    assert next(c for c in grid.cabinets if c.card == "p0c3").state == "fault"


def test_placement_falls_back_to_the_chain_then_to_the_order() -> None:
    snap = lobby_snapshot(T0)
    del snap["cards"]["row"], snap["cards"]["col"]
    assert views.cabinet_grid(snap, []).placement == "port/index"
    snap["cards"]["index"] = [0] * 12  # duplicates: not a layout
    grid = views.cabinet_grid(snap, [])
    assert grid.placement == "order" and len(grid.rows) == 1 and len(grid.rows[0]) == 12
    assert views.cabinet_grid(None, []).cabinets == ()
    odd = {"cards": {"id": ["a", "b"], "online": [True]}, "psus": "nonsense"}
    states = [c.state for c in views.cabinet_grid(odd, []).cabinets]
    assert states == ["ok", "unknown"]  # a short column reads as null


def test_sessions_expire_and_are_bounded() -> None:
    now = [1000.0]
    store = SessionStore(clock=lambda: now[0], idle_s=60, max_age_s=300, max_sessions=3)
    who = Principal(Role.ENGINEER, "abcd1234")
    sid, session = store.create(who, "Dana")
    assert session.actor() == "Dana (engineer)" and session.can_step
    assert sid not in repr(store._sessions)  # only a hash of the id is kept
    now[0] += 59
    assert store.get(sid) is session  # use restarts the idle time
    now[0] += 59
    assert store.get(sid) is session
    now[0] += 61
    assert store.get(sid) is None  # idle too long
    sid, _ = store.create(who)
    for _ in range(5):
        now[0] += 50
        assert store.get(sid) is not None
    now[0] += 60
    assert store.get(sid) is None  # past the maximum age although in use
    ids = [store.create(Principal(Role.VIEWER, "x"))[0] for _ in range(4)]
    assert len(store) == 3 and store.get(ids[0]) is None and store.get(ids[-1]) is not None
    assert not store.get(ids[-1]).can_step  # type: ignore[union-attr]
    store.drop(ids[-1])
    assert store.get(ids[-1]) is None and store.get("") is None


def test_login_redirects_stay_on_the_desk() -> None:
    assert safe_next("/desk/tickets/3?done=x") == "/desk/tickets/3?done=x"
    for bad in (None, "", "https://x.example/desk", "//x.example", "/desk\\..", "/api/v1",
                "/desktop", "javascript:alert(1)"):
        assert safe_next(bad) == "/desk", bad


def test_kpi_rows_and_months(svc: tuple[TicketService, list[int]]) -> None:
    service, _ = svc
    _open(service, "card/p0c2", Fault.CARD_OFFLINE)
    rows = {name: value for name, _, value, _ in views.kpi_rows(service.kpis("2026-03"))}
    assert rows["tickets_opened"] == "1" and rows["mttr_min"] == "no data"
    assert rows["response_breaches"] == "0" and rows["failures_by_component"] == "card 1"
    assert views.fmt_kpi("availability", 0.99) == "99.000 %"
    assert views.fmt_kpi("satisfaction_rate", 0.5) == "50.0 %"
    assert views.neighbour_months("2026-01") == ("2025-12", "2026-02")
    assert views.neighbour_months("2026-12") == ("2026-11", "2027-01")
