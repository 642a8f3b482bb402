"""Fuzz every codec with random and mutated input; exit 1 on any broken invariant.

    .venv/bin/python bench/fuzz_codecs.py --count 1000000 --seed 1
    .venv/bin/python bench/fuzz_codecs.py --seed 1 --index 123456   # rerun one iteration

Iteration i runs case CASES[i % len(CASES)] on input drawn from Random((seed, i)), so an
iteration is reproducible from (seed, index) alone; a violation prints that pair, the
case and the input hex, and `--index` reruns it.

Invariants checked (a violation is any of these failing):

1. Nothing but `ledwatch.errors.ProtocolError` escapes a decoder, the stream decoder or
   the dissector (none is expected: the codec contract is "noise counted, not raised").
2. Accounting: frames' bytes + noise bytes + bytes still buffered == bytes fed, whatever
   the chunking; every frame decoded re-encodes to exactly the bytes it came from.
3. Chunking does not matter: `StreamDecoder.feed` in random chunks yields the frames a
   one-shot `NovastarCodec.decode` loop yields.
4. Recovery, as `NovastarCodec` guarantees it (noise and refused heads are skipped one
   byte at a time, never more): a valid frame placed in the stream at offset p comes
   out intact at p, unless p lies inside a frame the decoder accepted before it (garbage
   that happens to form a frame with a valid checksum, 16 bits of luck, which may then
   swallow what follows; counted as `swallowed`). "Valid" means inside the codec's
   accepted domain: requests from FE, replies to FE, length <= MAX_DATA_LENGTH, and not
   a failed-read reply whose first two data bytes equal the header checksum (that one
   reads as the short "failed read without data" form; counted as `ambiguous`).
   At the end of the input a frame still waiting for bytes is given up one byte at a
   time, as it is once the missing bytes never come (the driver's `reset()`).
5. Modbus PSU decoding of any register words gives None or finite numbers, `ok` in
   (None, True, False), known fault names, and `ok` False when a fault-severity bit is set.
6. The dissector covers every input byte with an item, finds the frames the codec finds,
   and its JSON is serialisable without NaN.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from firmware_protocols import modbus_psu as mp
from firmware_protocols import novastar as ns
from firmware_protocols.dissect import ErrorItem, FrameItem, dissect_novastar
from firmware_protocols.novastar import (
    MAX_DATA_LENGTH,
    Frame,
    NovastarCodec,
    StreamDecoder,
    encode,
)
from ledwatch.errors import ProtocolError

CHUNK = 5_000  # iterations per work unit
PROGRESS_EVERY = 100_000
KNOWN_ADDRESSES = (
    ns.MONITORING_BLOCK_ADDR, ns.RIBBON_CABLE_ADDR, ns.DVI_SIGNAL_ADDR, ns.BRIGHTNESS_ADDR,
    ns.INPUT_SOURCE_STATUS_ADDR, ns.CONTROLLER_MODEL_ADDR, ns.FIRMWARE_VERSION_ADDR,
    0x05000010, 0x02100006, 0x00000000,
)  # fmt: skip


class Violation(Exception):
    """An invariant broke; the message says which."""


@dataclass
class Stats:
    runs: int = 0
    frames_fed: int = 0
    frames_out: int = 0
    noise_bytes: int = 0
    bad_checksums: int = 0
    swallowed: int = 0
    ambiguous: int = 0
    protocol_errors: int = 0
    below_n_minus_1: int = 0
    reserved_set: int = 0

    def add(self, other: Stats) -> None:
        for k in vars(self):
            setattr(self, k, getattr(self, k) + getattr(other, k))


@dataclass
class Result:
    stats: dict[str, Stats] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    done: int = 0


# -- generators --------------------------------------------------------------------------
def random_frame(rng: random.Random) -> Frame:
    """A frame inside the codec's accepted domain (see invariant 4)."""
    is_reply = rng.random() < 0.5
    code = rng.randrange(2)
    carries = (code == ns.CODE_READ) == is_reply
    r = rng.random()
    n = rng.randrange(0, 8) if r < 0.6 else rng.randrange(0, 300) if r < 0.97 else (
        rng.randrange(0, MAX_DATA_LENGTH + 1))  # fmt: skip
    ack = 0 if not is_reply or rng.random() < 0.8 else rng.randrange(1, 256)
    data = rng.randbytes(n) if carries else b""
    length = n if carries else rng.choice((0, rng.randrange(MAX_DATA_LENGTH + 1)))
    if is_reply and not carries:
        length = 0
    if is_reply and carries and ack and rng.random() < 0.3:
        data = b""  # a failed read answered without data
    address = rng.choice(KNOWN_ADDRESSES) if rng.random() < 0.5 else rng.getrandbits(32)
    return Frame(
        is_reply=is_reply,
        ack=ack,
        serial=rng.randrange(256),
        src=rng.randrange(256) if is_reply else ns.COMPUTER_ADDRESS,
        dst=ns.COMPUTER_ADDRESS if is_reply else rng.randrange(256),
        device_type=rng.randrange(3) if rng.random() < 0.9 else rng.randrange(256),
        port=rng.randrange(256),
        board=rng.randrange(0x10000),
        code=code,
        address=address,
        length=length,
        data=data,
    )


