"""Ticket fixtures: a settable clock and services on real SQLite files in tmp_path."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from ticket_helpers import Clock, ms

from collector.tickets import TicketService


@pytest.fixture
def clock() -> Clock:
    return Clock(ms("2026-03-01T00:00"))


@pytest.fixture
def make_service(tmp_path: Path, clock: Clock) -> Iterator[Callable[..., TicketService]]:
    made: list[TicketService] = []

    def make(contracts: dict[str, Any] | None = None, name: str = "tickets.db") -> TicketService:
        svc = TicketService(f"sqlite:///{tmp_path / name}", contracts, clock=clock)
        made.append(svc)
        return svc

    yield make
    for svc in made:
        svc.close()


@pytest.fixture
def service(make_service: Callable[..., TicketService]) -> TicketService:
    return make_service()
