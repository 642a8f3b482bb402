"""Decoded NovaStar values -> `ScreenReading` (the `ledwatch.telemetry/1` shapes). Pure.

"Uplink" = device towards the service centre (thingsboard-gateway's naming). The driver
does the I/O and hands over what it decoded; this module only reshapes, aggregates and
compares with the previous poll to find edge events.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agent.drivers.base import LinkState, ScreenReading
from firmware_protocols.novastar import MonitoringBlock


@dataclass(frozen=True, slots=True)
class ControllerValues:
    """What the sending card said this poll (None = not read or not reported)."""

    online: bool
    link: LinkState
    model: str | None = None
    signal_ok: bool | None = None
    brightness_pct: float | None = None
    temp_c: float | None = None  # NovaStar sending cards report none (spec ch. 3)
    ports_expected: tuple[int, ...] | None = None  # cards per port in the config
    ports_found: tuple[int, ...] | None = None  # cards answering per port (None = offline)

    @property
    def layout_ok(self) -> bool | None:
        """Every port has exactly the configured number of cards (None = not counted)."""
        if self.ports_found is None or self.ports_expected is None:
            return None
        return self.ports_found == self.ports_expected


@dataclass(frozen=True, slots=True)
class CardValues:
    """One receiving card: its monitoring block if it answered, else `online=False`.

    `monitor` is the last known presence of a monitoring card; it decides how many PSU
    rows an offline card gets, so PSU ids stay stable while a cabinet is dark.
    """

    port: int
    index: int
    online: bool
    block: MonitoringBlock | None = None
    monitor: bool = True
    analog: tuple[int | None, ...] | None = None  # monitoring card inputs 1..8, raw 7-bit

    @property
    def id(self) -> str:
        return card_id(self.port, self.index)


def card_id(port: int, index: int) -> str:
    return f"p{port}c{index}"


def psu_id(card: str, rail: int) -> str:
    return f"{card}-psu{rail}"


CARD_KEYS = (
    "id", "port", "index", "row", "col", "online", "temp_c", "voltage_v", "module_faults",
    "monitor", "humidity_pct", "smoke", "door_open", "fan_rpm", "analog_raw",
)  # fmt: skip
_CARD_READINGS = ("temp_c", "voltage_v", "module_faults", "humidity_pct", "smoke", "door_open",
                  "fan_rpm", "analog_raw")  # fmt: skip
PSU_KEYS = ("id", "card", "ok", "vout_v", "iout_a", "temp_c", "fan_rpm")


def _any(values: Sequence[bool | None]) -> bool | None:
    known = [v for v in values if v is not None]
    return any(known) if known else None


def _min(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return min(known) if known else None


def _max(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None


def _card_row(card: CardValues, cell: tuple[int, int] | None) -> dict[str, Any]:
    b = card.block if card.online else None
    row: dict[str, Any] = {
        "id": card.id,
        "port": card.port,
        "index": card.index,
        "row": cell[0] if cell is not None else None,
        "col": cell[1] if cell is not None else None,
        "online": card.online,
        "monitor": b.monitor if b is not None else card.monitor,
    }
    if b is None:
        row.update(dict.fromkeys(_CARD_READINGS))
        return row
    row.update(
        temp_c=b.temp_c,
        voltage_v=b.voltage_v,
        # The ribbon test needs the monitoring card (spec 3.17); None = not measured.
        module_faults=b.ribbon.faulty_groups if b.ribbon is not None else None,
        humidity_pct=b.humidity_pct if b.humidity_pct is not None else b.card_humidity_pct,
        smoke=b.smoke,
        door_open=_any(b.door_open),
        fan_rpm=_min(b.fan_rpm),
        # NovaStar publishes no unit for these, so they travel raw (0..127, None invalid).
        analog_raw=(list(card.analog) if card.analog is not None
                    and any(v is not None for v in card.analog) else None),
    )
    return row


def _psu_rows(card: CardValues, psus_per_cabinet: int, ok_min_v: float) -> list[dict[str, Any]]:
    b = card.block if card.online else None
    monitor = b.monitor if b is not None else card.monitor
    if monitor:
        vouts = [
            b.voltages_v[rail] if b is not None and rail < len(b.voltages_v) else None
            for rail in range(1, psus_per_cabinet + 1)
        ]
    else:  # no monitoring card: the card's own supply voltage stands for its one PSU
        vouts = [b.voltage_v if b is not None else None][: min(1, psus_per_cabinet)]
    return [
        {
            "id": psu_id(card.id, rail),
            "card": card.id,
            "ok": None if v is None else v >= ok_min_v,
            "vout_v": v,
            "iout_a": None,
            "temp_c": None,
            "fan_rpm": None,
        }
        for rail, v in enumerate(vouts, start=1)
    ]


def _list(values: Sequence[int] | None) -> list[int] | None:
    return None if values is None else list(values)


def to_screen_reading(
    controller: ControllerValues,
    cards: Sequence[CardValues],
    *,
    psus_per_cabinet: int,
    psu_ok_min_v: float,
    errors: int = 0,
    previous: ScreenReading | None = None,
    positions: Mapping[str, tuple[int, int]] | None = None,
) -> ScreenReading:
    """Build this poll's reading; `previous` (last poll's reading) yields the events;
    `positions` (card id -> (row, col) in the cabinet grid) fills `cards.row`/`col`."""
    where = positions or {}
    card_rows = [_card_row(c, where.get(c.id)) for c in cards]
    psu_rows = [r for c in cards for r in _psu_rows(c, psus_per_cabinet, psu_ok_min_v)]
    online_blocks = [c.block for c in cards if c.online and c.block is not None]
    env = {
        "temp_c": _max([b.monitor_temp_c for b in online_blocks]),
        "humidity_pct": _max([r["humidity_pct"] for r in card_rows]),
        "smoke": _any([r["smoke"] for r in card_rows]),
        "door_open": _any([r["door_open"] for r in card_rows]),
        "fan_rpm": _min([r["fan_rpm"] for r in card_rows]),
    }
    reading = ScreenReading(
        controller={
            "online": controller.online,
            "link": controller.link.value,
            "model": controller.model,
            "signal_ok": controller.signal_ok,
            "brightness_pct": controller.brightness_pct,
            "temp_c": controller.temp_c,
            "ports_expected": _list(controller.ports_expected),
            "ports_found": _list(controller.ports_found),
            "layout_ok": controller.layout_ok,
        },
        cards={k: [r[k] for r in card_rows] for k in CARD_KEYS},
        psus={k: [r[k] for r in psu_rows] for k in PSU_KEYS},
        env=env,
        link=controller.link,
        errors=errors,
    )
    reading.events = edge_events(previous, reading)
    return reading


# (column, event when it becomes true, event when it becomes false again)
_CARD_EDGES = (
    ("online", "card_online", "card_offline"),
    ("door_open", "door_opened", "door_closed"),
    ("smoke", "smoke_detected", "smoke_cleared"),
)


def _rows(cols: dict[str, list[Any]]) -> dict[str, dict[str, Any]]:
    ids = cols.get("id", [])
    return {ident: {k: v[i] for k, v in cols.items()} for i, ident in enumerate(ids)}


def edge_events(previous: ScreenReading | None, current: ScreenReading) -> list[dict[str, Any]]:
    """Events for what changed since the previous poll (none on the first poll).

    While the controller is offline its cards are unknown, not failed: card and PSU
    edges are only reported between two polls that both reached the controller.
    """
    if previous is None:
        return []
    events: list[dict[str, Any]] = []
    was, now = previous.controller, current.controller
    if was.get("online") and not now.get("online"):
        events.append({"event": "controller_link_lost", "component": "controller"})
    elif not was.get("online") and now.get("online"):
        events.append({"event": "controller_link_restored", "component": "controller"})
    if was.get("signal_ok") is True and now.get("signal_ok") is False:
        events.append({"event": "signal_lost", "component": "controller"})
    elif was.get("signal_ok") is False and now.get("signal_ok") is True:
        events.append({"event": "signal_restored", "component": "controller"})
    # A change of the card count on any port, between two polls that counted: a new
    # mismatch (or a different one), or the count back to what the config expects.
    found_before, found = was.get("ports_found"), now.get("ports_found")
    if found_before is not None and found is not None and found_before != found:
        events.append(
            {
                "event": "layout_restored" if now.get("layout_ok") else "layout_mismatch",
                "component": "controller",
                "ports_expected": now.get("ports_expected"),
                "ports_found": found,
            }
        )
    if not (was.get("online") and now.get("online")):
        return events
    before = _rows(previous.cards)
    for ident, row in _rows(current.cards).items():
        old = before.get(ident)
        if old is None:
            continue
        comp = f"card/{ident}"
        for key, rise, fall in _CARD_EDGES:
            if old.get(key) is False and row.get(key) is True:
                events.append({"event": rise, "component": comp})
            elif old.get(key) is True and row.get(key) is False:
                events.append({"event": fall, "component": comp})
        faults, old_faults = row.get("module_faults"), old.get("module_faults")
        if faults is not None and old_faults is not None and faults > old_faults:
            events.append({"event": "module_fault", "component": comp, "value": faults})
    psus_before = _rows(previous.psus)
    for ident, row in _rows(current.psus).items():
        old_ok = psus_before.get(ident, {}).get("ok")
        if old_ok is True and row.get("ok") is False:
            events.append({"event": "psu_failed", "component": f"psu/{ident}"})
        elif old_ok is False and row.get("ok") is True:
            events.append({"event": "psu_recovered", "component": f"psu/{ident}"})
    return events
