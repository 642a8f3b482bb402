"""Colorlight string-protocol framing: `<` JSON array `>` (pure: bytes in, frames out).

Frame layout (string protocol §4.2.1, as cited in the public Companion module
`ydev-clt/companion-module-colorlight-processor`, `src/actions/string-protocol/core/
frames.ts` and `src/str2bin/index.ts`)::

    offset   width   field
    0        1       '<'  (0x3C)
    1        n       UTF-8 JSON array, compact, one line; each element one request or
                     response; a raw '<' or '>' never occurs inside (escape as \\u003c)
    1+n      1       '>'  (0x3E)

Because the delimiters cannot occur inside, the first '>' after a '<' ends the frame,
and a second '<' before it proves the first head false. What this module cannot know
(and docs/families.md says plainly): in that client the framed JSON is not what goes out
over UDP 9099; the vendor's closed libsp (`SpSession`) translates it into the device's
native "Z/V" binary first, and that binary is not public. LEDwatch speaks the framed
JSON itself, to whatever endpoint accepts it (the emulator, a string-protocol gateway).

Recovers from: garbage before, between and after frames (skipped to the next '<'); a
false head ('<' not followed by '[' or '{', or a second '<' before '>'; skipped one byte); a
frame longer than `MAX_FRAME_LEN` without '>' (skipped one byte, never waited for); a
delimited frame whose JSON is invalid or not a non-empty array (returned as `BadFrame`
with the protocol's error code and counted, so an emulator can answer it with 9001..9004
and a driver can count it). Counters: `noise_bytes`, `bad_frames`, `frames`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from firmware_protocols import stream
from firmware_protocols.colorlight.errors import UsageError
from firmware_protocols.colorlight.messages import ErrorCode, Item, dumps, item_from_json

FRAME_START: Final = 0x3C  # '<'
FRAME_END: Final = 0x3E  # '>'
MIN_SIZE: Final = 4  # '<[]>' (an empty array is well framed but refused: 9004)
# libsp's JSON scratch buffer defaults to 64 KiB (src/str2bin/index.ts): a longer frame
# is not one the vendor stack produces; past it a head without '>' is noise.
MAX_FRAME_LEN: Final = 64 * 1024
_SPACE: Final = b" \t\r\n"


@dataclass(frozen=True, slots=True)
class Frame:
    """One delimited, valid JSON array: its elements, each a Request, a Response, or the
    error code the protocol gives for a malformed element."""

    items: tuple[Item | ErrorCode, ...]
    size: int

    @property
    def valid(self) -> tuple[Item, ...]:
        return tuple(i for i in self.items if not isinstance(i, ErrorCode))


@dataclass(frozen=True, slots=True)
class BadFrame:
    """A delimited frame the protocol refuses as a whole (9001, 9003, 9004)."""

    code: ErrorCode
    size: int


def encode(items: Sequence[Item]) -> bytes:
    """Frame one or more requests/responses; `UsageError` for an empty list."""
    if not items:
        raise UsageError("colorlight: a frame carries at least one request or response")
    return b"<" + dumps([i.to_json() for i in items]).encode("utf-8") + b">"


class ColorlightCodec:
    """Sans-I/O decoder; see the module docstring for what it recovers from."""

    def __init__(self, max_frame_len: int = MAX_FRAME_LEN) -> None:
        self.max_frame_len = max_frame_len
        self.noise_bytes = 0
        self.bad_frames = 0
        self.frames = 0

    def decode(
        self, buffer: bytes | bytearray | memoryview
    ) -> tuple[int, Frame | BadFrame | None]:
        """(0, None) = need more; (n, None) = n bytes of noise; (n, frame) = a frame or
        bad frame of n bytes. Never raises on wire content."""
        buf = bytes(buffer[: self.max_frame_len + 1])
        if not buf:
            return 0, None
        start = buf.find(FRAME_START)
        if start < 0:
            return self._noise(len(buf))
        if start:
            return self._noise(start)
        body = 1
        while body < len(buf) and buf[body] in _SPACE:
            body += 1
        if body == len(buf):
            return (0, None) if len(buf) <= self.max_frame_len else self._noise(1)
        if buf[body] not in b"[{":  # an array, or an object the protocol refuses (9003)
            return self._noise(1)
        end = buf.find(FRAME_END, body)
        again = buf.find(FRAME_START, 1, end if end >= 0 else len(buf))
        if again >= 0:
            return self._noise(1)  # a second head before any '>': the first was false
        if end < 0:
            return (0, None) if len(buf) <= self.max_frame_len else self._noise(1)
        size = end + 1
        try:
            parsed = json.loads(buf[1:end].decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return self._bad(ErrorCode.INVALID_JSON, size)
        if not isinstance(parsed, list):
            return self._bad(ErrorCode.ROOT_NOT_ARRAY, size)
        if not parsed:
            return self._bad(ErrorCode.EMPTY_ARRAY, size)
        self.frames += 1
        return size, Frame(tuple(item_from_json(x) for x in parsed), size)

    def _noise(self, count: int) -> tuple[int, None]:
        self.noise_bytes += count
        return count, None

    def _bad(self, code: ErrorCode, size: int) -> tuple[int, BadFrame]:
        self.bad_frames += 1
        return size, BadFrame(code, size)


class StreamDecoder(stream.StreamDecoder[Frame | BadFrame]):
    """Keeps the unread tail of a TCP stream between `feed` calls (good and bad frames)."""

    codec: ColorlightCodec

    def __init__(self, codec: ColorlightCodec | None = None) -> None:
        super().__init__(codec or ColorlightCodec())


def decode_datagram(codec: ColorlightCodec, data: bytes) -> list[Frame | BadFrame]:
    """Every frame in one UDP datagram; a half frame at its end is noise (a datagram does
    not continue in the next one)."""
    dec = StreamDecoder(codec)
    frames = dec.feed(data)
    dec.reset()
    return frames
