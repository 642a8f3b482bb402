"""Decoded Colorlight values -> `ScreenReading` (the `ledwatch.telemetry/1` shapes). Pure.

What the string protocol does not report stays null: receiving-card temperature and
supply voltage, humidity, smoke, doors, fans, PSUs (the table is empty; Modbus buses
are merged by the agent). Cards are `p<port>c<index>`, 0-based like NovaStar's, while
the wire counts ports and receiving cards from 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agent.drivers.base import LinkState, ScreenReading
from agent.drivers.common.readings import columnar, max_known, no_psus
from firmware_protocols.colorlight.records import (
    EthernetPorts,
    MultifunctionCard,
    ReceiverCard,
    SenderInfo,
    VideoInputs,
)

CARD_KEYS = (
    "id", "port", "index", "online", "temp_c", "voltage_v", "module_faults", "modules_total",
    "model", "firmware", "runtime_raw",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ControllerValues:
    online: bool
    link: LinkState
    sender: SenderInfo | None = None
    ethernet: EthernetPorts | None = None
    video: VideoInputs | None = None
    mfc: tuple[MultifunctionCard | None, ...] = ()  # per port read (None: none fitted)
    ports_expected: tuple[int, ...] = ()
    ports_found: tuple[int, ...] | None = None


@dataclass(frozen=True, slots=True)
class CardValues:
    port: int  # 0-based
    index: int  # 0-based
    probe: ReceiverCard | None = None  # rcv_probe answer (None: no answer / no card)
    module_faults: int | None = None  # pr_rcv_state `err`
    modules_total: int | None = None  # mod_probe `count`

    @property
    def online(self) -> bool:
        return self.probe is not None and self.probe.linked is True


def _card_row(c: CardValues) -> dict[str, Any]:
    p = c.probe if c.online else None
    return {
        "id": f"p{c.port}c{c.index}",
        "port": c.port,
        "index": c.index,
        "online": c.online,
        "temp_c": None,  # rcv_probe carries no temperature
        "voltage_v": None,  # nor a supply voltage
        "module_faults": c.module_faults if p is not None else None,
        "modules_total": c.modules_total if p is not None else None,
        "model": p.card_type if p is not None else None,
        "firmware": p.version if p is not None else None,
        "runtime_raw": p.runtime_raw if p is not None else None,
    }


def to_screen_reading(
    ctrl: ControllerValues,
    cards: Sequence[CardValues],
    errors: int = 0,
) -> ScreenReading:
    """The finished reading of one poll (edge events are the agent's, computed on it)."""
    s = ctrl.sender
    found = list(ctrl.ports_found) if ctrl.ports_found is not None else None
    expected = list(ctrl.ports_expected)
    mfc_temps = [m.temp_c for m in ctrl.mfc if m is not None and (m.card_count or 0) > 0]
    return ScreenReading(
        controller={
            "online": ctrl.online,
            "link": ctrl.link.value if isinstance(ctrl.link, LinkState) else str(ctrl.link),
            "model": s.model if s else None,
            "firmware": s.version if s else None,
            "signal_ok": ctrl.video.any_signal if ctrl.video else None,
            "brightness_pct": s.brightness_pct if s else None,
            "temp_c": s.temp_c if s else None,
            "blackout": s.blackout if s else None,
            "eth_linked": list(ctrl.ethernet.linked) if ctrl.ethernet else None,
            "ports_expected": expected,
            "ports_found": found,
            "layout_ok": None if found is None else found == expected,
        },
        cards=columnar([_card_row(c) for c in cards], CARD_KEYS),
        psus=no_psus(),
        env={
            # The multifunction cards' sensor is the only environment reading there is.
            "temp_c": max_known(mfc_temps) if ctrl.online else None,
            "humidity_pct": None,
            "smoke": None,
            "door_open": None,
            "fan_rpm": None,
        },
        link=ctrl.link,
        errors=errors,
    )
