"""NovaStar framing (RS-232 / TCP 5200): frames, checksum, the sans-I/O decoder.

Source: NovaStar "RS232 Protocol for Nova M3 Control System" V1.9 (cited as "spec x.y").
The same frames travel over the serial port (115200 Bd for MCTRL300/500, 1048576 Bd for
MCTRL600/660, spec 1.2) and over TCP port 5200 of controllers with a LAN port.

Frame layout (spec 2.1 request, 2.2 reply; multi-byte fields little endian)::

    offset size field
    +----+----+----------------------------------------------------------------+
    |  0 |  2 | head      55 AA request (computer -> card), AA 55 reply         |
    |  2 |  1 | ack       0 in a request; the result code in a reply (`Ack`)    |
    |  3 |  1 | serial    matches a reply to its request                        |
    |  4 |  1 | src       FE (the computer) in a request                        |
    |  5 |  1 | dst       first card on the serial line = 0; FE in a reply      |
    |  6 |  1 | device    0 sending, 1 receiving, 2 function card               |
    |  7 |  1 | port      output (RJ45) port of the sending card, FF = all      |
    |  8 |  2 | board     receiving card index on that port, FFFF = all         |
    | 10 |  1 | code      0 read, 1 write                                       |
    | 11 |  1 | reserved                                                        |
    | 12 |  4 | address   register address                                      |
    | 16 |  2 | length    bytes to read / read / written (0 in a write reply)   |
    | 18 |  N | data      read reply and write request only                     |
    |18+N|  2 | checksum  (sum of bytes 2 .. 17+N) + 0x5555, mod 2**16          |
    +----+----+----------------------------------------------------------------+

`MIN_SIZE` (20) is a frame without data. The decoder (`NovastarCodec.decode`) recovers
from garbage before, inside and after a frame, from a bad checksum and from an impossible
length by sliding one byte and counting what it skipped; it never raises on wire bytes.
Encoders raise `UsageError` for values that cannot be put on the wire.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from firmware_protocols import stream
from firmware_protocols.errors import NovastarProtocolError
from ledwatch.errors import UsageError

HEAD_REQUEST: Final = b"\x55\xaa"
HEAD_REPLY: Final = b"\xaa\x55"
HEADER_SIZE: Final = 18  # head .. length, inclusive
CHECKSUM_SIZE: Final = 2
MIN_SIZE: Final = HEADER_SIZE + CHECKSUM_SIZE  # a frame without data
CHECKSUM_SEED: Final = 0x5555
COMPUTER_ADDRESS: Final = 0xFE  # spec 2.1, No. 4: "fixed to be FEH"
BROADCAST_PORT: Final = 0xFF  # spec 3.3: port FF = every output port
BROADCAST_BOARD: Final = 0xFFFF  # spec 3.3: board FFFF = every card on the port
# The longest register read in the spec is the 0x100-byte monitoring block (3.1.1);
# anything far above that is a corrupt length field, and waiting for that many bytes
# would stall the stream, so such a header is treated as noise.
MAX_DATA_LENGTH: Final = 0x800

CODE_READ: Final = 0
CODE_WRITE: Final = 1


class DeviceType(IntEnum):
    """Who a request is for (spec 2.1, No. 6)."""

    SENDING_CARD = 0
    RECEIVING_CARD = 1
    FUNCTION_CARD = 2


class Ack(IntEnum):
    """Result code of a reply (spec 2.2, No. 2); 5..FF are reserved."""

    OK = 0
    TIMEOUT = 1  # the card behind the sending card did not answer
    REQUEST_CHECKSUM = 2
    REPLY_CHECKSUM = 3
    INVALID_COMMAND = 4


def check_range(name: str, value: object, hi: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= hi:
        raise UsageError(f"novastar frame: {name}={value!r} is not an integer in 0..{hi}")


_FIELD_LIMITS = (
    ("ack", 0xFF), ("serial", 0xFF), ("src", 0xFF), ("dst", 0xFF), ("device_type", 0xFF),
    ("port", 0xFF), ("board", 0xFFFF), ("address", 0xFFFFFFFF), ("length", 0xFFFF),
)  # fmt: skip
# Plain ints and this module's IntEnums; bool (an int subclass) is refused on purpose.
_INT_TYPES = frozenset({int, DeviceType, Ack})


@dataclass(frozen=True, slots=True)
class Frame:
    """One request or reply; validated on construction so an unsendable frame can't exist.

    `length` is the wire field: bytes to read (read request), bytes read (read reply),
    bytes written (write request), 0 in a write reply (spec 2.2 examples).
    """

    is_reply: bool
    ack: int
    serial: int
    src: int
    dst: int
    device_type: int
    port: int
    board: int
    code: int
    address: int
    length: int
    data: bytes = b""

    def __post_init__(self) -> None:
        # Hot path (a 250-card poll builds ~1,300 frames): one chained comparison and one
        # type check; the field-by-field loop only runs to name the bad field.
        header = (self.ack, self.serial, self.src, self.dst, self.device_type, self.port,
                  self.board, self.address, self.length)  # fmt: skip
        try:
            ok = (
                {type(v) for v in header} <= _INT_TYPES
                and 0 <= self.ack <= 0xFF and 0 <= self.serial <= 0xFF
                and 0 <= self.src <= 0xFF and 0 <= self.dst <= 0xFF
                and 0 <= self.device_type <= 0xFF and 0 <= self.port <= 0xFF
                and 0 <= self.board <= 0xFFFF and 0 <= self.address <= 0xFFFFFFFF
                and 0 <= self.length <= 0xFFFF
            )  # fmt: skip
        except TypeError:
            ok = False
        if not ok:
            for name, hi in _FIELD_LIMITS:
                check_range(name, getattr(self, name), hi)
        if self.code not in (CODE_READ, CODE_WRITE):
            raise UsageError(f"novastar frame: code={self.code!r} is not 0 (read) or 1 (write)")
        if not isinstance(self.data, bytes):
            raise UsageError(f"novastar frame: data must be bytes, not {type(self.data).__name__}")
        n = len(self.data)
        if self.carries_data:
            # A failed read may come back without its data (see NovastarCodec.decode).
            short_ok = self.is_reply and self.ack != Ack.OK and n == 0
            if n != self.length and not short_ok:
                raise UsageError(
                    f"novastar frame: length={self.length} but {n} data bytes were given"
                )
        elif n:
            kind = "write reply" if self.is_reply else "read request"
            raise UsageError(f"novastar frame: a {kind} carries no data ({n} bytes given)")

    @property
    def carries_data(self) -> bool:
        """Read replies and write requests carry data; the other two do not (spec 2.1/2.2)."""
        return (self.code == CODE_READ) == self.is_reply

    @property
    def ack_kind(self) -> Ack | None:
        """The ack as an `Ack`, or None for a reserved value."""
        try:
            return Ack(self.ack)
        except ValueError:
            return None

    @property
    def size(self) -> int:
        return MIN_SIZE + len(self.data)


def checksum(body: bytes | bytearray) -> int:
    """Spec 2.1, No. 14: sum of the bytes after the head, plus 0x5555, kept to 16 bits."""
    return (sum(body) + CHECKSUM_SEED) & 0xFFFF


def encode(frame: Frame) -> bytes:
    """The wire bytes of `frame` (head .. checksum)."""
    body = bytearray(HEADER_SIZE - 2 + len(frame.data))
    body[0] = frame.ack
    body[1] = frame.serial
    body[2] = frame.src
    body[3] = frame.dst
    body[4] = frame.device_type
    body[5] = frame.port
    body[6:8] = frame.board.to_bytes(2, "little")
    body[8] = frame.code
    body[9] = 0  # reserved
    body[10:14] = frame.address.to_bytes(4, "little")
    body[14:16] = frame.length.to_bytes(2, "little")
    body[16:] = frame.data
    head = HEAD_REPLY if frame.is_reply else HEAD_REQUEST
    return head + bytes(body) + checksum(body).to_bytes(2, "little")


def read_request(
    serial: int,
    device_type: int,
    port: int,
    board: int,
    address: int,
    length: int,
    dst: int = 0,
) -> Frame:
    """A read of `length` bytes at `address` (spec 2.1, Code 00H: no data section)."""
    return _request(serial, device_type, port, board, address, CODE_READ, length, b"", dst)


def write_request(
    serial: int,
    device_type: int,
    port: int,
    board: int,
    address: int,
    data: bytes,
    dst: int = 0,
) -> Frame:
    """A write of `data` at `address` (spec 2.1, Code 01H)."""
    if not isinstance(data, bytes | bytearray):
        raise UsageError(f"novastar write_request: data must be bytes, not {type(data).__name__}")
    return _request(serial, device_type, port, board, address, CODE_WRITE, len(data),
                    bytes(data), dst)  # fmt: skip


def _request(serial: int, device_type: int, port: int, board: int, address: int, code: int,
             length: int, data: bytes, dst: int) -> Frame:  # fmt: skip
    return Frame(is_reply=False, ack=0, serial=serial, src=COMPUTER_ADDRESS, dst=dst,
                 device_type=device_type, port=port, board=board, code=code, address=address,
                 length=length, data=data)  # fmt: skip


def reply_to(request: Frame, data: bytes = b"", ack: int = Ack.OK) -> Frame:
    """The card's answer to `request` (spec 2.2): src/dst swapped, same serial and address.

    A failed read (ack != 0) without data is padded with zeros to the requested length,
    as the spec 3.7.2 example shows a reply with ACK 02 still carrying its data.
    """
    if request.is_reply:
        raise UsageError("novastar reply_to: the frame given is already a reply")
    if request.code == CODE_READ:
        if not data and ack != Ack.OK:
            data = bytes(request.length)
        length = request.length
    else:
        if data:
            raise UsageError("novastar reply_to: a write reply carries no data")
        length = 0
    return Frame(
        is_reply=True,
        ack=int(ack),
        serial=request.serial,
        src=request.dst,
        dst=request.src,
        device_type=request.device_type,
        port=request.port,
        board=request.board,
        code=request.code,
        address=request.address,
        length=length,
        data=bytes(data),
    )


def check_reply(request: Frame, reply: Frame, require_ok: bool = False) -> Frame:
    """Return `reply` if it answers `request`; else raise `NovastarProtocolError`.

    A reply answers a request when it is a reply with the same serial, device type,
    port, board, code and address (spec 2.2 echoes them). With `require_ok`, an ACK
    other than 0 raises too, naming it.
    """
    if not reply.is_reply:
        raise NovastarProtocolError(f"serial {reply.serial}: got a request, not a reply")
    for name in ("serial", "device_type", "port", "board", "code", "address"):
        want, got = getattr(request, name), getattr(reply, name)
        if want != got:
            raise NovastarProtocolError(
                f"serial {request.serial}: reply {name} is {got:#x}, the request's is {want:#x}"
            )
    if require_ok and reply.ack != Ack.OK:
        kind = reply.ack_kind
        label = kind.name if kind is not None else "reserved"
        raise NovastarProtocolError(
            f"serial {request.serial}: card answered ACK {reply.ack:#04x} ({label}) "
            f"for {request.address:#010x}"
        )
    return reply


class NovastarCodec:
    """Sans-I/O frame decoder: bytes in, frames out, noise skipped and counted.

    Recovers from: garbage before, inside and after a frame; a bad checksum; a reserved
    code byte; a request not from / reply not to the computer (FE); a length above
    `max_data_length` (all skipped one byte at a time, so a
    real frame hiding behind a false head is still found). Counters: `noise_bytes`,
    `bad_checksums`, `frames`.
    """

    def __init__(self, max_data_length: int = MAX_DATA_LENGTH) -> None:
        self.max_data_length = max_data_length
        self.noise_bytes = 0
        self.bad_checksums = 0
        self.frames = 0

    def decode(self, buffer: bytes | bytearray | memoryview) -> tuple[int, Frame | None]:
        """Decode the frame at the start of `buffer`.

        Returns (consumed, frame): (0, None) = need more bytes; (n, None) = n bytes of
        noise to drop; (n, frame) = a frame of n bytes. Never raises on wire content.
        """
        buf = bytes(buffer[: self.max_data_length + MIN_SIZE])
        n = len(buf)
        if n == 0:
            return 0, None
        # Skip to the next possible head; a lone last byte may be half of a head.
        start = 0
        while start < n:
            b = buf[start]
            if (b == 0x55 or b == 0xAA) and (start + 1 == n or _is_head(buf, start)):
                break
            start += 1
        if start:
            return self._noise(start)
        if n < MIN_SIZE:
            return 0, None
        is_reply = buf[0] == 0xAA
        code = buf[10]
        length = int.from_bytes(buf[16:18], "little")
        # The computer (FE) is the source of every request and the destination of every
        # reply (spec 2.1/2.2, No. 4/5): a cheap test that rejects most false heads
        # before their length field can make us wait for bytes that never come.
        peer = buf[5] if is_reply else buf[4]
        if code not in (CODE_READ, CODE_WRITE) or length > self.max_data_length or peer != 0xFE:
            return self._noise(1)
        carries = (code == CODE_READ) == is_reply
        ack = buf[2]
        if carries and is_reply and ack != Ack.OK and _checksum_ok(buf, MIN_SIZE):
            # A failed read answered without its data section.
            return self._frame(buf, MIN_SIZE, is_reply, 0)
        size = MIN_SIZE + (length if carries else 0)
        if n < size:
            return 0, None
        if not _checksum_ok(buf, size):
            self.bad_checksums += 1
            return self._noise(1)
        return self._frame(buf, size, is_reply, length if carries else 0)

    def _noise(self, count: int) -> tuple[int, None]:
        self.noise_bytes += count
        return count, None

    def _frame(self, buf: bytes, size: int, is_reply: bool, data_len: int) -> tuple[int, Frame]:
        self.frames += 1
        frame = Frame(
            is_reply=is_reply,
            ack=buf[2],
            serial=buf[3],
            src=buf[4],
            dst=buf[5],
            device_type=buf[6],
            port=buf[7],
            board=int.from_bytes(buf[8:10], "little"),
            code=buf[10],
            address=int.from_bytes(buf[12:16], "little"),
            length=int.from_bytes(buf[16:18], "little"),
            data=buf[HEADER_SIZE : HEADER_SIZE + data_len],
        )
        return size, frame


def _is_head(buf: bytes, i: int) -> bool:
    pair = buf[i : i + 2]
    return pair in (HEAD_REQUEST, HEAD_REPLY)


def _checksum_ok(buf: bytes, size: int) -> bool:
    return checksum(buf[2 : size - 2]) == int.from_bytes(buf[size - 2 : size], "little")


class StreamDecoder(stream.StreamDecoder[Frame]):
    """Keeps the unread bytes of a stream between `feed` calls (h11's receive buffer);
    the buffer itself is the generic one every family's stream codec uses."""

    codec: NovastarCodec

    def __init__(self, codec: NovastarCodec | None = None) -> None:
        super().__init__(codec or NovastarCodec())
