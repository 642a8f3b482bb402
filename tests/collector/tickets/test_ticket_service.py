"""The ticket service on real SQLite files: dedup, verifying, repeats, deadlines, warranty."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from ticket_helpers import DAY, HOUR, MIN, Clock, ms

from collector.detect.findings import Fault, Finding
from collector.tickets import (
    TicketChange,
    TicketConflict,
    TicketFilter,
    TicketInputError,
    TicketNotFound,
    TicketService,
)
from ledwatch.errors import ConfigError


def lost(ts: int, active: bool = True, screen: str = "main", site: str = "acme") -> Finding:
    return Finding(site, screen, "controller", Fault.CONTROLLER_LOST, active, ts, "no reply")


def module(ts: int, active: bool = True, card: str = "c1") -> Finding:
    return Finding("acme", "main", f"card/{card}", Fault.MODULE_FAULT, active, ts)


def test_one_ticket_per_fault_key(service: TicketService, clock: Clock) -> None:
    t0 = clock.ms
    first = service.apply_findings([lost(t0)])
    assert [(c.state, c.opened, c.priority) for c in first] == [("open", True, "P1")]
    assert service.apply_findings([lost(t0 + MIN), lost(t0 + 2 * MIN)]) == []
    other = service.apply_findings([module(t0), module(t0, card="c2")])
    assert [c.opened for c in other] == [True, True]
    tickets, count = service.list()
    assert count == 3
    assert {t.key for t in tickets} == {
        "acme/main/controller/controller_lost",
        "acme/main/card/c1/module_fault",
        "acme/main/card/c2/module_fault",
    }


def test_clear_goes_to_verifying_and_coming_back_reopens(
    service: TicketService, clock: Clock
) -> None:
    t0 = clock.ms
    tid = service.apply_findings([lost(t0)])[0].ticket_id
    service.acknowledge(tid, "desk")
    assert service.apply_findings([lost(t0 + 5 * MIN, active=False)])[0].state == "verifying"
    t = service.get(tid)
    assert t.state == "verifying" and t.cleared_ms == t0 + 5 * MIN
    assert t.allowed_steps == ("resolve", "close", "reopen")
    # an inactive finding with nothing to clear changes nothing
    assert service.apply_findings([lost(t0 + 6 * MIN, active=False)]) == []
    back = service.apply_findings([lost(t0 + 7 * MIN)])
    assert [(c.ticket_id, c.state, c.opened) for c in back] == [(tid, "open", False)]
    t = service.get(tid)
    assert t.history[-1].step == "recur" and t.history[-1].from_state == "verifying"
    # never repaired: the same service cycle goes on (no repeat, first ack kept)
    assert t.reopen_count == 0 and t.acknowledged_ms == t0
    assert service.list(TicketFilter(open_only=True))[1] == 1


def test_fault_back_after_resolve_is_a_repeat_in_the_same_ticket(
    service: TicketService, clock: Clock
) -> None:
    t0 = clock.ms
    tid = service.apply_findings([module(t0)])[0].ticket_id
    service.acknowledge(tid, "desk")
    clock.ms += HOUR
    service.resolve(tid, "desk", resolution="remote", root_cause="loose ribbon")
    back = t0 + 3 * HOUR
    assert service.apply_findings([module(back)])[0].state == "open"
    t = service.get(tid)
    assert t.reopen_count == 1 and t.reopened_ms == back
    assert t.acknowledged_ms is None and t.resolved_ms is None
    assert t.response_due_ms == back + 20 * MIN  # clocks restart for the new cycle


def test_repeat_within_window_sets_repeat_of(
    make_service: Callable[..., TicketService], clock: Clock
) -> None:
    svc = make_service({"sites": {"strict": {"repeat_window_days": 5}}})
    t0 = clock.ms
    old = svc.apply_findings([lost(t0)])[0].ticket_id
    svc.apply_findings([lost(t0 + MIN, active=False)])
    svc.close_ticket(old, "desk")
    closed_at = clock.ms
    again = svc.apply_findings([lost(closed_at + 10 * DAY)])[0]
    assert again.opened and again.ticket_id != old
    assert svc.get(again.ticket_id).repeat_of == old
    assert "repeat of ticket" in svc.get(again.ticket_id).history[0].note
    svc.apply_findings([lost(closed_at + 10 * DAY + MIN, active=False)])
    svc.close_ticket(again.ticket_id, "desk")
    late = svc.apply_findings([lost(clock.ms + 31 * DAY)])[0]
    assert svc.get(late.ticket_id).repeat_of is None
    # the site's window is 5 days, so 10 days later is a new fault
    s_old = svc.apply_findings([lost(t0, site="strict")])[0].ticket_id
    svc.apply_findings([lost(t0 + MIN, active=False, site="strict")])
    svc.close_ticket(s_old, "desk")
    s_new = svc.apply_findings([lost(clock.ms + 10 * DAY, site="strict")])[0].ticket_id
    assert svc.get(s_new).repeat_of is None


def test_deadlines_from_defaults(service: TicketService, clock: Clock) -> None:
    t0 = clock.ms
    p1 = service.get(service.apply_findings([lost(t0)])[0].ticket_id)
    assert (p1.response_due_ms, p1.onsite_due_ms, p1.resolve_due_ms) == (
        t0 + 20 * MIN,
        t0 + 48 * HOUR,
        t0 + 8 * HOUR,
    )
    assert p1.repair_due_ms is None and p1.in_warranty is None
    p3 = service.get(service.apply_findings([module(t0)])[0].ticket_id)
    assert p3.priority == "P3" and p3.resolve_due_ms == t0 + 48 * HOUR
    door = Finding("acme", "main", "env", Fault.DOOR_OPEN, True, t0)
    p4 = service.get(service.apply_findings([door])[0].ticket_id)
    assert p4.priority == "P4" and p4.resolve_due_ms == t0 + 120 * HOUR


def test_deadlines_priorities_and_major_events_from_overrides(
    make_service: Callable[..., TicketService], clock: Clock
) -> None:
    svc = make_service(
        {
            "default": {"response_min": 30},
            "sites": {
                "acme": {
                    "onsite_h": 24,
                    "resolve_h": {"P1": 4},
                    "priority_overrides": {"module_fault": "P2"},
                    "screens": {"main": {"onsite_h": 3}},
                    "major_events": [
                        {
                            "name": "concert",
                            "screen": "stage",
                            "start": "2026-03-01T18:00:00",
                            "end": "2026-03-01T23:30:00",
                        }
                    ],
                }
            },
        }
    )
    t0 = clock.ms
    t = svc.get(svc.apply_findings([lost(t0, screen="hall")])[0].ticket_id)
    assert (t.response_due_ms, t.onsite_due_ms, t.resolve_due_ms) == (
        t0 + 30 * MIN,
        t0 + 24 * HOUR,
        t0 + 4 * HOUR,
    )
    t = svc.get(svc.apply_findings([lost(t0, screen="main")])[0].ticket_id)
    assert t.onsite_due_ms == t0 + 3 * HOUR
    t = svc.get(svc.apply_findings([module(t0)])[0].ticket_id)
    assert t.priority == "P2" and t.resolve_due_ms == t0 + 24 * HOUR
    fan = Finding("acme", "stage", "psu/p1", Fault.FAN_STOPPED, True, ms("2026-03-01T19:00"))
    t = svc.get(svc.apply_findings([fan])[0].ticket_id)
    assert t.priority == "P1" and t.resolve_due_ms == fan.ts_ms + 4 * HOUR
    # other screens are not in the event; defaults elsewhere stay
    fan2 = Finding("acme", "side", "psu/p1", Fault.FAN_STOPPED, True, ms("2026-03-01T19:00"))
    assert svc.apply_findings([fan2])[0].priority == "P3"
    far = Finding("zeta", "x", "controller", Fault.CONTROLLER_LOST, True, t0)
    t = svc.get(svc.apply_findings([far])[0].ticket_id)
    assert (t.response_due_ms, t.onsite_due_ms) == (t0 + 30 * MIN, t0 + 48 * HOUR)


def test_repair_clock_and_spare_due(service: TicketService, clock: Clock) -> None:
    tid = service.apply_findings([module(clock.ms)])[0].ticket_id
    service.acknowledge(tid, "desk")
    service.dispatch(tid, "desk", engineer="Eve")
    clock.ms += 5 * HOUR
    arrived = clock.ms
    t = service.arrive(tid, "eve")
    assert t.state == "on_site" and t.repair_due_ms == arrived + 48 * HOUR and not t.spare_due
    clock.ms += 49 * HOUR
    assert service.get(tid).spare_due
    t = service.resolve(tid, "eve", root_cause="module swapped")
    assert t.resolution == "onsite" and t.root_cause == "module swapped" and t.spare_due
    assert t.engineer == "Eve"


def test_warranty_in_out_and_extension_by_downtime(
    make_service: Callable[..., TicketService], clock: Clock
) -> None:
    accept = {"acceptance_date": "2025-03-01"}
    svc = make_service(
        {"sites": {"acme": {"screens": {"main": accept, "side": accept, "misuse": accept}}}}
    )
    # 10 days dark in June 2025 (a product fault), on "main" only
    tid = svc.apply_findings([lost(ms("2025-06-01T00:00"))])[0].ticket_id
    svc.apply_findings([lost(ms("2025-06-11T00:00"), active=False)])
    clock.set("2025-06-11T01:00")
    svc.close_ticket(tid, "desk")
    # the same on "misuse", but the desk records misuse: no extension
    mid = svc.apply_findings([lost(ms("2025-06-01T00:00"), screen="misuse")])[0].ticket_id
    svc.apply_findings([lost(ms("2025-06-11T00:00"), active=False, screen="misuse")])
    svc.resolve(mid, "desk", root_cause="cable pulled by a visitor", product_fault=False)
    clock.set("2026-03-05T00:00")
    w = svc.warranty("acme", "main")
    assert w is not None and w.end_ms == ms("2026-03-11T00:00") and w.covers(clock.ms)
    ts = ms("2026-03-05T00:00")
    inside = svc.apply_findings([module(ts)])[0].ticket_id
    assert svc.get(inside).in_warranty is True
    side = Finding("acme", "side", "card/c1", Fault.MODULE_FAULT, True, ts)
    assert svc.get(svc.apply_findings([side])[0].ticket_id).in_warranty is False
    mis = Finding("acme", "misuse", "card/c1", Fault.MODULE_FAULT, True, ts)
    assert svc.get(svc.apply_findings([mis])[0].ticket_id).in_warranty is False
    before = Finding("acme", "side", "card/c9", Fault.MODULE_FAULT, True, ms("2026-02-27T00:00"))
    assert svc.get(svc.apply_findings([before])[0].ticket_id).in_warranty is True


def test_listeners_see_findings_and_desk_steps(service: TicketService, clock: Clock) -> None:
    seen: list[TicketChange] = []

    def broken(_change: TicketChange) -> None:
        raise RuntimeError("listener bug")

    service.add_listener(broken)
    service.add_listener(seen.append)
    tid = service.apply_findings([lost(clock.ms)])[0].ticket_id
    service.acknowledge(tid, "desk")
    ticket, created = service.create_manual("acme", "main", "env", "smells burnt", "Ann")
    assert created
    assert [(c.ticket_id, c.state, c.opened) for c in seen] == [
        (tid, "open", True),
        (tid, "acknowledged", False),
        (ticket.id, "open", True),
    ]
    assert seen[-1].fault == "manual" and seen[-1].component == "env"


def test_manual_reports(service: TicketService) -> None:
    t, created = service.create_manual(
        "acme", "main", "card/c3", "dark block top left", "Ann (customer)", priority="P2"
    )
    assert (
        created and t.source == "manual" and t.priority == "P2" and t.reporter == "Ann (customer)"
    )
    again, created = service.create_manual("acme", "main", "card/c3", "still dark", "Bob")
    assert not created and again.id == t.id
    assert again.history[-1].step == "note" and "Bob" in again.history[-1].note
    default, _ = service.create_manual("acme", "main", "env", "noise", "Cy")
    assert default.priority == "P3"
    with pytest.raises(TicketInputError, match="priority"):
        service.create_manual("acme", "main", "env", "x", "Cy", priority="P9")
    with pytest.raises(Exception, match="site"):
        service.create_manual("Acme/#", "main", "env", "x", "Cy")


def test_reopen_refused_while_the_fault_has_another_open_ticket(
    service: TicketService, clock: Clock
) -> None:
    old = service.apply_findings([lost(clock.ms)])[0].ticket_id
    service.apply_findings([lost(clock.ms + MIN, active=False)])
    service.close_ticket(old, "desk")
    new = service.apply_findings([lost(clock.ms + HOUR)])[0].ticket_id
    with pytest.raises(TicketConflict):
        service.reopen(old, "desk", reason="customer says it is the same")
    assert service.get(old).state == "closed" and service.get(new).state == "open"
    with pytest.raises(TicketInputError):
        service.reopen(new, "desk", reason=" ")
    with pytest.raises(TicketNotFound):
        service.get(999)
    with pytest.raises(TicketInputError):
        service.survey(old, "desk", 0)


def test_state_survives_a_restart_and_sqlite_runs_in_wal(
    make_service: Callable[..., TicketService], clock: Clock, tmp_path: Path,
    ticket_db_url: str,
) -> None:
    svc = make_service()
    tid = svc.apply_findings([lost(clock.ms)])[0].ticket_id
    svc.close()
    again = make_service()
    assert again.apply_findings([lost(clock.ms + MIN)]) == []  # still the same open ticket
    assert again.get(tid).state == "open"
    if not ticket_db_url.startswith("sqlite"):
        return
    engine = create_engine(f"sqlite:///{tmp_path / 'tickets.db'}")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    engine.dispose()


def test_list_filters_and_paging(service: TicketService, clock: Clock) -> None:
    service.apply_findings([lost(clock.ms), module(clock.ms), module(clock.ms, card="c2")])
    service.apply_findings([lost(clock.ms, screen="side")])
    assert service.list(TicketFilter(priority="P1"))[1] == 2  # type: ignore[arg-type]
    assert service.list(TicketFilter(screen="side"))[1] == 1
    page, total = service.list(limit=2, offset=1)
    assert total == 4 and len(page) == 2 and page[0].id == 3
    assert service.list(TicketFilter(state="verifying"))[1] == 0  # type: ignore[arg-type]


@pytest.mark.parametrize("url", ["not a url", "nodb+nodriver://x/y", "sqlite:////proc/none/t.db"])
def test_bad_database_url_names_the_key(url: str) -> None:
    with pytest.raises(ConfigError, match=r"^database\.url: "):
        TicketService(url)


def test_in_memory_database_is_shared_by_threads() -> None:
    svc = TicketService("sqlite://")
    svc.create_manual("acme", "main", "env", "smoke smell", "Ann")
    seen: list[int] = []
    worker = threading.Thread(target=lambda: seen.append(svc.list()[1]))
    worker.start()
    worker.join()
    svc.close()
    assert seen == [1]
