"""Dissect captured NovaStar bytes into frames and error items (pure; `ledwatch decode`).

A field engineer pastes what a serial sniffer or Wireshark showed; this module says what
each frame is (every header field, the register's name from spec chapter 3, the decoded
status values) and what is wrong with the rest. It reuses `NovastarCodec.decode`, so the
dissector accepts and refuses exactly what the agent's driver does: a frame the
dissector shows as good is one the driver would take. Register names, sections and
value decoders come from the codec's one register table (`firmware_protocols.novastar.
registers`); this module keeps none of its own.

Bad input is never raised, it becomes an item:

- `garbage`: a run of bytes that is no frame (noise, a false head);
- `bad checksum`: a plausible header whose frame fails the checksum (spec 2.1, No. 14);
  the item covers the whole would-be frame, and bytes inside it that are no frame are
  not reported again (a real frame found inside is);
- `truncated frame`: the input ends inside a frame;
- `unparsable line`: a capture file line that is no hex (`dissect_capture` only).

Every input byte is covered by at least one item, so nothing is silently dropped.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from firmware_protocols import novastar as ns
from firmware_protocols.novastar import (
    CODE_READ,
    MIN_SIZE,
    DeviceType,
    Frame,
    NovastarCodec,
    Register,
    find_register,
    register_values,
)
from ledwatch.errors import UsageError

Values = dict[str, Any]


class ErrorKind(StrEnum):
    GARBAGE = "garbage"
    BAD_CHECKSUM = "bad checksum"
    TRUNCATED = "truncated frame"
    UNPARSABLE = "unparsable line"


def decode_values(frame: Frame) -> Values | None:
    """The status values a frame carries, or None (no data, failed read, unknown register).

    Read replies with ACK 0 and write requests carry data (spec 2.1/2.2). Names, offsets
    and decoders all come from the codec's register table (`ns.REGISTERS`).
    """
    if not frame.data or not frame.carries_data or (frame.is_reply and frame.ack != ns.Ack.OK):
        return None
    found = register_values(frame.device_type, frame.address, frame.data)
    if not found:
        return None
    return {f.name: _jsonable(f.show(val) if f.show and val is not None else val)
            for f, val in found}  # fmt: skip


def _jsonable(value: Any) -> Any:
    """Tuples as lists, so `to_json()` equals what `json.loads(json.dumps(...))` gives."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


# -- items -----------------------------------------------------------------------------
def _hex(data: bytes) -> str:
    return data.hex(" ").upper()


def _device_name(device_type: int) -> str:
    try:
        return DeviceType(device_type).name.lower()
    except ValueError:
        return f"0x{device_type:02X}"


@dataclass(frozen=True, slots=True)
class FrameItem:
    """A good frame at `offset` (in its stream); `line` is set for capture files."""

    offset: int
    raw: bytes
    frame: Frame
    line: int | None = None
    stream: str | None = None

    @property
    def register(self) -> tuple[str, Register] | None:
        return find_register(self.frame.device_type, self.frame.address)

    @property
    def values(self) -> Values | None:
        return decode_values(self.frame)

    def to_json(self) -> Values:
        f = self.frame
        kind = f.ack_kind
        reg = self.register
        out: Values = {}
        if self.line is not None:
            out["line"] = self.line
        if self.stream is not None:
            out["stream"] = self.stream
        out.update(
            offset=self.offset,
            size=len(self.raw),
            direction="reply" if f.is_reply else "request",
            ack=f.ack,
            ack_name=kind.name if kind is not None else "reserved",
            serial=f.serial,
            src=f"0x{f.src:02X}",
            dst=f"0x{f.dst:02X}",
            device_type=f.device_type,
            device=_device_name(f.device_type),
            port=f.port,
            board=f.board,
            code="read" if f.code == CODE_READ else "write",
            reserved=self.raw[11],  # not kept in a Frame; shown so a corrupt one is seen
            address=f"0x{f.address:08X}",
            register=reg[0] if reg else None,
            section=reg[1].section if reg else None,
            length=f.length,
            data=_hex(f.data),
            checksum=f"0x{int.from_bytes(self.raw[-2:], 'little'):04X}",
            checksum_ok=True,
            values=self.values,
        )
        return out

    def to_text(self) -> str:
        f = self.frame
        where = f"line {self.line} " if self.line is not None else ""
        where += f"[{self.stream}] " if self.stream else ""
        head = "reply  " if f.is_reply else "request"
        kind = f.ack_kind
        ack = f"ack {f.ack:#04x} {kind.name if kind is not None else 'reserved'}  "
        reg = self.register
        reg_text = f"{reg[0]}, spec {reg[1].section}" if reg else "unknown register"
        lines = [
            f"{where}@{self.offset}: {head} serial {f.serial:#04x}  "
            + (ack if f.is_reply else "")
            + f"{f.src:02X} -> {f.dst:02X}  {_device_name(f.device_type)} port {f.port} "
            f"board {f.board}",
            f"    {'read ' if f.code == CODE_READ else 'write'} 0x{f.address:08X} ({reg_text})"
            f"  length {f.length}  checksum ok",
        ]
        if f.data:
            shown = f.data[:32]
            more = f" ... ({len(f.data)} bytes)" if len(f.data) > len(shown) else ""
            lines.append(f"    data {_hex(shown)}{more}")
        values = self.values
        if values:
            lines.append("    " + "  ".join(f"{k}={_text_value(v)}" for k, v in values.items()))
        return "\n".join(lines)


