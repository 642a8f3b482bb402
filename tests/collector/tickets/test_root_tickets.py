"""One ticket per root cause, on real SQLite: stages of a family, effects, flapping, and
maintenance windows that suppress, record and let go."""

from __future__ import annotations

from ticket_helpers import HOUR, MIN, Clock, ms

from collector.detect.findings import Fault, Finding, Priority
from collector.tickets import State, TicketService

SITE, SCREEN = "acme", "main"
T = ms("2026-03-01T10:00")


def psu(fault: Fault, ts: int, active: bool = True, **kw: object) -> Finding:
    return Finding(SITE, SCREEN, "psu/p0c1-psu1", fault, active, ts, f"{fault.value}", **kw)


def card_effect(ts: int, active: bool = True) -> Finding:
    return Finding(SITE, SCREEN, "card/p0c1", Fault.CARD_OFFLINE, active, ts, "online false",
                   root=f"{SITE}/{SCREEN}/psu/p0c1-psu1/psu_failed")


def steps(service: TicketService, ticket_id: int) -> list[str]:
    return [e.step for e in service.get(ticket_id).history]


def test_a_psu_that_drifts_sags_and_fails_is_one_ticket(service: TicketService) -> None:
    service.apply_findings([psu(Fault.PSU_DEGRADING, T, predicted_failure_ms=T + 50 * HOUR,
                                evidence={"drop_v": 0.12})])
    service.apply_findings([psu(Fault.VOLTAGE_LOW, T + 30 * HOUR)])
    service.apply_findings([psu(Fault.PSU_DEGRADING, T + 31 * HOUR, active=False)])
    service.apply_findings([psu(Fault.PSU_FAILED, T + 40 * HOUR), card_effect(T + 40 * HOUR)])
    tickets, count = service.list()
    assert count == 1
    t = service.get(tickets[0].id)
    assert (t.fault, t.priority, t.state) == ("psu_failed", "P2", "open")
    assert t.predicted_failure_ms == T + 50 * HOUR and t.evidence == {"drop_v": 0.12}
    # psu_degrading and voltage_low are both P3; psu_failed raises it to P2
    assert steps(service, t.id) == ["open", "escalate", "escalate", "priority", "effect"]
    assert [(e.component, e.fault, e.active) for e in t.effects] == [
        ("card/p0c1", "card_offline", True)]
    # the resolve deadline follows the raised priority (P2: 24 h from the open)
    assert t.resolve_due_ms == T + 24 * HOUR


def test_it_clears_only_when_no_cause_is_active(service: TicketService) -> None:
    service.apply_findings([psu(Fault.VOLTAGE_LOW, T), psu(Fault.PSU_FAILED, T + MIN)])
    [t], _ = service.list()
    service.apply_findings([psu(Fault.PSU_FAILED, T + 2 * MIN, active=False)])
    assert service.get(t.id).state == "open"  # still sagging
    service.apply_findings([psu(Fault.VOLTAGE_LOW, T + 3 * MIN, active=False)])
    assert service.get(t.id).state == "verifying"
    # back again before anyone confirmed: the same ticket re-opens (recur), no new one
    service.apply_findings([psu(Fault.VOLTAGE_LOW, T + 10 * MIN)])
    assert service.list()[1] == 1 and service.get(t.id).state == "open"


def test_an_effect_raises_its_root_and_is_listed(service: TicketService) -> None:
    sag = psu(Fault.VOLTAGE_LOW, T)
    service.apply_findings([sag])
    effect = Finding(SITE, SCREEN, "card/p0c1", Fault.CARD_OFFLINE, True, T + MIN, "dark",
                     root=sag.key)
    service.apply_findings([effect])
    [t], count = service.list()
    assert count == 1 and t.priority == Priority.P2.value
    service.apply_findings([Finding(SITE, SCREEN, "card/p0c1", Fault.CARD_OFFLINE, False,
                                    T + 5 * MIN, "back", root=sag.key)])
    got = service.get(t.id)
    assert [(e.active, e.first_ms, e.last_ms) for e in got.effects] == [(False, T + MIN,
                                                                          T + 5 * MIN)]
    assert got.state == "open"  # an effect clearing does not clear the root


def test_a_screen_dark_ticket_lists_every_cabinet(service: TicketService) -> None:
    root = Finding(SITE, SCREEN, "screen", Fault.SCREEN_DARK, True, T, "16 of 16 dark")
    effects = [Finding(SITE, SCREEN, f"card/c{i}", Fault.CARD_OFFLINE, True, T, "dark",
                       root=root.key) for i in range(16)]
    service.apply_findings([root, *effects])
    [t], count = service.list()
    assert count == 1 and (t.component, t.priority) == ("screen", "P1")
    assert len(service.get(t.id).effects) == 16


