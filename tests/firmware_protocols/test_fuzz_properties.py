"""The invariants of bench/fuzz_codecs.py as hypothesis properties, on every codec.

Bounded (`max_examples`) so the file runs in seconds; the fuzz script runs the same
invariants a million times.
"""

from __future__ import annotations

import json
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware_protocols import modbus_psu as mp
from firmware_protocols import novastar as ns
from firmware_protocols.dissect import FrameItem, dissect_novastar
from firmware_protocols.novastar import MAX_DATA_LENGTH, Frame, NovastarCodec, StreamDecoder

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def frames(draw: st.DrawFn) -> Frame:
    """A frame in the codec's accepted domain: requests from FE, replies to FE, length
    within MAX_DATA_LENGTH (the NovastarCodec docstring lists what else is noise)."""
    is_reply = draw(st.booleans())
    code = draw(st.integers(0, 1))
    carries = (code == ns.CODE_READ) == is_reply
    data = draw(st.binary(max_size=300)) if carries else b""
    if is_reply:
        length = len(data) if carries else 0
    else:
        length = len(data) if carries else draw(st.integers(0, MAX_DATA_LENGTH))
    return Frame(
        is_reply=is_reply,
        ack=draw(st.integers(0, 255)) if is_reply and not carries else 0,
        serial=draw(st.integers(0, 255)),
        src=draw(st.integers(0, 255)) if is_reply else ns.COMPUTER_ADDRESS,
        dst=ns.COMPUTER_ADDRESS if is_reply else draw(st.integers(0, 255)),
        device_type=draw(st.integers(0, 255)),
        port=draw(st.integers(0, 255)),
        board=draw(st.integers(0, 0xFFFF)),
        code=code,
        address=draw(st.integers(0, 0xFFFFFFFF)),
        length=length,
        data=data,
    )


def decode_all(stream: bytes) -> list[tuple[int, int, Frame]]:
    """One-shot decode with positions; a frame still waiting at the end is given up."""
    codec = NovastarCodec()
    out = []
    pos = 0
    while pos < len(stream):
        used, frame = codec.decode(stream[pos:])
        if frame is not None:
            out.append((pos, used, frame))
        pos += used or 1
    return out


@FAST
@given(frame=frames(), cut=st.integers(0, 400))
def test_novastar_round_trip_whole_and_split(frame: Frame, cut: int) -> None:
    raw = ns.encode(frame)
    assert NovastarCodec().decode(raw) == (len(raw), frame)
    dec = StreamDecoder()
    assert dec.feed(raw[:cut]) + dec.feed(raw[cut:]) == [frame]
    assert dec.buffered == 0


@FAST
@given(data=st.binary(max_size=600), kind=st.sampled_from(["bytes", "bytearray", "memoryview"]))
def test_novastar_decode_never_raises_and_accounts_for_every_byte(data: bytes, kind: str) -> None:
    buf = {"bytes": data, "bytearray": bytearray(data), "memoryview": memoryview(data)}[kind]
    used, frame = NovastarCodec().decode(buf)
    assert 0 <= used <= len(data)
    if frame is not None:
        assert ns.encode(frame)[:11] == data[:11]  # head .. code as on the wire
    dec = StreamDecoder()
    got = dec.feed(data)
    assert sum(f.size for f in got) + dec.codec.noise_bytes + dec.buffered == len(data)


head_soup = st.lists(st.sampled_from([0x55, 0xAA, 0xFE, 0x00, 0x01, 0x0A, 0xFF]),
                     max_size=80).map(bytes)  # fmt: skip


@FAST
@given(
    garbage=st.one_of(st.binary(max_size=80), head_soup),
    frame=frames(),
    copies=st.integers(1, 3),
    chunk=st.integers(1, 64),
)
def test_novastar_stream_recovers_the_frames_after_garbage(
    garbage: bytes, frame: Frame, copies: int, chunk: int
) -> None:
    """The codec's guarantee: a valid frame at offset p comes out intact, unless p lies
    inside a frame accepted before it (garbage forming a frame with a valid checksum)."""
    raw = ns.encode(frame)
    stream = garbage + raw * copies
    decoded = decode_all(stream)
    at = {p: f for p, _, f in decoded}
    for k in range(copies):
        p = len(garbage) + k * len(raw)
        assert at.get(p) == frame or any(q < p < q + s for q, s, _ in decoded)
    # Chunking changes nothing.
    dec = StreamDecoder()
    got = [f for i in range(0, len(stream), chunk) for f in dec.feed(stream[i : i + chunk])]
    assert got == [f for _, _, f in decoded[: len(got)]]


@FAST
@given(data=st.data(), name=st.sampled_from(mp.available_maps()))
def test_modbus_psu_decode_of_any_register_words(data: st.DataObject, name: str) -> None:
    regmap = mp.load_register_map(name)
    words: dict[mp.RegisterType, dict[int, int]] = {}
    for table, address in mp._spans(regmap):
        word = data.draw(st.one_of(st.none(), st.integers(0, 0xFFFF),
                                   st.integers(-(2**40), 2**40)))  # fmt: skip
        if word is not None:
            words.setdefault(table, {})[address] = word
    reading = mp.decode_reading(regmap, words)
    for key in mp.MEASUREMENTS:
        value = getattr(reading, key)
        assert value is None or (isinstance(value, int | float) and math.isfinite(value))
    assert reading.ok in (None, True, False)
    assert reading.faults <= {f.value for f in mp.PsuFault}
    failing = {f.value for f, s in regmap.faults.items() if s.severity is mp.Severity.FAULT}
    if reading.faults & failing:
        assert reading.ok is False


@FAST
@given(parts=st.lists(st.one_of(frames().map(ns.encode), st.binary(max_size=40), head_soup),
                      max_size=5))  # fmt: skip
def test_dissector_never_raises_covers_every_byte_and_agrees_with_the_codec(
    parts: list[bytes],
) -> None:
    stream = b"".join(parts)
    items = dissect_novastar(stream)
    seen = bytearray(len(stream))
    for it in items:
        seen[it.offset : it.offset + len(it.raw)] = b"\x01" * len(it.raw)
        json.dumps(it.to_json(), allow_nan=False)
        assert it.to_text()
    assert all(seen)
    assert [(it.offset, it.frame) for it in items if isinstance(it, FrameItem)] == [
        (p, f) for p, _, f in decode_all(stream)
    ]
