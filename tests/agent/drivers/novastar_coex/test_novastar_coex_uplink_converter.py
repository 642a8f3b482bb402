"""COEX converter (pure): online from the cabinet list, never from monitor/info; ids."""

from __future__ import annotations

from agent.drivers.base import LinkState
from agent.drivers.novastar_coex.uplink_converter import (
    Cabinet,
    ControllerValues,
    card_ids,
    to_screen_reading,
)
from drivers.family_payload import validated
from firmware_protocols.novastar_coex import CabinetInfo, CabinetMonitor

LIVE = CabinetMonitor(1, 0, 0, 41.0, 4.3, None, False, None)
INFO = CabinetInfo(1, 0, 0, "A5sPlus", "4.6.6.68", 0.5, 4)


def test_offline_cabinet_shows_no_stale_reading() -> None:
    cabinets = [Cabinet(1, 0, 0, True, LIVE, INFO), Cabinet(2, 0, 1, False, LIVE, None)]
    r = to_screen_reading(ControllerValues(True, LinkState.UP, cabinets_expected=2,
                                           cabinets_found=1), cabinets)  # fmt: skip
    validated(r)
    assert r.cards["online"] == [True, False] and r.cards["temp_c"] == [41.0, None]
    assert r.cards["firmware"] == ["4.6.6.68", None] and r.controller["layout_ok"] is False
    assert r.cards["cabinet_id"] == ["1", "2"] and r.env["smoke"] is False


def test_ids_fall_back_to_the_cabinet_id_when_the_place_is_unknown_or_shared() -> None:
    cabinets = [Cabinet(7, 0, 0, True), Cabinet(8, 0, 0, True), Cabinet(9, None, 3, True),
                Cabinet(10, 1, 0, True)]  # fmt: skip
    assert card_ids(cabinets) == ["cab7", "cab8", "cab9", "p1c0"]


def test_held_without_answers_is_unknown() -> None:
    ctrl = ControllerValues(None, LinkState.UP, held_s=3.0)
    r = to_screen_reading(ctrl, [Cabinet(1, 0, 0, None)])
    assert r.controller["online"] is None and r.cards["online"] == [None]
    assert r.controller["fans_ok"] is None and r.controller["fan_rpm"] is None