def _text_value(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list | tuple):
        return "[" + ",".join(_text_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ",".join(f"{k}:{_text_value(x)}" for k, x in v.items()) + "}"
    return str(v)


@dataclass(frozen=True, slots=True)
class ErrorItem:
    """Bytes that are no good frame (see the module docstring for the kinds)."""

    error: ErrorKind
    offset: int
    raw: bytes
    line: int | None = None
    stream: str | None = None
    detail: str | None = None

    def to_json(self) -> Values:
        out: Values = {"error": self.error.value}
        if self.line is not None:
            out["line"] = self.line
        if self.stream is not None:
            out["stream"] = self.stream
        out.update(offset=self.offset, size=len(self.raw), bytes=_hex(self.raw))
        if self.detail is not None:
            out["detail"] = self.detail
        return out

    def to_text(self) -> str:
        where = f"line {self.line} " if self.line is not None else ""
        where += f"[{self.stream}] " if self.stream else ""
        shown = self.raw[:32]
        more = " ..." if len(self.raw) > len(shown) else ""
        text = f"{where}@{self.offset}: ERROR {self.error.value} ({len(self.raw)} bytes)"
        if self.raw:
            text += f": {_hex(shown)}{more}"
        if self.detail:
            text += f"  ({self.detail})"
        return text


Item = FrameItem | ErrorItem


def _candidate_size(buf: bytes | memoryview) -> int:
    """Size a header at buf[0] claims, as the codec computes it (for a bad-checksum item)."""
    is_reply = buf[0] == 0xAA
    carries = (buf[10] == CODE_READ) == is_reply
    length = int.from_bytes(buf[16:18], "little")
    return MIN_SIZE + (length if carries else 0)


def dissect_novastar(data: bytes, max_data_length: int = ns.MAX_DATA_LENGTH) -> list[Item]:
    """Every frame and error item in `data`, in order; never raises on any bytes.

    The input is taken as complete: a frame still waiting for bytes at the end is a
    `truncated frame`, and the scan goes on one byte later, as the codec would once the
    missing bytes never come.
    """
    raw = bytes(data)
    view = memoryview(raw)
    n = len(raw)
    codec = NovastarCodec(max_data_length)
    items: list[Item] = []
    pos = 0
    noise_start: int | None = None
    covered_until = 0  # bytes before this are inside an error item already reported

    def flush_noise(end: int) -> None:
        nonlocal noise_start
        if noise_start is not None and end > noise_start:
            items.append(ErrorItem(ErrorKind.GARBAGE, noise_start, raw[noise_start:end]))
        noise_start = None

    while pos < n:
        bad_before = codec.bad_checksums
        used, frame = codec.decode(view[pos:])
        if frame is not None:
            flush_noise(pos)
            items.append(FrameItem(pos, raw[pos : pos + used], frame))
            pos += used
            continue
        if used == 0:  # end of input inside a would-be frame
            if pos >= covered_until and n - pos >= 2:
                flush_noise(pos)
                want = _candidate_size(view[pos:]) if n - pos >= MIN_SIZE else MIN_SIZE
                items.append(ErrorItem(ErrorKind.TRUNCATED, pos, raw[pos:],
                                       detail=f"{n - pos} of at least {want} bytes"))
                covered_until = n
            used = 1
        elif codec.bad_checksums > bad_before and pos >= covered_until:
            flush_noise(pos)
            size = min(_candidate_size(view[pos:]), n - pos)
            body = raw[pos + 2 : pos + size - 2]
            wire = int.from_bytes(raw[pos + size - 2 : pos + size], "little")
            items.append(ErrorItem(ErrorKind.BAD_CHECKSUM, pos, raw[pos : pos + size],
                                   detail=f"checksum 0x{wire:04X}, computed "
                                   f"0x{ns.checksum(body):04X}"))  # fmt: skip
            covered_until = pos + size
        # Noise outside any reported item joins the current garbage run.
        end = pos + used
        if end > covered_until and noise_start is None:
            noise_start = max(pos, covered_until)
        pos = end
    flush_noise(n)
    return items


# -- hex input -------------------------------------------------------------------------
_SEPARATORS = re.compile(r"[\s:,;\-]+")
_HEX = re.compile(r"[0-9a-fA-F]*")


def parse_hex(text: str) -> bytes:
    """Hex with or without spaces, colons, commas or `0x`: `55 AA`, `55:aa`, `0x55AA`.

    Raises `UsageError` naming the token that is not hex.
    """
    out = bytearray()
    for token in _SEPARATORS.split(text.strip()):
        if not token:
            continue
        digits = token[2:] if token[:2] in ("0x", "0X") else token
        if not _HEX.fullmatch(digits) or not digits:
            raise UsageError(f"{token!r} is not hex")
        if len(digits) % 2:
            raise UsageError(f"{token!r} has an odd number of hex digits")
        out += bytes.fromhex(digits)
    return bytes(out)


# A sniffer line: optional timestamp (`12:00:01.123`, `2024-05-01 12:00:01,5`, `[...]`),
# optional direction (`>`, `<`, `->`, `<-`, `TX`, `RX`, optionally followed by `:`).
_LINE_PREFIX = re.compile(
    r"""^\s*
    (?:\[?(?:\d{4}-\d{2}-\d{2}[T\s])?\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?\]?(?=\s|[<>]|$))?\s*
    (?P<dir>->|<-|>>|<<|[<>]|TX|RX|tx|rx)?\s*:?\s*""",
    re.VERBOSE,
)
_DIRECTIONS: Final = {">": ">", "->": ">", ">>": ">", "tx": ">", "<": "<", "<-": "<",
                      "<<": "<", "rx": "<"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class CaptureLine:
    line: int
    stream: str | None  # ">" or "<" when the line says its direction
    data: bytes


def parse_capture(lines: Iterable[str]) -> tuple[list[CaptureLine], list[ErrorItem]]:
    """Parse a sniffer capture: one frame or stream chunk per line.

    Blank lines and `#` comments are skipped; a leading timestamp and direction marker
    are tolerated (`12:00:01.123 > 55 AA ...`). Lines that are no hex become
    `unparsable line` items.
    """
    good: list[CaptureLine] = []
    bad: list[ErrorItem] = []
    for no, text in enumerate(lines, start=1):
        body = text.split("#", 1)[0]
        if not body.strip():
            continue
        m = _LINE_PREFIX.match(body)
        direction = None
        if m is not None:
            if m["dir"]:
                direction = _DIRECTIONS[m["dir"].lower()]
            body = body[m.end() :]
        try:
            data = parse_hex(body)
        except UsageError as exc:
            bad.append(ErrorItem(ErrorKind.UNPARSABLE, 0, b"", line=no, detail=str(exc)))
            continue
        if data:
            good.append(CaptureLine(no, direction, data))
    return good, bad


Dissector = Callable[[bytes], list[Item]]


def dissect_capture(lines: Iterable[str], dissect: Dissector = dissect_novastar) -> list[Item]:
    """Dissect a capture file. Lines of one direction are joined into one stream (a frame
    may span chunks); each item gets the line it starts on and its offset in that line.
    `dissect` is the family's bytes -> items function."""
    good, bad = parse_capture(lines)
    streams: dict[str | None, list[CaptureLine]] = {}
    for cl in good:
        streams.setdefault(cl.stream, []).append(cl)
    items: list[Item] = list(bad)
    for stream, chunks in streams.items():
        starts: list[int] = []
        total = 0
        for cl in chunks:
            starts.append(total)
            total += len(cl.data)
        joined = b"".join(cl.data for cl in chunks)
        for item in dissect(joined):
            k = bisect.bisect_right(starts, item.offset) - 1
            line, offset = chunks[k].line, item.offset - starts[k]
            if isinstance(item, FrameItem):
                items.append(FrameItem(offset, item.raw, item.frame, line, stream))
            else:
                items.append(ErrorItem(item.error, offset, item.raw, line, stream, item.detail))
    items.sort(key=lambda it: (it.line or 0, it.offset))
    return items


def has_errors(items: Iterable[Item]) -> bool:
    return any(isinstance(it, ErrorItem) for it in items)


__all__ = [
    "CaptureLine",
    "Dissector",
    "ErrorItem",
    "ErrorKind",
    "FrameItem",
    "Item",
    "Register",
    "decode_values",
    "dissect_capture",
    "dissect_novastar",
    "find_register",
    "has_errors",
    "parse_capture",
    "parse_hex",
]
