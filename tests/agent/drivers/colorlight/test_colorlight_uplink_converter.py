"""Colorlight converter (pure): shapes, nulls for what the protocol does not report."""

from __future__ import annotations

from agent.drivers.base import LinkState
from agent.drivers.colorlight.uplink_converter import (
    CardValues,
    ControllerValues,
    to_screen_reading,
)
from drivers.family_payload import validated
from firmware_protocols.colorlight import records as rec

PROBE = rec.ReceiverCard(1, 1, "5A-75E", 128, 128, True, 10, "13.5")


def test_shapes_and_nulls() -> None:
    ctrl = ControllerValues(
        True, LinkState.UP,
        sender=rec.SenderInfo("X2s", "1.0", 50.0, 6500, 40.0, False, False, 0, 1),
        video=rec.VideoInputs(1, (True,)),
        mfc=(rec.MultifunctionCard(1, 1, 30.0, None, None),
             rec.MultifunctionCard(2, 0, 99.0, None, None)),
        ports_expected=(2,), ports_found=(2,),
    )  # fmt: skip
    cards = [CardValues(0, 0, PROBE, 1, 8), CardValues(0, 1, None, 2, 8),
             CardValues(0, 2, rec.ReceiverCard(1, 3, None, None, None, False, None, None))]
    r = to_screen_reading(ctrl, cards)
    validated(r)
    assert len({len(v) for v in r.cards.values()}) == 1
    assert r.cards["online"] == [True, False, False]
    assert r.cards["module_faults"] == [1, None, None]
    assert r.cards["firmware"] == ["13.5", None, None]
    assert r.env["temp_c"] == 30.0  # a port without a card (cardCount 0) does not count
    assert r.controller["layout_ok"] is True and r.controller["signal_ok"] is True


def test_offline_controller_knows_nothing() -> None:
    r = to_screen_reading(ControllerValues(False, LinkState.DOWN, ports_expected=(1,)),
                          [CardValues(0, 0)], errors=3)  # fmt: skip
    validated(r)
    c = r.controller
    assert c["online"] is False and c["link"] == "down" and c["model"] is None
    assert c["ports_found"] is None and c["layout_ok"] is None and r.env["temp_c"] is None
    assert r.cards["online"] == [False] and r.errors == 3 and r.events == []