def test_flapping_is_marked_once_on_the_one_ticket(service: TicketService) -> None:
    key = dict(component="card/c1", fault=Fault.CARD_OFFLINE)
    f = [Finding(SITE, SCREEN, key["component"], Fault.CARD_OFFLINE, a, T + i * MIN, "x",  # type: ignore[arg-type]
                 flapping=fl)
         for i, (a, fl) in enumerate([(True, False), (False, False), (True, True)])]
    service.apply_findings(f)
    [t], count = service.list()
    assert count == 1 and t.flapping
    assert steps(service, t.id) == ["open", "clear", "recur", "flapping"]


def test_a_maintenance_window_suppresses_records_and_lets_go(
    service: TicketService, clock: Clock
) -> None:
    w = service.create_window(SITE, T, T + 2 * HOUR, "J. Smith", "replacing modules",
                              screen=SCREEN, actor="desk")
    fixed = Finding(SITE, SCREEN, "card/c2", Fault.MODULE_FAULT, True, T + 10 * MIN, "2 bad")
    still = Finding(SITE, SCREEN, "card/c3", Fault.DOOR_OPEN, True, T + 20 * MIN, "open")
    other = Finding(SITE, "hall", "card/c1", Fault.MODULE_FAULT, True, T + 20 * MIN, "1 bad")
    service.apply_findings([fixed, still, other])
    service.apply_findings([Finding(SITE, SCREEN, "card/c2", Fault.MODULE_FAULT, False,
                                    T + 90 * MIN, "fixed")])
    tickets, _ = service.list()
    assert [t.screen for t in tickets] == ["hall"]  # another screen is not covered
    held = service.suppressed(w.id)
    assert [(s.component, s.fault, s.cleared_ms, s.ticket_id) for s in held] == [
        ("card/c2", "module_fault", T + 90 * MIN, None), ("card/c3", "door_open", None, None)]
    service.tick(T + 2 * HOUR)  # the window is over; the door is still open
    tickets, count = service.list()
    assert count == 2
    door = next(t for t in tickets if t.component == "card/c3")
    assert door.opened_ms == T + 2 * HOUR and "maintenance window" in door.detail
    assert service.suppressed(w.id)[1].ticket_id == door.id
    assert next(s.ticket_id for s in service.suppressed(w.id)) is None


def test_a_window_for_one_component_covers_only_it(service: TicketService) -> None:
    service.create_window(SITE, T, T + HOUR, "J. Smith", "PSU swap", screen=SCREEN,
                          component="psu")
    service.apply_findings([psu(Fault.PSU_FAILED, T + MIN),
                            Finding(SITE, SCREEN, "card/c9", Fault.SMOKE, True, T + MIN, "!")])
    tickets, _ = service.list()
    assert [t.component for t in tickets] == ["card/c9"]


def test_ending_a_window_early_opens_what_it_held(service: TicketService, clock: Clock) -> None:
    clock.ms = T
    w = service.create_window(SITE, T, T + 4 * HOUR, "J. Smith", "upkeep", screen=SCREEN)
    service.apply_findings([Finding(SITE, SCREEN, "controller", Fault.SIGNAL_LOST, True,
                                    T + MIN, "no picture")])
    assert service.list()[1] == 0
    clock.ms = T + 30 * MIN
    ended = service.end_window(w.id, "desk")
    assert ended.ended_early_ms == T + 30 * MIN and ended.end_ms == T + 30 * MIN
    [t], _ = service.list()
    assert (t.fault, t.state, t.opened_ms) == ("signal_lost", State.OPEN.value, T + 30 * MIN)
    assert service.windows(site=SITE)[0].id == w.id  # kept on record


def test_config_windows_are_added_once(service: TicketService) -> None:
    class Spec:
        site, screen, component = SITE, SCREEN, None
        start_ms, end_ms, who, why = T, T + HOUR, "plan", "quarterly check"

    assert service.sync_windows([Spec()]) == 1
    assert service.sync_windows([Spec()]) == 0
    assert [w.source for w in service.windows()] == ["config"]


def test_a_forecast_after_a_fixed_sag_reopens_nothing(service: TicketService) -> None:
    """The peer comparison still remembers a sag that is over: noted, not re-opened."""
    service.apply_findings([psu(Fault.VOLTAGE_LOW, T), psu(Fault.VOLTAGE_LOW, T + HOUR, False)])
    [t], _ = service.list()
    assert t.state == "verifying"
    service.apply_findings([psu(Fault.PSU_DEGRADING, T + 2 * HOUR)])
    got = service.get(t.id)
    assert got.state == "verifying" and got.reopen_count == 0
    assert steps(service, t.id)[-1] == "note"
    # a real sag again does re-open it
    service.apply_findings([psu(Fault.VOLTAGE_LOW, T + 5 * HOUR)])
    assert service.get(t.id).state == "open"
