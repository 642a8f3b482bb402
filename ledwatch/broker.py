"""An embedded MQTT broker (amqtt) for the demo: a real broker, nothing to install.

amqtt speaks MQTT 3.1.1 only and delivers nothing to `$share/...` subscriptions
(DESIGN.md), so clients of this broker use protocol "3.1.1" and plain subscriptions.
It runs its own asyncio loop in a daemon thread so that the rest of the demo stays
plain threaded code.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from typing import Any

from ledwatch.errors import UsageError


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class EmbeddedBroker:
    """amqtt on `host:port` (port 0 picks a free one); `start()` returns once it listens."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port or free_port(host)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._broker: Any = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self, timeout_s: float = 10.0) -> None:
        self._thread = threading.Thread(target=self._run, name="amqtt-broker", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise UsageError(f"embedded MQTT broker did not start on {self.host}:{self.port}")
        if self._error is not None:
            raise UsageError(f"embedded MQTT broker failed: {self._error}") from self._error

    def _run(self) -> None:
        from amqtt.broker import Broker

        # amqtt logs every connection at INFO; the demo prints its own status instead.
        logging.getLogger("amqtt").setLevel(logging.WARNING)
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True},
            },
        }
        try:
            self._broker = Broker(config, loop=loop)
            loop.run_until_complete(self._broker.start())
        except BaseException as exc:  # reported to start()'s caller
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        loop.run_forever()
        loop.close()

    def stop(self) -> None:
        loop, broker = self._loop, self._broker
        if loop is None or broker is None or not loop.is_running():
            return
        fut = asyncio.run_coroutine_threadsafe(broker.shutdown(), loop)
        try:
            fut.result(timeout=5)
        except Exception:  # shutting down anyway
            logging.getLogger(__name__).debug("broker shutdown error", exc_info=True)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=5)
