"""NovaStar codec: every example frame printed in the spec, whole, split, with noise."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_protocols import novastar as ns
from firmware_protocols.novastar import (
    MIN_SIZE,
    Ack,
    DeviceType,
    Frame,
    NovastarCodec,
    StreamDecoder,
    encode,
)
from ledwatch.errors import UsageError

# (spec section, frame) for every complete example command package in the V1.9 spec.
SPEC_FRAMES: list[tuple[str, str]] = [
    ("2.1", "55 AA 00 32 FE 00 01 00 00 00 00 00 00 00 00 0A 00 01 91 56"),
    ("2.2", "AA 55 00 5D 00 FE 00 00 00 00 01 00 10 00 00 05 00 00 C6 56"),
    (
        "3.1.1",
        "AA 55 00 32 00 FE 01 00 00 00 00 00 00 00 00 0A 00 01 80 36 00 B1 00 00 00 00 00 00 00"
        " 08 01 04 04 05 00 10 32 54 76 00 00 00 00 E4 00 00 00 00 00 00 FF 01 00 04 00 00 00 00"
        " 00 B2 80 80 80 80 80 B1 80 80 80 80 80 80 80 80 00 00 00 00 00 00 00 00 00 03"
        + " FF" * 16
        + " 00" * 174
        + " D8 72",
    ),
    ("3.1.1", "55 AA 00 32 FE 00 01 00 00 00 00 00 00 00 00 0A 02 00 92 56"),
    ("3.1.1", "AA 55 00 32 00 FE 01 00 00 00 00 00 00 00 00 0A 02 00 80 48 5A 57"),
    ("3.1.1", "55 AA 00 32 FE 00 01 00 00 00 00 00 03 00 00 0A 01 00 94 56"),
    ("3.1.1", "AA 55 00 32 00 FE 01 00 00 00 00 00 03 00 00 0A 01 00 A9 3D 57"),
    ("3.1.2", "55 AA 00 16 FE 00 00 00 00 00 00 00 17 00 00 02 01 00 83 56"),
    ("3.1.2", "AA 55 00 16 00 FE 00 00 00 00 00 00 17 00 00 02 01 00 00 83 56"),
    ("3.1.2", "AA 55 00 16 00 FE 00 00 00 00 00 00 17 00 00 02 01 00 01 84 56"),
    ("3.2", "55 AA 00 5D FE 00 00 00 00 00 01 00 10 00 00 05 01 00 00 C7 56"),
    ("3.3", "55 AA 00 14 FE 00 01 00 00 00 00 00 01 00 00 02 05 00 70 56"),
    ("3.3", "AA 55 00 14 00 FE 01 00 00 00 00 00 01 00 00 02 05 00 FF FF FF FF FF 6B 5B"),
    ("3.3", "55 AA 00 15 FE 00 01 00 00 00 01 00 01 00 00 02 05 00 80 80 80 80 80 F2 58"),
    ("3.3", "AA 55 00 15 00 FE 01 00 00 00 01 00 01 00 00 02 00 00 6D 56"),
    ("3.3", "55 AA 00 15 FE 00 01 00 00 00 01 00 01 00 00 02 01 00 80 EE 56"),
    ("3.3", "55 AA 00 15 FE 00 01 00 FF FF 01 00 01 00 00 02 05 00 80 80 80 80 80 F0 5A"),
    ("3.3", "AA 55 00 15 00 FE 01 00 FF FF 01 00 01 00 00 02 00 00 6B 58"),
    ("3.3", "55 AA 00 15 FE 00 01 FF FF FF 01 00 01 00 00 02 05 00 80 80 80 80 80 EF 5B"),
    ("3.3", "AA 55 00 15 00 FE 01 FF FF FF 01 00 01 00 00 02 00 00 6A 59"),
    ("3.4", "55 AA 00 32 FE 00 00 00 00 00 01 00 02 00 00 01 01 00 01 8B 56"),
    ("3.4", "AA 55 00 32 00 FE 00 00 00 00 01 00 02 00 00 01 00 00 89 56"),
    ("3.5.1", "55 AA 00 15 FE 00 01 00 00 00 00 00 00 00 00 02 01 00 6C 56"),
    ("3.5.1", "AA 55 00 15 00 FE 01 00 00 00 00 00 00 00 00 02 01 00 1C 88 56"),
    ("3.6", "55 AA 00 15 FE 00 00 00 00 00 00 00 04 00 10 04 04 00 84 56"),
    ("3.6", "AA 55 00 15 00 FE 00 00 00 00 00 00 04 00 10 04 04 00 04 03 00 00 8B 56"),
    ("3.7.2", "AA 55 02 32 00 FE 00 00 00 00 00 00 02 00 00 00 02 00 01 00 8C 56"),
    ("3.7.3", "55 AA 00 32 FE 00 02 00 00 00 00 00 02 00 00 00 02 00 8B 56"),
    ("3.7.3", "AA 55 00 32 00 FE 02 00 00 00 00 00 02 00 00 00 02 00 01 81 0D 57"),
    (
        "3.8.2",
        "55 AA 00 15 FE 00 02 00 00 00 01 00 00 00 00 06 07 00 00 00 00 00 55 AA 82 F9 57",
    ),
    ("3.8.2", "AA 55 00 15 00 FE 02 00 00 00 01 00 00 00 00 06 00 00 71 56"),
    (
        "3.8.2",
        "AA 55 00 15 00 FE 02 00 00 00 00 00 00 00 00 06 07 00 AA 55 82 25 81 00 28 C6 58",
    ),
    ("3.8.3", "55 AA 00 15 FE 00 02 00 00 00 00 00 00 00 00 06 05 00 75 56"),
    ("3.8.3", "AA 55 00 15 00 FE 02 00 00 00 00 00 00 00 00 06 05 00 01 02 80 5F E1 38 58"),
    ("3.8.4", "55 AA 00 5B FE 00 00 00 00 00 00 00 0F 00 00 02 02 00 C1 56"),
    ("3.8.5", "55 AA 00 5B FE 00 00 00 00 00 01 00 00 00 00 0A 01 00 7D 37 57"),
    ("3.8.5", "AA 55 00 5B 00 FE 00 00 00 00 00 00 00 00 00 0A 01 00 7D 36 57"),
    ("3.9", "AA 55 00 32 00 FE 01 00 00 00 00 00 00 00 00 00 06 00 05 41 04 02 00 01 D9 56"),
    ("3.12.1", "55 AA 00 80 FE 00 01 00 FF FF 01 00 01 01 00 02 01 00 02 DA 58"),
    ("3.12.2", "55 AA 00 80 FE 00 01 00 00 00 01 00 00 01 00 02 01 00 FF D8 57"),
    ("3.13", "55 AA 00 7F FE 00 01 00 FF FF 01 00 51 00 00 02 01 00 00 26 59"),
    ("3.14", "AA 55 00 AA 00 FE 00 00 00 00 00 00 02 00 00 00 02 00 01 00 02 57"),
    ("3.15", "55 AA 00 15 FE 00 01 FF FF FF 01 00 11 00 00 01 01 00 11 8B 59"),
    ("3.16", "AA 55 00 32 00 FE 00 00 00 00 00 00 06 00 10 02 02 00 30 01 D0 56"),
    ("3.17", "55 AA 00 32 FE 00 01 00 00 00 00 00 42 00 00 0A 10 00 E2 56"),
    (
        "3.17",
        "AA 55 00 32 00 FE 01 00 00 00 00 00 42 00 00 0A 10 00 88 88 88 88 88 88 88 88"
        " F8 F0 F0 FF F0 F0 F0 FF C8 62",
    ),
    ("3.18", "AA 55 00 32 00 FE 00 00 00 00 00 00 4D 00 00 02 01 00 02 D7 56"),
    ("3.19", "55 AA 00 32 FE 00 00 00 00 00 01 00 23 00 00 02 01 00 05 B1 56"),
    ("3.20.1", "55 AA 00 F2 FE 00 01 00 00 00 01 00 74 00 00 01 01 00 04 C1 57"),
    ("3.20.2", "55 AA 00 03 FE 00 01 00 00 00 00 00 10 30 00 03 10 00 AA 56"),
]

# Three frames printed in the spec whose checksum is wrong (typos in V1.9): refused.
SPEC_ERRATA: list[tuple[str, str]] = [
    ("3.7.2", "55 AA 00 32 FE 00 00 00 00 00 00 00 02 00 00 00 02 00 87 56"),  # sum says 89 56
    ("3.8.4", "AA 55 00 5B 00 FE 00 00 00 00 00 00 0F 00 00 02 02 00 38 80 7C 57"),
    ("3.12.1", "AA 55 00 80 00 FE 01 00 00 00 01 00 01 01 00 02 00 00 D7 58"),
]

IDS = [f"{sec}#{i}" for i, (sec, _) in enumerate(SPEC_FRAMES)]
FRAMES = [bytes.fromhex(h) for _, h in SPEC_FRAMES]


def test_the_two_frames_of_chapter_2() -> None:
    """Spec 2.1 / 2.2 worked examples, field by field."""
    codec = NovastarCodec()
    used, req = codec.decode(bytes.fromhex(SPEC_FRAMES[0][1]))
    assert used == MIN_SIZE and req is not None
    assert not req.is_reply and req.serial == 0x32 and req.src == 0xFE and req.dst == 0
    assert req.device_type == DeviceType.RECEIVING_CARD and req.code == 0
    assert req.address == ns.MONITORING_BLOCK_ADDR and req.length == 0x100 and req.data == b""
    assert req == ns.read_request(0x32, DeviceType.RECEIVING_CARD, 0, 0, 0x0A000000, 0x100)
    used, rep = codec.decode(bytes.fromhex(SPEC_FRAMES[1][1]))
    assert used == MIN_SIZE and rep is not None
    assert rep.is_reply and rep.ack == Ack.OK and rep.serial == 0x5D and rep.dst == 0xFE
    assert rep.code == 1 and rep.address == 0x05000010 and rep.length == 0
    # The 3.2 write request it answers, rebuilt and answered through the public API.
    wreq = ns.write_request(0x5D, DeviceType.SENDING_CARD, 0, 0, 0x05000010, b"\x00")
    assert encode(wreq) == bytes.fromhex(
        "55 AA 00 5D FE 00 00 00 00 00 01 00 10 00 00 05 01 00 00 C7 56"
    )
    assert ns.reply_to(wreq) == rep
    assert ns.checksum(bytes.fromhex(SPEC_FRAMES[0][1])[2:-2]) == 0x5691


@pytest.mark.parametrize("raw", FRAMES, ids=IDS)
def test_spec_frame_whole_and_reencoded(raw: bytes) -> None:
    codec = NovastarCodec()
    used, frame = codec.decode(raw)
    assert used == len(raw) and frame is not None
    assert encode(frame) == raw
    assert codec.noise_bytes == 0 and codec.bad_checksums == 0


@pytest.mark.parametrize("raw", FRAMES, ids=IDS)
def test_spec_frame_split_at_every_byte(raw: bytes) -> None:
    expected = NovastarCodec().decode(raw)[1]
    for cut in range(1, len(raw)):
        dec = StreamDecoder()
        assert dec.feed(raw[:cut]) == []
        assert dec.feed(raw[cut:]) == [expected]
        assert dec.buffered == 0 and dec.codec.noise_bytes == 0
    dec = StreamDecoder()
    got = [f for b in raw for f in dec.feed(bytes([b]))]
    assert got == [expected]


@pytest.mark.parametrize("raw", FRAMES, ids=IDS)
def test_spec_frame_with_garbage_before_and_after(raw: bytes) -> None:
    before = b"\x00\x55\x13\xaa\xaa\x55\x55"  # includes false heads
    after = b"\x99\xaa"
    dec = StreamDecoder()
    frames = dec.feed(before + raw + after)
    assert [encode(f) for f in frames] == [raw]
    assert dec.codec.noise_bytes == len(before) + 1  # the 0x99
    assert dec.buffered == 1  # a trailing "aa" may be half a head: kept, not yet noise


def test_bad_checksum_refused_counted_and_next_frame_recovered() -> None:
    good = FRAMES[4]
    bad = bytearray(FRAMES[3])
    bad[-1] ^= 0x01
    dec = StreamDecoder()
    frames = dec.feed(bytes(bad) + good)
    assert [encode(f) for f in frames] == [good]
    assert dec.codec.bad_checksums == 1
    assert dec.codec.noise_bytes == len(bad)


@pytest.mark.parametrize("sec,hexes", SPEC_ERRATA)
def test_spec_errata_refused(sec: str, hexes: str) -> None:
    dec = StreamDecoder()
    assert dec.feed(bytes.fromhex(hexes) + FRAMES[0]) == [NovastarCodec().decode(FRAMES[0])[1]]
    assert dec.codec.bad_checksums >= 1


def test_corrupt_length_does_not_stall() -> None:
    """A header claiming 0xFFFF bytes is noise; the frame behind it is found at once."""
    bogus = bytearray(FRAMES[4])
    bogus[16:18] = b"\xff\xff"
    dec = StreamDecoder()
    assert [encode(f) for f in dec.feed(bytes(bogus[:18]) + FRAMES[0])] == [FRAMES[0]]


def test_failed_read_without_data_is_decoded() -> None:
    req = ns.read_request(7, DeviceType.RECEIVING_CARD, 1, 3, ns.MONITORING_BLOCK_ADDR, 0x100)
    short = Frame(
        is_reply=True, ack=Ack.TIMEOUT, serial=7, src=0, dst=0xFE, device_type=1, port=1,
        board=3, code=0, address=req.address, length=0x100, data=b"",
    )
    full = ns.reply_to(req, ack=Ack.TIMEOUT)
    assert full.data == bytes(0x100)
    dec = StreamDecoder()
    assert dec.feed(encode(short) + encode(full)) == [short, full]


def test_frame_validation_raises_usage_error() -> None:
    with pytest.raises(UsageError, match="serial"):
        ns.read_request(256, 1, 0, 0, 0, 1)
    with pytest.raises(UsageError, match="board"):
        ns.read_request(1, 1, 0, 0x10000, 0, 1)
    with pytest.raises(UsageError, match="code"):
        Frame(False, 0, 1, 0xFE, 0, 1, 0, 0, 2, 0, 0)
    with pytest.raises(UsageError, match="read request carries no data"):
        Frame(False, 0, 1, 0xFE, 0, 1, 0, 0, 0, 0, 1, b"\x01")
    with pytest.raises(UsageError, match="length"):
        Frame(False, 0, 1, 0xFE, 0, 1, 0, 0, 1, 0, 2, b"\x01")
    with pytest.raises(UsageError):
        ns.reply_to(ns.reply_to(ns.read_request(1, 1, 0, 0, 0, 1), b"\x00"))
    with pytest.raises(UsageError):
        ns.write_request(1, 1, 0, 0, 0, "text")  # type: ignore[arg-type]


frames_st = st.builds(
    lambda is_reply, ack, serial, dt, port, board, code, address, data: Frame(
        is_reply=is_reply,
        ack=ack if is_reply else 0,
        serial=serial,
        src=0 if is_reply else 0xFE,
        dst=0xFE if is_reply else 0,
        device_type=dt,
        port=port,
        board=board,
        code=code,
        address=address,
        length=len(data) if (code == 0) == is_reply else (0 if is_reply else len(data)),
        data=data if (code == 0) == is_reply else b"",
    ),
    st.booleans(),
    st.integers(0, 255),
    st.integers(0, 255),
    st.integers(0, 2),
    st.integers(0, 255),
    st.integers(0, 0xFFFF),
    st.integers(0, 1),
    st.integers(0, 0xFFFFFFFF),
    st.binary(max_size=300),
)
noise_st = st.binary(max_size=64).filter(
    lambda b: b"\x55\xaa" not in b and b"\xaa\x55" not in b and not b.endswith((b"\x55", b"\xaa"))
)


@settings(max_examples=300, deadline=None)
@given(frames=st.lists(frames_st, min_size=1, max_size=4), noise=noise_st, cut=st.integers(0, 2000))
def test_roundtrip_with_noise_and_any_split(frames: list[Frame], noise: bytes, cut: int) -> None:
    wire = noise + b"".join(encode(f) for f in frames)
    cut = min(cut, len(wire))
    dec = StreamDecoder()
    got = dec.feed(wire[:cut]) + dec.feed(wire[cut:])
    assert got == frames
    assert dec.codec.noise_bytes == len(noise)


@settings(max_examples=500, deadline=None)
@given(garbage=st.binary(max_size=600), chunk=st.integers(1, 64))
def test_random_garbage_never_raises(garbage: bytes, chunk: int) -> None:
    dec = StreamDecoder()
    frames: list[Frame] = []
    for i in range(0, len(garbage), chunk):
        frames += dec.feed(garbage[i : i + chunk])
    consumed = sum(f.size for f in frames) + dec.codec.noise_bytes
    assert consumed + dec.buffered == len(garbage)
    # Flushing with zeros resolves any false head (length is capped) and still never raises.
    dec.feed(bytes(ns.MAX_DATA_LENGTH + MIN_SIZE))
    assert dec.buffered < MIN_SIZE


def test_check_reply() -> None:
    from firmware_protocols.errors import NovastarProtocolError

    req = ns.read_request(9, DeviceType.RECEIVING_CARD, 1, 2, ns.MONITORING_BLOCK_ADDR, 4)
    ok = ns.reply_to(req, b"\x80\x48\x00\xb2")
    assert ns.check_reply(req, ok, require_ok=True) is ok
    other = ns.reply_to(ns.read_request(9, 1, 1, 3, ns.MONITORING_BLOCK_ADDR, 4), bytes(4))
    with pytest.raises(NovastarProtocolError, match="board"):
        ns.check_reply(req, other)
    with pytest.raises(NovastarProtocolError, match="not a reply"):
        ns.check_reply(req, req)
    dark = ns.reply_to(req, ack=Ack.TIMEOUT)
    assert ns.check_reply(req, dark) is dark
    with pytest.raises(NovastarProtocolError, match=r"ACK 0x01 \(TIMEOUT\)"):
        ns.check_reply(req, dark, require_ok=True)
