"""The one NovaStar register table (spec chapter 3): where each register lives and what
decodes it. Pure data.

Every part reads this table and nothing else for addresses: the codec's compatibility
constants (`MONITORING_BLOCK_ADDR`, ...) are derived from it, the dissector names and
decodes frames with it (`ledwatch decode`), the driver's poll plan asks for its entries
(`agent/drivers/novastar/plan.py`), and the emulator serves its answers keyed by them.
A register is `length` bytes from `address` on one or more kinds of device; `decode`
turns all of its bytes into a typed value (for the driver), `fields` name the parts a
partial read or write covers (for the dissector). Entries may nest: a block (the 3.1.1
monitoring block) and registers inside it (3.17 ribbon test at +0x42) are both listed,
as the spec lists them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from firmware_protocols.novastar import values as v
from firmware_protocols.novastar.framing import DeviceType
from firmware_protocols.novastar.values import Field

SENDING: Final = frozenset({DeviceType.SENDING_CARD})
RECEIVING: Final = frozenset({DeviceType.RECEIVING_CARD})
FUNCTION: Final = frozenset({DeviceType.FUNCTION_CARD})
# A function card on the computer's own COM port is addressed as device 0 (spec 3.2 example).
SENDING_OR_FUNCTION: Final = SENDING | FUNCTION


@dataclass(frozen=True, slots=True)
class Register:
    """A register block of spec chapter 3: `length` bytes from `address` on `devices`."""

    name: str
    address: int
    length: int
    devices: frozenset[DeviceType]
    section: str
    decode: Callable[[bytes], Any] | None = None
    fields: tuple[Field, ...] = ()

    @property
    def device_type(self) -> DeviceType:
        """The device a request for this register goes to (the first listed)."""
        return min(self.devices)

    def field(self, name: str) -> Field:
        return next(f for f in self.fields if f.name == name)


def _byte(name: str, fn: Callable[[int], Any], show: Callable[[Any], Any] | None = None,
          offset: int = 0) -> Field:  # fmt: skip
    return Field(name, offset, 1, lambda b: fn(b[0]), show=show)


def _model_fields(names: Callable[[int | None], str | None]) -> tuple[Field, ...]:
    return (Field("model_id", 0, 2, v.decode_model_id, show=v.hex16),
            Field("model", 0, 2, v.decode_model_id, show=names))  # fmt: skip


def _input_status_json(status: v.InputStatus) -> dict[str, Any]:
    return {"raw": f"0x{status.raw:02X}", "signal_present": status.signal_present,
            "inputs": list(status.inputs)}  # fmt: skip


def _u16_at(name: str, offset: int) -> Field:
    return Field(name, offset, 2, lambda b: int.from_bytes(b, "little"))


# -- receiving card ----------------------------------------------------------------------
MONITORING_BLOCK = Register("monitoring block", 0x0A000000, v.MONITORING_BLOCK_LEN, RECEIVING,
                            "3.1.1", v.decode_monitoring_block,
                            (*v.MONITORING_FIELDS, v.ANALOG_FIELD))
_RIBBON = MONITORING_BLOCK.field("ribbon")
RIBBON_CABLE = Register("ribbon cable test", MONITORING_BLOCK.address + _RIBBON.offset,
                        v.RIBBON_CABLE_LEN, RECEIVING, "3.17", v.decode_ribbon_cable,
                        (Field("ribbon", 0, _RIBBON.size, v.decode_ribbon_cable,
                               show=_RIBBON.show),))
# After the documented block, at an address LEDwatch had to assume (see `SmartModule`).
SMART_MODULES = Register("smart modules", MONITORING_BLOCK.address + v.MONITORING_BLOCK_LEN,
                         v.SMART_MODULE_LEN, RECEIVING, "register map", v.decode_smart_modules)
BRIGHTNESS = Register("brightness", 0x02000001, v.BRIGHTNESS_LEN, RECEIVING, "3.3",
                      v.decode_brightness,
                      tuple(_byte(name, v.brightness_pct, offset=i) for i, name in enumerate(
                          ("global_pct", "red_pct", "green_pct", "blue_pct", "vred_pct"))))
RECEIVING_CARD_INFO = Register("card model and firmware", 0x00000000, v.RECEIVING_CARD_INFO_LEN,
                               RECEIVING, "3.9", v.decode_receiving_card_info,
                               (Field("model_id", 0, 2, v.decode_model_id, show=v.hex16),
                                Field("firmware", 2, 4, v.decode_firmware_version)))
MODULE_FLASH_CHECK = Register("start module flash check", 0x01000074, 1, RECEIVING, "3.20.1")
MODULE_FLASH_RESULT = Register("module flash check result", 0x03003010,
                               v.MODULE_FLASH_RECORD * v.SMART_MODULES_MAX, RECEIVING, "3.20.2",
                               v.decode_module_flash_check)
# -- sending card ------------------------------------------------------------------------
CONTROLLER_MODEL = Register("controller model ID", 0x00000002, 2, SENDING, "3.7.2",
                            v.decode_model_id, _model_fields(v.model_name))
LIGHT_SENSOR = Register("ambient brightness (NS048C)", 0x0200000F, v.LIGHT_SENSOR_LEN, SENDING,
                        "3.8.4", v.decode_light_sensor,
                        (Field("ambient_lux", 0, 2, v.decode_light_sensor),))
DVI_SIGNAL = Register("DVI signal", 0x02000017, 1, SENDING, "3.1.2", v.decode_dvi_signal,
                      (Field("dvi_signal", 0, 1, v.decode_dvi_signal),))
REDUNDANCY = Register("output port redundancy", 0x0200001E, 1, SENDING, "3.10.1",
                      v.decode_redundancy, (Field("redundant", 0, 1, v.decode_redundancy),))
INPUT_SELECTION = Register("input source selection", 0x02000022, 2, SENDING, "3.19", None,
                           (Field("input_manual", 0, 1, v.decode_input_mode_manual),
                            Field("input_source", 1, 1, v.decode_input_source)))
INPUT_SOURCE_STATUS = Register("input source status", 0x0200004D, 1, SENDING, "3.18",
                               v.decode_input_status,
                               (Field("input_status", 0, 1, v.decode_input_status,
                                      show=_input_status_json),))
FIRMWARE_VERSION = Register("FPGA program version", 0x04100004, 4, SENDING, "3.6",
                            v.decode_firmware_version,
                            (Field("fpga_version", 0, 4, v.decode_firmware_version),))
LIGHT_CONFIG = Register("light sensor settings", 0x0A000000, v.LIGHT_CONFIG_LEN, SENDING,
                        "3.8.5", v.decode_light_config)
# -- function card -----------------------------------------------------------------------
FUNCTION_CARD_MODEL = Register("function card model ID", 0x00000002, 2, FUNCTION, "3.7.3",
                               v.decode_model_id, _model_fields(v.function_card_model_name))
FUNCTION_CARD_RS485 = Register("RS485 external device", 0x06000000, 0x100, FUNCTION, "3.8.1",
                               v.decode_function_card_reply)

REGISTERS: Final[tuple[Register, ...]] = (
    # Receiving card.
    MONITORING_BLOCK,
    Register("card humidity", 0x0A000002, 1, RECEIVING, "3.1.1"),
    Register("card supply voltage", 0x0A000003, 1, RECEIVING, "3.1.1"),
    Register("monitoring card", 0x0A000020, 0x22, RECEIVING, "3.1.1"),
    RIBBON_CABLE,
    SMART_MODULES,
    Register("gamma value", 0x02000000, 1, RECEIVING, "3.5.1"),
    BRIGHTNESS,
    Register("calibration (CorrectionOn)", 0x02000051, 1, RECEIVING, "3.13"),
    Register("kill mode (black screen)", 0x02000100, 1, RECEIVING, "3.12.2", None,
             (_byte("black", lambda b: b == 0xFF),)),
    Register("self-test mode", 0x02000101, 1, RECEIVING, "3.12.1", None,
             (_byte("mode", lambda b: f"0x{b:02X}"),)),
    Register("lock mode", 0x02000102, 1, RECEIVING, "3.12.2", None,
             (_byte("locked", lambda b: b == 0xFF),)),
    Register("gamma table", 0x05000000, 0x400, RECEIVING, "3.5.2"),
    Register("parameter store", 0x01000011, 1, RECEIVING, "3.15"),
    MODULE_FLASH_CHECK,
    MODULE_FLASH_RESULT,
    RECEIVING_CARD_INFO,
    # Sending card (and a function card on the computer's COM port, spec 3.2).
    CONTROLLER_MODEL,
    Register("reset to factory settings", 0x01000002, 1, SENDING, "3.4"),
    LIGHT_SENSOR,
    DVI_SIGNAL,
    REDUNDANCY,
    INPUT_SELECTION,
    INPUT_SOURCE_STATUS,
    Register("cabinet size", 0x02100006, 4, SENDING, "3.16", None,
             (_u16_at("cabinet_width_px", 0), _u16_at("cabinet_height_px", 2))),
    FIRMWARE_VERSION,
    # Listed before the 0x30-byte settings block so a read of its first byte is named so.
    Register("light sensor stand-alone mode", 0x0A000000, 1, SENDING, "3.8.5", None,
             (_byte("standalone", lambda b: b == v.LIGHT_STANDALONE_ON),)),
    Register("auto brightness settings", 0x0A000001, 0x2E, SENDING, "3.8.5"),
    LIGHT_CONFIG,
    Register("power supply switches", 0x05000010, 6, SENDING_OR_FUNCTION, "3.2", None,
             tuple(_byte(f"power_switch_{i + 1}_on", lambda b: b == 0, offset=i)
                   for i in range(6))),
    # Function card.
    FUNCTION_CARD_MODEL,
    FUNCTION_CARD_RS485,
)  # fmt: skip


def registers_at(device_type: int, address: int) -> list[Register]:
    """Every register of `device_type` whose bytes include `address`, most specific first:
    one starting there, then the smallest block around it."""
    found = [r for r in REGISTERS
             if device_type in r.devices and r.address <= address < r.address + r.length]
    return sorted(found, key=lambda r: (r.address != address, r.length))  # fmt: skip


def find_register(device_type: int, address: int) -> tuple[str, Register] | None:
    """(display name, register) for `address` on `device_type`, or None if unknown.

    A register starting at `address` wins; otherwise the smallest block containing it,
    shown as `name +0xOFF`.
    """
    found = registers_at(device_type, address)
    if not found:
        return None
    best = found[0]
    if best.address == address:
        return best.name, best
    return f"{best.name} +0x{address - best.address:X}", best


def register_values(
    device_type: int, address: int, data: bytes
) -> Sequence[tuple[Field, Any]] | None:
    """(field, decoded value) of every field `data` (read or written at `address`) covers,
    from the most specific register that has any; None when none does."""
    for reg in registers_at(device_type, address):
        start = address - reg.address
        got = v.decode_fields(reg.fields, data, start)
        if got:
            return [(f, got[f.name]) for f in reg.fields if f.name in got]
    return None


# Addresses and lengths under their historical names (callers and tests use them).
MONITORING_BLOCK_ADDR: Final = MONITORING_BLOCK.address
RIBBON_CABLE_ADDR: Final = RIBBON_CABLE.address
SMART_MODULE_ADDR: Final = SMART_MODULES.address
BRIGHTNESS_ADDR: Final = BRIGHTNESS.address
RECEIVING_CARD_INFO_ADDR: Final = RECEIVING_CARD_INFO.address
MODULE_FLASH_START_ADDR: Final = MODULE_FLASH_CHECK.address
MODULE_FLASH_RESULT_ADDR: Final = MODULE_FLASH_RESULT.address
CONTROLLER_MODEL_ADDR: Final = CONTROLLER_MODEL.address
CONTROLLER_MODEL_LEN: Final = CONTROLLER_MODEL.length
LIGHT_SENSOR_ADDR: Final = LIGHT_SENSOR.address
DVI_SIGNAL_ADDR: Final = DVI_SIGNAL.address
DVI_SIGNAL_LEN: Final = DVI_SIGNAL.length
REDUNDANCY_ADDR: Final = REDUNDANCY.address
REDUNDANCY_LEN: Final = REDUNDANCY.length
INPUT_MODE_ADDR: Final = INPUT_SELECTION.address + INPUT_SELECTION.field("input_manual").offset
INPUT_SOURCE_ADDR: Final = INPUT_SELECTION.address + INPUT_SELECTION.field("input_source").offset
INPUT_SOURCE_STATUS_ADDR: Final = INPUT_SOURCE_STATUS.address
INPUT_SOURCE_STATUS_LEN: Final = INPUT_SOURCE_STATUS.length
FIRMWARE_VERSION_ADDR: Final = FIRMWARE_VERSION.address
FIRMWARE_VERSION_LEN: Final = FIRMWARE_VERSION.length
LIGHT_CONFIG_ADDR: Final = LIGHT_CONFIG.address
FUNCTION_CARD_MODEL_ADDR: Final = FUNCTION_CARD_MODEL.address
FUNCTION_CARD_MODEL_LEN: Final = FUNCTION_CARD_MODEL.length
FUNCTION_CARD_RS485_ADDR: Final = FUNCTION_CARD_RS485.address
