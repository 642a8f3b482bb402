"""The pipe to a NovaStar sending card: TCP (LAN port 5200) or serial (RS-232), plus the
reconnect backoff. Content-blind, like pymodbus' transport: it moves bytes and never
looks at them; the driver owns the protocol (including the auto-baud probe, which needs
a real read of the model register).

URLs (spec 1.2)::

    tcp://HOST[:PORT]                      PORT defaults to 5200
    serial:///dev/ttyUSB0?baud=115200      MSD300, MCTRL300, MCTRL500
    serial:///dev/ttyUSB0?baud=1048576     MSD600, MCTRL600, MCTRL660
    serial:///dev/ttyUSB0                  (or baud=auto) try 1048576, then 115200
    serial://COM3                          Windows

`read(timeout_s)` returns b"" when nothing came within the timeout and raises
`OSError` (ConnectionError) when the link itself is gone, so the driver can tell a
silent controller from an unplugged cable.
"""

from __future__ import annotations

import contextlib
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Protocol
from urllib.parse import parse_qs, urlsplit

DEFAULT_TCP_PORT: Final = 5200  # spec 1.2
BAUD_300: Final = 115200  # spec 1.2: MSD300 / MCTRL300 / MCTRL500
BAUD_600: Final = 1048576  # spec 1.2: MSD600 / MCTRL600 / MCTRL660
# Auto-baud order: the faster rate first, because a wrong-rate probe costs one timeout
# either way and the 600-series controllers are the common ones on large screens.
AUTO_BAUDS: Final = (BAUD_600, BAUD_300)
BITS_PER_BYTE: Final = 10  # 8N1: start + 8 data + stop


def wire_time_s(n_bytes: int, baudrate: int) -> float:
    """Seconds `n_bytes` need on an 8N1 serial line."""
    return n_bytes * BITS_PER_BYTE / baudrate


class Transport(Protocol):
    """What the driver needs from a link. `open` raises OSError when it cannot connect.
    A transport whose class says `may_be_held = True` (TCP) can be held by another
    client while its port still accepts connections (agent/drivers/novastar/transaction.py)."""

    def open(self) -> None: ...

    def write(self, data: bytes) -> None: ...

    def read(self, timeout_s: float) -> bytes: ...  # b"" = nothing within the timeout

    def close(self) -> None: ...


class TcpTransport:
    """A controller's LAN port. TCP_NODELAY: requests are small and latency-bound."""

    may_be_held: ClassVar[bool] = True

    def __init__(self, host: str, port: int, connect_timeout_s: float) -> None:
        self.host, self.port, self.connect_timeout_s = host, port, connect_timeout_s
        self._sock: socket.socket | None = None

    def open(self) -> None:
        self._sock = socket.create_connection((self.host, self.port), self.connect_timeout_s)
        # A peer that resets right after accepting (a link held by another client) can
        # make this fail: the connect itself worked, the next read says what happened.
        with contextlib.suppress(OSError):
            self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def write(self, data: bytes) -> None:
        if self._sock is None:
            raise ConnectionError("not connected")
        self._sock.sendall(data)

    def read(self, timeout_s: float) -> bytes:
        if self._sock is None:
            raise ConnectionError("not connected")
        self._sock.settimeout(max(timeout_s, 0.001))
        try:
            data = self._sock.recv(65536)
        except TimeoutError:
            return b""
        if not data:
            raise ConnectionError("controller closed the connection")
        return data

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class SerialTransport:
    """An RS-232 port through pyserial (`serial_for_url`, so `socket://` and `loop://`
    work too). `baudrate=None` means auto: the driver tries `candidates()` in order and
    calls `use(baud)` with the one that answered, which is tried first on reconnects."""

    may_be_held: ClassVar[bool] = False

    def __init__(self, device: str, baudrate: int | None) -> None:
        self.device = device
        self.auto = baudrate is None
        self.baudrate: int | None = baudrate  # the rate in use (auto: the last that worked)
        self._port: Any = None

    def candidates(self) -> list[int]:
        """Rates to try when opening: the fixed one, or the remembered one first."""
        if not self.auto:
            assert self.baudrate is not None
            return [self.baudrate]
        first = [self.baudrate] if self.baudrate is not None else []
        return first + [b for b in AUTO_BAUDS if b not in first]

    def use(self, baudrate: int) -> None:
        self.baudrate = baudrate

    def open(self, baudrate: int | None = None) -> None:
        import serial  # pyserial, only needed for serial links

        rate = baudrate or self.baudrate or AUTO_BAUDS[0]
        self.close()
        self._port = serial.serial_for_url(self.device, baudrate=rate, timeout=0.1)
        self._port.reset_input_buffer()

    def write(self, data: bytes) -> None:
        if self._port is None:
            raise ConnectionError("not connected")
        self._port.write(data)

    def read(self, timeout_s: float) -> bytes:
        if self._port is None:
            raise ConnectionError("not connected")
        self._port.timeout = max(timeout_s, 0.001)
        # One call returns what is there (or the first byte and whatever followed it
        # within the timeout): fewer, longer reads than byte by byte.
        data: bytes = self._port.read(max(1, self._port.in_waiting))
        if data and self._port.in_waiting:
            data += self._port.read(self._port.in_waiting)
        return data

    def close(self) -> None:
        if self._port is not None:
            self._port.close()
            self._port = None


