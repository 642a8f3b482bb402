"""A small real HTTP server for the emulators of HTTP-speaking processors (COEX, Tessera).

The stdlib `ThreadingHTTPServer` in a daemon thread: light, no ASGI stack, and a real
socket, so the drivers' httpx clients are tested against real HTTP. The emulator hands
in one function `app(request) -> reply` (pure with respect to I/O) and one `refuse()`
that says whether the link is down: a refused connection is reset (SO_LINGER 0) before
anything is read, which a client sees as a dropped connection, as with a pulled cable
or a rebooting processor. Every request is logged with its time (`requests_log`) so
tests can check the drivers' pacing.
"""

from __future__ import annotations

import contextlib
import json
import socket
import socketserver
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    path: str  # without the query string
    query: dict[str, list[str]]
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class HttpReply:
    status: int = 200
    body: bytes = b""
    content_type: str | None = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


def json_reply(obj: Any, status: int = 200) -> HttpReply:
    return HttpReply(status, json.dumps(obj, separators=(",", ":")).encode())


@dataclass(slots=True)
class RequestLog:
    """(monotonic time, method, path) of every request answered; bounded."""

    entries: list[tuple[float, str, str]] = field(default_factory=list)
    limit: int = 10_000
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, method: str, path: str) -> None:
        with self.lock:
            self.entries.append((time.monotonic(), method, path))
            del self.entries[: max(0, len(self.entries) - self.limit)]

    def paths(self) -> list[str]:
        with self.lock:
            return [p for _, _, p in self.entries]

    def times(self) -> list[float]:
        with self.lock:
            return [t for t, _, _ in self.entries]

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()


App = Callable[[HttpRequest], HttpReply]


def reset_on_close(sock: socket.socket) -> None:
    """Make the coming close() send a reset (SO_LINGER 0): the client sees a dropped
    link, not an orderly goodbye. Shared with the Colorlight emulator's TCP side."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


class ServerGroup:
    """socketserver servers, each run in a daemon thread, all stopped together."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._running: list[tuple[socketserver.BaseServer, threading.Thread]] = []

    def start(self, srv: socketserver.BaseServer) -> tuple[str, int]:
        """Serve `srv` until `stop()`; returns its bound (host, port)."""
        th = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1},
                              daemon=True, name=self.name)  # fmt: skip
        th.start()
        self._running.append((srv, th))
        addr: Any = srv.server_address
        return str(addr[0]), int(addr[1])

    def stop(self) -> None:
        """Stop every server and wait for its thread (bounded)."""
        for srv, _ in self._running:
            srv.shutdown()
            srv.server_close()
        for _, th in self._running:
            th.join(timeout=2.0)
        self._running.clear()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    refuse: Callable[[], bool]

    def verify_request(self, request: Any, client_address: Any) -> bool:
        if self.refuse():
            reset_on_close(request)
            return False  # the server closes it: the client reads a reset
        return True


class JsonHttpServer:
    """Serves `app` on a real socket until `stop()`; see the module docstring."""

    def __init__(self, app: App, refuse: Callable[[], bool] = lambda: False) -> None:
        self.app = app
        self.refuse = refuse
        self.log = RequestLog()
        self._group = ServerGroup("http-emulator")

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        """Listen on (host, port); returns the bound address (port 0 = any free one)."""
        app, log = self.app, self.log

        class Handler(BaseHTTPRequestHandler):
            server_version = "LEDwatchEmulator/1"

            def log_message(self, format: str, *args: Any) -> None:
                return  # quiet: tests and the demo print what matters themselves

            def _answer(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = HttpRequest(self.command, parts.path, parse_qs(parts.query), body)
                log.add(self.command, parts.path)
                reply = app(request)
                self.send_response(reply.status)
                if reply.content_type is not None:
                    self.send_header("Content-Type", reply.content_type)
                for name, value in reply.headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                with contextlib.suppress(OSError):
                    self.wfile.write(reply.body)

            do_GET = do_PUT = do_POST = _answer

        srv = _Server((host, port), Handler)
        srv.refuse = self.refuse
        return self._group.start(srv)

    def stop(self) -> None:
        """Stop every listener and wait for its thread (bounded)."""
        self._group.stop()
