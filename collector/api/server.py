"""uvicorn in a daemon thread, on a socket bound before it starts (so port 0 works)."""

from __future__ import annotations

import socket
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collector.api.app import ApiContext


class ApiServer:
    """`port` is the bound port (useful with port 0)."""

    def __init__(self, app: Any, host: str, port: int) -> None:
        import uvicorn

        # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say TCP, and
        # without it every small response waits ~40 ms for Nagle's algorithm.
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.host = host
        self.port: int = self._sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._sock]},
            name="collector-api",
            daemon=True,
        )

    def start(self, timeout_s: float = 10.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"API server on {self.host}:{self.port} did not start")
            time.sleep(0.02)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self, timeout_s: float = 5.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout_s)
        self._sock.close()


def serve_api(ctx: ApiContext, host: str = "127.0.0.1", port: int = 0) -> ApiServer:
    """Run the REST API for `ctx` in a thread; returns once it accepts connections."""
    from collector.api.app import create_app

    server = ApiServer(create_app(ctx), host, port)
    server.start()
    return server
