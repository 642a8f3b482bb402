"""The installed base: snapshot -> component rows (pure), and `components` kept in step
with telemetry on SQLite and PostgreSQL (upsert, throttle, known models kept, stale
parts dropped, contract defaults for what telemetry does not name)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from ticket_helpers import DAY, HOUR, MIN, Clock, ms

from collector.tickets import TicketService
from collector.tickets.inventory import ComponentRow, inventory_rows, summarise
from ledwatch.contract import validate_telemetry
from ledwatch.errors import PayloadError


def snapshot(**over: Any) -> dict[str, Any]:
    """A valid `ledwatch.telemetry/1` snapshot: 3 cabinets, 2 smart PSUs and 1 rail."""
    doc: dict[str, Any] = {
        "schema": "ledwatch.telemetry/1", "site": "acme", "screen": "main", "agent": "pc1",
        "seq": 1, "ts": ms("2026-03-01T00:00"),
        "controller": {"online": True, "model": "MCTRL4K"},
        "cards": {"id": ["p0c0", "p0c1", "p0c2"], "online": [True, True, False],
                  "temp_c": [40.0, 41.0, None], "voltage_v": [5.0, 5.0, None],
                  "module_faults": [0, 0, None], "model": ["A8s", "A8s", None],
                  "modules_total": [8, 8, None]},
        "psus": {"id": ["p0c0-psu1", "p0c1-psu1", "p0c2-psu1"], "ok": [True, True, None],
                 "vout_v": [5.1, 5.1, None],
                 "model": ["DRS-480-24", "DRS-480-24", None]},
        "env": {},
    }
    doc.update(over)
    return validate_telemetry(doc)


def test_rows_from_a_snapshot() -> None:
    rows = inventory_rows(snapshot())
    assert rows == [
        ComponentRow("controller", "controller", "MCTRL4K"),
        ComponentRow("card/p0c0", "receiving_card", "A8s"),
        ComponentRow("card/p0c0", "module", "A8s", 8),
        ComponentRow("card/p0c1", "receiving_card", "A8s"),
        ComponentRow("card/p0c1", "module", "A8s", 8),
        ComponentRow("card/p0c2", "receiving_card", "unknown"),  # dark: no model, no count
        ComponentRow("psu/p0c0-psu1", "psu", "DRS-480-24"),
        ComponentRow("psu/p0c1-psu1", "psu", "DRS-480-24"),
        ComponentRow("psu/p0c2-psu1", "psu", "unknown"),
    ]
    assert summarise(rows) == {
        ("controller", "MCTRL4K"): 1, ("module", "A8s"): 16, ("psu", "DRS-480-24"): 2,
        ("psu", "unknown"): 1, ("receiving_card", "A8s"): 2, ("receiving_card", "unknown"): 1,
    }
    named = inventory_rows(snapshot(), psu_model="LRS-200-5", module_model="P3.9 outdoor")
    assert ComponentRow("psu/p0c2-psu1", "psu", "LRS-200-5") in named
    assert ComponentRow("psu/p0c0-psu1", "psu", "DRS-480-24") in named  # telemetry wins
    assert ComponentRow("card/p0c0", "module", "P3.9 outdoor", 8) in named


def test_the_schema_takes_psu_models_and_older_snapshots_without_them() -> None:
    old = snapshot()
    del old["psus"]["model"]
    validate_telemetry(old)
    assert {r.model for r in inventory_rows(old) if r.kind == "psu"} == {"unknown"}
    bad = snapshot()
    bad["psus"]["model"] = [5, "x", None]
    with pytest.raises(PayloadError):
        validate_telemetry(bad)


def test_a_minimal_snapshot_gives_the_controller_alone() -> None:
    doc = snapshot(controller={"online": False}, cards={"id": [], "online": [], "temp_c": [],
                   "voltage_v": [], "module_faults": []}, psus={"id": [], "ok": [], "vout_v": []})
    assert inventory_rows(doc) == [ComponentRow("controller", "controller", "unknown")]


def test_recording_upserts_keeps_known_models_and_drops_stale_parts(
    service: TicketService, clock: Clock
) -> None:
    t0 = clock.ms
    assert service.observe_inventory(snapshot(), every_ms=60 * MIN)
    base = {(r.kind, r.model): r.quantity for r in service.inventory("acme", "main")}
    assert base == {("controller", "MCTRL4K"): 1, ("module", "A8s"): 16,
                    ("psu", "DRS-480-24"): 2, ("psu", "unknown"): 1,
                    ("receiving_card", "A8s"): 2, ("receiving_card", "unknown"): 1}
    # Within the interval: not even read.
    clock.ms = t0 + 30 * MIN
    assert not service.observe_inventory(snapshot(), every_ms=60 * MIN)

    # An hour on: the controller's link is down (no models), p0c2 came back with its
    # model, and p0c1's card was swapped for another model.
    clock.ms = t0 + 61 * MIN
    later = snapshot(controller={"online": False})
    later["cards"]["model"] = ["A8s", "A10s", "A8s"]
    later["cards"]["modules_total"] = [8, 8, 8]
    assert service.observe_inventory(later, every_ms=60 * MIN)
    parts = {(p.component, p.kind): p for p in service.components("acme", "main")}
    assert parts[("controller", "controller")].model == "MCTRL4K"  # kept, not "unknown"
    assert parts[("card/p0c2", "receiving_card")].model == "A8s"
    assert parts[("card/p0c2", "receiving_card")].first_ms == t0  # unknown -> known: same part
    assert parts[("card/p0c1", "receiving_card")].model == "A10s"
    assert parts[("card/p0c1", "receiving_card")].first_ms == clock.ms  # a new part
    assert parts[("card/p0c2", "module")].quantity == 8
    assert all(p.seen_ms == clock.ms for p in parts.values())

    # A cabinet removed: gone from the base once not reported for the stale time.
    clock.ms = t0 + 10 * DAY
    smaller = snapshot()
    for key in ("id", "online", "temp_c", "voltage_v", "module_faults", "model",
                "modules_total"):
        smaller["cards"][key] = smaller["cards"][key][:2]
    for key in ("id", "ok", "vout_v", "model"):
        smaller["psus"][key] = smaller["psus"][key][:2]
    assert service.observe_inventory(smaller, stale_ms=5 * DAY)
    names = {p.component for p in service.components("acme", "main")}
    assert "card/p0c2" not in names and "psu/p0c2-psu1" not in names
    assert "card/p0c1" in names


def test_contract_defaults_name_what_telemetry_does_not(
    make_service: Callable[..., TicketService]
) -> None:
    svc = make_service({"sites": {"acme": {"psu_model": "LRS-200-5",
                                           "screens": {"main": {"module_model": "P3.9"}}}}})
    svc.observe_inventory(snapshot())
    base = {(r.kind, r.model): r.quantity for r in svc.inventory(site="acme")}
    assert base[("psu", "LRS-200-5")] == 1 and base[("module", "P3.9")] == 16


def test_two_screens_and_one_hour_of_throttle_per_screen(
    service: TicketService, clock: Clock
) -> None:
    assert service.record_inventory("acme", "main", [ComponentRow("controller", "controller",
                                                                  "X")], every_ms=HOUR)
    assert service.record_inventory("acme", "side", [ComponentRow("controller", "controller",
                                                                  "Y")], every_ms=HOUR)
    assert not service.record_inventory("acme", "main", [], every_ms=HOUR)
    assert [(r.model, r.quantity) for r in service.inventory(site="acme")] == [("X", 1), ("Y", 1)]
    assert [r.model for r in service.inventory("acme", "side")] == ["Y"]
