"""Colorlight UDP discovery: the 0xEB probe and its 0xEA answer (pure).

Source: `ydev-clt/companion-module-colorlight-processor`, `src/udp-probe.ts` (which cites
the vendor document §6.2.1) and `src/device-models.ts` (the B-protocol model table).

Probe, 9 bytes, sent to the device's port (9099) or broadcast::

    offset  width  value
    0       1      0xEB   frame number
    1       1      0x00   reserved
    2       2      00 09  frame length = 9 (the source calls it little-endian, but these
                          bytes read 9 only big-endian; LEDwatch sends them as given)
    4       1      0x01   sub-frame type: search IP device
    5       3      55 EE CC  frame data
    8       1      0x00   CRC (not enabled)

Answer, at least 24 bytes; only two fields are published::

    0       1      0xEA   frame number
    1..21          not published (LEDwatch reads nothing here)
    22      1      device type: 0 sending card, 1 player box, 2 processor
    23      1      model byte ("processor model low byte"), see MODELS_B

A device type 2 speaks the vendor's "B protocol", the others the "A protocol" (same
file); sending cards report the model byte in a secondary 0xF1 reply instead, whose
layout is not published either (not read here).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from firmware_protocols.colorlight.errors import UsageError

PROBE: Final = bytes((0xEB, 0x00, 0x00, 0x09, 0x01, 0x55, 0xEE, 0xCC, 0x00))
ANSWER_ID: Final = 0xEA
ANSWER_MIN_SIZE: Final = 24
DEVICE_TYPE_OFFSET: Final = 22
MODEL_OFFSET: Final = 23


class DeviceType(IntEnum):
    SENDING_CARD = 0
    PLAYER_BOX = 1
    PROCESSOR = 2


# Model byte -> name for B-protocol processors, as transcribed in src/device-models.ts
# from the vendor's B-protocol table (17 and 18 do not exist there). The module ships
# only 35, 38, 39, 41, 47, 49, 50, 51 enabled; the rest are its commented transcription.
MODELS_B: Final[dict[int, str]] = {
    1: "V20", 2: "Z8", 3: "X100-4U", 4: "X100-7U", 5: "X40m", 6: "D9", 7: "D16",
    8: "阿凡达 (Avatar)", 9: "Z5", 10: "Z4 PRO", 11: "X20m", 12: "Z8t", 13: "V3Pro", 14: "V3",
    15: "V2Pro", 16: "V2", 19: "Z3", 20: "V4", 21: "V7", 22: "Z8l", 23: "VX10",
    24: "X100 Pro-4U", 25: "X100 Pro-7U", 26: "X100 Pro-11U", 27: "X100-20U",
    28: "S20 Pro", 29: "X12m", 30: "X8m", 31: "X26m", 32: "VX6", 33: "VX4", 34: "VX20",
    35: "U9 Max", 36: "X100 Pro-2U", 37: "DS420", 38: "U15", 39: "U15 Max", 40: "DS410",
    41: "U6 Max", 42: "VX12F", 43: "CA6", 44: "CA20-5G", 45: "CA10", 46: "CA20",
    47: "U3 Max", 48: "CA6/CA20-5G/CA10/CA20", 49: "U20 Max", 50: "V10", 51: "V20",
    200: "MVC-5G-11", 201: "洛普电影屏", 202: "CL14-4KP60", 203: "CJ4K", 204: "CU4K",
    205: "HDR4K_JIUZHOU",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class ProbeAnswer:
    device_type: int
    model_byte: int

    @property
    def protocol(self) -> str:
        """"B" for processors (device type 2), "A" otherwise (src/udp-probe.ts)."""
        return "B" if self.device_type == DeviceType.PROCESSOR else "A"

    @property
    def model(self) -> str | None:
        """Known only for B-protocol devices; the A table is not published."""
        return MODELS_B.get(self.model_byte) if self.protocol == "B" else None


def is_probe(data: bytes) -> bool:
    return bytes(data) == PROBE


def decode_answer(data: bytes | bytearray | memoryview) -> ProbeAnswer | None:
    """The answer's two published fields, or None for anything that is not an answer
    (wrong first byte, shorter than 24 bytes): never raises."""
    buf = bytes(data)
    if len(buf) < ANSWER_MIN_SIZE or buf[0] != ANSWER_ID:
        return None
    return ProbeAnswer(buf[DEVICE_TYPE_OFFSET], buf[MODEL_OFFSET])


def encode_answer(device_type: int, model_byte: int, size: int = ANSWER_MIN_SIZE) -> bytes:
    """An answer for the emulator: the unpublished bytes are zero."""
    if not 0 <= device_type <= 0xFF or not 0 <= model_byte <= 0xFF or size < ANSWER_MIN_SIZE:
        raise UsageError("colorlight: device type and model are bytes, size >= 24")
    out = bytearray(size)
    out[0], out[DEVICE_TYPE_OFFSET], out[MODEL_OFFSET] = ANSWER_ID, device_type, model_byte
    return bytes(out)
