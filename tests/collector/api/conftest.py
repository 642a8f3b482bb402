"""API fixtures: a ticket service on SQLite and on PostgreSQL, served by the real uvicorn."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from api_server import NOW_MS, TOKENS, Live, serve, snapshot

from collector.api.app import ApiContext, create_app
from collector.state import ScreenDirectory, ScreenState
from collector.tickets import TicketService

_DATABASES = iter(range(1, 1_000_000))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def live(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[Live]:
    """The API over a ticket database on SQLite, then on PostgreSQL (each module twice)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('api') / 'tickets.db'}"
    else:
        url = request.getfixturevalue("postgresql").create_database(
            f"api{os.getpid()}_{next(_DATABASES)}")
    clock = [NOW_MS]
    contracts = {"sites": {"acme": {"screens": {"main": {"acceptance_date": "2026-01-10"}}}}}
    svc = TicketService(url, contracts, clock=lambda: clock[0])
    screens = ScreenDirectory()
    for name in ("main", "side"):
        screens.update(
            ScreenState("acme", name, "pc1", 7, NOW_MS, snapshot("acme", name), NOW_MS + 5)
        )
    parts: dict[str, Any] = {"broker": {"ok": True}, "influx": {"ok": True}, "uptime_s": 12}
    ctx = ApiContext(
        tickets=svc,
        screens=screens,
        health=lambda: dict(parts),
        metrics_text=lambda: "# TYPE ledwatch_up gauge\nledwatch_up 1\n",
        tokens=TOKENS,
    )
    with serve(create_app(ctx)) as url, httpx.Client(base_url=url, timeout=10) as client:
        yield Live(url, client, svc, screens, parts, clock)
    svc.close()


@pytest.fixture
def api(live: Live) -> Live:
    return live
