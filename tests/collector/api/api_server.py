"""API test helpers: the real uvicorn server on 127.0.0.1 in a thread, tokens, a snapshot."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from collector.state import ScreenDirectory
from collector.tickets import TicketService


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """Yield the base URL while the server runs; stop it and join the thread afterwards."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))  # the kernel picks a free port; no race with others
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


TOKENS = {
    "viewer-token-0001": "viewer",
    "engineer-token-01": "engineer",
    "admin-token-00001": "admin",
}
VIEWER = {"Authorization": "Bearer viewer-token-0001"}
ENGINEER = {"Authorization": "Bearer engineer-token-01"}
ADMIN = {"Authorization": "Bearer admin-token-00001"}
NOW_MS = 1_772_323_200_000  # 2026-03-01T00:00Z


@dataclass
class Live:
    url: str
    client: httpx.Client
    tickets: TicketService
    screens: ScreenDirectory
    parts: dict[str, Any] = field(default_factory=dict)
    clock: list[int] = field(default_factory=lambda: [NOW_MS])


def snapshot(site: str, screen: str) -> dict[str, Any]:
    return {
        "schema": "ledwatch.telemetry/1",
        "site": site,
        "screen": screen,
        "agent": "pc1",
        "seq": 7,
        "ts": NOW_MS,
        "controller": {"online": True, "temp_c": 41.5},
        "cards": {"id": ["c1"], "online": [True]},
        "psus": {"id": [], "ok": []},
        "env": {},
    }
