"""Register maps, read plans and decoding of smart PSUs, and the pymodbus-served emulator."""

from __future__ import annotations

import copy
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymodbus.client import ModbusSerialClient, ModbusTcpClient
from pymodbus.exceptions import ModbusIOException

from firmware_protocols.emulators.modbus_psu import EmulatedFault, ModbusPsuEmulator, unit_values
from firmware_protocols.modbus_psu import (
    PsuFault,
    ReadBlock,
    RegisterType,
    available_maps,
    decode_reading,
    decode_value,
    encode_registers,
    load_register_map,
    parse_register_map,
    plan_reads,
    registers_from_blocks,
)
from ledwatch.errors import ConfigError, UsageError

H, IN = RegisterType.HOLDING, RegisterType.INPUT
SHIPPED = Path(__file__).resolve().parents[2] / "firmware_protocols" / "registermaps"


def meanwell_doc() -> dict[str, Any]:
    return tomllib.loads((SHIPPED / "meanwell_drs_npb.toml").read_text("utf-8"))


def small_map(**values: dict[str, Any]) -> dict[str, Any]:
    return {"map": {"name": "t"}, "values": {"vout_v": {"address": 0, "scale": 0.01}, **values}}


# ------------------------------------------------------------------------ register maps
def test_every_shipped_map_loads() -> None:
    assert "meanwell_drs_npb" in available_maps()
    for name in available_maps():
        regmap = load_register_map(name)
        assert "vout_v" in regmap.values


def test_meanwell_map_content() -> None:
    m = load_register_map("meanwell_drs_npb")
    assert m.map.manual  # the header and [map] name the manual to check against
    assert {f.value for f in m.faults} >= {
        "over_temperature", "over_voltage", "over_current", "fan_fail", "ac_fail", "output_off"}
    assert m.values["vout_v"].scale == 0.01 and m.values["vout_v"].unit == "V"
    assert m.values["temp_c"].type == "int16"
    # FAULT_STATUS is a holding register, the READ_* values input registers (checked
    # against public DRS tools, see the map's header).
    assert plan_reads(m) == [ReadBlock(H, 0x40, 1), ReadBlock(IN, 0x60, 3), ReadBlock(IN, 0x70, 1)]


