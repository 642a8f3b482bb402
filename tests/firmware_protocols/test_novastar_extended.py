"""NovaStar extended registers: spec example frames, round trips, validity -> None, and
the emulator answering each register (through the real codec, with a manual clock)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_protocols import novastar as ns
from firmware_protocols.emulators.novastar import (
    Fault,
    FaultKind,
    ManualClock,
    NovastarEmulator,
    parse_fault,
)
from firmware_protocols.novastar import Ack, DeviceType, Frame, NovastarCodec
from ledwatch.errors import UsageError

# The 0x100-byte monitoring block printed in spec 3.1.1.
SPEC_311_BLOCK = bytes.fromhex(
    "80 36 00 B1 00 00 00 00 00 00 00 08 01 04 04 05 00 10 32 54 76 00 00 00 00 E4 00 00 00 00"
    " 00 00 FF 01 00 04 00 00 00 00 00 B2 80 80 80 80 80 B1 80 80 80 80 80 80 80 80 00 00 00 00"
    " 00 00 00 00 00 03" + " FF" * 16 + " 00" * 174
)
RC, SD, FC = DeviceType.RECEIVING_CARD, DeviceType.SENDING_CARD, DeviceType.FUNCTION_CARD


def frame(hexstr: str) -> Frame:
    used, f = NovastarCodec().decode(bytes.fromhex(hexstr))
    assert f is not None and used == len(bytes.fromhex(hexstr))
    return f


# -- spec examples -------------------------------------------------------------------------
def test_spec_39_receiving_card_model_and_firmware() -> None:
    """3.9: reply data `05 41 04 02 00 01` = model 0x4105, FPGA 4.2.0.1."""
    rep = frame("AA 55 00 32 00 FE 01 00 00 00 00 00 00 00 00 00 06 00 05 41 04 02 00 01 D9 56")
    assert rep.address == ns.RECEIVING_CARD_INFO_ADDR and rep.length == ns.RECEIVING_CARD_INFO_LEN
    info = ns.decode_receiving_card_info(rep.data)
    assert info == ns.ReceivingCardInfo(0x4105, "4.2.0.1") and info.model == "0x4105"
    assert ns.encode_receiving_card_info(info) == rep.data
    req = ns.read_request(0x32, RC, 0, 0, ns.RECEIVING_CARD_INFO_ADDR, 6)
    assert ns.encode(req) == bytes.fromhex(
        "55 AA 00 32 FE 00 01 00 00 00 00 00 00 00 00 00 06 00 8C 56"
    )
    # Zero means "not valid" (3.9), and a short reply decodes to nothing.
    assert ns.decode_receiving_card_info(bytes(6)) == ns.ReceivingCardInfo(None, None)
    assert ns.decode_receiving_card_info(b"\x05\x41") is None


def test_spec_373_function_card_model() -> None:
    rep = frame("AA 55 00 32 00 FE 02 00 00 00 00 00 02 00 00 00 02 00 01 81 0D 57")
    assert ns.function_card_model_name(ns.decode_model_id(rep.data)) == "MFN300"
    assert ns.function_card_model_name(0x1234) == "0x1234"
    assert ns.function_card_model_name(None) is None


def test_spec_382_mth300_through_the_function_card() -> None:
    """3.8.2: the refresh write, then `AA 55 82 25 81 00 28` = 29.3 C, humidity invalid."""
    write = ns.write_request(
        0x15, FC, 0, 0, ns.FUNCTION_CARD_RS485_ADDR, ns.rs485_request(0, ns.MTH300_QUERY)
    )
    assert ns.encode(write) == bytes.fromhex(
        "55 AA 00 15 FE 00 02 00 00 00 01 00 00 00 00 06 07 00 00 00 00 00 55 AA 82 F9 57"
    )
    read = ns.read_request(0x15, FC, 0, 0, ns.FUNCTION_CARD_RS485_ADDR, 7)
    assert ns.encode(read) == bytes.fromhex(
        "55 AA 00 15 FE 00 02 00 00 00 00 00 00 00 00 06 07 00 77 56"
    )
    rep = frame("AA 55 00 15 00 FE 02 00 00 00 00 00 00 00 00 06 07 00 AA 55 82 25 81 00 28 C6 58")
    got = ns.decode_mth300(rep.data)
    assert got == ns.Mth300Reading(temp_c=29.3, humidity_pct=None)
    assert ns.encode_mth300(got) == rep.data
    assert ns.decode_function_card_reply(rep.data) == got


def test_spec_383_ns048c_through_the_function_card() -> None:
    """3.8.3: the 11-byte refresh write, then `01 02 80 5F E1` = 95 * 2 = 190 lux."""
    write = ns.write_request(
        0x15, FC, 0, 0, ns.FUNCTION_CARD_RS485_ADDR, ns.rs485_request(0, ns.NS048C_QUERY)
    )
    assert ns.encode(write) == bytes.fromhex(
        "55 AA 00 15 FE 00 02 00 00 00 01 00 00 00 00 06 0B 00 00 00 00 00 55 AA 01 02 80 FF 81"
        " 7E 59"
    )
    rep = frame("AA 55 00 15 00 FE 02 00 00 00 00 00 00 00 00 06 05 00 01 02 80 5F E1 38 58")
    assert ns.decode_ns048c(rep.data) == 190.0
    assert ns.encode_ns048c(190.0) == rep.data
    assert ns.decode_function_card_reply(rep.data) == 190.0


def test_spec_384_light_sensor_on_the_sending_card() -> None:
    """3.8.4: `38 80` = valid, 0x38 * 2 = 112 lux (the printed frame's checksum is an
    erratum, see test_novastar_codec.SPEC_ERRATA, so only its data is used here)."""
    req = ns.read_request(0x5B, SD, 0, 0, ns.LIGHT_SENSOR_ADDR, ns.LIGHT_SENSOR_LEN)
    assert ns.encode(req) == bytes.fromhex(
        "55 AA 00 5B FE 00 00 00 00 00 00 00 0F 00 00 02 02 00 C1 56"
    )
    assert ns.decode_light_sensor(bytes.fromhex("38 80")) == 112.0
    assert ns.encode_light_sensor(112.0) == bytes.fromhex("38 80")
    assert ns.decode_light_sensor(bytes.fromhex("38 00")) is None  # validity bit clear
    assert ns.decode_light_sensor(b"\x38") is None


def test_spec_385_standalone_light_sensor() -> None:
    """3.8.5: `7D` at sending card 0x0A000000 = stand-alone on; FF = off; FF = unset."""
    on = frame("AA 55 00 5B 00 FE 00 00 00 00 00 00 00 00 00 0A 01 00 7D 36 57")
    assert on.data == bytes((ns.LIGHT_STANDALONE_ON,))
    cfg = ns.decode_light_config(on.data + b"\xff" * (ns.LIGHT_CONFIG_LEN - 1))
    assert cfg == ns.LightSensorConfig(standalone=True)
    assert ns.decode_light_config(b"\xff" * ns.LIGHT_CONFIG_LEN) == ns.LightSensorConfig(
        standalone=False
    )
    enable = ns.write_request(0x5B, SD, 0, 0, ns.LIGHT_CONFIG_ADDR, b"\x7d")
    assert ns.encode(enable) == bytes.fromhex(
        "55 AA 00 5B FE 00 00 00 00 00 01 00 00 00 00 0A 01 00 7D 37 57"
    )
    assert ns.decode_light_config(b"\xff" * 5) is None


def test_spec_3101_redundancy() -> None:
    """3.10.1: bits [1:0] = 10 -> port 1 redundant; FF (default) -> none."""
    assert ns.decode_redundancy(b"\xff") == (False,) * 4
    assert ns.decode_redundancy(bytes((0b11111110,))) == (True, False, False, False)
    assert ns.decode_redundancy(bytes((0b10111011,))) == (False, True, False, True)
    assert ns.decode_redundancy(b"") is None
    assert ns.encode_redundancy((False, True, False, True)) == bytes((0b10111011,))
    with pytest.raises(UsageError):
        ns.encode_redundancy((False,) * 5)


def test_spec_318_and_312_input_signals() -> None:
    """3.18 examples: 00 nothing, 02 HDMI, 04 DVI; 3.1.2 answers DVI alone."""
    assert ns.input_signals(ns.decode_input_status(b"\x00"), None) == dict.fromkeys(
        ("sdi", "hdmi", "dvi", "dp"), False
    )
    hdmi = ns.input_signals(ns.decode_input_status(b"\x02"), None)
    assert hdmi["hdmi"] is True and hdmi["dvi"] is False
    assert ns.input_signals(ns.decode_input_status(b"\x04"), None)["dvi"] is True
    assert ns.input_signals(ns.decode_input_status(b"\x20"), None)["dvi"] is True  # DVI4
    assert ns.input_signals(None, True) == {"dvi": True, "hdmi": None, "dp": None, "sdi": None}
    assert ns.encode_input_signals({"dvi", "hdmi"}) == b"\x06"


def test_spec_319_input_source() -> None:
    assert ns.decode_input_mode_manual(frame(
        "AA 55 00 32 00 FE 00 00 00 00 00 00 22 00 00 02 01 00 5A 04 57").data) is True  # fmt: skip
    assert ns.decode_input_source(b"\x58") == "dvi" and ns.decode_input_source(b"\x99") is None
    hdmi = ns.write_request(0x32, SD, 0, 0, ns.INPUT_SOURCE_ADDR, ns.encode_input_source("hdmi"))
    assert ns.encode(hdmi) == bytes.fromhex(
        "55 AA 00 32 FE 00 00 00 00 00 01 00 23 00 00 02 01 00 05 B1 56"
    )
    with pytest.raises(UsageError):
        ns.encode_input_source("vga")


def test_spec_3202_module_flash_check() -> None:
    rep = frame(
        "AA 55 00 03 00 FE 01 00 00 00 00 00 10 30 00 03 10 00"
        " 05 05 00 00 05 05 00 00 05 05 00 00 05 05 00 00 D2 56"
    )
    assert rep.address == ns.MODULE_FLASH_RESULT_ADDR
    assert ns.decode_module_flash_check(rep.data) == (True,) * 4
    assert ns.decode_module_flash_check(bytes.fromhex("05 03 00 00 00 00 00 00")) == (False, None)
    assert ns.encode_module_flash_check((True, False, None)) == bytes.fromhex(
        "05 05 00 00 03 03 00 00 00 00 00 00"
    )


def test_spec_311_analog_inputs_and_ribbon_detail() -> None:
    assert ns.decode_analog_inputs(SPEC_311_BLOCK) == (None,) * 8  # 0x38..0x3F read 00
    raw = ns.encode_analog_inputs(SPEC_311_BLOCK, (1, 127, None, 0, None, None, None, 5))
    assert ns.decode_analog_inputs(raw) == (1, 127, None, 0, None, None, None, 5)
    assert ns.decode_monitoring_block(raw) == ns.decode_monitoring_block(SPEC_311_BLOCK)
    no_monitor = bytearray(raw)
    no_monitor[0x20] = 0
    assert ns.decode_analog_inputs(bytes(no_monitor)) == (None,) * 8
    with pytest.raises(UsageError):
        ns.encode_analog_inputs(SPEC_311_BLOCK, (1, 2))
    bad = ns.decode_ribbon_cable(bytes.fromhex("8F 8C 88 88 88 88 88 88 F8 F0 F0 FF F0 F0 F1 FF"))
    good = ns.decode_ribbon_cable(bytes.fromhex("88 88 88 88 88 88 88 88 F8 F0 F0 FF F0 F0 F0 FF"))
    assert bad is not None and good is not None
    assert ns.ribbon_broken_pins(bad) == {1: ("R", "G", "B"), 3: ("R",)}
    assert ns.ribbon_broken_pins(good) == {}
    assert ns.ribbon_control_faults(bad, good) == {"DCLK": 0x01}
    assert ns.ribbon_control_faults(good, good) == {}  # D and CTRL read 1 (NC) in both


# -- round trips and validity ----------------------------------------------------------------
opt_temp = st.none() | st.integers(-255, 255).map(lambda h: h * 0.5)
opt_volt = st.none() | st.integers(0, 127).map(lambda d: round(d * 0.1, 1))
module = st.builds(
    ns.SmartModule,
    connected=st.just(True),
    temp_c=opt_temp,
    voltage_v=opt_volt,
    run_time_h=st.none() | st.integers(0, 0xFFFFFFFE),
    cable_errors=st.integers(0, 0xFFFF),
) | st.just(ns.SmartModule(connected=False))


@given(st.lists(module, max_size=ns.SMART_MODULES_MAX).map(tuple))
def test_smart_modules_round_trip(modules: tuple[ns.SmartModule, ...]) -> None:
    raw = ns.encode_smart_modules(modules)
    assert len(raw) == ns.SMART_MODULE_LEN
    assert ns.decode_smart_modules(raw) == modules


def test_smart_module_validity() -> None:
    m = ns.SmartModule(True, temp_c=41.5, voltage_v=4.8, run_time_h=1234, cable_errors=0b101)
    raw = bytearray(ns.encode_smart_modules((m, m)))
    assert m.cable_faults == 2
    raw[1] &= 0x7F  # temperature validity
    raw[3] &= 0x7F  # voltage validity
    raw[4:8] = b"\xff" * 4  # run time not reported
    raw[16] = 0  # second slot not in use
    assert ns.decode_smart_modules(bytes(raw)) == (ns.SmartModule(True, cable_errors=0b101),)
    assert ns.decode_smart_modules(bytes(ns.SMART_MODULE_LEN)) == ()
    with pytest.raises(UsageError):
        ns.encode_smart_modules((m,) * 17)


@given(
    temp=st.none() | st.integers(0, 0x7FFF).map(lambda d: round(d * 0.1, 1)),
    hum=st.none() | st.integers(0, 100),
)
def test_mth300_round_trip(temp: float | None, hum: int | None) -> None:
    r = ns.Mth300Reading(temp, hum)
    assert ns.decode_mth300(ns.encode_mth300(r)) == r


def test_mth300_and_ns048c_refuse_junk() -> None:
    good = bytes.fromhex("AA 55 82 25 81 00 28")
    assert ns.decode_mth300(good[:6] + b"\x29") is None  # checksum
    assert ns.decode_mth300(b"\xaa\x55\x83" + good[3:]) is None  # head
    assert ns.decode_mth300(bytes(7)) is None  # nothing queried yet
    assert ns.decode_mth300(good[:5]) is None
    assert ns.decode_mth300(bytes.fromhex("AA 55 82 25 01 B2 5A")) == ns.Mth300Reading(None, 50)
    assert ns.decode_ns048c(bytes.fromhex("01 02 80 5F E2")) is None
    assert ns.decode_ns048c(bytes.fromhex("01 02 00 5F 61")) is None  # validity bit clear
    assert ns.decode_ns048c(bytes(5)) is None
    assert ns.decode_function_card_reply(bytes(7)) is None
    with pytest.raises(UsageError):
        ns.rs485_request(4, ns.MTH300_QUERY)


@given(st.none() | st.integers(0, 0x7FFF).map(lambda n: float(n * 2)))
def test_lux_round_trips(lux: float | None) -> None:
    assert ns.decode_light_sensor(ns.encode_light_sensor(lux)) == lux
    assert ns.decode_ns048c(ns.encode_ns048c(lux)) == lux


def test_light_config_round_trip() -> None:
    cfg = ns.LightSensorConfig(
        standalone=True, sensors=1, max_lux=10000, min_lux=50, max_brightness_pct=100.0,
        min_brightness_pct=20.0, segments=8, site=ns.LightSensorSite.FUNCTION_CARD, port=1,
        function_card=0, rs485_port=2,
    )  # fmt: skip
    assert ns.decode_light_config(ns.encode_light_config(cfg)) == cfg
    blank = ns.LightSensorConfig()
    assert ns.decode_light_config(ns.encode_light_config(blank)) == ns.LightSensorConfig(
        standalone=False
    )


@given(st.tuples(*[st.booleans()] * 4))
def test_redundancy_round_trip(ports: tuple[bool, ...]) -> None:
    assert ns.decode_redundancy(ns.encode_redundancy(ports)) == ports


# -- the emulator answers every extended register -------------------------------------------
def ask(emu: NovastarEmulator, dev: int, port: int, board: int, addr: int, n: int) -> Frame:
    """One read through the wire bytes both ways (encode -> decode -> handle -> ...)."""
    req = ns.read_request(9, dev, port, board, addr, n)
    _, decoded = NovastarCodec().decode(ns.encode(req))
    assert decoded == req
    reply = emu.handle(decoded)
    assert reply is not None
    _, back = NovastarCodec().decode(ns.encode(reply))
    assert back is not None
    return ns.check_reply(req, back)


def rs485(emu: NovastarEmulator, rs485_port: int, query: bytes) -> bytes:
    w = ns.write_request(
        3, FC, 0, 0, ns.FUNCTION_CARD_RS485_ADDR, ns.rs485_request(rs485_port, query)
    )
    reply = emu.handle(w)
    assert reply is not None and reply.ack == Ack.OK
    return ask(emu, FC, 0, 0, ns.FUNCTION_CARD_RS485_ADDR, ns.FUNCTION_CARD_RS485_READ_LEN).data


@pytest.fixture
def emu() -> NovastarEmulator:
    return NovastarEmulator(ports=2, cards=3, psus=2, modules=4, clock=ManualClock())


def test_emulator_receiving_card_extras(emu: NovastarEmulator) -> None:
    info = ns.decode_receiving_card_info(ask(emu, RC, 1, 2, 0, ns.RECEIVING_CARD_INFO_LEN).data)
    assert info == ns.ReceivingCardInfo(0x4101, "4.2.0.1")
    mods = ns.decode_smart_modules(
        ask(emu, RC, 0, 1, ns.SMART_MODULE_ADDR, ns.SMART_MODULE_LEN).data
    )
    assert len(mods) == 4 and all(m.connected for m in mods)
    assert all(30 < (m.temp_c or 0) < 45 and 4.5 < (m.voltage_v or 0) < 5.2 for m in mods)
    block = ask(emu, RC, 0, 1, ns.MONITORING_BLOCK_ADDR, ns.MONITORING_BLOCK_LEN).data
    analog = ns.decode_analog_inputs(block)
    assert analog[0] is not None and analog[1] is not None and analog[2:] == (None,) * 6
    flash = ask(emu, RC, 0, 1, ns.MODULE_FLASH_RESULT_ADDR, 4 * 4).data
    assert ns.decode_module_flash_check(flash) == (True,) * 4
    assert ask(emu, RC, 0, 7, 0, 6).ack == Ack.TIMEOUT  # no such card


def test_emulator_values_change_over_time(emu: NovastarEmulator) -> None:
    def snapshot() -> tuple[object, ...]:
        mods = ask(emu, RC, 0, 0, ns.SMART_MODULE_ADDR, ns.SMART_MODULE_LEN).data
        lux = ask(emu, SD, 0, 0, ns.LIGHT_SENSOR_ADDR, 2).data
        return (
            ns.decode_smart_modules(mods),
            ns.decode_light_sensor(lux),
            rs485(emu, 0, ns.MTH300_QUERY),
        )

    before = snapshot()
    assert isinstance(emu.clock, ManualClock)
    emu.clock.advance(2 * 3600 + 40)
    after = snapshot()
    assert before[1] != after[1] and before[2] != after[2]
    run_before = before[0][0].run_time_h  # type: ignore[index]
    assert after[0][0].run_time_h == run_before + 2  # type: ignore[index]


def test_emulator_function_card(emu: NovastarEmulator) -> None:
    assert (
        ns.function_card_model_name(ns.decode_model_id(ask(emu, FC, 0, 0, 2, 2).data)) == "MFN300"
    )
    mth = ns.decode_mth300(rs485(emu, 0, ns.MTH300_QUERY))
    assert mth is not None and 20 < (mth.temp_c or 0) < 28 and 30 < (mth.humidity_pct or 0) < 60
    lux = ns.decode_ns048c(rs485(emu, 1, ns.NS048C_QUERY))
    assert lux is not None and 0 < lux < 3100
    assert rs485(emu, 2, ns.MTH300_QUERY) == bytes(7)  # nothing on RS-485 port 2
    assert ask(emu, FC, 1, 0, 2, 2).ack == Ack.TIMEOUT  # no function card on port 1
    emu.inject(Fault(FaultKind.SENSOR_FAIL, target="mth300"))
    assert ns.decode_mth300(rs485(emu, 0, ns.MTH300_QUERY)) == ns.Mth300Reading(None, None)
    emu.inject(Fault(FaultKind.SENSOR_FAIL, target="ns048c"))
    raw = rs485(emu, 1, ns.NS048C_QUERY)
    assert raw[0] == ns.NS048C_HEAD and ns.decode_ns048c(raw) is None


def test_emulator_sending_card_extras(emu: NovastarEmulator) -> None:
    def state() -> tuple[dict[str, bool | None], str | None, object, float | None]:
        status = ns.decode_input_status(ask(emu, SD, 0, 0, ns.INPUT_SOURCE_STATUS_ADDR, 1).data)
        dvi = ns.decode_dvi_signal(ask(emu, SD, 0, 0, ns.DVI_SIGNAL_ADDR, 1).data)
        src = ask(emu, SD, 0, 0, ns.INPUT_MODE_ADDR, 2).data
        red = ns.decode_redundancy(ask(emu, SD, 0, 0, ns.REDUNDANCY_ADDR, 1).data)
        lux = ns.decode_light_sensor(ask(emu, SD, 0, 0, ns.LIGHT_SENSOR_ADDR, 2).data)
        return ns.input_signals(status, dvi), ns.decode_input_source(src[1:]), red, lux

    inputs, source, red, lux = state()
    assert inputs == {"sdi": False, "hdmi": False, "dvi": True, "dp": False} and source == "dvi"
    assert red == (False,) * 4 and lux is not None
    cfg = ns.decode_light_config(ask(emu, SD, 0, 0, ns.LIGHT_CONFIG_ADDR, ns.LIGHT_CONFIG_LEN).data)
    assert cfg is not None and cfg.standalone and cfg.site is ns.LightSensorSite.SENDING_CARD
    emu.inject(Fault(FaultKind.INPUT_SWITCHED, target="hdmi"))
    emu.inject(Fault(FaultKind.INPUT_LOST, target="dvi"))
    emu.inject(Fault(FaultKind.REDUNDANCY_BACKUP, target="p1"))
    emu.inject(Fault(FaultKind.SENSOR_FAIL, target="light"))
    inputs, source, red, lux = state()
    assert inputs["hdmi"] is True and inputs["dvi"] is False and source == "hdmi"
    assert red == (False, True, False, False) and lux is None
    emu.clear_faults()
    w = ns.write_request(5, SD, 0, 0, ns.INPUT_SOURCE_ADDR, ns.encode_input_source("sdi"))
    assert emu.handle(w) is not None
    inputs, source, _, _ = state()
    assert source == "sdi" and inputs["sdi"] is True and inputs["dvi"] is True


def test_emulator_module_faults(emu: NovastarEmulator) -> None:
    emu.inject(Fault(FaultKind.MODULE_DISCONNECTED, target="p1c0/3"))
    emu.inject(Fault(FaultKind.MODULE_FAIL, target="p1c0/2"))
    emu.inject(Fault(FaultKind.OVER_TEMP, target="p1c0"))
    mods = ns.decode_smart_modules(
        ask(emu, RC, 1, 0, ns.SMART_MODULE_ADDR, ns.SMART_MODULE_LEN).data
    )
    assert [m.connected for m in mods] == [True, True, False, True]
    assert [m.cable_faults for m in mods] == [1, 1, 0, 0]
    assert min(m.temp_c or 0 for m in mods if m.connected) > 60
    flash = ns.decode_module_flash_check(ask(emu, RC, 1, 0, ns.MODULE_FLASH_RESULT_ADDR, 16).data)
    assert flash == (True, True, False, True)
    emu.inject(Fault(FaultKind.PSU_SAG_THEN_DIE, target="p1c1/1"))
    assert isinstance(emu.clock, ManualClock)
    emu.clock.advance(2.0)
    sagged = ns.decode_smart_modules(ask(emu, RC, 1, 1, ns.SMART_MODULE_ADDR, 256).data)
    assert sagged[0].voltage_v is not None and sagged[0].voltage_v < 4.7  # rail 1 sagging
    emu.clock.advance(10.0)
    assert ask(emu, RC, 1, 1, ns.SMART_MODULE_ADDR, 256).ack == Ack.TIMEOUT  # cabinet dark


def test_emulator_without_the_extras() -> None:
    emu = NovastarEmulator(
        ports=1, cards=1, smart_modules=False, light_sensor=False, function_card=None,
        clock=ManualClock(),
    )  # fmt: skip
    assert ns.decode_smart_modules(ask(emu, RC, 0, 0, ns.SMART_MODULE_ADDR, 256).data) == ()
    assert ns.decode_light_sensor(ask(emu, SD, 0, 0, ns.LIGHT_SENSOR_ADDR, 2).data) is None
    assert ask(emu, FC, 0, 0, 2, 2).ack == Ack.TIMEOUT


def test_new_fault_specs() -> None:
    assert parse_fault("module_disconnected@5:p0c1/3") == Fault(
        FaultKind.MODULE_DISCONNECTED, 5.0, "p0c1/3"
    )
    assert parse_fault("redundancy_backup@20+30:p1").number == 1
    assert parse_fault("input_switched:hdmi").card is None
    for bad in ("sensor_fail", "sensor_fail:p0c1", "input_lost:vga", "redundancy_backup:1",
                "module_disconnected"):  # fmt: skip
        with pytest.raises(UsageError):
            parse_fault(bad)
    emu = NovastarEmulator(ports=2, cards=1, clock=ManualClock())
    with pytest.raises(UsageError, match="no port p2"):
        emu.inject(Fault(FaultKind.REDUNDANCY_BACKUP, target="p2"))
