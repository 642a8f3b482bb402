"""The pipe to a Colorlight processor: UDP (the vendor client's transport, port 9099) or
TCP. Content-blind, like the NovaStar transport (whose `TcpTransport` and `Backoff` are
reused here): it moves bytes, the driver owns the string protocol.

URLs::

    udp://HOST[:PORT]     PORT defaults to 9099; one frame per datagram
    tcp://HOST:PORT       the same frames as a byte stream (a string-protocol gateway)

`read(timeout_s)` returns b"" when nothing came and raises `ConnectionError` when the
link itself is gone (TCP closed; on UDP an ICMP "port unreachable" for the connected
socket), so the driver can tell a silent controller from a missing one.
"""

from __future__ import annotations

import socket
from typing import ClassVar, Final

from agent.drivers.common.options import host_port
from agent.drivers.novastar.transport import TcpTransport
from firmware_protocols.colorlight import DEFAULT_PORT

SCHEMES: Final = {"udp": DEFAULT_PORT, "tcp": DEFAULT_PORT}


class UdpTransport:
    """A connected UDP socket: `read` returns one datagram. No other client is known to
    hold a Colorlight processor, so a silent one is down, never held."""

    may_be_held: ClassVar[bool] = False

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._sock: socket.socket | None = None

    def open(self) -> None:
        family, kind, proto, _, addr = socket.getaddrinfo(
            self.host, self.port, type=socket.SOCK_DGRAM
        )[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.connect(addr)
        except OSError:
            sock.close()
            raise
        self._sock = sock

    def write(self, data: bytes) -> None:
        if self._sock is None:
            raise ConnectionError("not open")
        self._sock.send(data)

    def read(self, timeout_s: float) -> bytes:
        if self._sock is None:
            raise ConnectionError("not open")
        self._sock.settimeout(max(timeout_s, 0.001))
        try:
            return self._sock.recv(65536)
        except TimeoutError:
            return b""
        except ConnectionRefusedError as exc:  # ICMP port unreachable
            raise ConnectionError("nothing listens on the controller's port") from exc

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def transport_for(url: str, timeout_s: float) -> UdpTransport | TcpTransport:
    scheme, host, port = host_port(url, SCHEMES)
    if scheme == "udp":
        return UdpTransport(host, port)
    return TcpTransport(host, port, timeout_s)
