"""The Modbus PSU reader against the emulator: real pymodbus server and client, TCP and RTU."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from agent.drivers.modbus_psu import ModbusPsuReader
from agent.drivers.modbus_psu.reader import (
    COLUMNS,
    RtuEndpoint,
    TcpEndpoint,
    parse_options,
    parse_url,
)
from firmware_protocols.emulators.modbus_psu import ModbusPsuEmulator
from ledwatch.contract import SCHEMA_TELEMETRY, validate_telemetry
from ledwatch.errors import ConfigError, UsageError

FAST = {"timeout_ms": 150, "retries": 0}  # a silent unit costs one 150 ms timeout


def units(n: int) -> list[dict[str, Any]]:
    return [{"slave": s, "id": f"psu-{s}", "card": f"p1c{s}"} for s in range(1, n + 1)]


def telemetry(psus: dict[str, list[Any]]) -> dict[str, Any]:
    return {
        "schema": SCHEMA_TELEMETRY,
        "site": "site-1",
        "screen": "lobby",
        "agent": "pc-1",
        "seq": 1,
        "ts": int(time.time() * 1000),
        "controller": {"online": True, "link": "up"},
        "cards": {
            "id": ["p1c1"],
            "online": [True],
            "temp_c": [35.5],
            "voltage_v": [5.02],
            "module_faults": [0],
        },
        "psus": psus,
        "env": {},
    }


@pytest.fixture
def tcp_bus() -> Iterator[ModbusPsuEmulator]:
    with ModbusPsuEmulator(3, seed=1) as emu:
        yield emu


@pytest.fixture
def reader(tcp_bus: ModbusPsuEmulator) -> Iterator[ModbusPsuReader]:
    r = ModbusPsuReader({"url": tcp_bus.url, "units": units(3), **FAST})
    r.open()
    yield r
    r.close()


# ------------------------------------------------------------------------------ options
def test_parse_url() -> None:
    assert parse_url("modbus-tcp://10.0.0.5") == TcpEndpoint("10.0.0.5", 502)
    assert parse_url("modbus-tcp://psu-gw.local:1502") == TcpEndpoint("psu-gw.local", 1502)
    assert parse_url("modbus-rtu:///dev/ttyUSB1?baud=9600&parity=e") == RtuEndpoint(
        "/dev/ttyUSB1", 9600, "E"
    )
    assert parse_url("modbus-rtu://COM3?baud=19200&stopbits=2") == RtuEndpoint(
        "COM3", 19200, "N", 2
    )


BAD_OPTIONS: list[tuple[dict[str, Any], str]] = [
    ({"url": "http://x"}, "psus.url: scheme must be modbus-tcp or modbus-rtu"),
    ({"url": "modbus-tcp://:502"}, "psus.url: missing host"),
    ({"url": "modbus-tcp://h:99999"}, "psus.url: port must be"),
    ({"url": "modbus-rtu:///dev/ttyS0?baud=fast"}, "psus.url: baud, stopbits"),
    ({"url": "modbus-rtu:///dev/ttyS0?parity=X"}, "psus.url: parity must be"),
    ({"url": "modbus-rtu:///dev/ttyS0?speed=9600"}, "psus.url: unknown query parameter"),
    ({"units": []}, "psus.units: List should have at least 1 item"),
    ({"units": [{"slave": 0, "id": "a"}]}, "psus.units[0].slave"),
    ({"units": [{"slave": 1, "id": "A B"}]}, "psus.units[0].id: 'A B' is not a valid id"),
    ({"units": [{"slave": 1, "id": "a", "card": "card1"}]}, "psus.units[0].card"),
    ({"units": [{"slave": 1, "id": "a", "kard": "p1c1"}]}, "psus.units[0].kard: unknown key"),
    (
        {"units": [{"slave": 1, "id": "a"}, {"slave": 1, "id": "b"}]},
        "psus.units[1].slave: duplicate 1",
    ),
    (
        {"units": [{"slave": 1, "id": "a"}, {"slave": 2, "id": "a"}]},
        "psus.units[1].id: duplicate 'a'",
    ),
    ({"timeout_ms": 0}, "psus.timeout_ms"),
    ({"retries": -1}, "psus.retries"),
    ({"baud": 9600}, "psus.baud: unknown key"),
]


@pytest.mark.parametrize(("change", "expected"), BAD_OPTIONS, ids=[c[1] for c in BAD_OPTIONS])
def test_bad_options_name_the_key(change: dict[str, Any], expected: str) -> None:
    options = {"url": "modbus-tcp://127.0.0.1:502", "units": units(2), **change}
    with pytest.raises(ConfigError) as info:
        ModbusPsuReader(options)
    assert expected in str(info.value)


def test_missing_url_and_unknown_map() -> None:
    with pytest.raises(ConfigError, match=r"psus\.url: required key is missing"):
        parse_options({"units": units(1)})
    with pytest.raises(ConfigError, match=r"screens\[0\]\.psus\.map: unknown register map"):
        ModbusPsuReader(
            {"url": "modbus-tcp://h", "units": units(1), "map": "acme"}, prefix="screens[0].psus"
        )


def test_read_before_open_is_misuse() -> None:
    r = ModbusPsuReader({"url": "modbus-tcp://127.0.0.1:1", "units": units(1)})
    with pytest.raises(UsageError, match="before open"):
        r.read()


# -------------------------------------------------------------------------------- reads
def test_reads_three_units_and_validates_in_telemetry(reader: ModbusPsuReader) -> None:
    cols = reader.read()
    assert tuple(cols) == COLUMNS
    assert cols["id"] == ["psu-1", "psu-2", "psu-3"]
    assert cols["card"] == ["p1c1", "p1c2", "p1c3"]
    assert cols["ok"] == [True, True, True]
    assert cols["faults"] == ["", "", ""]
    assert all(v is not None and 5.0 < v < 5.2 for v in cols["vout_v"])
    assert all(v is not None and 10 < v < 30 for v in cols["iout_a"])
    assert all(v is not None and 20 < v < 60 for v in cols["temp_c"])
    assert all(v is not None and v > 1000 for v in cols["fan_rpm"])
    assert reader.last_errors == 0 and reader.last_answered == 3
    validate_telemetry(telemetry(cols))


def test_unconfigured_slave_is_silent_and_gives_nulls(tcp_bus: ModbusPsuEmulator) -> None:
    with ModbusPsuReader({"url": tcp_bus.url, "units": units(4), **FAST}) as r:
        cols = r.read()
        assert cols["id"] == ["psu-1", "psu-2", "psu-3", "psu-4"]
        assert cols["ok"][:3] == [True, True, True]
        assert [cols[k][3] for k in COLUMNS[2:]] == [None] * 7
        assert cols["model"][:3] == ["meanwell_drs_npb"] * 3  # the map's name: a family
        assert r.last_errors == 1 and r.last_answered == 3
        validate_telemetry(telemetry(cols))
        # The bus keeps working after a timeout: the next poll reads the same.
        assert r.read()["ok"] == [True, True, True, None]
        assert r.errors_total == 2


def test_unit_going_silent_and_coming_back(
    tcp_bus: ModbusPsuEmulator, reader: ModbusPsuReader
) -> None:
    tcp_bus.inject(2, "silent")
    cols = reader.read()
    assert cols["ok"] == [True, None, True]
    assert cols["vout_v"][1] is None and cols["faults"][1] is None
    validate_telemetry(telemetry(cols))
    tcp_bus.clear(2)
    assert reader.read()["ok"] == [True, True, True]


FAULTS: list[tuple[str, set[str], bool]] = [
    # emulator fault, map faults expected on the unit, ok expected
    ("die", {"output_off"}, False),
    ("over_temp", {"over_temperature", "high_temperature", "output_off"}, False),
    ("fan_fail", {"fan_fail", "high_temperature"}, False),
    ("ac_fail", {"ac_fail", "output_off"}, False),
    ("sag", set(), True),
]


@pytest.mark.parametrize(("fault", "bits", "ok"), FAULTS, ids=[f[0] for f in FAULTS])
def test_each_fault_shows(
    tcp_bus: ModbusPsuEmulator, reader: ModbusPsuReader, fault: str, bits: set[str], ok: bool
) -> None:
    tcp_bus.inject(3, fault)
    cols = reader.read()
    assert cols["ok"] == [True, True, ok]
    assert set(filter(None, cols["faults"][2].split(","))) == bits
    assert cols["faults"][:2] == ["", ""]
    vout, temp, fan = cols["vout_v"][2], cols["temp_c"][2], cols["fan_rpm"][2]
    if "output_off" in bits:
        assert vout == 0.0 and cols["iout_a"][2] == 0.0
    if fault == "sag":
        assert vout is not None and vout < 4.7
    if fault == "over_temp":
        assert temp == 95.0
    if fault == "fan_fail":
        assert fan == 0.0 and temp is not None and temp > 55
    validate_telemetry(telemetry(cols))


def test_scheduled_fault_appears_later(tcp_bus: ModbusPsuEmulator, reader: ModbusPsuReader) -> None:
    tcp_bus.schedule(1, "die", after_s=0.3)
    tcp_bus.schedule(1, "die", after_s=0.6, clear=True)
    assert reader.read()["ok"][0] is True
    time.sleep(0.35)
    assert reader.read()["ok"][0] is False
    time.sleep(0.3)
    assert reader.read()["ok"][0] is True


def test_server_gone_gives_nulls_fast_then_recovers() -> None:
    emu = ModbusPsuEmulator(3).start()
    port = emu.port
    r = ModbusPsuReader({"url": emu.url, "units": units(3), **FAST})
    r.open()
    try:
        assert r.read()["ok"] == [True, True, True]
        emu.stop()
        started = time.monotonic()
        cols = r.read()  # never raises
        assert cols["ok"] == [None, None, None] and cols["vout_v"] == [None, None, None]
        assert time.monotonic() - started < 1.0  # a dead link is not waited on per unit
        validate_telemetry(telemetry(cols))
        with ModbusPsuEmulator(3, port=port):
            assert r.read()["ok"] == [True, True, True]  # reconnected by itself
    finally:
        r.close()
        emu.stop()


def test_rtu_bus_over_pty(pty_pair: Any) -> None:
    with ModbusPsuEmulator(3, transport="rtu", serial_port=pty_pair.b, baudrate=19200) as emu:
        url = f"modbus-rtu://{pty_pair.a}?baud=19200&parity=N"
        with ModbusPsuReader({"url": url, "units": units(4), **FAST}) as r:
            cols = r.read()
            assert cols["ok"] == [True, True, True, None]
            assert cols["vout_v"][3] is None
            emu.inject(2, "fan_fail")
            cols = r.read()
            assert cols["ok"] == [True, False, True, None]
            assert "fan_fail" in cols["faults"][1].split(",")
            assert cols["fan_rpm"][1] == 0.0
            validate_telemetry(telemetry(cols))


def test_sample_config_is_valid() -> None:
    import tomllib
    from pathlib import Path

    import agent.drivers.modbus_psu as pkg

    sample = Path(pkg.__file__).with_name("sample.toml")
    # In the agent config a bus is one `[[screens.psus]]` table of a screen.
    bus = tomllib.loads(sample.read_text("utf-8"))["screens"]["psus"][0]  # a fragment
    options = parse_options(bus)
    assert options.map == "meanwell_drs_npb" and len(options.units) == 3
    assert options.endpoint == RtuEndpoint("/dev/ttyUSB1", 9600, "N")
    ModbusPsuReader(options)  # loads the map; does not open the port
