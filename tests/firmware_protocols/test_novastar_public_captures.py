"""Frames captured or hand-checked by another public NovaStar implementation.

Source: the public GitHub repository sarakusha/novastar (a TypeScript NovaStar codec),
files `packages/codec/src/NovastarDecoder.spec.ts` ("decode hex") and
`packages/codec/src/packet.spec.ts` ("RequestPack", "AcknowledgePack"). Our codec must
read the same bytes the same way, and refuse them once a byte is damaged.
"""

from __future__ import annotations

import pytest

from firmware_protocols import novastar as ns

# NovastarDecoder.spec.ts "decode hex": a broadcast write (dst 0xFF) of one byte to
# 0x01000000 on the sending card, serial 0x7A.
BROADCAST_WRITE = bytes.fromhex("55AA007AFEFF00000000010000000001010000CF57")
# packet.spec.ts "RequestPack": write 0x80 (brightness) to 0x02000001 of receiving card
# 0x234 behind port 0x11, serial 0x15.
BRIGHTNESS_WRITE = bytes([0x55, 0xAA, 0, 0x15, 0xFE, 0, 1, 0x11, 0x34, 0x2, 1, 0, 1, 0, 0, 2,
                          1, 0, 0x80, 0x35, 0x57])
# packet.spec.ts "AcknowledgePack": the receiving card's ACK of that write.
BRIGHTNESS_ACK = bytes([0xAA, 0x55, 0, 0x15, 0, 0xFE, 1, 0, 0, 0, 1, 0, 1, 0, 0, 2, 0, 0,
                        0x6D, 0x56])


def decode_one(raw: bytes) -> ns.Frame:
    codec = ns.NovastarCodec()
    used, frame = codec.decode(raw)
    assert frame is not None, f"not decoded: {raw.hex(' ')}"
    assert used == len(raw)
    assert ns.encode(frame) == raw  # byte-exact both ways
    return frame


def test_broadcast_write() -> None:
    f = decode_one(BROADCAST_WRITE)
    assert (f.is_reply, f.serial, f.src, f.dst) == (False, 0x7A, 0xFE, 0xFF)
    assert (f.device_type, f.code, f.address, f.length, f.data) == (
        ns.DeviceType.SENDING_CARD, 1, 0x01000000, 1, b"\x00")


def test_brightness_write_request_and_its_ack() -> None:
    req = decode_one(BRIGHTNESS_WRITE)
    assert (req.serial, req.device_type, req.port, req.board) == (
        0x15, ns.DeviceType.RECEIVING_CARD, 0x11, 0x234)
    assert (req.code, req.address, req.data) == (1, ns.BRIGHTNESS_ADDR, b"\x80")
    assert ns.encode(ns.write_request(0x15, ns.DeviceType.RECEIVING_CARD, 0x11, 0x234,
                                      ns.BRIGHTNESS_ADDR, b"\x80")) == BRIGHTNESS_WRITE
    ack = decode_one(BRIGHTNESS_ACK)
    assert (ack.is_reply, ack.ack, ack.serial, ack.address) == (True, ns.Ack.OK, 0x15,
                                                                 ns.BRIGHTNESS_ADDR)


@pytest.mark.parametrize("raw", [BROADCAST_WRITE, BRIGHTNESS_WRITE, BRIGHTNESS_ACK])
def test_a_damaged_capture_is_refused_and_the_next_one_recovered(raw: bytes) -> None:
    damaged = bytearray(raw)
    damaged[-3] ^= 0x01  # last body byte: the checksum no longer matches
    stream = ns.StreamDecoder()
    frames = stream.feed(bytes(damaged) + raw)
    assert [ns.encode(f) for f in frames] == [raw]