def unambiguous(raw: bytes) -> bool:
    used, frame = NovastarCodec().decode(raw)
    return used == len(raw) and frame is not None and encode(frame) == raw


def valid_frame(rng: random.Random, stats: Stats) -> bytes:
    while True:
        raw = encode(random_frame(rng))
        if unambiguous(raw):
            return raw
        stats.ambiguous += 1


def garbage(rng: random.Random, max_len: int = 64) -> bytes:
    n = rng.randrange(max_len + 1)
    kind = rng.random()
    if kind < 0.4:
        return rng.randbytes(n)
    if kind < 0.8:  # head-rich soup: many false heads and plausible header bytes
        return bytes(rng.choice((0x55, 0xAA, 0xFE, 0x00, 0x01, rng.randrange(256)))
                     for _ in range(n))  # fmt: skip
    # Ends in a prefix of a valid frame (header and all), the hardest garbage to resync.
    g = rng.randbytes(n // 2)
    f = encode(random_frame(rng))
    return g + f[: rng.randrange(1, len(f))]


# A stream case: (stream, [(offset, valid frame bytes expected there)]).
Stream = tuple[bytes, list[tuple[int, bytes]]]


def gen_random_bytes(rng: random.Random, st: Stats) -> Stream:
    return rng.randbytes(rng.randrange(400)), []


def gen_head_soup(rng: random.Random, st: Stats) -> Stream:
    return garbage(rng, 400), []


def _corrupt_then_good(rng: random.Random, st: Stats, op: int) -> Stream:
    bad = bytearray(valid_frame(rng, st))
    if op == 0:
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(bad))
            bad[i] ^= 1 << rng.randrange(8)
    elif op == 1:
        del bad[rng.randrange(1, len(bad)) :]
    elif op == 2:
        i = rng.randrange(len(bad) + 1)
        bad[i:i] = rng.randbytes(rng.randint(1, 8))
    else:
        bad[0:0] = bad[:2] * rng.randint(1, 3)
    good = valid_frame(rng, st)
    return bytes(bad) + good, [(len(bad), good)]


def gen_bitflip(rng: random.Random, st: Stats) -> Stream:
    return _corrupt_then_good(rng, st, 0)


def gen_truncated(rng: random.Random, st: Stats) -> Stream:
    return _corrupt_then_good(rng, st, 1)


def gen_insertion(rng: random.Random, st: Stats) -> Stream:
    return _corrupt_then_good(rng, st, 2)


def gen_dup_head(rng: random.Random, st: Stats) -> Stream:
    return _corrupt_then_good(rng, st, 3)


def gen_interleaved(rng: random.Random, st: Stats) -> Stream:
    out = bytearray()
    expected = []
    for _ in range(rng.randint(1, 4)):
        out += garbage(rng)
        f = valid_frame(rng, st)
        expected.append((len(out), f))
        out += f
    out += garbage(rng, 16)
    return bytes(out), expected


