"""A stream buffer for any sans-I/O codec with the project's `decode` contract (pure).

`decode(buffer) -> (consumed, frame | None)`: (0, None) need more, (n, None) n bytes of
noise, (n, frame) a frame of n bytes; the codec counts `noise_bytes`. This keeps the
unread tail of a byte stream between reads (h11's receive buffer). Each family's own
`StreamDecoder` (NovaStar's, Colorlight's) is this class bound to its codec.
"""

from __future__ import annotations

from typing import Generic, Protocol, TypeVar

F = TypeVar("F")
F_co = TypeVar("F_co", covariant=True)


class Codec(Protocol[F_co]):
    noise_bytes: int

    def decode(self, buffer: bytes | bytearray | memoryview) -> tuple[int, F_co | None]: ...


class StreamDecoder(Generic[F]):
    """Feed bytes as they come; get every frame they complete."""

    def __init__(self, codec: Codec[F]) -> None:
        self.codec = codec
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[F]:
        """Add bytes from the wire; return every complete frame they finish."""
        self._buf += data
        frames: list[F] = []
        while self._buf:
            used, frame = self.codec.decode(self._buf)
            if used == 0:
                break
            del self._buf[:used]
            if frame is not None:
                frames.append(frame)
        return frames

    def reset(self) -> None:
        """Drop a partial frame (after a timeout, or at a datagram's end) as noise."""
        self.codec.noise_bytes += len(self._buf)
        self._buf.clear()

    @property
    def buffered(self) -> int:
        return len(self._buf)
