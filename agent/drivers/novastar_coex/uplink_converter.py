"""Decoded COEX values -> `ScreenReading` (the `ledwatch.telemetry/1` shapes). Pure.

A cabinet is online when the controller lists it as connected (`device/cabinet`, kept
honest by the cheap count every poll), never because `monitor/info` still lists it:
that one goes on listing unplugged cabinets with readings (OBSERVED on an MX30). An
offline cabinet's readings are therefore null, not the stale values. While the link is
held (VMP, or a busy answer) what did not answer this poll is unknown (None), including
`online`; whatever did answer is reported.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agent.drivers.base import LinkState, ScreenReading
from agent.drivers.common.readings import (
    any_known,
    columnar,
    max_known,
    min_known,
    no_psus,
)
from firmware_protocols.novastar_coex import CabinetInfo, CabinetMonitor, MonitorInfo

CARD_KEYS = (
    "id", "port", "index", "online", "temp_c", "voltage_v", "module_faults", "humidity_pct",
    "smoke", "monitor_temp_c", "model", "firmware", "modules_total", "cabinet_id",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Cabinet:
    """One cabinet as known across polls: where it hangs and what this poll says."""

    cabinet_id: int
    port: int | None
    index: int | None
    online: bool | None  # None: not known this poll
    live: CabinetMonitor | None = None  # this poll's monitor/info entry
    info: CabinetInfo | None = None  # its entry in the (cached) cabinet list


@dataclass(frozen=True, slots=True)
class ControllerValues:
    online: bool | None
    link: LinkState
    model: str | None = None
    monitor: MonitorInfo | None = None
    signal_ok: bool | None = None
    brightness_pct: float | None = None
    cabinets_expected: int | None = None
    cabinets_found: int | None = None
    held_s: float | None = None
    held_reason: str | None = None  # "locked" (VMP) or "busy"
    retry_in_s: float | None = None


def card_ids(cabinets: Sequence[Cabinet]) -> list[str]:
    """`p<port>c<index>` where both are known and unique, else `cab<cabinet id>`."""
    keys = [(c.port, c.index) for c in cabinets]
    return [
        f"p{p}c{i}" if p is not None and i is not None and keys.count((p, i)) == 1
        else f"cab{c.cabinet_id}"
        for c, (p, i) in zip(cabinets, keys, strict=True)
    ]


def _row(ident: str, c: Cabinet) -> dict[str, Any]:
    live = c.live if c.online else None
    info = c.info if c.online else None
    return {
        "id": ident, "port": c.port, "index": c.index, "online": c.online,
        "temp_c": live.temp_c if live else None,
        "voltage_v": live.voltage_v if live else None,
        "module_faults": None,  # errorBit / moduleInfos: no published meaning
        "humidity_pct": live.humidity_pct if live else None,
        "smoke": live.smoke if live else None,
        "monitor_temp_c": live.monitor_temp_c if live else None,
        "model": info.card_model if info else None,
        "firmware": info.firmware if info else None,
        "modules_total": info.modules if info else None,
        "cabinet_id": str(c.cabinet_id),
    }  # fmt: skip


def to_screen_reading(
    ctrl: ControllerValues, cabinets: Sequence[Cabinet], errors: int = 0
) -> ScreenReading:
    """The finished reading of one poll (edge events are the agent's, computed on it)."""
    rows = [_row(i, c) for i, c in zip(card_ids(cabinets), cabinets, strict=True)]
    m = ctrl.monitor
    fans = [f.rpm for f in m.fans] if m else []
    fans_ok = [f.ok for f in m.fans] if m else []
    found, expected = ctrl.cabinets_found, ctrl.cabinets_expected
    controller: Mapping[str, Any] = {
        "online": ctrl.online,
        "link": str(ctrl.link),
        "model": ctrl.model,
        "name": m.name if m else None,
        "signal_ok": ctrl.signal_ok,
        "brightness_pct": ctrl.brightness_pct,
        "temp_c": m.temp_c if m else None,
        "voltage_v": m.voltage_v if m else None,
        "fan_rpm": min_known(fans),
        "fans_ok": None if not fans_ok or None in fans_ok else all(fans_ok),
        "cabinets_expected": expected,
        "cabinets_found": found,
        "layout_ok": None if found is None or expected is None else found == expected,
        "held_s": ctrl.held_s,
        "held_reason": ctrl.held_reason,
        "retry_in_s": ctrl.retry_in_s,
    }
    return ScreenReading(
        controller=dict(controller),
        cards=columnar(rows, CARD_KEYS),
        psus=no_psus(),
        env={
            "temp_c": max_known([r["monitor_temp_c"] for r in rows]),
            "humidity_pct": max_known([r["humidity_pct"] for r in rows]),
            "smoke": any_known([r["smoke"] for r in rows]),
            "door_open": None,
            "fan_rpm": None,  # cabinet fans are not in monitor/info; processor fans are
        },  # controller.fan_rpm
        link=ctrl.link,
        errors=errors,
    )