def gen_garbage_then_copies(rng: random.Random, st: Stats) -> Stream:
    g = garbage(rng, 128)
    f = valid_frame(rng, st)
    n = rng.randint(2, 4)
    return g + f * n, [(len(g) + k * len(f), f) for k in range(n)]


def gen_roundtrip(rng: random.Random, st: Stats) -> Stream:
    f = valid_frame(rng, st)
    return f, [(0, f)]


def gen_dissect(rng: random.Random, st: Stats) -> Stream:
    return rng.choice(STREAM_GENERATORS)(rng, st)


STREAM_GENERATORS: list[Callable[[random.Random, Stats], Stream]] = [
    gen_random_bytes, gen_head_soup, gen_bitflip, gen_truncated, gen_insertion, gen_dup_head,
    gen_interleaved, gen_garbage_then_copies, gen_roundtrip,
]  # fmt: skip


# -- checks ----------------------------------------------------------------------------
def decode_all(stream: bytes) -> tuple[list[tuple[int, int, Frame]], NovastarCodec]:
    """One-shot decode with positions; at the end, a waiting frame is given up byte by byte."""
    codec = NovastarCodec()
    view = memoryview(stream)
    out = []
    pos = 0
    while pos < len(stream):
        used, frame = codec.decode(view[pos:])
        if frame is not None:
            out.append((pos, used, frame))
        pos += used or 1
    return out, codec


def check_stream(rng: random.Random, st: Stats, stream: bytes, expected: list[tuple[int, bytes]],
                 dissect: bool = False) -> None:  # fmt: skip
    decoded, codec = decode_all(stream)
    for pos, size, frame in decoded:
        wire = bytearray(stream[pos : pos + size])
        # The reserved byte (offset 11) is not checked by the codec nor kept in a Frame
        # (spec 2.1 says nothing about its value); a sum checksum lets a corrupted one
        # through when another byte compensates, so compare with it cleared.
        if wire[11]:
            st.reserved_set += 1
            wire[11] = 0
            wire[-2:] = ns.checksum(wire[2:-2]).to_bytes(2, "little")
        if encode(frame) != wire:
            raise Violation(f"frame at {pos} does not re-encode to its {size} bytes")
    # Chunking must not matter (invariant 3) and every byte is accounted for (2).
    dec = StreamDecoder()
    got: list[Frame] = []
    i = 0
    while i < len(stream):
        step = rng.choice((1, 2, 7, 19, 64, len(stream)))
        got += dec.feed(stream[i : i + step])
        i += step
    if got != [f for _, _, f in decoded[: len(got)]]:
        raise Violation("StreamDecoder.feed in chunks differs from a one-shot decode")
    fed = sum(f.size for f in got) + dec.codec.noise_bytes + dec.buffered
    if fed != len(stream):
        raise Violation(f"accounting: frames+noise+buffered = {fed}, fed {len(stream)}")
    # Recovery (invariant 4).
    at = {pos: (size, frame) for pos, size, frame in decoded}
    intact = 0
    for p, raw in expected:
        hit = at.get(p)
        if hit is not None and encode(hit[1]) == raw:
            intact += 1
            continue
        if any(q < p < q + s for q, s, _ in decoded):
            st.swallowed += 1
            continue
        raise Violation(f"valid frame at offset {p} lost ({raw[:24].hex()}...)")
    if len(expected) > 1 and intact < len(expected) - 1:
        st.below_n_minus_1 += 1
    st.frames_fed += len(expected)
    st.frames_out += len(decoded)
    st.noise_bytes += codec.noise_bytes
    st.bad_checksums += codec.bad_checksums
    if dissect:
        check_dissect(stream, decoded)


