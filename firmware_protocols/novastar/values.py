"""NovaStar register values (spec chapter 3): pure decoders and encoders, no I/O.

Each decoder turns the bytes of one register (or one field of a block) into a value
whose name carries its unit; an invalid reading (validity bit clear, "not set" code) is
None, never a sentinel. Encoders are the inverses, for the emulators. Where a register
lives (address, device, section) is not written here: `registers.REGISTERS` is the one
table of that, and it points at these decoders. Block layouts are tables of `Field`s
(name, offset, size, decoder) so that the typed decoder, the encoder and the dissector
share one list of offsets.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Final

from firmware_protocols.novastar.framing import check_range
from ledwatch.errors import UsageError

MONITORING_BLOCK_LEN: Final = 0x100  # 3.1.1
RIBBON_CABLE_LEN: Final = 0x10  # 3.17
BRIGHTNESS_LEN: Final = 5  # 3.3: global, R, G, B, virtual R
MONITOR_PRESENT: Final = 0xFF
FAN_COUNT: Final = 4
VOLTAGE_CHANNELS: Final = 9  # channel 0: the monitor card's own supply; 1..8: cabinet rails
DOOR_COUNT: Final = 2
RIBBON_GROUPS: Final = 16
RIBBON_CONTROL_LINES: Final = ("A", "B", "C", "D", "LAT", "OE", "DCLK", "CTRL")
FAN_RPM_UNIT: Final = 50
VALID: Final = 0x80
ANALOG_INPUTS: Final = 8  # register map: Scanner_AnalogInputOfMonitorCard, 0x38..0x3F

# Sending card model IDs (3.7.2 table; 0x1103/0x1107 from the NSCardType register map).
CONTROLLER_MODELS: Final[dict[int, str]] = {
    0x0101: "MCTRL500",
    0x0001: "MCTRL300",
    0x1101: "MCTRL600",
    0x1103: "MCTRL4K",
    0x1107: "MCTRL660 PRO",
}
RECEIVING_CARD_MODEL_ID: Final = 0x4101  # 3.7.1: all receiving cards


@dataclass(frozen=True, slots=True)
class Field:
    """A field of a register block: `size` bytes at `offset` from the block's start.

    `decode` gets exactly those bytes. `needs` names a boolean field of the same block
    that must be true for this one to mean anything (monitoring card readings need the
    card fitted, 3.1.1). `show` turns the decoded value into what a person reads (hex
    ids, model names) for the dissector; the value itself stays typed.
    """

    name: str
    offset: int
    size: int
    decode: Callable[[bytes], Any]
    needs: str | None = None
    show: Callable[[Any], Any] | None = None


def decode_fields(
    fields: Sequence[Field], data: bytes, start: int = 0
) -> dict[str, Any]:
    """{name: value} of every field wholly inside `data`, which begins `start` bytes into
    the block. A field whose `needs` field is covered and false is None."""
    end = start + len(data)
    covered = [f for f in fields if start <= f.offset and f.offset + f.size <= end]
    out = {f.name: f.decode(data[f.offset - start : f.offset - start + f.size]) for f in covered}
    for f in covered:
        if f.needs is not None and out.get(f.needs, True) is False:
            out[f.name] = None
    return out


def _u16(raw: bytes) -> int:
    return int.from_bytes(raw[:2], "little")


def hex16(value: int | None) -> str | None:
    """`0x4105`-style, as model IDs are printed in the spec."""
    return None if value is None else f"0x{value:04X}"


def dotted(parts: Sequence[int] | None) -> str | None:
    return None if parts is None else ".".join(str(p) for p in parts)


@dataclass(frozen=True, slots=True)
class RibbonCable:
    """Ribbon cable / module pin test (spec 3.17), 1 bit per signal line, 1 = error.

    `group_errors[g]` holds the 3 RGB data pins of HUB data group g (bits 0..2; the spec
    example reads `1000` per healthy group, bit 3 being unused). `control_bits` are the
    raw A, B, C, D, LAT, OE, DCLK, CTRL bytes: a 1 there is either a broken or an
    unconnected pin (the spec example shows D and CTRL all 1 "as NC"), so they are not
    counted as faults.
    """

    group_errors: tuple[int, ...]
    control_bits: tuple[int, ...]

    @property
    def faulty_groups(self) -> int:
        """Data groups (modules / ribbon cables) with at least one broken RGB pin."""
        return sum(1 for g in self.group_errors if g)


@dataclass(frozen=True, slots=True)
class MonitoringBlock:
    """Receiving card + monitoring card readings (spec 3.1.1); None = invalid or absent.

    Monitoring card fields are None when no monitoring card is attached (0x20 != FF:
    the spec says not to use them then). `ribbon` is None when every pin reads 1, which
    is what a card without ribbon detection returns (spec 3.1.1 example, 0x42..0x51).
    """

    temp_c: float | None = None
    voltage_v: float | None = None
    card_humidity_pct: int | None = None
    monitor: bool = False
    monitor_model: int | None = None
    monitor_version: tuple[int, int, int, int] | None = None
    monitor_temp_c: float | None = None
    humidity_pct: int | None = None
    smoke: bool | None = None
    fan_rpm: tuple[int | None, ...] = (None,) * FAN_COUNT
    voltages_v: tuple[float | None, ...] = (None,) * VOLTAGE_CHANNELS
    door_open: tuple[bool | None, ...] = (None,) * DOOR_COUNT
    ribbon: RibbonCable | None = field(default=None)


def _temp(valid_sign: int, value: int) -> float | None:
    """Spec 3.1.1: bit 7 of the first byte = valid, bit 0 = negative; value in 0.5 C.

    (The 3.1.1 worked example explains `80 48` = 36 C as "7 bits of degrees plus a sign
    bit" in the value byte; for every positive even value both readings agree. The
    register table is followed here.)
    """
    if not valid_sign & VALID:
        return None
    t = value * 0.5
    return -t if valid_sign & 0x01 else t


def _enc_temp(temp_c: float | None) -> bytes:
    if temp_c is None:
        return b"\x00\x00"
    half = min(round(abs(temp_c) * 2), 0xFF)
    return bytes((VALID | (1 if temp_c < 0 and half else 0), half))


def _seven(b: int) -> int | None:
    return b & 0x7F if b & VALID else None


def _enc_seven(value: int | None) -> int:
    return 0 if value is None else VALID | max(0, min(int(value), 0x7F))


def _volt(b: int) -> float | None:
    v = _seven(b)
    return None if v is None else round(v * 0.1, 1)


def _enc_volt(v: float | None) -> int:
    return _enc_seven(None if v is None else round(v * 10))


def decode_ribbon_cable(data: bytes) -> RibbonCable | None:
    """Spec 3.17: 16 bytes; None if shorter or all 0xFF (no ribbon detection fitted)."""
    if len(data) < RIBBON_CABLE_LEN:
        return None
    raw = bytes(data[:RIBBON_CABLE_LEN])
    if raw == b"\xff" * RIBBON_CABLE_LEN:
        return None
    groups: list[int] = []
    for b in raw[:8]:  # two groups per byte, G0 in the high nibble (as the spec prints it)
        groups += [(b >> 4) & 0x07, b & 0x07]
    return RibbonCable(group_errors=tuple(groups), control_bits=tuple(raw[8:16]))


def encode_ribbon_cable(ribbon: RibbonCable | None) -> bytes:
    """Inverse of `decode_ribbon_cable`; unused group bit 3 reads 1 as on real cards."""
    if ribbon is None:
        return b"\xff" * RIBBON_CABLE_LEN
    if len(ribbon.group_errors) != RIBBON_GROUPS or len(ribbon.control_bits) != 8:
        raise UsageError("novastar ribbon: need 16 groups and 8 control bytes")
    g = ribbon.group_errors
    out = bytearray(0x8 << 4 | 0x8 | (g[2 * i] & 7) << 4 | (g[2 * i + 1] & 7) for i in range(8))
    out += bytes(b & 0xFF for b in ribbon.control_bits)
    return bytes(out)


def _fans(raw: bytes) -> tuple[int | None, ...]:
    return tuple(None if (f := _seven(b)) is None else f * FAN_RPM_UNIT for b in raw)


def _enc_fans(rpms: Sequence[int | None]) -> bytes:
    return bytes(_enc_seven(None if rpm is None else round(rpm / FAN_RPM_UNIT)) for rpm in rpms)


def _doors(raw: bytes) -> tuple[bool, ...]:
    return tuple(bool(raw[0] >> i & 1) for i in range(DOOR_COUNT))


def _pair_temp(raw: bytes) -> float | None:
    return _temp(raw[0], raw[1])


def _ribbon_json(ribbon: RibbonCable) -> dict[str, Any]:
    return {"group_errors": list(ribbon.group_errors), "control_bits": list(ribbon.control_bits),
            "faulty_groups": ribbon.faulty_groups}  # fmt: skip


# The 3.1.1 block, field by field: the one list of its offsets (names = MonitoringBlock's).
MONITORING_FIELDS: Final = (
    Field("temp_c", 0x00, 2, _pair_temp),  # valid/sign byte, then value byte
    Field("card_humidity_pct", 0x02, 1, lambda b: _seven(b[0])),
    Field("voltage_v", 0x03, 1, lambda b: _volt(b[0])),
    Field("monitor", 0x20, 1, lambda b: b[0] == MONITOR_PRESENT),
    Field("monitor_model", 0x21, 2, _u16, "monitor"),
    Field("monitor_version", 0x23, 4, tuple, "monitor", dotted),
    Field("monitor_temp_c", 0x27, 2, _pair_temp, "monitor"),
    Field("humidity_pct", 0x29, 1, lambda b: _seven(b[0]), "monitor"),
    Field("smoke", 0x2A, 1, lambda b: bool(b[0] & 0x01), "monitor"),
    Field("fan_rpm", 0x2B, FAN_COUNT, _fans, "monitor"),
    Field("voltages_v", 0x2F, VOLTAGE_CHANNELS, lambda b: tuple(_volt(x) for x in b), "monitor"),
    Field("door_open", 0x41, 1, _doors, "monitor"),
    Field("ribbon", 0x42, RIBBON_CABLE_LEN, lambda b: decode_ribbon_cable(b), "monitor",
          _ribbon_json),
)  # fmt: skip
_AT: Final = {f.name: f for f in MONITORING_FIELDS}


def _put(out: bytearray, name: str, raw: bytes) -> None:
    f = _AT[name]
    out[f.offset : f.offset + f.size] = raw


def decode_monitoring_block(data: bytes) -> MonitoringBlock:
    """Decode the receiving card's monitoring block (spec 3.1.1, 0x100 bytes).

    A shorter buffer decodes the fields it covers; the rest are None. Monitoring card
    fields keep their defaults when no monitoring card is fitted (0x20 != FF).
    """
    d = bytes(data).ljust(MONITORING_BLOCK_LEN, b"\x00") if len(data) < 0x52 else bytes(data)
    values = decode_fields(MONITORING_FIELDS, d)
    if not values["monitor"]:
        return MonitoringBlock(**{f.name: values[f.name] for f in MONITORING_FIELDS[:3]})
    return MonitoringBlock(**values)


def encode_monitoring_block(block: MonitoringBlock) -> bytes:
    """Inverse of `decode_monitoring_block` (for emulators): 0x100 bytes.

    Values are quantised to the wire's steps (0.5 C, 0.1 V, 50 rpm) and clamped to 7 bits.
    """
    if len(block.fan_rpm) != FAN_COUNT or len(block.voltages_v) != VOLTAGE_CHANNELS:
        raise UsageError("novastar monitoring block: need 4 fans and 9 voltage channels")
    if len(block.door_open) != DOOR_COUNT:
        raise UsageError("novastar monitoring block: need 2 door flags")
    out = bytearray(MONITORING_BLOCK_LEN)
    _put(out, "temp_c", _enc_temp(block.temp_c))
    _put(out, "card_humidity_pct", bytes((_enc_seven(block.card_humidity_pct),)))
    _put(out, "voltage_v", bytes((_enc_volt(block.voltage_v),)))
    if not block.monitor:
        return bytes(out)
    _put(out, "monitor", bytes((MONITOR_PRESENT,)))
    _put(out, "monitor_model", (block.monitor_model or 0).to_bytes(2, "little"))
    _put(out, "monitor_version", bytes(block.monitor_version or (0, 0, 0, 0)))
    _put(out, "monitor_temp_c", _enc_temp(block.monitor_temp_c))
    _put(out, "humidity_pct", bytes((_enc_seven(block.humidity_pct),)))
    # 0x80 idle, as in the 3.1.1 example
    _put(out, "smoke", bytes((VALID | (1 if block.smoke else 0),)))
    _put(out, "fan_rpm", _enc_fans(block.fan_rpm))
    _put(out, "voltages_v", bytes(_enc_volt(v) for v in block.voltages_v))
    _put(out, "door_open", bytes((sum(1 << i for i, o in enumerate(block.door_open) if o),)))
    _put(out, "ribbon", encode_ribbon_cable(block.ribbon))
    return bytes(out)


@dataclass(frozen=True, slots=True)
class InputStatus:
    """Input source signal status (spec 3.18, one byte, one bit per input).

    The 3.18 table says 0 = valid, but its worked examples read 00 for "input nothing",
    02 with HDMI and 04 with DVI: a set bit means a signal is present, as used here.
    """

    raw: int

    @property
    def signal_present(self) -> bool:
        return bool(self.raw & 0x7F)

    @property
    def inputs(self) -> tuple[str, ...]:
        names = ("3G-SDI", "HDMI", "DVI1", "DVI2", "DVI3", "DVI4", "DP")
        return tuple(n for i, n in enumerate(names) if self.raw >> i & 1)


def decode_input_status(data: bytes) -> InputStatus | None:
    return InputStatus(data[0]) if data else None


def encode_input_status(inputs: int) -> bytes:
    return bytes((inputs & 0xFF,))


def decode_dvi_signal(data: bytes) -> bool | None:
    """Spec 3.1.2: 01 = DVI signal good, 00 = no DVI signal."""
    return bool(data[0]) if data else None


def encode_dvi_signal(present: bool) -> bytes:
    return b"\x01" if present else b"\x00"


@dataclass(frozen=True, slots=True)
class Brightness:
    """Receiving card brightness (spec 3.3): 0..255 on the wire, percent here."""

    global_pct: float
    red_pct: float
    green_pct: float
    blue_pct: float
    vred_pct: float


def brightness_pct(b: int) -> float:
    return round(b * 100 / 255, 1)


def decode_brightness(data: bytes) -> Brightness | None:
    if len(data) < BRIGHTNESS_LEN:
        return None
    return Brightness(*(brightness_pct(b) for b in data[:BRIGHTNESS_LEN]))


def brightness_byte(pct: float) -> int:
    """Percent -> the 0..255 register value (spec 3.3)."""
    return max(0, min(255, round(pct * 255 / 100)))


def encode_brightness(brightness: Brightness) -> bytes:
    return bytes(
        brightness_byte(p)
        for p in (
            brightness.global_pct,
            brightness.red_pct,
            brightness.green_pct,
            brightness.blue_pct,
            brightness.vred_pct,
        )
    )


def decode_model_id(data: bytes) -> int | None:
    """Spec 3.7.2: controller model ID, low byte first."""
    return int.from_bytes(data[:2], "little") if len(data) >= 2 else None


def encode_model_id(model_id: int) -> bytes:
    return model_id.to_bytes(2, "little")


def model_name(model_id: int | None) -> str | None:
    """A readable name for a controller model ID; unknown IDs as `0xHHHH`."""
    if model_id is None:
        return None
    return CONTROLLER_MODELS.get(model_id, f"0x{model_id:04X}")


def decode_firmware_version(data: bytes) -> str | None:
    """Spec 3.6: four bytes, one per version part (`04 03 00 00` = 4.3.0.0)."""
    return ".".join(str(b) for b in data[:4]) if len(data) >= 4 else None


def encode_firmware_version(version: str) -> bytes:
    parts = [int(p) for p in version.split(".")]
    if len(parts) != 4 or not all(0 <= p <= 255 for p in parts):
        raise UsageError(f"novastar firmware version {version!r} is not a.b.c.d with 0..255")
    return bytes(parts)


# ---------------------------------------------------------------------------------------
# Everything else a NovaStar system reports (spec 3.1.1 analog inputs, 3.8, 3.9, 3.10,
# 3.19, 3.20; smart modules from the register map). Same rules as above.
# ---------------------------------------------------------------------------------------
RECEIVING_CARD_INFO_LEN: Final = 6  # 3.9: model ID + FPGA version
FUNCTION_CARD_MODELS: Final[dict[int, str]] = {0x8101: "MFN300"}  # 3.7.3 table
# 3.8.2 / 3.8.3 read the answer back from the base address (the examples do; the prose
# says "from 4H"). 7 bytes hold either answer: MTH300 uses 7, NS048C the first 5.
FUNCTION_CARD_RS485_READ_LEN: Final = 7
RS485_PORTS: Final = 4  # 3.8.1: addresses 0..3
MTH300_QUERY: Final = b"\x55\xaa\x82"  # 3.8.2
MTH300_HEAD: Final = b"\xaa\x55\x82"
MTH300_LEN: Final = 7
NS048C_QUERY: Final = b"\x55\xaa\x01\x02\x80\xff\x81"  # 3.8.3
NS048C_HEAD: Final = 0x01
NS048C_LEN: Final = 5
LUX_UNIT: Final = 2  # 3.8.3 / 3.8.4: the light sensor counts in 2 lux steps
LIGHT_SENSOR_LEN: Final = 2  # 3.8.4: low byte, then valid + high
LIGHT_CONFIG_LEN: Final = 0x30  # 3.8.5: stand-alone + auto brightness
LIGHT_STANDALONE_ON: Final = 0x7D  # 3.8.5.1
REDUNDANCY_PORTS: Final = 4  # 3.10.1: 2 bits per output port 1..4
REDUNDANT_BITS: Final = 0b10
INPUT_MODE_MANUAL: Final = 0x5A  # 3.19: switched by hand, else automatic
INPUT_SOURCES: Final[dict[int, str]] = {  # 3.19 table
    0x58: "dvi",
    0x61: "dual_dvi",
    0x05: "hdmi",
    0x01: "sdi",
    0x5F: "dp",
    0x5A: "hdmi1.4",
}
MODULE_FLASH_START: Final = 0x04  # 3.20.1: written to start the check
MODULE_FLASH_RECORD: Final = 4  # 3.20.2: 4 bytes per module flash
MODULE_FLASH_GOOD: Final = 0x05
MODULE_FLASH_BAD: Final = 0x03
# Smart modules: see `SmartModule` for where the layout comes from.
SMART_MODULE_RECORD: Final = 16
SMART_MODULES_MAX: Final = 16
SMART_MODULE_LEN: Final = SMART_MODULE_RECORD * SMART_MODULES_MAX
RUN_TIME_INVALID: Final = 0xFFFFFFFF


def _sevens(raw: bytes) -> tuple[int | None, ...]:
    return tuple(_seven(b) for b in raw)


# Beside the 3.1.1 fields: NovaStar's register map names 0x38..0x3F, reserved in the spec.
ANALOG_FIELD: Final = Field("analog_inputs", 0x38, ANALOG_INPUTS, _sevens, "monitor")


def decode_analog_inputs(block: bytes) -> tuple[int | None, ...]:
    """Monitoring card analog inputs 1..8 from a 3.1.1 block (raw 7-bit values).

    The spec marks 0x38..0x40 reserved; NovaStar's register map names 0x38..0x3F
    `AnalogInputOfMonitorCard` and its neighbours (fans, voltages) all use "bit 7 =
    valid, 7 bits of value", so that rule is applied. No unit is published: the values
    stay raw. All None without a monitoring card (0x20 != FF).
    """
    got = decode_fields((_AT["monitor"], ANALOG_FIELD), bytes(block)).get(ANALOG_FIELD.name)
    return got if got is not None else (None,) * ANALOG_INPUTS


def encode_analog_inputs(block: bytes, values: tuple[int | None, ...]) -> bytes:
    """`block` (a 3.1.1 block) with analog inputs 1..8 written in (emulators)."""
    f = ANALOG_FIELD
    if len(values) != ANALOG_INPUTS or len(block) < f.offset + f.size:
        raise UsageError("novastar analog inputs: need 8 values and a 0x100-byte block")
    out = bytearray(block)
    out[f.offset : f.offset + f.size] = bytes(_enc_seven(v) for v in values)
    return bytes(out)


def ribbon_broken_pins(ribbon: RibbonCable) -> dict[int, tuple[str, ...]]:
    """Spec 3.17: {data group: broken colour pins} for every group with an error.

    Bit 0..2 of a group are its R, G, B data pins (the spec prints "the 000 of 1000 is
    each group's RGB pins"); the bit order inside the three is not published, R = bit 2
    is assumed (the order the spec lists them in, most significant first).
    """
    names = ("B", "G", "R")
    return {
        g: tuple(names[b] for b in (2, 1, 0) if bits >> b & 1)
        for g, bits in enumerate(ribbon.group_errors)
        if bits
    }


def ribbon_control_faults(ribbon: RibbonCable, baseline: RibbonCable) -> dict[str, int]:
    """Spec 3.17: control lines whose error bits differ from a known-good `baseline`.

    A 1 on A..CTRL means "broken or not connected" (the spec example shows D and CTRL
    all 1 as NC), so one reading cannot tell a fault; a change against the cabinet's
    own healthy reading can. Returns {line: bits newly set}.
    """
    return {
        name: new & ~old & 0xFF
        for name, new, old in zip(
            RIBBON_CONTROL_LINES, ribbon.control_bits, baseline.control_bits, strict=True
        )
        if new & ~old & 0xFF
    }


@dataclass(frozen=True, slots=True)
class ReceivingCardInfo:
    """Spec 3.9 (and 3.7.1): a receiving card's model ID and FPGA program version.

    Valid only when non-zero (3.9: "a valid model ID is a value other than 00", "a
    valid firmware version is other than 00 00 00 00"). That the ID reads back at all
    is the spec's test for "working normally" (3.9) and, read through a redundant
    output port, for "working in the redundant line" (3.10.2).
    """

    model_id: int | None
    firmware: str | None

    @property
    def model(self) -> str | None:
        """`0x4101`-style: 3.7.1 gives all receiving cards one ID (0x41 0x01), while
        the 3.9 example reads 0x4105, so the raw ID is kept rather than a name."""
        return None if self.model_id is None else f"0x{self.model_id:04X}"


def decode_receiving_card_info(data: bytes) -> ReceivingCardInfo | None:
    """Spec 3.9: `05 41 04 02 00 01` = model 0x4105, FPGA 4.2.0.1; None if short."""
    if len(data) < RECEIVING_CARD_INFO_LEN:
        return None
    model = int.from_bytes(data[0:2], "little")
    version = bytes(data[2:6])
    return ReceivingCardInfo(
        model_id=model or None,
        firmware=decode_firmware_version(version) if any(version) else None,
    )


def encode_receiving_card_info(info: ReceivingCardInfo) -> bytes:
    fw = encode_firmware_version(info.firmware) if info.firmware else bytes(4)
    return (info.model_id or 0).to_bytes(2, "little") + fw


@dataclass(frozen=True, slots=True)
class SmartModule:
    """One smart module behind a receiving card; None = invalid / not reported.

    The V1.9 spec has no smart-module chapter. NovaStar's register map names the
    structure (`OneModuleInfo`: IsConnectModule, PowerInfo, TemperInfo, WorkTime,
    ModuleStatusBytes; `ScannerMonitorData.ModuleInfoList`) and the receiving card's
    monitor space (`Scanner_MonitorStatusBase` 0x0A000000), but not where the records
    sit or their byte layout. LEDwatch therefore assumes one 16-byte record per module,
    module 1 first, right after the documented 0x100-byte 3.1.1 block (0x0A000100),
    using the 3.1.1 value encodings::

        +0  1  state      bit 7 = record valid (module slot in use), bit 0 = connected
        +1  2  temp       3.1.1 temperature: valid/sign byte, then 0.5 C steps
        +3  1  voltage    bit 7 valid, 7 bits of 0.1 V
        +4  4  run time   hours, uint32 LE; FFFFFFFF = not reported
        +8  2  cables     bit g = data group g of the module's ribbon cable broken
        +10 6  reserved

    Check this against a real card fitted with smart modules before trusting it; the
    emulator serves exactly this layout.
    """

    connected: bool
    temp_c: float | None = None
    voltage_v: float | None = None
    run_time_h: int | None = None
    cable_errors: int = 0  # bit mask, one bit per data group

    @property
    def cable_faults(self) -> int:
        return bin(self.cable_errors).count("1")


def decode_smart_modules(data: bytes) -> tuple[SmartModule, ...]:
    """Records of every slot in use (state bit 7), in module order; see `SmartModule`.

    A disconnected module keeps its slot with `connected=False` and no readings.
    """
    out: list[SmartModule] = []
    for off in range(0, len(data) - SMART_MODULE_RECORD + 1, SMART_MODULE_RECORD):
        rec = data[off : off + SMART_MODULE_RECORD]
        if not rec[0] & VALID:
            continue
        if not rec[0] & 0x01:
            out.append(SmartModule(connected=False))
            continue
        run = int.from_bytes(rec[4:8], "little")
        out.append(
            SmartModule(
                connected=True,
                temp_c=_temp(rec[1], rec[2]),
                voltage_v=_volt(rec[3]),
                run_time_h=None if run == RUN_TIME_INVALID else run,
                cable_errors=int.from_bytes(rec[8:10], "little"),
            )
        )
    return tuple(out)


def encode_smart_modules(modules: tuple[SmartModule, ...]) -> bytes:
    """Inverse of `decode_smart_modules`: `SMART_MODULE_LEN` bytes, unused slots zero."""
    if len(modules) > SMART_MODULES_MAX:
        raise UsageError(f"novastar smart modules: at most {SMART_MODULES_MAX} per card")
    out = bytearray(SMART_MODULE_LEN)
    for i, m in enumerate(modules):
        rec = bytearray(SMART_MODULE_RECORD)
        rec[0] = VALID | (1 if m.connected else 0)
        if m.connected:
            rec[1:3] = _enc_temp(m.temp_c)
            rec[3] = _enc_volt(m.voltage_v)
            run = RUN_TIME_INVALID if m.run_time_h is None else min(m.run_time_h, 0xFFFFFFFE)
            rec[4:8] = run.to_bytes(4, "little")
            rec[8:10] = (m.cable_errors & 0xFFFF).to_bytes(2, "little")
        out[i * SMART_MODULE_RECORD : (i + 1) * SMART_MODULE_RECORD] = rec
    return bytes(out)


def decode_module_flash_check(data: bytes) -> tuple[bool | None, ...]:
    """Spec 3.20.2: 4 bytes per module flash; `05 05 00 00` = good (True), a 03 = no
    flash or a wrong flash topology (False), anything else None."""
    out: list[bool | None] = []
    for off in range(0, len(data) - MODULE_FLASH_RECORD + 1, MODULE_FLASH_RECORD):
        a, b = data[off], data[off + 1]
        if a == b == MODULE_FLASH_GOOD:
            out.append(True)
        elif MODULE_FLASH_BAD in (a, b):
            out.append(False)
        else:
            out.append(None)
    return tuple(out)


def encode_module_flash_check(results: tuple[bool | None, ...]) -> bytes:
    code = {True: MODULE_FLASH_GOOD, False: MODULE_FLASH_BAD, None: 0}
    return b"".join(bytes((code[r], code[r], 0, 0)) for r in results)


def function_card_model_name(model_id: int | None) -> str | None:
    """Spec 3.7.3: `01 81` = 0x8101 = MFN300; unknown IDs as `0xHHHH`."""
    if model_id is None:
        return None
    return FUNCTION_CARD_MODELS.get(model_id, f"0x{model_id:04X}")


def rs485_request(rs485_port: int, payload: bytes) -> bytes:
    """Spec 3.8.1: the bytes written at 0x06000000 to make the function card query an
    external device: RS-485 address (0..3), baud (0 = 115200), two reserved zeros, then
    the device's own command (`MTH300_QUERY`, `NS048C_QUERY`)."""
    check_range("rs485_port", rs485_port, RS485_PORTS - 1)
    return bytes((rs485_port, 0, 0, 0)) + payload


@dataclass(frozen=True, slots=True)
class Mth300Reading:
    """Spec 3.8.2: MTH300 temperature (0.1 C steps) and humidity (1 %), each valid-flagged."""

    temp_c: float | None
    humidity_pct: int | None


def _mth300_sum(body: bytes) -> int:
    # 3.8.2: "package head not included": AA 55 are left out, the 82 counts (the
    # example AA 55 82 25 81 00 -> 82+25+81+00 = 0x128 -> 28).
    return sum(body[2:6]) & 0xFF


def decode_mth300(data: bytes) -> Mth300Reading | None:
    """`AA 55 82 tL tH hum sum` -> reading; None if the head or checksum is wrong
    (the function card holds another device's answer, or nothing yet)."""
    d = bytes(data[:MTH300_LEN])
    if len(d) < MTH300_LEN or d[:3] != MTH300_HEAD or _mth300_sum(d) != d[6]:
        return None
    raw = d[3] | (d[4] & 0x7F) << 8
    return Mth300Reading(
        temp_c=round(raw * 0.1, 1) if d[4] & VALID else None,
        humidity_pct=_seven(d[5]),
    )


def encode_mth300(reading: Mth300Reading) -> bytes:
    """Inverse of `decode_mth300`. The spec gives no sign bit: below 0 C reads as 0."""
    if reading.temp_c is None:
        t = b"\x00\x00"
    else:
        raw = max(0, min(round(reading.temp_c * 10), 0x7FFF))
        t = bytes((raw & 0xFF, VALID | raw >> 8))
    body = MTH300_HEAD + t + bytes((_enc_seven(reading.humidity_pct),))
    return body + bytes((_mth300_sum(body),))


def _lux(hi: int, lo: int) -> float | None:
    if not hi & VALID:
        return None
    return float(((hi & 0x7F) << 8 | lo) * LUX_UNIT)


def _enc_lux(lux: float | None) -> tuple[int, int]:
    if lux is None:
        return 0, 0
    raw = max(0, min(round(lux / LUX_UNIT), 0x7FFF))
    return VALID | raw >> 8, raw & 0xFF


def decode_ns048c(data: bytes) -> float | None:
    """Spec 3.8.3: `01 02 hi lo sum` (sum of the bytes after the 01 head, e.g.
    02+80+5F = E1); bit 7 of hi = valid; 2 lux steps (`80 5F` = 190 lux)."""
    d = bytes(data[:NS048C_LEN])
    if len(d) < NS048C_LEN or d[0] != NS048C_HEAD or d[1] != 2:
        return None
    if sum(d[1:4]) & 0xFF != d[4]:
        return None
    return _lux(d[2], d[3])


def encode_ns048c(lux: float | None) -> bytes:
    hi, lo = _enc_lux(lux)
    body = bytes((NS048C_HEAD, 2, hi, lo))
    return body + bytes((sum(body[1:]) & 0xFF,))


def decode_function_card_reply(data: bytes) -> Mth300Reading | float | None:
    """The 0x06000000 answer, told apart by its head: an `Mth300Reading`, NS048C lux, or
    None. Telling them apart by content (not by which query came last) keeps a reading
    from being credited to the wrong sensor if two queries' answers cross."""
    if bytes(data[:3]) == MTH300_HEAD:
        return decode_mth300(data)
    return decode_ns048c(data)


def decode_light_sensor(data: bytes) -> float | None:
    """Spec 3.8.4: `38 80` = low 0x38, high 0x80 (valid) -> 56 * 2 = 112 lux."""
    if len(data) < LIGHT_SENSOR_LEN:
        return None
    return _lux(data[1], data[0])


def encode_light_sensor(lux: float | None) -> bytes:
    hi, lo = _enc_lux(lux)
    return bytes((lo, hi))


class LightSensorSite(IntEnum):
    """Spec 3.8.5 offset 0x20 (the register map's `EnLightSensorSite`)."""

    FUNCTION_CARD = 0
    SENDING_CARD = 1


@dataclass(frozen=True, slots=True)
class LightSensorConfig:
    """Spec 3.8.5: stand-alone light sensor mode and the auto-brightness settings.

    Every byte defaults to FF ("not set"), read here as None. Lux limits are the
    sensor's own counts (3.8.4's note: relative, not absolute, lux).
    """

    standalone: bool | None = None
    sensors: int | None = None
    max_lux: int | None = None
    min_lux: int | None = None
    max_brightness_pct: float | None = None
    min_brightness_pct: float | None = None
    segments: int | None = None
    site: LightSensorSite | None = None
    port: int | None = None  # sending card output port of the function card
    function_card: int | None = None  # the function card's index on that port
    rs485_port: int | None = None  # the sensor's port on the function card, 0..3


def _ff(b: int) -> int | None:
    return None if b == 0xFF else b


def _ff16(data: bytes) -> int | None:
    v = int.from_bytes(data[:2], "little")
    return None if v == 0xFFFF else v


def decode_light_config(data: bytes) -> LightSensorConfig | None:
    """Decode the 0x30 bytes at sending-card 0x0A000000 (3.8.5); None if short."""
    if len(data) < LIGHT_CONFIG_LEN:
        return None
    d = bytes(data)
    site = _ff(d[0x20])
    return LightSensorConfig(
        standalone=None if d[0] not in (LIGHT_STANDALONE_ON, 0xFF) else d[0] == LIGHT_STANDALONE_ON,
        sensors=_ff(d[0x01]),
        max_lux=_ff16(d[0x05:0x07]),
        min_lux=_ff16(d[0x07:0x09]),
        max_brightness_pct=None if d[0x09] == 0xFF and d[0x0A] == 0xFF else brightness_pct(d[0x09]),
        min_brightness_pct=None if d[0x09] == 0xFF and d[0x0A] == 0xFF else brightness_pct(d[0x0A]),
        segments=_ff(d[0x0B]),
        site=LightSensorSite(site) if site in (0, 1) else None,
        port=_ff(d[0x21]),
        function_card=_ff16(d[0x22:0x24]),
        rs485_port=_ff(d[0x24]),
    )


def encode_light_config(cfg: LightSensorConfig) -> bytes:
    out = bytearray(b"\xff" * LIGHT_CONFIG_LEN)
    if cfg.standalone is not None:
        out[0] = LIGHT_STANDALONE_ON if cfg.standalone else 0xFF
    for off, v in ((0x01, cfg.sensors), (0x0B, cfg.segments), (0x21, cfg.port),
                   (0x24, cfg.rs485_port)):  # fmt: skip
        if v is not None:
            out[off] = v & 0xFF
    for off, v in ((0x05, cfg.max_lux), (0x07, cfg.min_lux), (0x22, cfg.function_card)):
        if v is not None:
            out[off : off + 2] = (v & 0xFFFF).to_bytes(2, "little")
    if cfg.max_brightness_pct is not None and cfg.min_brightness_pct is not None:
        out[0x09] = brightness_byte(cfg.max_brightness_pct)
        out[0x0A] = brightness_byte(cfg.min_brightness_pct)
    if cfg.site is not None:
        out[0x20] = int(cfg.site)
    return bytes(out)


def decode_redundancy(data: bytes) -> tuple[bool, ...] | None:
    """Spec 3.10.1: per output port 1..4, True when it is working as redundant (its
    two bits read 10); any other value (FF by default) means it is not."""
    if not data:
        return None
    return tuple((data[0] >> (2 * p) & 0b11) == REDUNDANT_BITS for p in range(REDUNDANCY_PORTS))


def encode_redundancy(redundant: tuple[bool, ...]) -> bytes:
    """Ports not redundant read 11 (the FF default)."""
    if len(redundant) > REDUNDANCY_PORTS:
        raise UsageError("novastar redundancy: the register holds ports 1..4 only")
    b = 0xFF
    for p, r in enumerate(redundant):
        if r:
            b = b & ~(0b11 << 2 * p) | REDUNDANT_BITS << 2 * p
    return bytes((b,))


# Which bits of the 3.18 byte belong to which kind of input.
INPUT_BITS: Final[dict[str, int]] = {"sdi": 0x01, "hdmi": 0x02, "dvi": 0x3C, "dp": 0x40}


def input_signals(status: InputStatus | None, dvi: bool | None) -> dict[str, bool | None]:
    """{dvi, hdmi, dp, sdi: signal present?} from 3.18, falling back to 3.1.2 for DVI.

    3.18 is read with "set bit = signal" (see `InputStatus`); DVI1..DVI4 count as DVI.
    Without a 3.18 reading only DVI is known (3.1.2), the others are None.
    """
    if status is None:
        return {"dvi": dvi, "hdmi": None, "dp": None, "sdi": None}
    return {name: bool(status.raw & bits) for name, bits in INPUT_BITS.items()}


def encode_input_signals(present: set[str] | frozenset[str]) -> bytes:
    """The 3.18 byte for the inputs in `present` (DVI is reported on DVI1)."""
    bits = {"sdi": 0x01, "hdmi": 0x02, "dvi": 0x04, "dp": 0x40}
    return bytes((sum(bits[n] for n in present),))


def decode_input_source(data: bytes) -> str | None:
    """Spec 3.19, offset 0x23: the active input (`58` = "dvi"); None if unknown."""
    return INPUT_SOURCES.get(data[0]) if data else None


def encode_input_source(source: str) -> bytes:
    codes = {v: k for k, v in INPUT_SOURCES.items()}
    if source not in codes:
        raise UsageError(f"novastar input source {source!r}: known {sorted(codes)}")
    return bytes((codes[source],))


def decode_input_mode_manual(data: bytes) -> bool | None:
    """Spec 3.19, offset 0x22: True when the input was chosen by hand (0x5A)."""
    return data[0] == INPUT_MODE_MANUAL if data else None
