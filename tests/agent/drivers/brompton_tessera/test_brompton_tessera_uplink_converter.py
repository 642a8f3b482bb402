"""Tessera converter (pure): controller keys only, nulls for what the API does not have."""

from __future__ import annotations

from agent.drivers.base import LinkState
from agent.drivers.brompton_tessera.uplink_converter import ControllerValues, to_screen_reading
from drivers.family_payload import validated
from firmware_protocols.brompton_tessera import Fan, TesseraStatus

STATUS = TesseraStatus("sx40", "A", "1", "3.5.2", "p", {"cpu": 40.0, "fpga": 50.0},
                       (Fan("case/one", 1800.0, True), Fan("fpga", None, None)), 10, 9, 1,
                       "sdi 1", True, 50.0, 3000.0, False, False)  # fmt: skip


def test_controller_keys() -> None:
    r = to_screen_reading(ControllerValues(True, LinkState.UP, STATUS, True, 10, 1500.0, 0.0))
    validated(r)
    c = r.controller
    assert c["temp_c"] == 50.0 and c["fan_rpm"] == 1800.0 and c["fans_ok"] is None
    assert c["brightness_pct"] == 100.0 and c["layout_ok"] is False and c["model"] == "SX40"
    assert r.cards == {"id": [], "online": [], "temp_c": [], "voltage_v": [], "module_faults": []}


def test_down_knows_nothing() -> None:
    r = to_screen_reading(ControllerValues(False, LinkState.DOWN, retry_in_s=2.0), errors=1)
    validated(r)
    assert r.controller["online"] is False and r.controller["temp_c"] is None
    assert r.controller["layout_ok"] is None and r.controller["retry_in_s"] == 2.0