def device_of(url: str) -> str:
    """`serial:///dev/ttyUSB0` -> /dev/ttyUSB0; `serial://COM3` (Windows) -> COM3."""
    parts = urlsplit(url)
    return parts.netloc + parts.path


def serial_baud(url: str) -> int | None:
    """The `baud` query value of a serial URL; None for auto (absent or `baud=auto`).
    Raises ValueError for anything else that is not a positive integer."""
    baud = parse_qs(urlsplit(url).query).get("baud", ["auto"])[0]
    if baud == "auto":
        return None
    if not baud.isdigit() or int(baud) <= 0:
        raise ValueError(f"baud must be a positive integer or 'auto', not {baud!r}")
    return int(baud)


def check_url(url: str) -> str:
    """Validate a controller URL (see the module docstring); ValueError says what is wrong."""
    parts = urlsplit(url)
    if parts.scheme == "tcp":
        if not parts.hostname:
            raise ValueError("tcp URL needs a host: tcp://HOST[:PORT]")
        _ = parts.port  # raises ValueError for a bad port
    elif parts.scheme == "serial":
        if not device_of(url):
            raise ValueError("serial URL needs a device: serial:///dev/ttyUSB0?baud=115200")
        serial_baud(url)
    else:
        raise ValueError("must start with tcp:// or serial://")
    return url


def transport_for(url: str, timeout_s: float) -> TcpTransport | SerialTransport:
    """The transport a checked URL names."""
    parts = urlsplit(url)
    if parts.scheme == "tcp":
        assert parts.hostname is not None
        return TcpTransport(parts.hostname, parts.port or DEFAULT_TCP_PORT, timeout_s)
    return SerialTransport(device_of(url), serial_baud(url))


@dataclass(slots=True)
class Backoff:
    """When to try a down link again: exponential with jitter, capped at `max_s`.

    `failed()` is called for the loss and for each failed attempt after it. The first
    `free` of those allow the next attempt at once (a dropped TCP connection or a
    restarting controller usually answers the next poll); the k-th waits
    `min_s * 2**(k - free - 1)` seconds, capped at `max_s`, times a random factor in
    [0.5, 1] so that agents which lost the same switch do not retry in lock step.
    """

    min_s: float = 1.0
    max_s: float = 60.0
    free: int = 2
    clock: Callable[[], float] = time.monotonic
    rand: Callable[[], float] = random.random
    failures: int = 0
    next_try: float = 0.0

    def ready(self) -> bool:
        """May the link be tried now?"""
        return self.clock() >= self.next_try

    def remaining_s(self) -> float:
        return max(0.0, self.next_try - self.clock())

    def failed(self) -> float:
        """Record a failed attempt; returns the wait before the next one."""
        self.failures += 1
        n = self.failures - self.free
        wait = 0.0 if n <= 0 else min(self.max_s, self.min_s * 2 ** (n - 1))
        wait *= 0.5 + 0.5 * self.rand()
        self.next_try = self.clock() + wait
        return wait

    def succeeded(self) -> None:
        self.failures = 0
        self.next_try = 0.0
