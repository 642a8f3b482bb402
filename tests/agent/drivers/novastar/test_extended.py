"""The extended NovaStar plan and converter, against the real emulator over TCP.

The base reading comes from the real driver; the extended frames go over their own TCP
connection in `request_batches` order, and the merged reading must validate as a full
`ledwatch.telemetry/1` payload (after a JSON round trip).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from agent.drivers.base import ScreenReading
from agent.drivers.novastar.driver import NovastarDriver, parse_options
from agent.drivers.novastar.extended import (
    CARD_COLUMNS,
    ExtendedOptions,
    FunctionCardOptions,
    extended_requests,
    extended_values,
    merge_extended,
    parse_extended_options,
    request_batches,
)
from drivers.novastar.payload import validated_payload
from firmware_protocols import novastar as ns
from firmware_protocols.emulators.novastar import (
    PSU_LOW_S,
    PSU_SAG_S,
    Fault,
    FaultKind,
    ManualClock,
    NovastarEmulator,
)
from firmware_protocols.novastar import DeviceType, Frame
from ledwatch.errors import ConfigError, UsageError

COUNTS = [3, 2]
FULL = ExtendedOptions(
    smart_modules=True, function_card=FunctionCardOptions(mth300_rs485=0, ns048c_rs485=1)
)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def emu(clock: ManualClock) -> Iterator[NovastarEmulator]:
    e = NovastarEmulator(ports=2, cards=COUNTS, psus=2, modules=12, clock=clock)
    yield e
    e.stop()


@pytest.fixture
def addr(emu: NovastarEmulator) -> tuple[str, int]:
    return emu.serve_tcp()


def tcp_exchange(
    addr: tuple[str, int], frames: Sequence[Frame]
) -> list[tuple[Frame, Frame | None]]:
    """Send each batch, collect its replies by serial; a missing reply stays None."""
    replies: dict[int, Frame] = {}
    decoder = ns.StreamDecoder()
    with socket.create_connection(addr, timeout=2.0) as sock:
        for batch in request_batches(frames):
            sock.sendall(b"".join(ns.encode(f) for f in batch))
            want = {f.serial for f in batch}
            deadline = time.monotonic() + 2.0
            while want - replies.keys() and time.monotonic() < deadline:
                for reply in decoder.feed(sock.recv(65536)):
                    replies[reply.serial] = reply
    return [(f, replies.get(f.serial)) for f in frames]


def base_reading(addr: tuple[str, int]) -> ScreenReading:
    host, port = addr
    opts = parse_options({"url": f"tcp://{host}:{port}", "ports": 2, "cards_per_port": COUNTS})
    driver = NovastarDriver(opts)
    driver.open()
    try:
        return driver.poll()
    finally:
        driver.close()





def card(values: dict[str, Any], i: int) -> dict[str, Any]:
    return {k: v[i] for k, v in values["cards"].items()}


def test_plan_order_and_batches() -> None:
    frames = extended_requests(FULL, COUNTS)
    kinds = [(f.device_type, f.code, f.address) for f in frames]
    sd, rc, fc = DeviceType.SENDING_CARD, DeviceType.RECEIVING_CARD, DeviceType.FUNCTION_CARD
    assert kinds[:6] == [
        (sd, 0, ns.CONTROLLER_MODEL_ADDR), (sd, 0, ns.INPUT_SOURCE_STATUS_ADDR),
        (sd, 0, ns.DVI_SIGNAL_ADDR), (sd, 0, ns.INPUT_MODE_ADDR), (sd, 0, ns.REDUNDANCY_ADDR),
        (sd, 0, ns.LIGHT_SENSOR_ADDR),
    ]  # fmt: skip
    assert sum(1 for k in kinds if k[0] == rc) == 2 * sum(COUNTS)  # 3.9 + smart modules
    assert kinds[-5:] == [
        (fc, 0, ns.FUNCTION_CARD_MODEL_ADDR), (fc, 1, ns.FUNCTION_CARD_RS485_ADDR),
        (fc, 0, ns.FUNCTION_CARD_RS485_ADDR), (fc, 1, ns.FUNCTION_CARD_RS485_ADDR),
        (fc, 0, ns.FUNCTION_CARD_RS485_ADDR),
    ]  # fmt: skip
    assert frames[-4].data == ns.rs485_request(0, ns.MTH300_QUERY)
    assert len({f.serial for f in frames}) == len(frames)
    batches = request_batches(frames)
    assert len(batches) == 6 and len(batches[0]) == len(frames) - 5
    assert all(len(b) == 1 for b in batches[1:])
    # Defaults: no smart modules, no function card -> one pipelined batch.
    plain = extended_requests(ExtendedOptions(), COUNTS)
    assert len(plain) == 6 + sum(COUNTS) and len(request_batches(plain)) == 1
    assert request_batches([]) == []


def test_emulator_values_merge_into_a_valid_payload(addr: tuple[str, int]) -> None:
    values = extended_values(tcp_exchange(addr, extended_requests(FULL, COUNTS)), COUNTS)
    ctrl, env = values["controller"], values["env"]
    # MCTRL660 PRO has no DP input: null, not "no signal".
    assert ctrl["inputs"] == {"dvi": True, "hdmi": False, "dp": None, "sdi": False}
    assert ctrl["input_source"] == "dvi" and ctrl["input_manual"] is True
    assert ctrl["redundancy"] == ["primary", "primary"] and ctrl["function_card"] == "MFN300"
    assert 90 <= ctrl["light_lux"] <= 3010
    assert 90 <= env["light_lux"] <= 3010 and env["light_lux"] != ctrl["light_lux"]
    assert 20 < env["function_card_temp_c"] < 28 and 30 < env["function_card_humidity_pct"] < 60
    assert set(values["cards"]) == set(CARD_COLUMNS)
    first = card(values, 0)
    assert first["model"] == "0x4101" and first["firmware"] == "4.2.0.1"
    assert first["modules_connected"] == first["modules_total"] == 12
    assert 30 < first["module_temp_c_max"] < 45 and 4.5 < first["module_voltage_v_min"] < 5.2
    assert first["run_time_h"] >= 5000 and first["module_cable_faults"] == 0
    assert first["redundant_line"] is False
    reading = base_reading(addr)
    merge_extended(reading, values)
    doc = validated_payload(reading)
    assert doc["controller"]["inputs"]["dvi"] is True and doc["cards"]["model"][4] == "0x4101"
    assert doc["env"]["function_card_temp_c"] == env["function_card_temp_c"]


def test_faults_reach_the_snapshot_keys(
    emu: NovastarEmulator, clock: ManualClock, addr: tuple[str, int]
) -> None:
    for kind, target in [
        (FaultKind.MODULE_DISCONNECTED, "p0c1/2"),
        (FaultKind.MODULE_DISCONNECTED, "p0c1/5"),
        (FaultKind.MODULE_FAIL, "p0c2/3"),
        (FaultKind.OVER_TEMP, "p0c0"),
        (FaultKind.SENSOR_FAIL, "mth300"),
        (FaultKind.SENSOR_FAIL, "ns048c"),
        (FaultKind.REDUNDANCY_BACKUP, "p1"),
        (FaultKind.INPUT_LOST, "dvi"),
        (FaultKind.INPUT_SWITCHED, "hdmi"),
        (FaultKind.PSU_SAG_THEN_DIE, "p1c0/1"),
    ]:
        emu.inject(Fault(kind, target=target))
    clock.advance(PSU_SAG_S + PSU_LOW_S + 1)
    values = extended_values(tcp_exchange(addr, extended_requests(FULL, COUNTS)), COUNTS)
    ctrl, env = values["controller"], values["env"]
    assert ctrl["inputs"]["dvi"] is False and ctrl["inputs"]["hdmi"] is True
    assert ctrl["input_source"] == "hdmi" and ctrl["redundancy"] == ["primary", "backup"]
    assert env["function_card_temp_c"] is None and env["function_card_humidity_pct"] is None
    assert env["light_lux"] == ctrl["light_lux"]  # NS048C invalid: the sending card's sensor
    assert card(values, 0)["module_temp_c_max"] > 60
    p0c1 = card(values, 1)
    assert p0c1["modules_connected"] == 10 and p0c1["modules_total"] == 12
    assert card(values, 2)["module_cable_faults"] == 3
    dark, p1c1 = card(values, 3), card(values, 4)
    assert all(dark[k] is None for k in CARD_COLUMNS)  # ACK 01: cabinet dark
    assert p1c1["redundant_line"] is True and card(values, 0)["redundant_line"] is False
    reading = base_reading(addr)
    merge_extended(reading, values)
    validated_payload(reading)


def test_sensor_missing_or_link_silent_gives_nulls(addr: tuple[str, int]) -> None:
    frames = extended_requests(FULL, COUNTS)
    values = extended_values([(f, None) for f in frames], COUNTS)
    assert values["controller"]["inputs"] == dict.fromkeys(("dvi", "hdmi", "dp", "sdi"))
    assert values["controller"]["redundancy"] == [None, None]
    assert all(v is None for v in values["env"].values())
    assert all(col == [None] * 5 for col in values["cards"].values())
    emu_less = NovastarEmulator(ports=1, cards=1, light_sensor=False, function_card=None)
    solo = extended_requests(FULL, [1])
    got = extended_values([(f, emu_less.handle(f)) for f in solo], [1])
    assert got["controller"]["light_lux"] is None and got["controller"]["function_card"] is None
    assert got["env"]["light_lux"] is None and got["cards"]["modules_total"] == [12]
    reading = base_reading(addr)
    merge_extended(reading, values)
    validated_payload(reading)


def test_options_are_validated_naming_the_key() -> None:
    assert parse_extended_options(None) == ExtendedOptions()
    opts = parse_extended_options({"smart_modules": True, "function_card": {"port": 1}})
    assert opts.function_card is not None and opts.function_card.mth300_rs485 == 0
    with pytest.raises(ConfigError, match=r"controller\.extended\.function_card\.mth300_rs485"):
        parse_extended_options({"function_card": {"mth300_rs485": 4}})
    with pytest.raises(ConfigError, match=r"controller\.extended\.smart_module"):
        parse_extended_options({"smart_module": True})


def test_merge_refuses_misaligned_columns(addr: tuple[str, int]) -> None:
    reading = base_reading(addr)
    values = extended_values([], [1])
    with pytest.raises(UsageError):
        merge_extended(reading, values)