def check_dissect(stream: bytes, decoded: list[tuple[int, int, Frame]]) -> None:
    items = dissect_novastar(stream)
    seen = bytearray(len(stream))
    for it in items:
        seen[it.offset : it.offset + len(it.raw)] = b"\x01" * len(it.raw)
        json.dumps(it.to_json(), allow_nan=False)
        it.to_text()
        if isinstance(it, ErrorItem) and not it.raw:
            raise Violation(f"empty error item at {it.offset}")
    if not all(seen):
        raise Violation(f"dissector left byte {seen.index(0)} uncovered")
    frames = [(it.offset, it.frame) for it in items if isinstance(it, FrameItem)]
    if frames != [(p, f) for p, _, f in decoded]:
        raise Violation("dissector frames differ from the codec's")


def _maps() -> list[mp.RegisterMap]:
    maps = [mp.load_register_map(name) for name in mp.available_maps()]
    maps.append(mp.parse_register_map({
        "map": {"name": "fuzz", "word_order": "little"},
        "values": {
            "vout_v": {"address": 0, "type": "int32", "words": 2, "scale": 0.001,
                       "offset": -1.5, "not_available": 0xFFFFFFFF},
            "iout_a": {"address": 2, "register": "input", "type": "int16", "scale": 0.01},
            "temp_c": {"address": 10, "type": "int16", "scale": 0.1, "not_available": 0x8000},
            "fan_rpm": {"address": 11, "type": "uint32", "words": 2, "scale": 1e3},
            "status": {"address": 20, "type": "uint32", "words": 2},
        },
        "faults": {
            "over_temperature": {"value": "status", "bit": 31},
            "high_temperature": {"value": "status", "bit": 0, "severity": "warning"},
            "fan_fail": {"value": "status", "bit": 17},
        },
    }, "fuzz map"))  # fmt: skip
    return maps


MAPS: list[mp.RegisterMap] = []
FAULT_NAMES = {f.value for f in mp.PsuFault}


def run_modbus(rng: random.Random, st: Stats) -> str:
    if not MAPS:
        MAPS.extend(_maps())
    regmap = rng.choice(MAPS)
    words: dict[mp.RegisterType, dict[int, int]] = {}
    for table, address in mp._spans(regmap):
        if rng.random() < 0.1:
            continue  # the unit did not answer this block
        r = rng.random()
        word = (rng.randrange(0x10000) if r < 0.7 else
                rng.choice((0, 0x7FFF, 0x8000, 0xFFFF)) if r < 0.95 else
                rng.choice((-1, 0x10000, 0x1FFFF, -(2**40))))  # fmt: skip
        words.setdefault(table, {})[address] = word
    reading = mp.decode_reading(regmap, words)
    for name in mp.MEASUREMENTS:
        v = getattr(reading, name)
        if v is not None and not (isinstance(v, int | float) and math.isfinite(v)):
            raise Violation(f"{regmap.map.name}: {name} = {v!r} is not None or finite")
    if reading.ok not in (None, True, False) or not reading.faults <= FAULT_NAMES:
        raise Violation(f"{regmap.map.name}: ok={reading.ok!r} faults={reading.faults!r}")
    failing = {f.value for f, s in regmap.faults.items() if s.severity is mp.Severity.FAULT}
    if reading.faults & failing and reading.ok is not False:
        raise Violation(f"{regmap.map.name}: fault {reading.faults & failing} but ok={reading.ok}")
    st.frames_fed += 1
    return json.dumps({str(t): w for t, w in words.items()})


CASES = [
    "random_bytes", "head_soup", "bitflip", "truncated", "insertion", "dup_head",
    "interleaved", "garbage_then_copies", "roundtrip", "modbus_psu", "dissect",
]  # fmt: skip
_GEN = dict(zip(CASES[:9], STREAM_GENERATORS, strict=True))


def input_text(seed: int, index: int) -> str:
    """The input of iteration `index`, for a reproducer (the generators never raise)."""
    case = CASES[index % len(CASES)]
    if case == "modbus_psu":
        return "(random register words; rerun with --index)"
    rng = random.Random(seed * 1_000_000_007 + index)
    stream, expected = _GEN.get(case, gen_dissect)(rng, Stats())
    return f"stream {stream.hex()} expected {[(p, f.hex()) for p, f in expected]}"


