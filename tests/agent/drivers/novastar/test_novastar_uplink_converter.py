"""The pure converter: decoded NovaStar values -> ScreenReading, aggregates; and the edges
the agent finds on such readings (agent/reading.py, one place for every family)."""

from __future__ import annotations

import dataclasses

from agent.drivers.base import LinkState
from agent.drivers.novastar.uplink_converter import (
    CardValues,
    ControllerValues,
    to_screen_reading,
)
from agent.reading import finish
from firmware_protocols.novastar import MonitoringBlock, RibbonCable

UP = ControllerValues(online=True, link=LinkState.UP, model="MCTRL300", signal_ok=True)


def block(**kw: object) -> MonitoringBlock:
    base = MonitoringBlock(
        temp_c=40.0, voltage_v=5.0, monitor=True, monitor_temp_c=30.0, humidity_pct=40,
        smoke=False, fan_rpm=(1500, 1450, None, None),
        voltages_v=(5.0, 5.1, 4.9, None, None, None, None, None, None),
        door_open=(False, False), ribbon=RibbonCable((0,) * 16, (0xF0,) * 8),
    )  # fmt: skip
    return dataclasses.replace(base, **kw)  # type: ignore[arg-type]


def reading(cards: list[CardValues], ctrl: ControllerValues = UP, previous=None):  # type: ignore[no-untyped-def]
    built = to_screen_reading(ctrl, cards, psus_per_cabinet=2, psu_ok_min_v=4.5)
    return finish(built, previous=previous)


def test_shapes_and_aggregates() -> None:
    r = reading(
        [
            CardValues(0, 0, True, block()),
            CardValues(0, 1, True, block(monitor_temp_c=35.5, humidity_pct=55, fan_rpm=(900,) * 4)),
            CardValues(1, 0, False, None),
        ]
    )
    assert r.cards["id"] == ["p0c0", "p0c1", "p1c0"]
    assert r.cards["fan_rpm"] == [1450, 900, None]
    assert r.cards["module_faults"] == [0, 0, None]
    assert r.psus["id"] == ["p0c0-psu1", "p0c0-psu2", "p0c1-psu1", "p0c1-psu2", "p1c0-psu1",
                            "p1c0-psu2"]  # fmt: skip
    assert r.psus["vout_v"] == [5.1, 4.9, 5.1, 4.9, None, None]
    assert r.psus["card"] == ["p0c0", "p0c0", "p0c1", "p0c1", "p1c0", "p1c0"]
    assert r.env == {"temp_c": 35.5, "humidity_pct": 55, "smoke": False, "door_open": False,
                     "fan_rpm": 900}  # fmt: skip
    assert r.controller["link"] == "up" and r.controller["temp_c"] is None
    assert {len(v) for v in r.cards.values()} == {3} and {len(v) for v in r.psus.values()} == {6}


def test_nothing_reports_gives_none() -> None:
    r = reading([CardValues(0, 0, False, None)])
    assert r.env == dict.fromkeys(("temp_c", "humidity_pct", "smoke", "door_open", "fan_rpm"))


def test_psu_threshold() -> None:
    volts = (5.0, 4.5, 4.4, None, None, None, None, None, None)
    r = reading([CardValues(0, 0, True, block(voltages_v=volts))])
    assert r.psus["ok"] == [True, False]


def test_edge_events() -> None:
    first = reading([CardValues(0, 0, True, block()), CardValues(0, 1, True, block())])
    assert first.events == []
    second = reading(
        [
            CardValues(0, 0, True, block(door_open=(False, True), smoke=True,
                                         ribbon=RibbonCable((7,) + (0,) * 15, (0,) * 8))),
            CardValues(0, 1, False, None),
        ],
        ctrl=dataclasses.replace(UP, signal_ok=False),
        previous=first,
    )  # fmt: skip
    got = {(e["event"], e["component"]) for e in second.events}
    assert got == {
        ("signal_lost", "controller"),
        ("door_opened", "card/p0c0"),
        ("smoke_detected", "card/p0c0"),
        ("module_fault", "card/p0c0"),
        ("card_offline", "card/p0c1"),
    }
    third = reading(
        [CardValues(0, 0, True, block(voltages_v=(5.0, 4.0) + (None,) * 7)),
         CardValues(0, 1, True, block())],
        previous=second,
    )  # fmt: skip
    got3 = {(e["event"], e["component"]) for e in third.events}
    assert got3 == {
        ("signal_restored", "controller"),
        ("door_closed", "card/p0c0"),
        ("smoke_cleared", "card/p0c0"),
        ("card_online", "card/p0c1"),
        ("psu_failed", "psu/p0c0-psu1"),
    }


def test_controller_down_reports_only_the_link_edge() -> None:
    first = reading([CardValues(0, 0, True, block())])
    down = reading(
        [CardValues(0, 0, False, None)],
        ctrl=ControllerValues(online=False, link=LinkState.DOWN),
        previous=first,
    )
    assert down.events == [{"event": "controller_link_lost", "component": "controller"}]
    assert down.link is LinkState.DOWN and down.controller["online"] is False
