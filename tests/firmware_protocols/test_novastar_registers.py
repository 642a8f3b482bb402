"""NovaStar register converters (spec 3.x): spec examples, round trips, validity bits."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_protocols import novastar as ns
from firmware_protocols.novastar import MonitoringBlock, RibbonCable

SPEC_311_BLOCK = bytes.fromhex(
    "80 36 00 B1 00 00 00 00 00 00 00 08 01 04 04 05 00 10 32 54 76 00 00 00 00 E4 00 00 00 00"
    " 00 00 FF 01 00 04 00 00 00 00 00 B2 80 80 80 80 80 B1 80 80 80 80 80 80 80 80 00 00 00 00"
    " 00 00 00 00 00 03" + " FF" * 16 + " 00" * 174
)


def test_spec_311_monitoring_block() -> None:
    b = ns.decode_monitoring_block(SPEC_311_BLOCK)
    assert b.temp_c == 27.0 and b.voltage_v == 4.9 and b.card_humidity_pct is None
    assert b.monitor and b.monitor_model == 0x0001 and b.monitor_version == (4, 0, 0, 0)
    assert b.monitor_temp_c is None  # 0x27 = 00: validity bit clear
    assert b.humidity_pct == 50 and b.smoke is False
    assert b.fan_rpm == (0, 0, 0, 0)
    assert b.voltages_v == (4.9, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    assert b.door_open == (True, True)
    assert b.ribbon is None  # all pins 1: no ribbon detection on this card


def test_spec_311_temperature_and_voltage_examples() -> None:
    """'80 48' = valid, 36 C; 'A9' = valid, 4.1 V (spec 3.1.1 examples)."""
    assert ns.decode_monitoring_block(bytes.fromhex("80 48")).temp_c == 36.0
    assert ns.decode_monitoring_block(bytes.fromhex("00 00 00 A9")).voltage_v == 4.1
    assert ns.decode_monitoring_block(bytes.fromhex("81 14")).temp_c == -10.0
    assert ns.decode_monitoring_block(bytes.fromhex("00 48 00 29")).temp_c is None


def test_spec_317_ribbon_cable() -> None:
    r = ns.decode_ribbon_cable(bytes.fromhex("88 88 88 88 88 88 88 88 F8 F0 F0 FF F0 F0 F0 FF"))
    assert r is not None and r.faulty_groups == 0
    assert r.control_bits == (0xF8, 0xF0, 0xF0, 0xFF, 0xF0, 0xF0, 0xF0, 0xFF)
    bad = ns.decode_ribbon_cable(bytes.fromhex("8F 88 88 88 88 88 88 89 F8 F0 F0 FF F0 F0 F0 FF"))
    assert bad is not None and bad.faulty_groups == 2 and bad.group_errors[1] == 7
    assert ns.encode_ribbon_cable(bad) == bytes.fromhex(
        "8F 88 88 88 88 88 88 89 F8 F0 F0 FF F0 F0 F0 FF"
    )


def test_controller_registers_from_spec_examples() -> None:
    assert ns.decode_input_status(b"\x00").signal_present is False  # type: ignore[union-attr]
    hdmi = ns.decode_input_status(b"\x02")
    assert hdmi is not None and hdmi.signal_present and hdmi.inputs == ("HDMI",)
    assert ns.decode_input_status(b"\x04").inputs == ("DVI1",)  # type: ignore[union-attr]
    assert ns.decode_dvi_signal(b"\x01") is True and ns.decode_dvi_signal(b"\x00") is False
    bright = ns.decode_brightness(bytes.fromhex("FF FF FF FF FF"))
    assert bright is not None and bright.global_pct == 100.0
    assert ns.decode_brightness(b"\x80" * 5).global_pct == 50.2  # type: ignore[union-attr]
    assert ns.encode_brightness(ns.decode_brightness(b"\x80" * 5)) == b"\x80" * 5  # type: ignore[arg-type]
    assert ns.model_name(ns.decode_model_id(b"\x01\x00")) == "MCTRL300"
    assert ns.model_name(0x1234) == "0x1234"
    assert ns.decode_firmware_version(bytes.fromhex("04 03 00 00")) == "4.3.0.0"
    assert ns.encode_firmware_version("4.3.0.0") == bytes.fromhex("04 03 00 00")


def test_no_monitor_card_means_no_monitor_data() -> None:
    block = MonitoringBlock(temp_c=40.0, voltage_v=5.0, monitor=False)
    raw = ns.encode_monitoring_block(block)
    assert raw[0x20] == 0 and len(raw) == ns.MONITORING_BLOCK_LEN
    back = ns.decode_monitoring_block(raw)
    assert back == block and back.fan_rpm == (None,) * 4 and back.smoke is None


def test_validity_bits_clear_give_none() -> None:
    raw = bytearray(ns.encode_monitoring_block(full_block()))
    for off in (0x00, 0x02, 0x03, 0x27, 0x29, 0x2B, 0x2F, 0x30):
        raw[off] &= 0x7F
    b = ns.decode_monitoring_block(bytes(raw))
    assert b.temp_c is None and b.card_humidity_pct is None and b.voltage_v is None
    assert b.monitor_temp_c is None and b.humidity_pct is None
    assert b.fan_rpm[0] is None and b.fan_rpm[1] == 1500
    assert b.voltages_v[0] is None and b.voltages_v[1] is None and b.voltages_v[2] == 5.0


def full_block() -> MonitoringBlock:
    return MonitoringBlock(
        temp_c=35.5, voltage_v=5.0, card_humidity_pct=None, monitor=True, monitor_model=1,
        monitor_version=(1, 2, 3, 4), monitor_temp_c=-4.5, humidity_pct=45, smoke=True,
        fan_rpm=(1500, 1500, 0, None),
        voltages_v=(5.1, 5.0, 5.0, None, None, None, None, None, 12.7),
        door_open=(False, True),
        ribbon=RibbonCable(group_errors=(0,) * 15 + (5,), control_bits=(0xF8,) * 8),
    )


def test_monitoring_block_round_trip_example() -> None:
    assert ns.decode_monitoring_block(ns.encode_monitoring_block(full_block())) == full_block()


opt_temp = st.none() | st.integers(-255, 255).map(lambda h: h * 0.5)
opt_volt = st.none() | st.integers(0, 127).map(lambda d: round(d * 0.1, 1))
opt_7 = st.none() | st.integers(0, 100)
opt_rpm = st.none() | st.integers(0, 127).map(lambda n: n * 50)


@given(
    temp=opt_temp, volt=opt_volt, hum=opt_7, mtemp=opt_temp, mhum=opt_7, smoke=st.booleans(),
    fans=st.tuples(opt_rpm, opt_rpm, opt_rpm, opt_rpm),
    volts=st.tuples(*[opt_volt] * 9), doors=st.tuples(st.booleans(), st.booleans()),
    groups=st.none() | st.tuples(*[st.integers(0, 7)] * 16),
)
def test_monitoring_block_round_trip(
    temp, volt, hum, mtemp, mhum, smoke, fans, volts, doors, groups
) -> None:
    ribbon = None if groups is None else RibbonCable(groups, (0xF0,) * 8)
    block = MonitoringBlock(
        temp_c=temp,
        voltage_v=volt, card_humidity_pct=hum, monitor=True, monitor_model=0x0101,
        monitor_version=(1, 0, 0, 0), monitor_temp_c=mtemp, humidity_pct=mhum, smoke=smoke,
        fan_rpm=fans, voltages_v=volts, door_open=doors, ribbon=ribbon,
    )
    assert ns.decode_monitoring_block(ns.encode_monitoring_block(block)) == block


def test_encoder_misuse() -> None:
    with pytest.raises(ns.UsageError):
        ns.encode_monitoring_block(MonitoringBlock(monitor=True, fan_rpm=(1, 2)))
    with pytest.raises(ns.UsageError):
        ns.encode_firmware_version("1.2.3")