def run_one(seed: int, index: int, st: Stats) -> str:
    """Run iteration `index` and return its case; raises `Violation` or what escaped."""
    case = CASES[index % len(CASES)]
    rng = random.Random(seed * 1_000_000_007 + index)
    try:
        if case == "modbus_psu":
            run_modbus(rng, st)
        else:
            stream, expected = _GEN.get(case, gen_dissect)(rng, st)
            check_stream(rng, st, stream, expected, dissect=case == "dissect")
    except ProtocolError:
        st.protocol_errors += 1  # typed, allowed (invariant 1), though none is expected
    return case


def work(args: tuple[int, int, int]) -> Result:
    seed, start, stop = args
    res = Result()
    for i in range(start, stop):
        case = CASES[i % len(CASES)]
        st = res.stats.setdefault(case, Stats())
        st.runs += 1
        try:
            run_one(seed, i, st)
        except Exception as exc:  # anything but ProtocolError is a violation
            text = input_text(seed, i)
            kind = "violation" if isinstance(exc, Violation) else f"{type(exc).__name__} escaped"
            res.violations.append(
                f"{kind}: {exc}\n  reproduce: bench/fuzz_codecs.py --seed {seed} --index {i}"
                f"\n  case {case}, {text[:3000]}"
            )
    res.done = stop - start
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--count", type=int, default=1_000_000, help="iterations (default 1M)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--workers", type=int, default=multiprocessing.cpu_count())
    p.add_argument("--index", type=int, help="rerun this one iteration and show it")
    args = p.parse_args(argv)
    if args.index is not None:
        st = Stats()
        case = CASES[args.index % len(CASES)]
        print(f"case {case}, {input_text(args.seed, args.index)}")
        try:
            run_one(args.seed, args.index, st)
        except Violation as exc:
            print(f"VIOLATION: {exc}")
            return 1
        print(f"ok: {st}")
        return 0
    print(f"fuzz_codecs: seed={args.seed} count={args.count} workers={args.workers} "
          f"cases={len(CASES)}", flush=True)  # fmt: skip
    units = [(args.seed, s, min(s + CHUNK, args.count)) for s in range(0, args.count, CHUNK)]
    total = Result()
    t0 = time.perf_counter()
    next_report = PROGRESS_EVERY
    with multiprocessing.Pool(args.workers) as pool:
        for res in pool.imap_unordered(work, units):
            total.done += res.done
            total.violations += res.violations
            for case, st in res.stats.items():
                total.stats.setdefault(case, Stats()).add(st)
            while total.done >= next_report:
                el = time.perf_counter() - t0
                print(f"  {total.done:>9,}/{args.count:,}  {el:7.1f} s  "
                      f"{total.done / el:8,.0f} it/s  violations {len(total.violations)}",
                      flush=True)  # fmt: skip
                next_report += PROGRESS_EVERY
    elapsed = time.perf_counter() - t0
    header = ("case", "runs", "frames_fed", "frames_out", "noise_bytes", "bad_cksum",
              "swallowed", "ambiguous", "proto_err", "<N-1", "reserved")  # fmt: skip
    print(f"{header[0]:>19} " + " ".join(f"{h:>11}" for h in header[1:]))
    agg = Stats()
    for case in CASES:
        st = total.stats.get(case, Stats())
        agg.add(st)
        row = (st.runs, st.frames_fed, st.frames_out, st.noise_bytes, st.bad_checksums,
               st.swallowed, st.ambiguous, st.protocol_errors, st.below_n_minus_1,
               st.reserved_set)  # fmt: skip
        print(f"{case:>19} " + " ".join(f"{v:>11,}" for v in row))
    for v in total.violations[:10]:
        print(v)
    print(
        f"summary: {total.done:,} iterations, {agg.frames_fed:,} valid frames fed, "
        f"{agg.frames_out:,} frames decoded, {agg.noise_bytes:,} noise bytes, "
        f"{len(total.violations)} violations, {elapsed:.1f} s, "
        f"{total.done / elapsed:,.0f} iterations/s, {agg.frames_out / elapsed:,.0f} frames/s"
    )
    return 1 if total.violations else 0


if __name__ == "__main__":
    sys.exit(main())
