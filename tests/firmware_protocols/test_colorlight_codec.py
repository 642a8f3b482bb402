"""Colorlight codec: string-protocol frames whole, split at every byte, with noise and bad
frames; the discovery probe and answer; the monitoring records."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_protocols import colorlight as cl
from firmware_protocols.colorlight import (
    BadFrame,
    ColorlightCodec,
    ErrorCode,
    Frame,
    Op,
    Request,
    Response,
    StreamDecoder,
    encode,
)
from firmware_protocols.colorlight import records as rec
from firmware_protocols.colorlight.discovery import MODELS_B, DeviceType
from ledwatch.errors import UsageError

REQ = Request(1, "sndinfo", 1, Op.GET)
RESP = Response(7, "rcv_probe", 1, Op.GET, 0, {"port": 1, "rcv": 2, "linked": 1})
# Frames as the public client builds them (frames.ts: `<` + compact JSON array + `>`).
FRAMES: list[bytes] = [
    b'<[{"id":1,"cmd":"sndinfo","sid":1,"op":"get"}]>',
    b'<[{"id":2,"cmd":"bright","sid":255,"op":"set","data":{"brt":5000,"gid":1}}]>',
    encode([RESP]),
    encode([REQ, RESP]),
    encode([Response(3, "sn", 1, Op.GET, 0, {"serial": "<a>\u00e9"})]),  # escaped delimiters
]


def decode_all(data: bytes) -> tuple[list[Frame | BadFrame], ColorlightCodec]:
    dec = StreamDecoder()
    return dec.feed(data), dec.codec


def test_encode_is_the_documented_frame() -> None:
    assert encode([REQ]) == FRAMES[0]
    assert encode([Response(1, "sn", 1, Op.GET, 0, {"s": "<>"})]) == (
        b'<[{"id":1,"cmd":"sn","sid":1,"op":"get","code":0,"data":{"s":"\\u003c\\u003e"}}]>'
    )


@pytest.mark.parametrize("raw", FRAMES)
def test_whole_frame(raw: bytes) -> None:
    used, frame = ColorlightCodec().decode(raw)
    assert used == len(raw) and isinstance(frame, Frame) and frame.valid
    assert encode(list(frame.valid)) == raw or b"\\u003c" in raw


def test_round_trip_keeps_values() -> None:
    (frame,), _ = decode_all(FRAMES[4])
    assert isinstance(frame, Frame)
    (item,) = frame.items
    assert isinstance(item, Response) and item.data == {"serial": "<a>\u00e9"}


@pytest.mark.parametrize("raw", FRAMES)
def test_split_at_every_byte(raw: bytes) -> None:
    for cut in range(1, len(raw)):
        dec = StreamDecoder()
        assert dec.feed(raw[:cut]) == []
        (frame,) = dec.feed(raw[cut:])
        assert isinstance(frame, Frame) and frame.size == len(raw)
        assert dec.buffered == 0 and dec.codec.noise_bytes == 0


def test_garbage_and_false_heads_around() -> None:
    noise = b"\x00\xff junk <x <<[<"  # false heads: '<x', '<<', '<[' broken by another '<'
    frames, codec = decode_all(noise + FRAMES[0] + b">>garbage" + FRAMES[1] + b"\x01<")
    assert [f.size for f in frames if isinstance(f, Frame)] == [len(FRAMES[0]), len(FRAMES[1])]
    assert codec.frames == 2 and codec.bad_frames == 0 and codec.noise_bytes > 0


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"<[not json]>", ErrorCode.INVALID_JSON),
        (b'<{"id":1}>', ErrorCode.ROOT_NOT_ARRAY),
        (b"<[]>", ErrorCode.EMPTY_ARRAY),
        (b"<[\xff\xfe]>", ErrorCode.INVALID_JSON),
    ],
)
def test_bad_frames_refused_counted_and_next_recovered(raw: bytes, code: ErrorCode) -> None:
    frames, codec = decode_all(raw + FRAMES[2])
    assert isinstance(frames[0], BadFrame) and frames[0].code is code
    assert isinstance(frames[1], Frame) and frames[1].valid == (RESP,)
    assert codec.bad_frames == 1


def test_bad_elements_carry_their_codes() -> None:
    (frame,), _ = decode_all(b'<[1,{"id":1},{"id":1,"cmd":2,"sid":1,"op":"get"},'
                             b'{"id":1,"cmd":"x","sid":1,"op":"get","data":[1]}]>')  # fmt: skip
    assert isinstance(frame, Frame)
    assert frame.items == (ErrorCode.ELEMENT_NOT_OBJECT, ErrorCode.MISSING_REQUIRED,
                           ErrorCode.INVALID_PARAMS, ErrorCode.INVALID_PARAMS)  # fmt: skip
    assert frame.valid == ()


def test_a_head_without_end_does_not_stall() -> None:
    codec = ColorlightCodec(max_frame_len=64)
    dec = StreamDecoder(codec)
    assert dec.feed(b"<[" + b"1," * 100) == []  # longer than the maximum: noise, not a wait
    (frame,) = dec.feed(FRAMES[0])
    assert isinstance(frame, Frame) and codec.noise_bytes >= 64


def test_reset_drops_half_a_frame_as_noise() -> None:
    dec = StreamDecoder()
    dec.feed(FRAMES[0][:10])
    dec.reset()
    assert dec.buffered == 0 and dec.codec.noise_bytes == 10
    assert len(dec.feed(FRAMES[0])) == 1


def test_datagram_half_frame_is_noise() -> None:
    codec = ColorlightCodec()
    frames = cl.decode_datagram(codec, FRAMES[0] + FRAMES[1][:5])
    assert len(frames) == 1 and codec.noise_bytes == 5


@pytest.mark.parametrize(
    "build",
    [
        lambda: Request(-1, "sn", 1, Op.GET),
        lambda: Request(1, "", 1, Op.GET),
        lambda: Request(1, "sn", 0, Op.GET),
        lambda: Request(1, "sn", 256, Op.GET),
        lambda: Request(1, "sn", 1, "put"),
        lambda: Response(1, "sn", 1, Op.GET, -5),
        lambda: encode([]),
    ],
)
def test_encoders_refuse_what_cannot_go_on_the_wire(build) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UsageError):
        build()


def test_check_reply() -> None:
    req = Request(5, "sndinfo", 1, Op.GET)
    ok = Response(5, "sndinfo", 1, Op.GET, 0, {})
    assert cl.check_reply(req, ok) is ok
    with pytest.raises(cl.ColorlightProtocolError):
        cl.check_reply(req, Response(6, "sndinfo", 1, Op.GET))
    with pytest.raises(cl.ColorlightProtocolError) as info:
        cl.check_reply(req, Response(5, "sndinfo", 1, Op.GET, 9010))
    assert info.value.code == 9010 and "CMD_UNSUPPORTED" in str(info.value)


# -- discovery ---------------------------------------------------------------------------
def test_probe_bytes_are_the_documented_ones() -> None:
    assert cl.PROBE.hex(" ") == "eb 00 00 09 01 55 ee cc 00" and cl.is_probe(cl.PROBE)
    assert not cl.is_probe(cl.PROBE[:-1])


def test_answer_decoding() -> None:
    raw = bytearray(30)
    raw[0], raw[22], raw[23] = 0xEA, DeviceType.PROCESSOR, 35
    answer = cl.decode_answer(bytes(raw))
    assert answer is not None and answer.protocol == "B" and answer.model == "U9 Max"
    sender = cl.decode_answer(cl.encode_answer(DeviceType.SENDING_CARD, 35))
    assert sender is not None and sender.protocol == "A" and sender.model is None
    assert cl.decode_answer(bytes(raw[:23])) is None  # shorter than 24 bytes
    raw[0] = 0xEB
    assert cl.decode_answer(bytes(raw)) is None
    assert MODELS_B[24] == "X100 Pro-4U" and 17 not in MODELS_B
    with pytest.raises(UsageError):
        cl.encode_answer(2, 300)


# -- records -----------------------------------------------------------------------------
def test_records_decode_the_documented_keys() -> None:
    s = rec.decode_sndinfo({"model": "X100", "ver": "1.0", "brt": 7550, "ct": 6500, "temp": 41.5,
                            "black": 0, "freeze": 1, "tp": 0, "ports": 4})
    assert s == rec.SenderInfo("X100", "1.0", 75.5, 6500, 41.5, False, True, 0, 4)
    eth = rec.decode_snd_eth({"n": 2, "ports": [{"idx": 2, "linked": 0}, {"idx": 1, "linked": 1}]})
    assert eth == rec.EthernetPorts(2, (True, False))
    m = rec.decode_mfc_probe({"port": 1, "cardCount": 1, "temp": 33, "hwVer": "1", "swVer": "2"})
    assert m is not None and m.temp_c == 33.0
    r = rec.decode_rcv_probe({"port": 1, "rcv": 2, "type": "5A", "w": 128, "h": 64,
                              "linked": 1, "runtime": 99, "ver": "13.1"})  # fmt: skip
    assert r == rec.ReceiverCard(1, 2, "5A", 128, 64, True, 99, "13.1")
    faults = rec.decode_pr_rcv_state({"port": 1, "modules": [{"rcv": 1, "err": 2}, {"rcv": "x"}]})
    assert faults is not None and faults.per_card == {1: 2}
    video = rec.decode_pr_video({"srcTotal": 2, "sources": [{"src": 2, "signal": 0},
                                                            {"src": 1, "signal": 1}]})  # fmt: skip
    assert video is not None and video.signal == (True, False) and video.any_signal is True


def test_records_are_none_for_what_is_missing_or_wrong() -> None:
    assert rec.decode_sndinfo(None) is None and rec.decode_rcv_probe([1]) is None
    s = rec.decode_sndinfo({"brt": 20000, "temp": "hot", "black": 3, "ports": [1, 2]})
    assert s is not None and s.brightness_pct is None and s.temp_c is None and s.blackout is None
    assert s.ports == 2
    assert rec.decode_pr_video({"sources": "none"}) == rec.VideoInputs(None, ())
    assert rec.VideoInputs(None, (None,)).any_signal is None


# -- properties --------------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_never_raise(data: bytes) -> None:
    dec = StreamDecoder()
    dec.feed(data)
    dec.feed(FRAMES[0])


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.sampled_from(FRAMES), min_size=1, max_size=4),
    st.binary(max_size=40).filter(lambda b: b"<" not in b),
    st.integers(min_value=0, max_value=400),
)
def test_frames_survive_noise_and_any_split(frames: list[bytes], noise: bytes, cut: int) -> None:
    stream = noise + b"".join(f + noise for f in frames)
    cut = min(cut, len(stream))
    dec = StreamDecoder()
    out = dec.feed(stream[:cut]) + dec.feed(stream[cut:])
    assert [f.size for f in out if isinstance(f, Frame)] == [len(f) for f in frames]
