"""The real driver over TCP against the emulator with the extended reads switched on:
every extended key is in the reading, and the reading validates as a full payload."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from agent.drivers.base import LinkState
from agent.drivers.novastar.driver import NovastarDriver, create_driver
from agent.drivers.novastar.uplink_converter import CARD_COLUMNS
from drivers.novastar.payload import validated_payload
from firmware_protocols.emulators.novastar import Fault, FaultKind, NovastarEmulator

COUNTS = [3, 2]
CONTROLLER_KEYS = {"inputs", "input_source", "input_manual", "redundancy", "light_lux",
                   "function_card"}  # fmt: skip
ENV_KEYS = {"light_lux", "function_card_temp_c", "function_card_humidity_pct"}





@pytest.fixture
def emu() -> Iterator[NovastarEmulator]:
    e = NovastarEmulator(ports=2, cards=COUNTS, psus=2, modules=12)
    yield e
    e.stop()


def driver(emu: NovastarEmulator, **extended: Any) -> NovastarDriver:
    host, port = emu.serve_tcp()
    return create_driver(
        {"url": f"tcp://{host}:{port}", "ports": 2, "cards_per_port": COUNTS,
         "timeout_ms": 200, "retries": 1, "extended": extended}
    )  # fmt: skip


def test_extended_keys_in_a_valid_payload(emu: NovastarEmulator) -> None:
    drv = driver(emu, smart_modules=True, function_card={"mth300_rs485": 0, "ns048c_rs485": 1})
    drv.open()
    try:
        r = drv.poll()
    finally:
        drv.close()
    doc = validated_payload(r)
    assert r.link is LinkState.UP and r.errors == 0
    ctrl, env, cards = doc["controller"], doc["env"], doc["cards"]
    assert ctrl.keys() >= CONTROLLER_KEYS and env.keys() >= ENV_KEYS
    assert set(CARD_COLUMNS) <= cards.keys()
    assert ctrl["inputs"] == {"dvi": True, "hdmi": False, "dp": None, "sdi": False}
    assert ctrl["input_source"] == "dvi" and ctrl["redundancy"] == ["primary", "primary"]
    assert ctrl["function_card"] == "MFN300" and 90 <= ctrl["light_lux"] <= 3010
    assert 20 < env["function_card_temp_c"] < 28
    assert cards["model"] == ["0x4101"] * 5 and cards["firmware"] == ["4.2.0.1"] * 5
    assert cards["modules_total"] == [12] * 5 and cards["redundant_line"] == [False] * 5
    assert ctrl["baud"] is None and ctrl["reconnect_in_s"] is None  # TCP, link up


def test_defaults_and_a_fault_and_link_down(emu: NovastarEmulator) -> None:
    """Defaults (no smart modules, no function card): those keys are present as null;
    a lost link gives every extended key as null, still a valid payload."""
    drv = driver(emu)
    emu.inject(Fault(FaultKind.REDUNDANCY_BACKUP, target="p1"))
    r = drv.poll()
    doc = validated_payload(r)
    assert doc["controller"]["redundancy"] == ["primary", "backup"]
    assert doc["cards"]["redundant_line"] == [False, False, False, True, True]
    assert (
        doc["cards"]["modules_total"] == [None] * 5 and doc["controller"]["function_card"] is None
    )
    assert doc["env"]["function_card_temp_c"] is None
    emu.inject(Fault(FaultKind.LINK_DROP, duration_s=30))
    down = drv.poll()
    drv.close()
    doc = validated_payload(down)
    assert down.link is LinkState.DOWN
    assert doc["controller"]["inputs"] == dict.fromkeys(("dvi", "hdmi", "dp", "sdi"))
    assert all(doc["cards"][k] == [None] * 5 for k in CARD_COLUMNS)
    assert doc["controller"]["reconnect_in_s"] == 0.0  # the first reconnect goes at once


def test_monitoring_card_analog_inputs_travel_raw() -> None:
    """Spec 3.1.1 marks 0x38..0x40 reserved; the register map calls them analog inputs.
    No unit is published, so they go out raw: the emulator drives inputs 1-2, 3-8 are
    invalid (null); a cabinet without a monitoring card has no analog column value."""
    emu = NovastarEmulator(ports=1, cards=1, psus=1)
    bare = NovastarEmulator(ports=1, cards=1, psus=1, monitor=False)
    try:
        for e, expect_values in ((emu, True), (bare, False)):
            host, port = e.serve_tcp()
            drv = create_driver({"url": f"tcp://{host}:{port}", "ports": 1, "cards_per_port": 1,
                                 "psus_per_cabinet": 1, "timeout_ms": 200, "retries": 1})
            drv.open()
            try:
                doc = validated_payload(drv.poll())
            finally:
                drv.close()
            [analog] = doc["cards"]["analog_raw"]
            if expect_values:
                assert analog is not None and len(analog) == 8
                assert all(isinstance(v, int) and 0 <= v <= 127 for v in analog[:2])
                assert analog[2:] == [None] * 6
            else:
                assert analog is None
    finally:
        emu.stop()
        bare.stop()


def test_card_info_is_read_every_n_polls_and_carried_in_between(emu: NovastarEmulator) -> None:
    """3.9 (model, firmware) is re-read every `card_info_every` polls; in between the last
    answer is carried and `redundant_line` follows the per-port redundancy read each poll.
    A reconnect reads it again at once."""
    drv = driver(emu, card_info_every=3)
    drv.open()
    try:
        sent = []
        docs = []
        for _ in range(4):
            before = emu.requests
            docs.append(validated_payload(drv.poll()))
            sent.append(emu.requests - before)
        n_cards = sum(COUNTS)
        # Polls 1 and 4 read 3.9 for every card; polls 2 and 3 do not. (Poll 1 also
        # probes one card past each of the 2 ports: the count made after open().)
        assert sent[3] == sent[1] + n_cards and sent[1] == sent[2]
        assert sent[0] == sent[3] + len(COUNTS)
        for doc in docs:  # the columns look the same whether read or carried
            assert doc["cards"]["model"] == docs[0]["cards"]["model"]
            assert None not in doc["cards"]["model"] and None not in doc["cards"]["firmware"]
        emu.inject(Fault(FaultKind.REDUNDANCY_BACKUP, target="p1"))
        carried = validated_payload(drv.poll())  # poll 5: 3.9 not due
        assert carried["cards"]["redundant_line"] == [False, False, False, True, True]
        drv.close()
        drv.open()
        before = emu.requests
        validated_payload(drv.poll())
        assert emu.requests - before == sent[0]  # after a reconnect: read at once
    finally:
        drv.close()
