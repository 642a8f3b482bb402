"""A threaded TCP proxy on 127.0.0.1 that a test turns into a bad network.

Modes (`TcpProxy.mode`, switch at any time):
- `PASS`: new connections are forwarded to the target, both ways.
- `DROP`: every open connection is reset (both sides) and new ones are reset at once:
  what the agent sees when a router reboots or a NAT entry is flushed.
- `BLACKHOLE`: connections are accepted and kept open, but nothing is forwarded either
  way and a close by the target is not passed on: what a dead Wi-Fi link or a silently
  dropping firewall looks like. Only the client's keepalive can notice. A connection
  black-holed once stays dead after the switch back to `PASS` (as a real stale TCP
  session does); the client has to give it up and open a new one.

Counters (`accepted`, `client_closes`) let a test wait for the client's reaction
instead of sleeping a guessed time.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from enum import StrEnum


class Mode(StrEnum):
    PASS = "pass"
    DROP = "drop"
    BLACKHOLE = "blackhole"


def _reset(sock: socket.socket) -> None:
    """Close with RST (SO_LINGER 0), so the peer gets an error, not a clean EOF."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


class _Pipe:
    """One client connection and (unless accepted black-holed) its upstream connection."""

    def __init__(self, proxy: TcpProxy, client: socket.socket, upstream: socket.socket | None):
        self.proxy = proxy
        self.client = client
        self.upstream = upstream
        self.dead = upstream is None  # black-holed: read and discard, forward nothing
        self.closed = threading.Event()

    def start(self) -> None:
        self._spawn(self.client, self.upstream, from_client=True)
        if self.upstream is not None:
            self._spawn(self.upstream, self.client, from_client=False)

    def _spawn(self, src: socket.socket, dst: socket.socket | None, from_client: bool) -> None:
        threading.Thread(
            target=self._pump, args=(src, dst, from_client), daemon=True, name="tcp-proxy"
        ).start()

    def _pump(self, src: socket.socket, dst: socket.socket | None, from_client: bool) -> None:
        src.settimeout(0.1)
        while not self.closed.is_set():
            try:
                data = src.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                data = b""
            if not data:  # EOF or error on this side
                if self.closed.is_set():  # we closed it ourselves (drop, stop)
                    return
                if from_client:
                    self.proxy._count_client_close()
                    self.close()
                elif self.dead:
                    # A black hole hides the far side's close: keep the client hanging.
                    with contextlib.suppress(OSError):
                        src.close()
                else:
                    self.close()
                return
            if self.dead or dst is None:
                continue
            try:
                dst.sendall(data)
            except OSError:
                self.close()
                return

    def blackhole(self) -> None:
        self.dead = True

    def close(self, reset: bool = False) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        for sock in (self.client, self.upstream):
            if sock is None:
                continue
            if reset:
                _reset(sock)
            else:
                with contextlib.suppress(OSError):
                    sock.close()
        self.proxy._forget(self)


class TcpProxy:
    """`TcpProxy(target_host, target_port).start()`; connect to `.host`/`.port` instead."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.host = "127.0.0.1"
        self.port = 0
        self.accepted = 0  # connections accepted, in any mode
        self.client_closes = 0  # connections the client side closed (gave up or finished)
        self._mode = Mode.PASS
        self._lock = threading.Lock()
        self._pipes: set[_Pipe] = set()
        self._stop = threading.Event()
        self._server: socket.socket | None = None
        self._thread: threading.Thread | None = None

    @property
    def mode(self) -> Mode:
        return self._mode

    @mode.setter
    def mode(self, mode: Mode) -> None:
        with self._lock:
            self._mode = mode
            pipes = list(self._pipes)
        for pipe in pipes:
            if mode is Mode.DROP:
                pipe.close(reset=True)
            elif mode is Mode.BLACKHOLE:
                pipe.blackhole()

    def open_connections(self) -> int:
        with self._lock:
            return len(self._pipes)

    def start(self) -> TcpProxy:
        srv = socket.create_server((self.host, 0))
        srv.settimeout(0.1)
        self._server = srv
        self.port = srv.getsockname()[1]
        self._thread = threading.Thread(target=self._accept_loop, daemon=True, name="tcp-proxy")
        self._thread.start()
        return self

    def _accept_loop(self) -> None:
        assert self._server is not None
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.accepted += 1
                mode = self._mode
            if mode is Mode.DROP:
                _reset(client)
                continue
            upstream = None
            if mode is Mode.PASS:
                try:
                    upstream = socket.create_connection(self.target, timeout=2.0)
                except OSError:
                    _reset(client)  # target down: the client sees a refused connection
                    continue
            pipe = _Pipe(self, client, upstream)
            with self._lock:
                self._pipes.add(pipe)
                mode = self._mode  # it may have been switched while we were connecting
            if mode is Mode.DROP:
                pipe.close(reset=True)
                continue
            pipe.dead = pipe.dead or mode is Mode.BLACKHOLE
            pipe.start()

    def _forget(self, pipe: _Pipe) -> None:
        with self._lock:
            self._pipes.discard(pipe)

    def _count_client_close(self) -> None:
        with self._lock:
            self.client_closes += 1

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            with contextlib.suppress(OSError):
                self._server.close()
        with self._lock:
            pipes = list(self._pipes)
        for pipe in pipes:
            pipe.close()
        if self._thread is not None:
            self._thread.join(2.0)

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
