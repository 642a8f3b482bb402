"""Decoded Tessera values -> `ScreenReading` (the `ledwatch.telemetry/1` shapes). Pure.

The IP Control API has no per-tile telemetry, so `cards` is an empty table (with the
schema's required columns), `psus` too, and `env` is all null; what there is sits in
`controller`: processor temperatures and fans, tile counts, input signal, brightness.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.drivers.base import LinkState, ScreenReading
from agent.drivers.common.readings import CARD_REQUIRED, max_known, min_known, no_psus
from firmware_protocols.brompton_tessera import TesseraStatus


@dataclass(frozen=True, slots=True)
class ControllerValues:
    online: bool
    link: LinkState
    status: TesseraStatus | None = None
    ip_control: bool | None = None
    tiles_expected: int | None = None
    max_brightness_nits: float | None = None
    age_s: float | None = None  # how old the data is (polls inside the pacing interval)
    retry_in_s: float | None = None


def to_screen_reading(ctrl: ControllerValues, errors: int = 0) -> ScreenReading:
    """The finished reading of one read (edge events are the agent's, computed on it)."""
    s = ctrl.status
    temps = dict(s.temps_c) if s else None
    fans = s.fans if s else ()
    online, expected = (s.tiles_online if s else None), ctrl.tiles_expected
    nits, top = (s.brightness_nits if s else None), ctrl.max_brightness_nits
    pct = round(min(100.0, 100 * nits / top), 1) if nits is not None and top else None
    oks = [f.ok for f in fans]
    fans_ok = all(oks) if oks and None not in oks else None
    layout = None
    if s is not None and expected is not None and online is not None:
        layout = online == expected and s.tiles_associated in (None, expected)
    return ScreenReading(
        controller={
            "online": ctrl.online,
            "link": str(ctrl.link),
            "model": s.processor_type.upper() if s and s.processor_type else None,
            "name": s.processor_name if s else None,
            "serial": s.serial if s else None,
            "firmware": s.software_version if s else None,
            "project": s.project if s else None,
            "ip_control": ctrl.ip_control,
            "signal_ok": s.signal_ok if s else None,
            "input": s.input_port if s else None,
            "input_refresh_hz": s.refresh_hz if s else None,
            "brightness_nits": nits,
            "brightness_pct": pct,
            "blackout": s.blackout if s else None,
            "freeze": s.freeze if s else None,
            "temp_c": max_known(list(temps.values())) if temps else None,
            "temps_c": temps,
            "fan_rpm": min_known([f.rpm for f in fans]),
            "fans_ok": fans_ok,
            "tiles_expected": expected,
            "tiles_associated": s.tiles_associated if s else None,
            "tiles_online": online,
            "tiles_error": s.tiles_error if s else None,
            "layout_ok": layout,
            "age_s": ctrl.age_s,
            "retry_in_s": ctrl.retry_in_s,
        },
        cards={k: [] for k in CARD_REQUIRED},
        psus=no_psus(),
        env=dict.fromkeys(("temp_c", "humidity_pct", "smoke", "door_open", "fan_rpm")),
        link=ctrl.link,
        errors=errors,
    )
