"""API test helpers: the real uvicorn server on 127.0.0.1 in a thread, tokens, a snapshot."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI

from collector.api.server import ApiServer
from collector.state import ScreenDirectory
from collector.tickets import TicketService


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """Yield the base URL while the server runs; stop it and join the thread afterwards."""
    server = ApiServer(app, "127.0.0.1", 0)  # the kernel picks a free port
    server.start()
    try:
        yield server.url
    finally:
        server.stop(10)


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