def test_load_by_path_and_errors(tmp_path: Path) -> None:
    good = tmp_path / "copy.toml"
    good.write_text((SHIPPED / "meanwell_drs_npb.toml").read_text("utf-8"), "utf-8")
    assert load_register_map(good).map.name == "meanwell_drs_npb"
    assert load_register_map(str(good)).values["iout_a"].address == 0x61
    with pytest.raises(ConfigError, match="unknown register map 'nope'"):
        load_register_map("nope")
    with pytest.raises(ConfigError, match="cannot read register map"):
        load_register_map(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[map\nname=", "utf-8")
    with pytest.raises(ConfigError, match=r"bad\.toml: not valid TOML"):
        load_register_map(bad)


BAD_MAPS: list[tuple[str, Any, str]] = [
    # (dotted path to set in the shipped map, new value or DELETE, expected key in error)
    ("values.vout_v.scale", 0, "values.vout_v: scale must be"),
    ("values.iout_a.register", "coil", "values.iout_a.register"),
    ("values.fan_rpm.type", "uint32", "values.fan_rpm: words = 1 does not fit type 'uint32'"),
    ("values.temp_c.type", "float64", "values.temp_c.type"),
    ("values.temp_c.address", 70000, "values.temp_c.address"),
    ("values.temp_c.scal", 1, "values.temp_c.scal"),
    ("values.vout_v", "DELETE", "values.vout_v: missing"),
    ("faults.fan_fail.value", "status_word", "faults.fan_fail.value: 'status_word' is not a key"),
    ("faults.fan_fail.bit", 16, "faults.fan_fail.bit: 16 is outside values.fault_status"),
    ("faults.fan_fail.severity", "panic", "faults.fan_fail.severity"),
    ("faults.smoke", {"value": "fault_status", "bit": 9}, "faults.smoke: 'smoke' is not an"),
    ("map.word_order", "middle", "map.word_order"),
    ("map.name", "DELETE", "map.name"),
]


@pytest.mark.parametrize(("path", "value", "expected"), BAD_MAPS, ids=[c[0] for c in BAD_MAPS])
def test_bad_map_names_the_key(path: str, value: Any, expected: str) -> None:
    doc = copy.deepcopy(meanwell_doc())
    *parents, leaf = path.split(".")
    node = doc
    for part in parents:
        node = node[part]
    if value == "DELETE":
        del node[leaf]
    else:
        node[leaf] = value
    with pytest.raises(ConfigError) as info:
        parse_register_map(doc, "x.toml")
    assert str(info.value).startswith("x.toml: ")
    assert expected in str(info.value)


# ----------------------------------------------------------------------------- planning
def test_plan_merges_only_contiguous_runs_per_table() -> None:
    m = parse_register_map(small_map(
        a={"address": 1, "type": "uint32", "words": 2},
        b={"address": 3},
        c={"address": 5},  # gap at 4: a separate read
        d={"address": 2, "register": "input"},  # other table, same addresses
        e={"address": 3, "register": "input"},
    ))
    assert plan_reads(m) == [ReadBlock(H, 0, 4), ReadBlock(H, 5, 1), ReadBlock(IN, 2, 2)]


def test_plan_splits_at_max_words() -> None:
    m = parse_register_map(small_map(**{f"v{i}": {"address": i} for i in range(1, 10)}))
    assert plan_reads(m, max_words=4) == [ReadBlock(H, 0, 4), ReadBlock(H, 4, 4),
                                          ReadBlock(H, 8, 2)]
    assert plan_reads(m) == [ReadBlock(H, 0, 10)]
    with pytest.raises(ValueError):
        plan_reads(m, max_words=126)


# ----------------------------------------------------------------------------- decoding
def test_decode_meanwell_words() -> None:
    m = load_register_map("meanwell_drs_npb")
    words = {H: {0x40: 0b1000_0001}, IN: {0x60: 498, 0x61: 2037, 0x62: 0xFFD6, 0x70: 2400}}
    r = decode_reading(m, words)
    assert (r.vout_v, r.iout_a, r.temp_c, r.fan_rpm) == (4.98, 20.37, -4.2, 2400.0)
    assert r.faults == {"fan_fail", "high_temperature"}
    assert r.ok is False


def test_warning_alone_keeps_ok() -> None:
    m = load_register_map("meanwell_drs_npb")
    r = decode_reading(m, encode_registers(m, {"vout_v": 5.1}, ["high_temperature"]))
    assert r.faults == {"high_temperature"} and r.ok is True
    assert decode_reading(m, encode_registers(m, {"vout_v": 5.1})).ok is True


def test_each_fault_bit_decodes() -> None:
    m = load_register_map("meanwell_drs_npb")
    for fault, spec in m.faults.items():
        r = decode_reading(m, {H: {0x40: 1 << spec.bit}})
        assert r.faults == {fault.value}
        assert r.ok is (spec.severity == "warning")


def test_missing_words_give_none() -> None:
    m = load_register_map("meanwell_drs_npb")
    empty = decode_reading(m, {})
    assert (empty.vout_v, empty.iout_a, empty.temp_c, empty.fan_rpm, empty.ok) == (
        None, None, None, None, None)
    # Status block unreadable but measurements there: values, yet ok unknown.
    partial = decode_reading(m, {IN: {0x60: 510, 0x61: 100, 0x62: 300}})
    assert partial.vout_v == 5.1 and partial.fan_rpm is None and partial.ok is None


def test_uint32_word_orders_signed_and_not_available() -> None:
    doc = small_map(
        energy={"address": 10, "type": "uint32", "words": 2, "scale": 0.1, "unit": "Wh"},
        temp_c={"address": 12, "type": "int32", "words": 2, "scale": 0.01,
                "register": "input", "offset": -40},
        fan_rpm={"address": 1, "not_available": 0xFFFF},
    )
    big = parse_register_map(doc)
    words = {H: {0: 500, 1: 0xFFFF, 10: 0x0001, 11: 0x0002}, IN: {12: 0xFFFF, 13: 0xFF38}}
    assert decode_value(big, "energy", words) == 6553.8  # 0x00010002 * 0.1
    assert decode_value(big, "temp_c", words) == -42.0  # -200 * 0.01 - 40
    assert decode_reading(big, words).fan_rpm is None
    doc["map"]["word_order"] = "little"
    little = parse_register_map(doc)
    assert decode_value(little, "energy", words) == 13107.3  # 0x00020001 * 0.1
    assert decode_value(little, "energy", {H: {10: 1}}) is None  # half a value is no value


def test_registers_from_blocks() -> None:
    got = registers_from_blocks([(ReadBlock(H, 0x60, 3), [1, 2, 3]), (ReadBlock(IN, 5, 1), [9])])
    assert got == {H: {0x60: 1, 0x61: 2, 0x62: 3}, IN: {5: 9}}


@given(
    vout=st.floats(0, 655.35), iout=st.floats(0, 655.35), temp=st.floats(-3276.8, 3276.7),
    fan=st.integers(0, 65535), faults=st.sets(st.sampled_from([f.value for f in PsuFault])),
)
def test_encode_decode_round_trip(vout: float, iout: float, temp: float, fan: int,
                                  faults: set[str]) -> None:
    m = load_register_map("meanwell_drs_npb")
    r = decode_reading(m, encode_registers(
        m, {"vout_v": vout, "iout_a": iout, "temp_c": temp, "fan_rpm": fan}, faults))
    assert r.vout_v is not None and abs(r.vout_v - vout) <= 0.005 + 1e-9
    assert r.iout_a is not None and abs(r.iout_a - iout) <= 0.005 + 1e-9
    assert r.temp_c is not None and abs(r.temp_c - temp) <= 0.05 + 1e-9
    assert r.fan_rpm == fan
    assert r.faults == faults


def test_encode_saturates() -> None:
    m = load_register_map("meanwell_drs_npb")
    words = encode_registers(m, {"vout_v": 1000.0, "temp_c": -5000.0, "iout_a": -3.0})
    assert words[IN][0x60] == 0xFFFF and words[IN][0x62] == 0x8000 and words[IN][0x61] == 0


# ----------------------------------------------------------------------------- emulator
def test_unit_values_faults() -> None:
    from firmware_protocols.emulators.modbus_psu import UnitState

    unit = UnitState(slave=1)
    values, bits = unit_values(unit, 0.0)
    assert 5.0 < values["vout_v"] < 5.2 and not bits
    unit.faults = {EmulatedFault.SAG}
    assert unit_values(unit, 0.0)[0]["vout_v"] < 4.7
    unit.faults = {EmulatedFault.DIE}
    values, bits = unit_values(unit, 0.0)
    assert values["vout_v"] == 0.0 and bits == {"output_off"}


def _read(client: ModbusTcpClient | ModbusSerialClient, slave: int) -> dict[RegisterType,
                                                                            dict[int, int]]:
    m = load_register_map("meanwell_drs_npb")
    results = []
    for block in plan_reads(m):
        read = (client.read_holding_registers if block.register is RegisterType.HOLDING
                else client.read_input_registers)
        rr = read(block.address, count=block.count, device_id=slave)
        assert not rr.isError(), rr
        results.append((block, rr.registers))
    return registers_from_blocks(results)


def test_emulator_tcp_serves_drifting_units_and_faults() -> None:
    m = load_register_map("meanwell_drs_npb")
    with ModbusPsuEmulator(3, seed=7) as emu:
        assert emu.url.startswith("modbus-tcp://127.0.0.1:") and emu.port > 0
        client = ModbusTcpClient("127.0.0.1", port=emu.port, timeout=0.3, retries=0)
        assert client.connect()
        try:
            for slave in (1, 2, 3):
                r = decode_reading(m, _read(client, slave))
                assert r.ok is True and r.vout_v is not None and 5.0 < r.vout_v < 5.2
                assert r.fan_rpm is not None and r.fan_rpm > 1000
            emu.inject(2, "fan_fail")
            r2 = decode_reading(m, _read(client, 2))
            assert r2.fan_rpm == 0 and "fan_fail" in r2.faults and r2.ok is False
            assert decode_reading(m, _read(client, 1)).ok is True  # neighbours unaffected
            emu.schedule(3, EmulatedFault.DIE, after_s=0.2)
            assert decode_reading(m, _read(client, 3)).ok is True
            time.sleep(0.3)
            r3 = decode_reading(m, _read(client, 3))
            assert r3.vout_v == 0.0 and r3.faults == {"output_off"}
            emu.clear(3)
            assert decode_reading(m, _read(client, 3)).ok is True
            # Writes are refused, reads across a gap hit an unimplemented address.
            assert client.write_register(0x60, 1, device_id=1).isError()
            assert client.read_holding_registers(0x40, count=40, device_id=1).isError()
            # An address nobody has stays silent, like on a real RS-485 bus.
            with pytest.raises(ModbusIOException):
                client.read_input_registers(0x60, count=1, device_id=9)
            assert emu.requests > 0
        finally:
            client.close()


def test_emulator_rtu_over_pty(pty_pair: Any) -> None:
    m = load_register_map("meanwell_drs_npb")
    with ModbusPsuEmulator(2, transport="rtu", serial_port=pty_pair.b, baudrate=19200):
        client = ModbusSerialClient(pty_pair.a, baudrate=19200, timeout=0.3, retries=0)
        assert client.connect()
        try:
            assert decode_reading(m, _read(client, 1)).ok is True
            assert decode_reading(m, _read(client, 2)).ok is True
            with pytest.raises(ModbusIOException):
                client.read_input_registers(0x60, count=1, device_id=3)
            assert decode_reading(m, _read(client, 2)).ok is True  # bus still in step
        finally:
            client.close()


def test_emulator_misuse() -> None:
    with pytest.raises(UsageError, match="units"):
        ModbusPsuEmulator(0)
    with pytest.raises(UsageError, match="serial_port"):
        ModbusPsuEmulator(2, transport="rtu")
    emu = ModbusPsuEmulator(2)
    with pytest.raises(UsageError, match="slave 5"):
        emu.inject(5, "die")
    with pytest.raises(ValueError):
        emu.inject(1, "meltdown")
    with pytest.raises(UsageError, match="could not start"):
        ModbusPsuEmulator(1, transport="rtu", serial_port="/nonexistent/tty").start()
    emu.stop()  # stopping a never-started emulator is harmless
